//! `windlass-generation.json`: what a generation is made of. Every output
//! file with its sha256, the input manifests' sha256, the generator version,
//! and each app's contract (what windlassd checks after a switch).
//! Deterministic: sorted keys, no timestamps, no host names. The document's
//! shape is `windlass_contract::Manifest`'s; this only fills it in.

use windlass_contract::{FORMAT, FileEntry, Generator, MANIFEST, Manifest};

use crate::emit::{Target, quadlet};
use crate::model::Fleet;
use crate::output_file::OutputFile;

/// Each app's contract, as the generation manifest holds them.
pub fn contracts(fleet: &Fleet) -> Vec<windlass_contract::App> {
    fleet
        .apps
        .iter()
        .map(|a| quadlet::app_contract(a, fleet.podman))
        .collect()
}

/// The generation manifest for `files` (which must not include it):
/// `apps` holds the apps' [`contracts`], and `sha256` each file's SHA-256
/// in hex, in the same order as `files`.
pub fn manifest(
    fleet: &Fleet,
    apps: Vec<windlass_contract::App>,
    targets: &[Target],
    files: &[OutputFile],
    sha256: &[String],
) -> OutputFile {
    let doc = Manifest {
        apps,
        files: files
            .iter()
            .zip(sha256)
            .map(|(f, sha256)| FileEntry {
                path: f.path.clone(),
                sha256: sha256.clone(),
            })
            .collect(),
        format: FORMAT,
        generator: Some(Generator {
            name: "windlass".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        inputs: fleet
            .inputs
            .iter()
            .map(|(path, sha256)| FileEntry {
                path: path.clone(),
                sha256: sha256.clone(),
            })
            .collect(),
        podman: Some(fleet.podman.to_string()),
        targets: targets.iter().map(|t| t.name().to_string()).collect(),
        other: Default::default(),
    };
    OutputFile {
        path: MANIFEST.to_string(),
        content: doc.to_json(),
    }
}

/// The SHA-256 of `content`, in hex.
pub fn sha256_hex(content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(content))
}
