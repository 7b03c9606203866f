//! `windlass-generation.json`: what a generation is made of. Every output
//! file with its sha256, the input manifests' sha256, the generator version,
//! and each app's contract (what windlassd checks after a switch).
//! Deterministic: sorted keys, no timestamps, no host names. The document's
//! shape is `windlass_contract::Manifest`'s; this only fills it in.

use windlass_contract::{FORMAT, Generator, MANIFEST, Manifest};

use crate::emit::{Target, quadlet};
use crate::model::Fleet;
use crate::output_file::OutputFile;

/// Each app's contract as the generation manifest holds it, in JSON
/// (`windlass_contract::app_json`), on all cores.
pub fn contracts(fleet: &Fleet) -> Vec<String> {
    crate::par::map(&fleet.apps, |a| {
        windlass_contract::app_json(&quadlet::app_contract(a, fleet.podman))
    })
}

/// Each output file's entry in the generation manifest in JSON
/// (`windlass_contract::file_json_of`), on all cores.
pub fn entries(files: &[OutputFile]) -> Vec<String> {
    crate::par::map(files, |f| {
        windlass_contract::file_json_of(&f.path, &f.sha256)
    })
}

/// The generation manifest of a run: `apps` holds the apps' [`contracts`]
/// and `files` the entries of every other output file ([`entries`]), in
/// path order; the inputs' entries are laid out here, on all cores. Not
/// hashed yet ([`OutputFile::unhashed`]).
pub fn manifest(
    fleet: &Fleet,
    apps: &[String],
    files: &[String],
    targets: &[Target],
) -> OutputFile {
    let inputs = crate::par::map(&fleet.inputs, |(path, sha256)| {
        windlass_contract::file_json_of(path, sha256)
    });
    let doc = Manifest {
        apps: Vec::new(),
        files: Vec::new(),
        format: FORMAT,
        generator: Some(Generator {
            name: "windlass".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        inputs: Vec::new(),
        podman: Some(fleet.podman.to_string()),
        targets: targets.iter().map(|t| t.name().to_string()).collect(),
        other: Default::default(),
    };
    OutputFile::unhashed(MANIFEST.to_string(), doc.to_json_with(apps, files, &inputs))
}
