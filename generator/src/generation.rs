//! `windlass-generation.json`: what a generation is made of. Every output
//! file with its sha256, the input manifests' sha256, the generator version,
//! and each app's health contract (what windlassd checks after a switch).
//! Deterministic: sorted keys, no timestamps, no host names.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::emit::{OutputFile, Target};
use crate::model::{App, Fleet, UpdateOrder};
use crate::output::MANIFEST;

pub fn app_contracts(fleet: &Fleet) -> Value {
    Value::from(app_contracts_of(&fleet.apps))
}

/// One health contract per app, in the order given.
pub fn app_contracts_of(apps: &[App]) -> Vec<Value> {
    apps.iter()
        .map(|a| {
            let health = a.health.as_ref().map(|h| {
                json!({
                    "container_check": h.cmd.is_some(),
                    "http": h.http,
                })
            });
            json!({
                "name": a.name,
                "unit": a.service_name(),
                "image": a.container.image.full,
                "health": health,
                "requires": a.requires,
                "wants": a.wants,
                "update": {
                    "order": if a.update.order == UpdateOrder::StartFirst { "start-first" } else { "stop-first" },
                    "health_deadline_sec": a.update.health_deadline.div_ceil(1_000_000),
                    "rollback": if a.update.rollback_auto { "auto" } else { "manual" },
                },
                "release": {
                    "track": if a.release.semver { "semver" } else { "none" },
                    "allow_prerelease": a.release.allow_prerelease,
                    "constraint": a.release.constraint,
                },
                "jobs": a.jobs.iter().map(|j| format!("{}-{}", a.name, j.name)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Builds the generation manifest for `files` (which must not include it).
pub fn manifest(fleet: &Fleet, targets: &[Target], files: &[OutputFile]) -> OutputFile {
    let inputs: Vec<Value> = fleet
        .inputs
        .iter()
        .map(|(p, h)| json!({"path": p, "sha256": h}))
        .collect();
    let outputs: Vec<Value> = files
        .iter()
        .map(|f| json!({"path": f.path, "sha256": hex::encode(Sha256::digest(f.content.as_bytes()))}))
        .collect();
    let doc = json!({
        "format": 1,
        "generator": {"name": "windlass", "version": env!("CARGO_PKG_VERSION")},
        "podman": fleet.podman.to_string(),
        "targets": targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "inputs": inputs,
        "files": outputs,
        "apps": app_contracts(fleet),
    });
    let mut content = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
    content.push('\n');
    OutputFile {
        path: MANIFEST.to_string(),
        content,
    }
}
