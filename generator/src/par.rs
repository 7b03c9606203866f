//! Order-preserving parallel map over independent items (apps, files).
//!
//! Results come back in the items' order whatever the scheduling, so the
//! output stays byte for byte what a sequential loop would produce, and
//! the first error in item order is the one reported.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many threads to use: the cores available, at most 8; 1 when
/// `WINDLASS_THREADS=1` (or any number) says so.
pub fn threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("WINDLASS_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .min(8)
            })
    })
}

/// `items.iter().map(f).collect()`, spread over [`threads`] threads.
pub fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    map_on(threads(), items, f)
}

/// [`map`] on `threads` threads: more than the cores for work that mostly
/// waits (fsync), so that the waits overlap.
///
/// Each thread starts on a share of its own, a contiguous range of the
/// items, and takes small blocks from it; when its share is done it takes
/// blocks from the others' shares. Neighbouring items tend to share
/// things (the files of one directory share its lock in the kernel), so
/// threads working far apart get in each other's way less than threads
/// taking turns along the same items.
pub fn map_on<T, R, F>(threads: usize, items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    const BLOCK: usize = 8;
    let n = threads.min(items.len().div_ceil(BLOCK));
    if n <= 1 {
        return items.iter().map(f).collect();
    }
    let bound = |k: usize| k * items.len() / n;
    let next: Vec<AtomicUsize> = (0..n).map(|k| AtomicUsize::new(bound(k))).collect();
    let work = |me: usize| {
        let mut done: Vec<(usize, Vec<R>)> = Vec::new();
        for share in (me..n).chain(0..me) {
            let end_of_share = bound(share + 1);
            loop {
                let start = next[share].fetch_add(BLOCK, Ordering::Relaxed);
                if start >= end_of_share {
                    break;
                }
                let end = (start + BLOCK).min(end_of_share);
                done.push((start, items[start..end].iter().map(&f).collect()));
            }
        }
        done
    };
    let mut blocks: Vec<(usize, Vec<R>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..n).map(|k| s.spawn(move || work(k))).collect();
        let mut all = work(0);
        for h in handles {
            all.extend(h.join().expect("a worker thread panicked"));
        }
        all
    });
    blocks.sort_unstable_by_key(|(start, _)| *start);
    let mut out = Vec::with_capacity(items.len());
    for (_, rs) in blocks {
        out.extend(rs);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order() {
        let items: Vec<usize> = (0..1000).collect();
        let out = super::map(&items, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u8], |b| *b).is_empty());
    }
}
