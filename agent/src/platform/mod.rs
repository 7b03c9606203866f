//! Platforms: where generations live and how one is activated. Detected at
//! start (`--platform auto`): NixOS when `/etc/NIXOS` exists, Guix System
//! when `/run/current-system/provenance` or `/etc/guix` exists with a
//! `/var/guix/profiles/system`, else native.

pub mod native;
pub mod nixos;

use std::future::Future;

use serde::Serialize;

use crate::contract::Manifest;
use crate::systemd::Systemd;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GenInfo {
    pub id: String,
    pub selected: bool,
    pub running: bool,
}

/// The generations `ids`, marking the selected and the running one.
pub fn gen_infos(ids: Vec<u64>, selected: Option<String>, running: Option<String>) -> Vec<GenInfo> {
    ids.into_iter()
        .map(|n| {
            let id = n.to_string();
            GenInfo {
                selected: selected.as_deref() == Some(&id),
                running: running.as_deref() == Some(&id),
                id,
            }
        })
        .collect()
}

/// What an activation changed: units the health gate must see healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    pub changed: Vec<String>,
    pub stopped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("generation {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// One platform. Methods that change the host are idempotent: the engine
/// may repeat one after a crash.
pub trait Platform: Send + Sync {
    fn name(&self) -> &'static str;
    fn selected(&self) -> Option<String>;
    fn running(&self) -> Option<String>;
    fn generations(&self) -> Vec<GenInfo>;
    /// Imports a generator output tree (native only).
    fn stage(&self, path: &std::path::Path) -> Result<String, PlatformError>;
    /// The generation's health contracts, when it carries them.
    fn manifest(&self, generation: &str) -> Option<Manifest>;
    /// Makes `to` the running generation; `from` is what runs now.
    fn activate(
        &self,
        systemd: &impl Systemd,
        from: Option<&str>,
        to: &str,
    ) -> impl Future<Output = Result<Activation, PlatformError>> + Send;
    /// Makes `to` the generation the host boots into.
    fn commit(&self, to: &str) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// The platforms, as one type (the trait is not object-safe).
pub enum Any {
    Native(native::Native),
    Nixos(nixos::Profiles),
}

impl Platform for Any {
    fn name(&self) -> &'static str {
        match self {
            Any::Native(p) => p.name(),
            Any::Nixos(p) => p.name(),
        }
    }
    fn selected(&self) -> Option<String> {
        match self {
            Any::Native(p) => p.selected(),
            Any::Nixos(p) => p.selected(),
        }
    }
    fn running(&self) -> Option<String> {
        match self {
            Any::Native(p) => p.running(),
            Any::Nixos(p) => p.running(),
        }
    }
    fn generations(&self) -> Vec<GenInfo> {
        match self {
            Any::Native(p) => p.generations(),
            Any::Nixos(p) => p.generations(),
        }
    }
    fn stage(&self, path: &std::path::Path) -> Result<String, PlatformError> {
        match self {
            Any::Native(p) => p.stage(path),
            Any::Nixos(p) => p.stage(path),
        }
    }
    fn manifest(&self, generation: &str) -> Option<Manifest> {
        match self {
            Any::Native(p) => p.manifest(generation),
            Any::Nixos(p) => p.manifest(generation),
        }
    }
    async fn activate(
        &self,
        systemd: &impl Systemd,
        from: Option<&str>,
        to: &str,
    ) -> Result<Activation, PlatformError> {
        match self {
            Any::Native(p) => p.activate(systemd, from, to).await,
            Any::Nixos(p) => p.activate(systemd, from, to).await,
        }
    }
    async fn commit(&self, to: &str) -> Result<(), PlatformError> {
        match self {
            Any::Native(p) => p.commit(to).await,
            Any::Nixos(p) => p.commit(to).await,
        }
    }
}
