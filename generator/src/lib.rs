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
