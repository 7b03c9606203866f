//! What a generation promises, read from its `windlass-generation.json`
//! (written by `windlass generate`): every file with its sha256, and each
//! app's health contract.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A generation's number: the `N` of `generations/N` (native) or of
/// `system-N-link` (NixOS, Guix). Written as a string of digits on disk
/// and on D-Bus (`"3"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenerationId(pub u64);

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a generation number")]
pub struct BadGenerationId(pub String);

impl FromStr for GenerationId {
    type Err = BadGenerationId;
    fn from_str(s: &str) -> Result<GenerationId, BadGenerationId> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadGenerationId(s.to_string()));
        }
        s.parse()
            .map(GenerationId)
            .map_err(|_| BadGenerationId(s.to_string()))
    }
}

impl Serialize for GenerationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GenerationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GenerationId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: u32,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub apps: Vec<App>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct App {
    pub name: String,
    pub unit: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub update: Option<Update>,
    #[serde(default)]
    pub release: Option<Release>,
}

/// Which image tags count as the app's releases (for sweeps).
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    /// `semver` or `none`.
    #[serde(default)]
    pub track: String,
    #[serde(default)]
    pub allow_prerelease: bool,
    #[serde(default)]
    pub constraint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub container_check: bool,
    #[serde(default)]
    pub http: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    #[serde(default)]
    pub health_deadline_sec: Option<u64>,
    #[serde(default)]
    pub rollback: Option<String>,
}

pub const MANIFEST: &str = "windlass-generation.json";

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let p = dir.join(MANIFEST);
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        if m.format != 1 {
            return Err(format!("{}: unknown format {}", p.display(), m.format));
        }
        Ok(m)
    }

    /// systemd unit name → sha256 of the file that defines it.
    pub fn units(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .filter_map(|f| unit_of(&f.path).map(|u| (u, f.sha256.clone())))
            .collect()
    }

    /// The longest health deadline of the apps in `units`; 300 s when no
    /// app with a deadline is among them.
    pub fn deadline_for(&self, units: &[String]) -> u64 {
        self.apps
            .iter()
            .filter(|a| units.contains(&a.unit))
            .filter_map(|a| a.update.as_ref().and_then(|u| u.health_deadline_sec))
            .max()
            .unwrap_or(300)
    }
}

/// The unit a generator output file defines, if any.
pub fn unit_of(path: &str) -> Option<String> {
    let (dir, file) = path.split_once('/')?;
    match dir {
        "quadlet" => {
            let (name, ext) = file.rsplit_once('.')?;
            match ext {
                "container" => Some(format!("{name}.service")),
                "volume" => Some(format!("{name}-volume.service")),
                "network" => Some(format!("{name}-network.service")),
                "pod" => Some(format!("{name}-pod.service")),
                _ => None,
            }
        }
        "systemd" if file.ends_with(".service") || file.ends_with(".timer") => {
            Some(file.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_generator_files() {
        assert_eq!(
            unit_of("quadlet/web.container").as_deref(),
            Some("web.service")
        );
        assert_eq!(
            unit_of("quadlet/data.volume").as_deref(),
            Some("data-volume.service")
        );
        assert_eq!(
            unit_of("quadlet/net.network").as_deref(),
            Some("net-network.service")
        );
        assert_eq!(
            unit_of("systemd/web-job.timer").as_deref(),
            Some("web-job.timer")
        );
        assert_eq!(unit_of("nixos/default.nix"), None);
        assert_eq!(unit_of("windlass-generation.json"), None);
    }
}
