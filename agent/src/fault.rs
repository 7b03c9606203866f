//! Test-only fault injection: with the `fault-injection` feature,
//! `WINDLASS_FAULT=<step>` makes the process abort (as a SIGKILL would
//! leave it: no cleanup, no unwinding) right after the operation record for
//! `<step>` is on disk. Without the feature this is a no-op the compiler
//! removes.

#[cfg(feature = "fault-injection")]
pub fn point(step: &str) {
    if std::env::var("WINDLASS_FAULT").as_deref() == Ok(step) {
        eprintln!("windlassd: fault injected at {step}");
        // SAFETY: raising SIGKILL on ourselves; nothing runs after it.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_step: &str) {}
