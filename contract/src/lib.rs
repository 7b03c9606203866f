//! The generation contract: what the generator promises about a generation
//! and what the agent relies on, as one set of types both halves share.
//!
//! * [`Manifest`]: `windlass-generation.json` at the root of a generator
//!   output tree — every file with its sha256, the inputs, the generator,
//!   and each app's contract ([`App`]: unit, image, health, update and
//!   release policy, jobs).
//! * [`SystemGeneration`]: `/etc/windlass/generation.json`, which the NixOS
//!   and Guix outputs install: the apps' contracts only.
//! * [`GenerationId`]: the number of a generation, written as a string of
//!   digits wherever it is stored or sent.
//! * [`set_container_image`]: the one edit the agent makes to a generated
//!   unit (a sweep's new image), done on the parsed unit so nothing else
//!   in the file can change.
//!
//! Nobody builds or patches these documents as untyped JSON: the generator
//! serialises these types, the agent deserialises them. Reading is lenient
//! where it must be (keys a newer generator adds are kept in `other`, keys
//! an older one did not write take their defaults) and strict where it
//! matters (an unknown `format` is refused). This crate never runs a
//! process and never writes a file.

mod id;
mod manifest;
mod system;
mod unit_file;

pub use id::{GenerationId, ParseGenerationIdError};
pub use manifest::{
    App, DEFAULT_DEADLINE_SEC, DRIFT_KINDS, DriftMode, DriftPolicy, FileEntry, Generator,
    HOOK_RETRY_EXIT, Health, Hook, HookKind, Hooks, Manifest, ManifestError, Release, Rollback,
    Track, Update, UpdateOrder, app_json, file_json, file_json_of, unit_of,
};
pub use system::{ETC_MANIFEST, NixosBackend, Platform, SystemGeneration};
pub use unit_file::set_container_image;

/// The generation manifest's file name, at the root of an output tree.
pub const MANIFEST: &str = "windlass-generation.json";

/// The manifest format this crate reads and writes.
pub const FORMAT: u32 = 1;
