//! Order-preserving parallel map over independent items (apps, files),
//! and two jobs side by side, on one pool of worker threads.
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

/// `items.iter().map(f).collect()`, spread over [`threads`] threads: the
/// items are split in halves down to small blocks, and each idle thread
/// takes work from a busy one (rayon's pool, started on first use). Work
/// started with [`join`] shares the same threads, so a serial step of one
/// side overlaps the parallel work of the other instead of leaving cores
/// idle, and no more threads run than there are cores.
pub fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    use rayon::prelude::*;
    if threads() <= 1 {
        return items.iter().map(f).collect();
    }
    pool().install(|| items.par_iter().with_min_len(4).map(&f).collect())
}

/// `(a(), b())`, the two run side by side on [`map`]'s threads.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if threads() <= 1 {
        let ra = a();
        return (ra, b());
    }
    pool().install(|| rayon::join(a, b))
}

/// The worker threads, [`threads`] of them, started on first use.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads())
            .thread_name(|i| format!("windlass-{i}"))
            .build()
            .expect("the worker threads start")
    })
}

/// `items.iter().map(f).collect()` on `threads` threads of its own, not
/// [`map`]'s pool: for work that mostly waits (fsync), where more threads
/// than cores let the waits overlap.
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
        let on = super::map_on(16, &items, |i| i + 1);
        assert_eq!(on, items.iter().map(|i| i + 1).collect::<Vec<_>>());
    }

    #[test]
    fn join_runs_both_and_maps_inside_keep_their_order() {
        let items: Vec<usize> = (0..500).collect();
        let (a, b) = super::join(
            || super::map(&items, |i| i * 3),
            || {
                let mut v = super::map(&items, |i| i + 7);
                v.reverse();
                v
            },
        );
        assert_eq!(a, items.iter().map(|i| i * 3).collect::<Vec<_>>());
        assert_eq!(b, items.iter().rev().map(|i| i + 7).collect::<Vec<_>>());
    }
}
