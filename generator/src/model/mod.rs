//! The validated fleet: apps, volumes, networks, jobs. Every value here has
//! passed its rules, so emitters never re-check and never see raw strings
//! whose meaning still has to be worked out (ports are ports, sizes are
//! bytes, durations are microseconds).

pub mod build;
mod contract;
pub mod time;
pub mod values;

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use build::{LoadedFleet, input_files, load_fleet};
pub use values::{
    ImageRef, PodmanVersion, Port, Protocol, Relabel, SecurityOpt, Ulimit, VolumeMount,
    VolumeSource,
};
pub use windlass_contract::{DriftMode, HookKind};

#[derive(Debug, Clone)]
pub struct Fleet {
    pub podman: PodmanVersion,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    /// Sorted by name.
    pub apps: Vec<App>,
    /// Input files (path relative to the fleet directory, sha256 hex), sorted.
    pub inputs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Network {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub ipv6: bool,
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Volume {
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub description: Option<String>,
    /// Path of the manifest relative to the fleet directory.
    pub source: String,
    pub container: Container,
    pub health: Option<Health>,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    pub update: Update,
    pub release: Release,
    pub jobs: Vec<Job>,
    /// The lifecycle hooks given, in `HookKind::ALL` order.
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Always,
    OnFailure,
    No,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::No => "no",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoUpdate {
    Registry,
    Local,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretTarget {
    /// Mounted as a file at this absolute path.
    File(String),
    /// Exposed as this environment variable.
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// A podman secret name, or an absolute host path for a file secret.
    pub name: String,
    pub target: SecretTarget,
    /// Octal mode, e.g. 0o400.
    pub mode: Option<u32>,
}

impl SecretRef {
    pub fn is_file(&self) -> bool {
        self.name.starts_with('/')
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub image: ImageRef,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub ports: Vec<Port>,
    pub volumes: Vec<VolumeMount>,
    pub env: BTreeMap<String, String>,
    pub env_files: Vec<String>,
    pub secrets: Vec<SecretRef>,
    pub networks: Vec<String>,
    /// Bytes.
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub add_hosts: Vec<(String, IpAddr)>,
    pub labels: BTreeMap<String, String>,
    pub read_only: bool,
    pub restart: Restart,
    /// Microseconds.
    pub stop_timeout: Option<u64>,
    pub auto_update: AutoUpdate,
    /// Bytes of `/dev/shm`.
    pub shm_size: Option<u64>,
    pub security_opt: Vec<SecurityOpt>,
    /// Resource name → limits, sorted by name.
    pub ulimits: BTreeMap<String, Ulimit>,
    /// `CAP_…` or `ALL`, upper case.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `/path[:options]`.
    pub tmpfs: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub dns: Vec<IpAddr>,
    pub hostname: Option<String>,
    pub privileged: bool,
    /// `/dev/x[:/dev/y][:rwm]`.
    pub devices: Vec<String>,
    pub init: bool,
    /// `SIG…`.
    pub stop_signal: Option<String>,
    /// `-1` is unlimited.
    pub pids_limit: Option<i64>,
    /// `container_name`; `None`: the container is named after the app.
    pub container_name: Option<String>,
    /// Per network of `networks` (by name): the aliases and static
    /// addresses set on it. Networks without any are absent.
    pub network_options: BTreeMap<String, NetworkOptions>,
}

/// What a container sets on one network it joins (`{ name, aliases, ipv4,
/// ipv6 }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    pub aliases: Vec<String>,
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
}

impl NetworkOptions {
    /// Podman's per-network options (`--network NAME:OPTIONS`):
    /// `alias=a,alias=b,ip=…,ip6=…`; empty when there are none.
    pub fn podman_options(&self) -> String {
        let mut o: Vec<String> = self.aliases.iter().map(|a| format!("alias={a}")).collect();
        if let Some(ip) = self.ipv4 {
            o.push(format!("ip={ip}"));
        }
        if let Some(ip) = self.ipv6 {
            o.push(format!("ip6={ip}"));
        }
        o.join(",")
    }
}

impl Container {
    /// `network` as Podman's `--network` takes it, with `name` standing
    /// for the network: `name` or `name:alias=…,ip=…`.
    pub fn network_arg(&self, network: &str, name: &str) -> String {
        match self
            .network_options
            .get(network)
            .map(NetworkOptions::podman_options)
        {
            Some(o) if !o.is_empty() => format!("{name}:{o}"),
            _ => name.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Health {
    pub cmd: Option<Vec<String>>,
    /// Microseconds.
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub retries: Option<u32>,
    pub http: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone)]
pub struct Update {
    pub order: UpdateOrder,
    /// Microseconds.
    pub health_deadline: u64,
    pub rollback_auto: bool,
    /// `on_remove = "purge-data"`: the app's own named volumes are removed
    /// once a switch that removes the app commits (default: kept).
    pub purge_data: bool,
    /// `drift`, else `[host] drift` of `windlass.toml`, else report.
    pub drift: DriftMode,
    /// `[host] drift_ignore`, then the app's own `drift_ignore`, each
    /// pattern once, in that order.
    pub drift_ignore: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Release {
    pub semver: bool,
    pub allow_prerelease: bool,
    pub constraint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub schedule: String,
    pub persistent: bool,
    pub randomized_delay: Option<u64>,
    pub timeout: Option<u64>,
    pub command: Vec<String>,
}

/// A lifecycle hook (`[hooks.<kind>]`): a one-shot container next to the
/// app's, with its environment, secrets, volumes and networks.
#[derive(Debug, Clone)]
pub struct Hook {
    pub kind: HookKind,
    pub command: Vec<String>,
    /// `None`: the container's entrypoint, if any.
    pub entrypoint: Option<Vec<String>>,
    /// `None`: the container's image.
    pub image: Option<ImageRef>,
    /// Microseconds, all attempts together.
    pub timeout: u64,
    pub retries: u32,
}

impl Hook {
    /// `timeout`'s default: five minutes.
    pub const DEFAULT_TIMEOUT: u64 = 300_000_000;
}

impl App {
    /// The name of the container that runs `kind`'s hook, given the
    /// name the target gives the app's container.
    pub fn hook_container_name(container: &str, kind: HookKind) -> String {
        format!("{container}-hook-{}", kind.as_str())
    }

    /// The container's name: `container_name`, else the app's name.
    pub fn container_name(&self) -> &str {
        self.container
            .container_name
            .as_deref()
            .unwrap_or(&self.name)
    }

    /// The unit name Quadlet gives this app's container.
    pub fn service_name(&self) -> String {
        format!("{}.service", self.name)
    }
}
