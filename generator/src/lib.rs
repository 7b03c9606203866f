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
/// the first call and `label`: where a run's time goes, phase by phase
/// (`cargo build --release --features phase-times`). Without it, nothing.
#[macro_export]
macro_rules! phase {
    ($label:expr) => {
        #[cfg(feature = "phase-times")]
        $crate::phase_time($label);
    };
}

#[cfg(feature = "phase-times")]
#[doc(hidden)]
pub fn phase_time(label: &str) {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t0 = *T0.get_or_init(std::time::Instant::now);
    eprintln!("{:8.2} ms  {label}", t0.elapsed().as_secs_f64() * 1000.0);
}
