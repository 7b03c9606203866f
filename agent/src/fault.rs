//! Test-only fault injection: with the `fault-injection` feature,
//! `WINDLASS_FAULT=<phase>` (any kind) or `WINDLASS_FAULT=<kind>:<phase>`
//! makes the process abort (as a SIGKILL would leave it: no cleanup, no
//! unwinding) right after the operation record for that phase is on disk.
//! Without the feature this is a no-op the compiler removes.

#[cfg(feature = "fault-injection")]
pub fn point(kind: &str, phase: &str) {
    let want = std::env::var("WINDLASS_FAULT").unwrap_or_default();
    if want == phase || want == format!("{kind}:{phase}") {
        eprintln!("windlassd: fault injected at {kind}:{phase}");
        // SAFETY: raising SIGKILL on ourselves; nothing runs after it.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_kind: &str, _phase: &str) {}
