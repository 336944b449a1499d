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
