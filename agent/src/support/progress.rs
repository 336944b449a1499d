//! A progress line on stderr for the long one-shot commands (`weir replay` over a large
//! file, `weir outbox export`), drawn only on a terminal and at most four times a second.

use std::time::Instant;

/// A progress line on stderr, only on a terminal: replay's (bytes of files over 8 MiB) and
/// `weir outbox export`'s (records).
pub struct Progress {
    size: u64,
    enabled: bool,
    last: Instant,
    /// Counting records rather than bytes.
    records: bool,
}

impl Progress {
    /// Progress over a file of `size` bytes (shown only above 8 MiB).
    pub fn new(size: u64, terminal: bool) -> Progress {
        Progress {
            size,
            enabled: terminal && size > 8 << 20,
            last: Instant::now(),
            records: false,
        }
    }

    /// Progress over `total` records.
    pub fn records(total: u64, terminal: bool) -> Progress {
        Progress {
            size: total,
            enabled: terminal && total > 0,
            last: Instant::now(),
            records: true,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn update(&mut self, done: u64) {
        if self.enabled && self.last.elapsed().as_millis() >= 250 {
            self.last = Instant::now();
            eprint!("\r{}", self.line(done));
        }
    }

    /// `[#####     ] 50.0% of 12 MiB` (or `of 1000 records`).
    fn line(&self, done: u64) -> String {
        let pct = done as f64 * 100.0 / self.size.max(1) as f64;
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        let total = if self.records {
            format!("{} records", self.size)
        } else {
            format!("{} MiB", self.size >> 20)
        };
        format!(
            "[{}{}] {pct:5.1}% of {total}",
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
        )
    }

    pub fn finish(&mut self) {
        if self.enabled {
            eprintln!();
            self.enabled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_the_share_done_of_bytes_or_records() {
        let bytes = Progress::new(16 << 20, true);
        assert_eq!(
            bytes.line(4 << 20),
            format!("[{}{}]  25.0% of 16 MiB", "#".repeat(7), " ".repeat(23))
        );
        let mut records = Progress::records(1000, true);
        assert!(records.enabled());
        assert_eq!(
            records.line(1000),
            format!("[{}] 100.0% of 1000 records", "#".repeat(30))
        );
        records.finish();
        assert!(!records.enabled());
        assert!(
            !Progress::records(1000, false).enabled(),
            "only on a terminal"
        );
        assert!(
            !Progress::new(1 << 20, true).enabled(),
            "small files need none"
        );
    }
}
