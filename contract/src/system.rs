//! `/etc/windlass/generation.json`: what the NixOS module and the Guix
//! services install in the system they build. The system is the
//! generation there, so there is no file list: only the apps' contracts,
//! each app's `unit` being the name the platform's service manager knows
//! it by.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::FORMAT;
use crate::manifest::{self, App, Manifest, ManifestError};

/// Where the document lives, relative to `/etc` (and to a system's `etc/`).
pub const ETC_MANIFEST: &str = "windlass/generation.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemGeneration {
    #[serde(default)]
    pub apps: Vec<App>,
    /// How the NixOS module runs containers; absent on Guix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<NixosBackend>,
    pub format: u32,
    pub platform: Platform,
    /// Keys this version does not know, kept through a rewrite.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Nixos,
    Guix,
}

/// How the NixOS module runs containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NixosBackend {
    /// `virtualisation.oci-containers.containers.<name>` (NixOS-native).
    #[default]
    OciContainers,
    /// The Quadlet files under `environment.etc."containers/systemd/…"`.
    Quadlet,
}

impl NixosBackend {
    /// The name in `--nixos-backend` and in the document.
    pub fn name(self) -> &'static str {
        match self {
            NixosBackend::OciContainers => "oci-containers",
            NixosBackend::Quadlet => "quadlet",
        }
    }
}

impl SystemGeneration {
    /// The document for `platform` with these apps.
    pub fn new(platform: Platform, backend: Option<NixosBackend>, apps: Vec<App>) -> Self {
        SystemGeneration {
            apps,
            backend,
            format: FORMAT,
            platform,
            other: BTreeMap::new(),
        }
    }

    /// Reads `system/etc/windlass/generation.json` of a built system
    /// (a NixOS or Guix system profile generation).
    pub fn read(system: &Path) -> Result<SystemGeneration, ManifestError> {
        let path = system.join("etc").join(ETC_MANIFEST);
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        manifest::parse(&bytes, &path)
    }

    /// [`SystemGeneration::to_json`] of `self` with `apps` in place of
    /// `self.apps` (which must be empty): each app's
    /// [`manifest::app_json`], made beforehand, so that a large fleet's
    /// apps can be laid out on many threads. The text is the same
    /// (tested).
    pub fn to_json_with(&self, apps: &[String]) -> String {
        assert!(self.apps.is_empty(), "the apps are given as JSON");
        if !self.other.is_empty() {
            // Keys kept in `other` go in their sorted place, through a `Value`.
            let mut whole = self.clone();
            whole.apps = apps.iter().map(|j| manifest::parse_part(j)).collect();
            return whole.to_json();
        }
        manifest::splice(&self.to_json(), &[("apps", apps)])
    }

    /// Parses the document's bytes; errors name `windlass/generation.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<SystemGeneration, ManifestError> {
        manifest::parse(bytes, Path::new(ETC_MANIFEST))
    }

    /// Pretty JSON, keys sorted, a final newline (as the Guix output
    /// installs it).
    pub fn to_json(&self) -> String {
        let unknown = !self.other.is_empty() || manifest::apps_have_unknown_keys(&self.apps);
        let mut text = manifest::pretty_sorted(self, unknown);
        text.push('\n');
        text
    }
}

/// The apps of a system generation as a manifest without files (the agent
/// treats every platform's generation through [`Manifest`]).
impl From<SystemGeneration> for Manifest {
    fn from(g: SystemGeneration) -> Manifest {
        Manifest {
            apps: g.apps,
            format: g.format,
            ..Manifest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guix_document_has_no_backend_and_names_shepherd_services() {
        let text = r#"{
  "apps": [
    {
      "health": null,
      "image": "docker.io/library/redis:7.2",
      "jobs": [],
      "name": "redis",
      "release": {
        "allow_prerelease": false,
        "constraint": null,
        "track": "none"
      },
      "requires": [],
      "unit": "redis",
      "update": {
        "health_deadline_sec": 120,
        "order": "stop-first",
        "rollback": "manual"
      },
      "wants": []
    }
  ],
  "format": 1,
  "platform": "guix"
}
"#;
        let g = SystemGeneration::from_slice(text.as_bytes()).unwrap();
        assert_eq!(g.platform, Platform::Guix);
        assert_eq!(g.backend, None);
        assert_eq!(g.apps[0].unit, "redis");
        assert_eq!(g.to_json(), text);
        let m = Manifest::from(g);
        assert_eq!(m.apps[0].update.rollback, crate::Rollback::Manual);
        assert!(m.files.is_empty());
    }

    #[test]
    fn the_nixos_document_names_its_backend() {
        // As `builtins.toJSON` writes it: compact, keys sorted.
        let text = r#"{"apps":[{"health":{"container_check":true,"http":null},"image":"x/web:1","jobs":[],"name":"web","release":{"allow_prerelease":false,"constraint":null,"track":"none"},"requires":[],"unit":"podman-web.service","update":{"health_deadline_sec":120,"order":"start-first","rollback":"auto"},"wants":[]}],"backend":"oci-containers","format":1,"platform":"nixos"}"#;
        let g = SystemGeneration::from_slice(text.as_bytes()).unwrap();
        assert_eq!(g.platform, Platform::Nixos);
        assert_eq!(g.backend, Some(NixosBackend::OciContainers));
        assert_eq!(serde_json::to_string(&g).unwrap(), text);
    }

    #[test]
    fn read_takes_the_system_root() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc/windlass");
        std::fs::create_dir_all(&etc).unwrap();
        let g = SystemGeneration::new(Platform::Nixos, Some(NixosBackend::Quadlet), Vec::new());
        std::fs::write(etc.join("generation.json"), g.to_json()).unwrap();
        assert_eq!(SystemGeneration::read(dir.path()).unwrap(), g);
    }

    #[test]
    fn backend_names_are_the_cli_and_document_spelling() {
        for b in [NixosBackend::OciContainers, NixosBackend::Quadlet] {
            assert_eq!(
                serde_json::to_string(&b).unwrap(),
                format!("\"{}\"", b.name())
            );
        }
    }
}
