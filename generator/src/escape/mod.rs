//! Escaping, one function family per target language. Every value that
//! reaches an output file passes through exactly one of these; emitters never
//! concatenate raw values. A value that a target cannot carry is refused
//! loudly upstream (in `model`), never silently altered here.

pub mod json;
pub mod nix;
pub mod scheme;
pub mod systemd;
