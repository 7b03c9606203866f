//! Order-preserving parallel map over independent items (apps, files),
//! and two jobs side by side, on one pool of worker threads.
//!
//! Results come back in the items' order whatever the scheduling, so the
//! output stays byte for byte what a sequential loop would produce, and
//! the first error in item order is the one reported.

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

/// `f()`, run on one of [`map`]'s threads while the caller waits: the
/// [`map`]s and [`join`]s inside it start on the pool directly rather than
/// each being handed over from outside, and its serial steps allocate
/// from a worker's heap, where the memory the parallel steps freed is.
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if threads() <= 1 {
        return f();
    }
    pool().install(f)
}

/// Drops `value` on one of [`map`]'s threads while the caller goes on:
/// for a large tree of small allocations that is no longer needed.
pub fn drop_later<T: Send + 'static>(value: T) {
    if threads() <= 1 {
        drop(value);
        return;
    }
    pool().spawn(move || drop(value));
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

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order() {
        let items: Vec<usize> = (0..1000).collect();
        let out = super::map(&items, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u8], |b| *b).is_empty());
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
