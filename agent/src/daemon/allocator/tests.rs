use super::*;

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn release_returns_the_free_space_inside_the_heap() {
    // 48 MiB in 1 KiB blocks (far below the mmap threshold, so inside an arena), written so
    // every page is resident, then a block allocated after them: freeing the 48 MiB leaves
    // one free chunk *below* it, which glibc's own top trim cannot return.
    let blocks: Vec<Vec<u8>> = (0..48 * 1024).map(|_| vec![1u8; 1024]).collect();
    let pin = vec![2u8; 1024];
    let before_free = rss_kib();
    drop(blocks);
    let freed = rss_kib();
    assert!(
        before_free.saturating_sub(freed) < 16 * 1024,
        "glibc gave back the holes by itself ({before_free} -> {freed} KiB): nothing to test"
    );
    assert!(release(), "malloc_trim released nothing");
    let released = rss_kib();
    assert!(
        freed.saturating_sub(released) >= 32 * 1024,
        "RSS {freed} -> {released} KiB: the 48 MiB freed stayed resident"
    );
    assert_eq!(pin[0], 2);
}

#[test]
fn arenas_are_limited_where_the_allocator_is_glibc() {
    assert_eq!(
        limit_arenas(),
        cfg!(all(target_os = "linux", target_env = "gnu"))
    );
}

#[test]
fn a_burst_is_released_once_it_is_over_and_not_more_than_once_a_second() {
    let ms = Duration::from_millis;
    let mut r = Releases::default();
    // Quiet: only every RELEASE_EVERY.
    assert!(!r.due(ms(250), 10));
    assert!(!r.due(ms(9_750), 20));
    assert!(r.due(RELEASE_EVERY, 30));
    // A burst of 10,000 records over two ticks: not while it flows...
    assert!(!r.due(ms(1_250), 5_030));
    assert!(!r.due(ms(1_500), 10_030));
    // ...but at the first quiet tick after it.
    assert!(r.due(ms(1_750), 10_040));
    // A second burst right after a release waits for BURST_GAP.
    assert!(!r.due(ms(250), 20_040));
    assert!(!r.due(ms(500), 20_050));
    assert!(r.due(BURST_GAP, 20_060));
    // A steady flow at the burst size per tick is never quiet: every RELEASE_EVERY only.
    let mut flushed = 20_060;
    for k in 1..40u64 {
        flushed += BURST_RECORDS;
        assert!(!r.due(ms(250 * k), flushed), "tick {k}");
    }
    assert!(r.due(RELEASE_EVERY, flushed + BURST_RECORDS));
    // Fewer than BURST_RECORDS since the last release is no burst.
    assert!(!r.due(ms(2_000), flushed + BURST_RECORDS + BURST_RECORDS - 1));
}
