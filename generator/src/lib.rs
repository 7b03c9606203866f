//! windlass generator: app manifests (TOML) in, host configuration out.
//!
//! Data flows one way: `manifest` (TOML with spans) → `model` (a validated
//! fleet) → `emit` (pure, one module per target) → `output` (atomic write).
//! Nothing downstream reaches back upstream.

pub mod cli;
pub mod emit;
pub mod escape;
pub mod generation;
pub mod import;
pub mod input_file;
pub mod manifest;
pub mod model;
pub mod output;
pub mod output_file;
pub mod par;
pub mod pipeline;
pub mod record;
pub mod templates;
/// With the `phase-times` feature, prints to stderr the milliseconds since
/// the first call, `label`, and the CPU time the process has used so far
/// (user and system, all threads): where a run's time goes, phase by
/// phase, and how many cores each phase kept busy (the CPU time it added
/// over the wall time it took) (`cargo build --release --features
/// phase-times`). Without it, nothing.
#[macro_export]
macro_rules! phase {
    ($label:expr) => {
        #[cfg(feature = "phase-times")]
        $crate::phase_time($label);
    };
}

/// `eprintln!`, in one `write`: the standard error stream is unbuffered,
/// so `eprintln!` writes each literal piece and each argument of its
/// format on its own (the summary line of a run took 13 `write` calls),
/// and a line of another process writing to the same terminal, pipe or
/// journal could land inside ours. A line under `PIPE_BUF` (4,096 bytes)
/// written to a pipe in one call is never split. A failed write is
/// ignored (`eprintln!` would panic): a message that cannot be shown must
/// not turn a finished run into a crash.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(::std::format_args!($($arg)*))
    };
}

#[doc(hidden)]
pub fn say_line(args: std::fmt::Arguments) {
    use std::io::Write as _;
    let mut line = std::fmt::format(args);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(feature = "phase-times")]
#[doc(hidden)]
pub fn phase_time(label: &str) {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t0 = *T0.get_or_init(std::time::Instant::now);
    let wall = t0.elapsed().as_secs_f64() * 1000.0;
    // SAFETY: getrusage fills the struct it is given; all-zero bytes are
    // a valid `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    let (user, system) = (ms(ru.ru_utime), ms(ru.ru_stime));
    say!(
        "{wall:8.2} ms  {label}  (CPU {:.2} ms: {user:.2} user, {system:.2} system)",
        user + system
    );
}
