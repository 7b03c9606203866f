//! One compose service → one app manifest. Every key of the service is
//! accounted for: mapped, or reported with the reason it was not.
//!
//! Values are read through `docker-compose-types` where its types fit;
//! keys are walked on the raw YAML so that nothing the crate does not know
//! can vanish without a report entry.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use docker_compose_types as dct;
use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};

use super::convert;
use super::interpolate::{Outcome, SecretRule, Substitutions, Vars};
use super::manifest::{AppManifest, Health, NetworkOptions, SecretRef, set_pair};
use super::report::{Action, Report};
use crate::manifest::diag::found;
use crate::model::time::format_timespan;
use crate::model::values::{
    ULIMITS, Ulimit, check_label_key, check_path, check_sysctl_key, check_sysctl_value,
    ip_in_subnet, is_dns_name, is_env_key, is_object_name, parse_add_host, parse_capability,
    parse_device, parse_hostname, parse_port, parse_security_opt, parse_signal, parse_tmpfs,
    parse_volume,
};

/// A top-level `secrets:` entry, resolved.
#[derive(Debug, Clone)]
pub enum SecretDef {
    /// `file:` — a host file, referenced by its absolute path.
    File(String),
    /// `environment:` or `external:`/`name:` — a podman secret of this name.
    Podman {
        name: String,
        from_env: Option<String>,
    },
}

/// What every service needs to know about the whole project.
pub struct Context<'a> {
    pub project: String,
    pub compose_dir: PathBuf,
    pub home: Option<String>,
    /// compose network key → windlass network name.
    pub networks: BTreeMap<String, String>,
    /// windlass network name → its subnet and gateway, as declared.
    pub network_subnets: BTreeMap<String, (Option<String>, Option<String>)>,
    /// compose volume key → windlass volume name.
    pub volumes: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretDef>,
    /// compose service → app name, for services that are imported.
    pub apps: BTreeMap<String, String>,
    /// compose services that define a health check.
    pub healthy: BTreeMap<String, bool>,
    pub subs: &'a Substitutions,
    /// The variables interpolation reads, for `environment` entries that
    /// pass one through.
    pub vars: &'a Vars,
    pub rule: &'a SecretRule,
    /// `--process-env`: the process environment is among the variables.
    pub process_env: bool,
}

/// Named volumes and networks a service used that windlass.toml must declare.
#[derive(Default)]
pub struct Uses {
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub default_network: bool,
}

fn reason_for(key: &str) -> &'static str {
    match key {
        "build" => {
            "windlass runs images and never builds them: build and push the image (podman build -t REGISTRY/NAME:TAG …) and set `container.image`"
        }
        "profiles" => "windlass has no profiles: the service is imported and runs with the others",
        "domainname" => "no windlass key: set `container.hostname` to a fully qualified name",
        "expose" => "not needed: containers on a shared network reach every port",
        "links" | "external_links" => {
            "no equivalent: containers on a shared network reach each other by app name"
        }
        "scale" => "windlass runs one container per app",
        "logging" => "the container logs to the journal (Quadlet's default)",
        "pull_policy" => "Quadlet pulls a missing image when the unit starts",
        "working_dir" => "no windlass key: set WORKDIR in the image",
        "configs" => "configs are not imported: mount the file as a read-only bind volume",
        "extends" => "extends could not be resolved",
        "volumes_from" => "no equivalent: list the volumes explicitly",
        "device_cgroup_rules"
        | "pid"
        | "ipc"
        | "userns_mode"
        | "cgroup"
        | "cgroup_parent"
        | "uts"
        | "runtime"
        | "isolation"
        | "gpus" => "no windlass key for this privilege or kernel setting",
        "dns_opt" | "dns_search" | "mac_address" => "no windlass key for this network setting",
        "tty" | "stdin_open" | "attach" => {
            "no equivalent: the container runs under systemd without a terminal"
        }
        "mem_reservation" | "memswap_limit" | "mem_swappiness" | "oom_kill_disable"
        | "oom_score_adj" | "cpu_shares" | "cpu_quota" | "cpu_period" | "cpu_count"
        | "cpu_percent" | "cpu_rt_runtime" | "cpu_rt_period" | "cpuset" | "blkio_config"
        | "storage_opt" => {
            "no windlass key for this resource setting (memory, cpus, shm_size and pids_limit only)"
        }
        "platform" => "no windlass key: the image for the host's platform is pulled",
        _ => "no windlass equivalent",
    }
}

const MAPPED: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "networks",
    "network_mode",
    "healthcheck",
    "depends_on",
    "restart",
    "mem_limit",
    "cpus",
    "deploy",
    "labels",
    "extra_hosts",
    "read_only",
    "stop_grace_period",
    "user",
    "secrets",
    "shm_size",
    "security_opt",
    "ulimits",
    "cap_add",
    "cap_drop",
    "tmpfs",
    "sysctls",
    "dns",
    "hostname",
    "privileged",
    "devices",
    "init",
    "stop_signal",
    "pids_limit",
    "container_name",
];

fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_norway::from_value(v.clone()).map_err(|e| format!("cannot be read: {e}"))
}

/// Numbers and booleans as strings, for fields compose allows to be either.
fn scalars_to_strings(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Sequence(s) => Value::Sequence(s.iter().map(scalars_to_strings).collect()),
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| (k.clone(), scalars_to_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn key_str(k: &Value) -> String {
    scalar_text(k).unwrap_or_else(|| "?".into())
}

/// Removes `.` and `..` lexically (compose does not resolve symlinks).
pub(super) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

struct Mapper<'a, 'b> {
    ctx: &'a Context<'b>,
    report: &'a mut Report,
    service: &'a str,
    m: AppManifest,
    uses: Uses,
    /// Each env file: its report key and absolute path, checked once the
    /// whole service is read.
    env_file_keys: Vec<(String, String)>,
}

impl Mapper<'_, '_> {
    fn drop(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.report
            .push(Some(self.service), key, Action::Dropped, reason);
    }

    fn note(&mut self, key: impl Into<String>, action: Action, reason: impl Into<String>) {
        self.report.push(Some(self.service), key, action, reason);
    }

    /// The substitutions recorded for a path inside this service.
    fn subs_at(&self, rel: &str) -> &[super::interpolate::Substitution] {
        self.ctx
            .subs
            .get(&format!("services.{}.{rel}", self.service))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Reports every key of `map` outside `known` and returns the rest.
    fn known_subset(&mut self, map: &Mapping, prefix: &str, known: &[&str]) -> Mapping {
        let mut out = Mapping::new();
        for (k, v) in map {
            let key = key_str(k);
            if known.contains(&key.as_str()) {
                out.insert(k.clone(), v.clone());
            } else if key.starts_with("x-") {
                self.note(
                    format!("{prefix}{key}"),
                    Action::Ignored,
                    "extension field, ignored by compose as well",
                );
            } else {
                self.drop(format!("{prefix}{key}"), "no windlass equivalent");
            }
        }
        out
    }

    fn host_path(&self, src: &str) -> String {
        let expanded = match (src.strip_prefix("~/"), &self.ctx.home) {
            (Some(rest), Some(home)) => Path::new(home).join(rest),
            _ if src == "~" && self.ctx.home.is_some() => {
                PathBuf::from(self.ctx.home.clone().unwrap())
            }
            _ => PathBuf::from(src),
        };
        let abs = if expanded.is_absolute() {
            expanded
        } else {
            self.ctx.compose_dir.join(expanded)
        };
        normalize(&abs).to_string_lossy().into_owned()
    }

    fn volume_name(&mut self, key: &str, name: &str) -> String {
        match self.ctx.volumes.get(name) {
            Some(n) => n.clone(),
            None => {
                let n = format!("{}_{name}", self.ctx.project);
                self.note(
                    key,
                    Action::Changed,
                    format!("volume `{name}` is not declared under the top-level `volumes`; declared as `{n}`"),
                );
                n
            }
        }
    }

    fn command(&mut self, key: &str, v: &Value) -> Option<Vec<String>> {
        let parsed: Result<dct::Command, String> = typed(v);
        match parsed {
            Ok(dct::Command::Simple(s)) => match shlex::split(&s) {
                Some(words) if !words.is_empty() => Some(words),
                Some(_) => {
                    self.drop(key, "empty: windlass needs a non-empty exec form");
                    None
                }
                None => {
                    self.drop(key, "cannot be split into words (unbalanced quotes)");
                    None
                }
            },
            Ok(dct::Command::Args(a)) if a.is_empty() => {
                self.drop(
                    key,
                    "an empty list clears the image's value, which windlass cannot express",
                );
                None
            }
            Ok(dct::Command::Args(a)) => Some(a),
            Err(e) => {
                self.drop(key, e);
                None
            }
        }
    }

    fn map(&mut self, raw: &Mapping) {
        for (k, v) in raw {
            let key = key_str(k);
            if key.starts_with("x-") {
                self.note(
                    key,
                    Action::Ignored,
                    "extension field, ignored by compose as well",
                );
                continue;
            }
            if key == "build" && raw.contains_key("image") {
                self.build(v);
                continue;
            }
            if !MAPPED.contains(&key.as_str()) {
                let empty = v.is_null() || v.as_sequence().is_some_and(|s| s.is_empty());
                if !empty {
                    self.drop(key.clone(), reason_for(&key));
                }
                continue;
            }
            match key.as_str() {
                "image" => {} // handled by the caller
                "command" => self.m.command = self.command("command", v),
                "entrypoint" => {
                    self.m.entrypoint = self.command("entrypoint", v);
                    if let Some(e) = &self.m.entrypoint
                        && e[0].is_empty()
                    {
                        self.drop("entrypoint", "the program (first word) is empty");
                        self.m.entrypoint = None;
                    }
                }
                "environment" => self.environment(v),
                "env_file" => self.env_file(v),
                "ports" => self.ports(v),
                "volumes" => self.volumes(v),
                "networks" => self.networks(v),
                "network_mode" => self.network_mode(v),
                "healthcheck" => self.healthcheck(v),
                "depends_on" => self.depends_on(v),
                "restart" => self.restart(v),
                "mem_limit" => {
                    if let Some(s) = scalar_text(v) {
                        match convert::byte_size(&s) {
                            Ok(m) => self.m.memory = Some(m),
                            Err(e) => self.drop("mem_limit", e),
                        }
                    }
                }
                "cpus" => self.cpus("cpus", v),
                "deploy" => self.deploy(v),
                "labels" => self.labels(v),
                "extra_hosts" => self.extra_hosts(v),
                "read_only" => match v {
                    Value::Bool(b) => {
                        self.m.read_only = *b;
                        if *b {
                            self.note(
                                "read_only",
                                Action::Changed,
                                "Podman, unlike Docker, mounts writable tmpfs on /dev, /dev/shm, /run, /tmp and /var/tmp of a read-only container (its --read-only-tmpfs default): writes there succeed where compose's container gets an error",
                            );
                        }
                    }
                    _ => self.drop("read_only", "expected true or false"),
                },
                "stop_grace_period" => {
                    if let Some(s) = scalar_text(v) {
                        match convert::duration(&s) {
                            Ok(d) => {
                                self.stop_timeout_rounding(&s);
                                self.m.stop_timeout = Some(d);
                            }
                            Err(e) => self.drop("stop_grace_period", e),
                        }
                    }
                }
                "user" => self.user(v),
                "secrets" => self.service_secrets(v),
                "shm_size" => self.shm_size(v),
                "security_opt" => self.security_opt(v),
                "ulimits" => self.ulimits(v),
                "cap_add" => self.m.cap_add = self.each("cap_add", v, parse_capability),
                "cap_drop" => self.m.cap_drop = self.each("cap_drop", v, parse_capability),
                "tmpfs" => {
                    let t = self.each("tmpfs", v, parse_tmpfs);
                    self.m.tmpfs.extend(t);
                }
                "sysctls" => self.sysctls(v),
                "dns" => {
                    self.m.dns = self.each("dns", v, |s| {
                        s.parse::<std::net::IpAddr>()
                            .map(|ip| ip.to_string())
                            .map_err(|_| "expected an IP address".to_string())
                    })
                }
                "hostname" => match v.as_str() {
                    Some(h) => match parse_hostname(h) {
                        Ok(h) => self.m.hostname = Some(h),
                        Err(e) => self.drop("hostname", format!("{e}, found {}", found(h))),
                    },
                    None => self.drop("hostname", "expected a string"),
                },
                "privileged" => match v {
                    Value::Bool(b) => self.m.privileged = *b,
                    _ => self.drop("privileged", "expected true or false"),
                },
                "devices" => {
                    self.m.devices = self.each("devices", v, |d| {
                        if !d.starts_with('/') && d.contains('=') {
                            return Err("a CDI device name (vendor/class=name) has no windlass key: only host device paths are carried".into());
                        }
                        parse_device(d)
                    })
                }
                "init" => match v {
                    Value::Bool(b) => self.m.init = *b,
                    _ => self.drop("init", "expected true or false"),
                },
                "stop_signal" => self.stop_signal(v),
                "pids_limit" => self.pids_limit(v),
                "container_name" => self.container_name(v),
                _ => unreachable!("every mapped key has an arm"),
            }
        }
        if self.m.networks.iter().any(|n| n == "host") {
            // Podman refuses net.* sysctls in the host's network namespace.
            let net: Vec<String> = self
                .m
                .sysctls
                .iter()
                .filter(|(k, _)| k.starts_with("net."))
                .map(|(k, _)| k.clone())
                .collect();
            for k in net {
                self.drop(
                    format!("sysctls.{k}"),
                    "a net.* sysctl cannot be set on the host's network (network_mode: host); Podman refuses it",
                );
                self.m.sysctls.retain(|(n, _)| *n != k);
            }
        }
        if !raw.contains_key("restart") {
            // Compose's default; windlass's own default would be "always".
            self.m.restart = Some("no");
        }
        if !raw.contains_key("networks") && !raw.contains_key("network_mode") {
            let n = self
                .ctx
                .networks
                .get("default")
                .cloned()
                .unwrap_or_default();
            self.m.networks.push(n.clone());
            self.uses.default_network = true;
            self.uses.networks.push(n);
        }
        self.service_alias();
        self.check_env_files(raw);
    }

    /// Podman's stop timeout is whole seconds: a fraction is rounded up.
    fn stop_timeout_rounding(&mut self, s: &str) {
        let Ok(us) = convert::duration_usec(s) else {
            return;
        };
        if us % 1_000_000 != 0 {
            self.note(
                "stop_grace_period",
                Action::Changed,
                format!(
                    "Podman's stop timeout is whole seconds: `{s}` becomes {}s",
                    us.div_ceil(1_000_000)
                ),
            );
        }
    }

    /// `build` beside `image`: windlass never builds, so the image must be
    /// built on each host first; the report gives the command, with the
    /// build context as an absolute path (build args are named, never
    /// their values).
    fn build(&mut self, v: &Value) {
        let (context, m) = match v {
            Value::String(c) => (c.clone(), None),
            Value::Mapping(m) => (
                m.get("context")
                    .and_then(Value::as_str)
                    .unwrap_or(".")
                    .to_string(),
                Some(m),
            ),
            _ => return self.drop("build", "expected a path or a map"),
        };
        let remote = context.contains("://") || context.starts_with("git@");
        let context = if remote {
            context
        } else {
            self.host_path(&context)
        };
        let mut cmd = format!("podman build -t {}", self.m.image);
        let mut more = Vec::new();
        if let Some(m) = m {
            for (k, val) in m {
                match (key_str(k).as_str(), val) {
                    ("context", _) => {}
                    ("dockerfile", Value::String(f)) => cmd.push_str(&format!(" -f {f}")),
                    ("target", Value::String(t)) => cmd.push_str(&format!(" --target {t}")),
                    ("args", a) => {
                        let names: Vec<String> = match a {
                            Value::Mapping(am) => am.keys().map(key_str).collect(),
                            Value::Sequence(s) => s
                                .iter()
                                .filter_map(Value::as_str)
                                .map(|i| i.split('=').next().unwrap_or(i).to_string())
                                .collect(),
                            _ => Vec::new(),
                        };
                        more.push(format!(
                            "its build args ({}) as --build-arg",
                            names.join(", ")
                        ));
                    }
                    (other, _) => more.push(format!("`{other}`")),
                }
            }
        }
        cmd.push(' ');
        cmd.push_str(&context);
        self.drop(
            "build",
            format!(
                "windlass runs images and never builds them: build the image on each host before its unit starts: `{cmd}`{}",
                if more.is_empty() {
                    String::new()
                } else {
                    format!(", with {}", more.join(", "))
                }
            ),
        );
    }

    /// `container_name`: the container's name, when it is not the app's.
    fn container_name(&mut self, v: &Value) {
        let Some(n) = v.as_str() else {
            return self.drop("container_name", "expected a string");
        };
        if !is_object_name(n) {
            return self.drop(
                "container_name",
                format!("`{n}` is not a Podman container name ([A-Za-z0-9][A-Za-z0-9_.-]*)"),
            );
        }
        if n == self.m.app {
            return;
        }
        if self.ctx.apps.values().any(|a| a == n) {
            return self.drop(
                "container_name",
                format!("`{n}` is the name of another imported app's container; the container is named `{}`", self.m.app),
            );
        }
        self.m.container_name = Some(n.to_string());
    }

    /// Compose makes the service name a DNS alias on each of its
    /// networks; Podman resolves a container by its name. When the
    /// container's name is not the service's (a renamed service, a
    /// `--prefix`, a `container_name`), the service name becomes an alias
    /// on each network, so the others still reach it by it.
    fn service_alias(&mut self) {
        let svc = self.service.to_string();
        let container = self.m.container_name.clone().unwrap_or(self.m.app.clone());
        if container == svc {
            return;
        }
        let nets: Vec<String> = self
            .m
            .networks
            .iter()
            .filter(|n| *n != "host")
            .cloned()
            .collect();
        if nets.is_empty() {
            return self.note(
                "(service name)",
                Action::Changed,
                format!("the container is named `{container}`; with no network of its own it has no alias `{svc}`"),
            );
        }
        if !is_dns_name(&svc) {
            return self.drop(
                "(service name)",
                format!("`{svc}` is not a DNS name Podman can carry as an alias; other containers reach it as `{container}` only"),
            );
        }
        for n in &nets {
            let o = self.net_options(n);
            if !o.aliases.contains(&svc) {
                o.aliases.insert(0, svc.clone());
            }
        }
        self.note(
            "(service name)",
            Action::Changed,
            format!(
                "the container is named `{container}`; `{svc}` stays a network alias on {}, so other containers reach it by either name",
                nets.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
        );
    }

    /// The aliases and addresses set on network `n`, created empty.
    fn net_options(&mut self, n: &str) -> &mut NetworkOptions {
        let i = match self.m.network_options.iter().position(|(k, _)| k == n) {
            Some(i) => i,
            None => {
                self.m
                    .network_options
                    .push((n.to_string(), NetworkOptions::default()));
                self.m.network_options.len() - 1
            }
        };
        &mut self.m.network_options[i].1
    }

    /// A service network's `aliases`, `ipv4_address`, `ipv6_address`.
    fn network_settings(&mut self, key: &str, name: &str, net: &str, settings: &Mapping) {
        for (sk, sv) in settings {
            let sk = key_str(sk);
            let p = format!("{key}.{sk}");
            match sk.as_str() {
                "aliases" => {
                    let Some(list) = sv.as_sequence() else {
                        self.drop(p, "expected a list of names");
                        continue;
                    };
                    for (i, a) in list.iter().enumerate() {
                        match scalar_text(a) {
                            Some(a) if is_dns_name(&a) => {
                                let o = self.net_options(net);
                                if !o.aliases.contains(&a) {
                                    o.aliases.push(a);
                                }
                            }
                            Some(a) => self.drop(format!("{p}[{i}]"), format!("`{a}` is not a DNS name windlass accepts as an alias (letters, digits, `-`, `_`, labels separated by `.`)")),
                            None => self.drop(format!("{p}[{i}]"), "expected a name"),
                        }
                    }
                }
                "ipv4_address" | "ipv6_address" => {
                    let v6 = sk == "ipv6_address";
                    let Some(ip) = sv.as_str() else {
                        self.drop(p, "expected an address");
                        continue;
                    };
                    let parsed = ip
                        .parse::<std::net::IpAddr>()
                        .ok()
                        .filter(|a| a.is_ipv6() == v6);
                    let Some(addr) = parsed else {
                        self.drop(
                            p,
                            format!("`{ip}` is not an IPv{} address", if v6 { 6 } else { 4 }),
                        );
                        continue;
                    };
                    let (subnet, gateway) = self
                        .ctx
                        .network_subnets
                        .get(net)
                        .cloned()
                        .unwrap_or_default();
                    match subnet {
                        Some(sub) if ip_in_subnet(addr, &sub) && gateway.as_deref() != Some(ip) => {
                            let o = self.net_options(net);
                            if v6 {
                                o.ipv6 = Some(ip.to_string());
                            } else {
                                o.ipv4 = Some(ip.to_string());
                            }
                        }
                        Some(sub) if ip_in_subnet(addr, &sub) => self.drop(p, format!("{ip} is the gateway of network `{name}`")),
                        Some(sub) => self.drop(p, format!("{ip} is not in the subnet {sub} that windlass.toml declares for network `{name}` (windlass networks take the first `ipam.config` subnet); the container gets an address from Podman")),
                        None => self.drop(p, format!("network `{name}` declares no subnet (`ipam.config`), so a static address cannot be checked or kept; the container gets an address from Podman")),
                    }
                }
                k if k.starts_with("x-") => self.note(
                    p,
                    Action::Ignored,
                    "extension field, ignored by compose as well",
                ),
                _ => self.drop(p, "no windlass equivalent"),
            }
        }
    }

    /// A string or a list of strings (compose allows both for `dns` and
    /// `tmpfs`), each checked by `parse`; the ones it refuses are dropped
    /// with its reason, and repeats are left out.
    fn each(
        &mut self,
        key: &str,
        v: &Value,
        parse: impl Fn(&str) -> Result<String, String>,
    ) -> Vec<String> {
        let items: Vec<(String, Option<String>)> = match v {
            Value::Sequence(seq) => seq
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("{key}[{i}]"), scalar_text(x)))
                .collect(),
            other => vec![(key.to_string(), scalar_text(other))],
        };
        let mut out: Vec<String> = Vec::new();
        for (k, text) in items {
            let Some(text) = text else {
                self.drop(k, "expected a string");
                continue;
            };
            match parse(&text) {
                Ok(x) if !out.contains(&x) => out.push(x),
                Ok(_) => self.note(k, Action::Changed, "given twice; kept once"),
                Err(e) => self.drop(k, format!("{e}, found {}", found(&text))),
            }
        }
        out
    }

    fn shm_size(&mut self, v: &Value) {
        let Some(text) = scalar_text(v) else {
            return self.drop("shm_size", "expected a size such as 64m");
        };
        match convert::byte_size(&text) {
            Ok(size) => self.m.shm_size = Some(size),
            Err(e) => self.drop("shm_size", e),
        }
    }

    /// Docker's spellings (`label:disable`, `no-new-privileges:true`,
    /// `systempaths=unconfined`) become Podman's; an option given again
    /// replaces the earlier one, as in Podman.
    fn security_opt(&mut self, v: &Value) {
        let Some(items) = v.as_sequence() else {
            return self.drop("security_opt", "expected a list");
        };
        let mut opts: Vec<crate::model::SecurityOpt> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("security_opt[{i}]");
            let Some(raw) = item.as_str() else {
                self.drop(key, "expected a string");
                continue;
            };
            let spelled = match raw.split_once(['=', ':']) {
                Some(("no-new-privileges", b)) => match b {
                    "true" => "no-new-privileges".to_string(),
                    "false" => {
                        self.note(
                            key,
                            Action::Changed,
                            "no-new-privileges:false is Podman's default; not written",
                        );
                        continue;
                    }
                    _ => raw.to_string(),
                },
                Some(("systempaths", "unconfined")) => "unmask=ALL".to_string(),
                Some((k @ ("label" | "seccomp" | "apparmor"), rest)) => format!("{k}={rest}"),
                _ => raw.to_string(),
            };
            match parse_security_opt(&spelled) {
                Ok(o) => {
                    if spelled != raw {
                        self.note(
                            key.clone(),
                            Action::Changed,
                            format!("`{raw}` written as Podman's `{spelled}`"),
                        );
                    }
                    let repeatable = matches!(
                        o,
                        crate::model::SecurityOpt::Mask(_) | crate::model::SecurityOpt::Unmask(_)
                    );
                    if let Some(at) = opts
                        .iter()
                        .position(|p| !repeatable && p.kind() == o.kind())
                    {
                        self.note(
                            key,
                            Action::Changed,
                            format!(
                                "replaces the earlier `{}` (the last one wins)",
                                opts[at].podman()
                            ),
                        );
                        opts.remove(at);
                    }
                    opts.push(o);
                }
                Err(e) => self.drop(key, format!("{e}, found {}", found(raw))),
            }
        }
        self.m.security_opt = opts.iter().map(|o| o.podman()).collect();
    }

    /// `name: N` or `name: { soft, hard }`.
    fn ulimits(&mut self, v: &Value) {
        let Some(map) = v.as_mapping() else {
            return self.drop("ulimits", "expected a mapping");
        };
        let int = |x: Option<&Value>| x.and_then(scalar_text).and_then(|t| t.parse::<i64>().ok());
        for (k, val) in map {
            let name = key_str(k);
            let key = format!("ulimits.{name}");
            if !ULIMITS.contains(&name.as_str()) {
                self.drop(
                    key,
                    format!(
                        "`{name}` is not a resource limit Podman knows ({})",
                        ULIMITS.join(", ")
                    ),
                );
                continue;
            }
            let limits = match val {
                Value::Mapping(m) => {
                    let sub = self.known_subset(m, &format!("{key}."), &["soft", "hard"]);
                    int(sub.get("soft")).zip(int(sub.get("hard")))
                }
                other => int(Some(other)).map(|n| (n, n)),
            };
            let Some((soft, hard)) = limits else {
                self.drop(key, "expected an integer or `soft` and `hard` integers");
                continue;
            };
            match Ulimit::new(soft, hard) {
                Ok(_) => self.m.ulimits.push((name, soft, hard)),
                Err(e) => self.drop(key, e),
            }
        }
    }

    /// A mapping, or a list of `name=value`.
    fn sysctls(&mut self, v: &Value) {
        let pairs: Vec<(String, Option<String>)> = match v {
            Value::Mapping(m) => m
                .iter()
                .map(|(k, x)| (key_str(k), scalar_text(x)))
                .collect(),
            Value::Sequence(seq) => seq
                .iter()
                .map(
                    |x| match scalar_text(x).as_deref().and_then(|t| t.split_once('=')) {
                        Some((k, val)) => (k.to_string(), Some(val.to_string())),
                        None => (scalar_text(x).unwrap_or_default(), None),
                    },
                )
                .collect(),
            _ => return self.drop("sysctls", "expected a mapping or a list of name=value"),
        };
        for (name, val) in pairs {
            let key = format!("sysctls.{name}");
            let Some(val) = val else {
                self.drop(key, "expected name=value");
                continue;
            };
            match check_sysctl_key(&name) {
                Err(e) => self.drop(key, format!("{e}, found {}", found(&name))),
                Ok(()) => match check_sysctl_value(&val) {
                    Ok(()) => set_pair(&mut self.m.sysctls, &name, val),
                    Err(e) => self.drop(key, format!("{e}, found {}", found(&val))),
                },
            }
        }
    }

    /// Docker reads signal names in any case and with or without `SIG`.
    fn stop_signal(&mut self, v: &Value) {
        let Some(raw) = v.as_str() else {
            return self.drop("stop_signal", "expected a signal name");
        };
        match parse_signal(&raw.to_ascii_uppercase()) {
            Ok(sig) => {
                if sig != raw {
                    self.note(
                        "stop_signal",
                        Action::Changed,
                        format!("`{raw}` written as `{sig}`"),
                    );
                }
                self.m.stop_signal = Some(sig);
            }
            Err(e) => self.drop("stop_signal", format!("{e}, found {}", found(raw))),
        }
    }

    /// Docker reads 0 and -1 as unlimited; windlass writes -1.
    fn pids_limit(&mut self, v: &Value) {
        match scalar_text(v).and_then(|t| t.parse::<i64>().ok()) {
            Some(0) => {
                self.note(
                    "pids_limit",
                    Action::Changed,
                    "0 (unlimited in Docker) written as -1",
                );
                self.m.pids_limit = Some(-1);
            }
            Some(n) if n >= -1 => self.m.pids_limit = Some(n),
            _ => self.drop(
                "pids_limit",
                format!(
                    "expected -1 (unlimited) or a number of processes, found {}",
                    scalar_text(v).unwrap_or_default()
                ),
            ),
        }
    }

    fn environment(&mut self, v: &Value) {
        let env: dct::Environment = match typed(v) {
            Ok(e) => e,
            Err(e) => return self.drop("environment", e),
        };
        let entries: Vec<(String, String, Option<String>)> = match env {
            dct::Environment::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let path = format!("environment[{i}]");
                    match item.split_once('=') {
                        Some((k, val)) => (path, k.to_string(), Some(val.to_string())),
                        None => (path, item, None),
                    }
                })
                .collect(),
            dct::Environment::KvPair(map) => map
                .into_iter()
                .map(|(k, val)| (format!("environment.{k}"), k, val.map(|s| s.to_string())))
                .collect(),
        };
        for (path, k, val) in entries {
            if !is_env_key(&k) {
                self.drop(
                    path,
                    format!("`{k}` is not an environment variable name windlass accepts (^[A-Za-z_][A-Za-z0-9_]*$)"),
                );
                continue;
            }
            let Some(val) = val else {
                self.pass_through(path, &k);
                continue;
            };
            let subs = self.subs_at(&path).to_vec();
            let unset: Vec<&str> = subs
                .iter()
                .filter(|s| s.outcome == Outcome::Unset)
                .map(|s| s.var.as_str())
                .collect();
            if let Some(w) = subs.iter().find(|s| s.outcome == Outcome::Withheld) {
                let var = w.var.clone();
                let whole = subs.len() == 1
                    && (val == format!("${{{var}}}")
                        || val == format!("${var}")
                        || (val.starts_with(&format!("${{{var}:"))
                            || val.starts_with(&format!("${{{var}-")))
                            && val.ends_with('}')
                            && val.matches('}').count() == 1);
                self.secret_env(path, &k, &var, whole);
                continue;
            }
            if !unset.is_empty() {
                // Never a literal `${VAR}` in the container's environment.
                let vars: Vec<String> = unset.iter().map(|v| format!("${{{v}}}")).collect();
                self.note(
                    path,
                    Action::Uninterpolated,
                    format!(
                        "`{k}` is not written: {} {} not set and {} no default (compose would put an empty string); set {} in .env, or pass --env-file FILE or --process-env",
                        vars.join(", "),
                        if vars.len() == 1 { "is" } else { "are" },
                        if vars.len() == 1 { "has" } else { "have" },
                        if vars.len() == 1 { "it" } else { "them" },
                    ),
                );
                continue;
            }
            set_pair(&mut self.m.env, &k, val);
        }
    }

    /// The environment entry `k` (at `path`) holds the secret variable
    /// `var`: as a whole (`whole`) it becomes a reference to the podman
    /// secret named after `var`; a value built from it is not written.
    fn secret_env(&mut self, path: String, k: &str, var: &str, whole: bool) {
        // Scoped by the project, as compose scopes what it creates, so
        // that two projects' `DB_PASSWORD` are two secrets in one fleet.
        let secret = format!(
            "{}_{}",
            self.ctx.project,
            var.to_ascii_lowercase().replace('_', "-")
        );
        if whole && is_object_name(&secret) {
            self.m.secrets.push(SecretRef {
                name: secret.clone(),
                target: Some(k.to_string()),
                mode: None,
            });
            self.note(
                path,
                Action::Withheld,
                format!("the value of ${{{var}}} is secret and was not written; the app reads the podman secret `{secret}` as ${k} instead: create it with `podman secret create {secret} -` (the value on stdin)"),
            );
        } else {
            self.note(
                path,
                Action::Withheld,
                format!("`{k}` is built from the secret ${{{var}}} and was not written: put it in an env_file"),
            );
        }
    }

    /// An entry `k` without a value (`- K` or `K:`): compose sets it from
    /// the variables it interpolates with (the environment, then the env
    /// file), and leaves it out when none is set. A secret one is a podman
    /// secret reference, set or not.
    fn pass_through(&mut self, path: String, k: &str) {
        if self.ctx.rule.var_is_secret(k) {
            return self.secret_env(path, k, k, true);
        }
        match self.ctx.vars.get(k) {
            None => self.note(
                path,
                Action::Uninterpolated,
                format!("`{k}` takes the value of the variable ${k}, which the env file does not set{}; not carried (compose leaves it unset too): set it in .env, or pass --env-file FILE{}", if self.ctx.process_env { " nor the environment" } else { "" }, if self.ctx.process_env { "" } else { " or --process-env" }),
            ),
            Some((v, _)) => set_pair(&mut self.m.env, k, v.to_string()),
        }
    }

    fn env_file(&mut self, v: &Value) {
        let items: Vec<(String, Value)> = match v {
            Value::String(_) => vec![("env_file".into(), v.clone())],
            Value::Sequence(s) => s
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("env_file[{i}]"), x.clone()))
                .collect(),
            _ => return self.drop("env_file", "expected a path or a list of paths"),
        };
        for (key, item) in items {
            let (path, required) = match &item {
                Value::String(s) => (s.clone(), true),
                Value::Mapping(m) => {
                    let sub =
                        self.known_subset(m, &format!("{key}."), &["path", "required", "format"]);
                    let Some(p) = sub.get("path").and_then(Value::as_str) else {
                        self.drop(key, "no `path`");
                        continue;
                    };
                    if let Some(f) = sub.get("format").and_then(scalar_text) {
                        self.drop(
                            format!("{key}.format"),
                            format!("format `{f}`: Podman reads env files in its own format only"),
                        );
                    }
                    (
                        p.to_string(),
                        sub.get("required").and_then(Value::as_bool).unwrap_or(true),
                    )
                }
                _ => {
                    self.drop(key, "expected a path");
                    continue;
                }
            };
            let abs = self.host_path(&path);
            if let Err(e) = check_path(&abs) {
                self.drop(key, format!("{abs}: {e}"));
                continue;
            }
            if !required {
                self.note(
                    format!("{key}.required"),
                    Action::Changed,
                    "an optional env file becomes required: Podman fails when it is missing",
                );
            }
            if abs != path {
                self.note(
                    key.clone(),
                    Action::Changed,
                    format!("kept as a reference to {abs} (resolved against the compose file's directory); never read"),
                );
            }
            self.env_file_keys.push((key, abs.clone()));
            self.m.env_files.push(abs);
        }
    }

    /// Reads each env file as compose does and as Podman does, and reports
    /// every variable the container would receive with another value
    /// under Podman (by name; never its value). Variables the service's
    /// `environment` sets win in both, so they are not compared.
    fn check_env_files(&mut self, raw: &Mapping) {
        use super::envfile::{
            PodmanVar, parse_compose, parse_podman, plain_line_reads_the_same, why_different,
        };
        if self.env_file_keys.is_empty() {
            return;
        }
        // compose's lookup: the project's variables, then the service's
        // `environment` (as interpolated).
        let service_env: Vec<(String, String)> = match raw.get("environment") {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| scalar_text(v).map(|v| (key_str(k), v)))
                .collect(),
            Some(Value::Sequence(s)) => s
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|i| i.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        let mut lookup: BTreeMap<String, String> = service_env.iter().cloned().collect();
        for (k, v) in &self.ctx.vars.env_file {
            lookup.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.ctx.vars.environment {
            lookup.insert(k.clone(), v.clone());
        }
        let overridden: Vec<&str> = match raw.get("environment") {
            Some(Value::Mapping(m)) => m.keys().filter_map(Value::as_str).collect(),
            Some(Value::Sequence(s)) => s
                .iter()
                .filter_map(Value::as_str)
                .map(|i| i.split_once('=').map_or(i, |(k, _)| k))
                .collect(),
            _ => Vec::new(),
        };
        let mut env: BTreeMap<String, Option<String>> = service_env
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        // Last file wins, in compose and in Podman alike.
        let mut compose: BTreeMap<String, (String, String, super::envfile::ComposeVar)> =
            BTreeMap::new();
        let mut podman: BTreeMap<String, PodmanVar> = BTreeMap::new();
        let mut unchecked = false;
        for (key, path) in self.env_file_keys.clone() {
            let text = match std::fs::read(&path) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    self.report.warnings.push(format!(
                        "service `{}`: {key} {path} cannot be read here ({e}): whether Podman reads it as compose does was not checked",
                        self.service
                    ));
                    unchecked = true;
                    continue;
                }
            };
            match parse_compose(&text, &lookup, &mut env) {
                Ok(vars) => {
                    for (k, v) in vars {
                        compose.insert(k, (key.clone(), path.clone(), v));
                    }
                }
                Err(e) => {
                    self.note(
                        key.clone(),
                        Action::Differs,
                        format!("{path}: compose refuses this file ({e}); Podman reads it line by line, so what the container receives was not checked"),
                    );
                    unchecked = true;
                }
            }
            match parse_podman(&text) {
                Ok(p) => podman.extend(p),
                Err(line) => self.note(
                    key.clone(),
                    Action::Differs,
                    format!("{path} line {line}: Podman refuses a line that starts with `=` (inside a value that spans lines?) and does not start the container"),
                ),
            }
        }
        if unchecked {
            return;
        }
        for (name, (key, path, var)) in &compose {
            if overridden.contains(&name.as_str()) {
                continue;
            }
            let p = podman.get(name);
            let same = matches!((p, &var.value), (Some(PodmanVar::Value(a)), Some(b)) if a == b);
            if same {
                continue;
            }
            let fix = match &var.value {
                Some(v) if plain_line_reads_the_same(name, v) => format!(
                    "; write the line as {name}= and the value compose reads, unquoted: compose and Podman read that alike"
                ),
                _ => format!(
                    "; no line reads the same in both: set {name} in `environment` (a secret as a podman secret) instead"
                ),
            };
            self.note(
                format!("{key}.{name}"),
                Action::Differs,
                format!(
                    "{path} line {}: the container would receive another value under Podman: {}{fix}",
                    var.form.line,
                    why_different(&var.form, p)
                ),
            );
        }
        let extra = podman
            .keys()
            .filter(|k| !compose.contains_key(*k) && !overridden.contains(&k.as_str()))
            .count();
        if extra > 0 {
            self.note(
                "env_file",
                Action::Differs,
                format!("Podman would also set {extra} variable(s) that compose does not (from lines such as `export KEY=…`, `KEY =…` or inside a value that spans lines); their names are not shown, as they may be parts of values"),
            );
        }
    }

    fn port_out(
        &mut self,
        key: &str,
        ip: Option<&str>,
        host: &str,
        container: &str,
        proto: Option<&str>,
    ) {
        // `:443:443` (an empty host IP) publishes on every address, as
        // `443:443` does.
        let ip = ip.filter(|ip| !ip.is_empty());
        let proto = match proto {
            None => None,
            Some(p @ ("tcp" | "udp")) => Some(p),
            Some(p) => {
                return self.drop(
                    key,
                    format!("protocol `{p}`: windlass publishes tcp and udp only"),
                );
            }
        };
        if host.is_empty() {
            return self.drop(
                key,
                "publishes on a random host port; windlass needs a fixed host port (write HOST:CONTAINER)",
            );
        }
        let range = |s: &str| -> Option<(u32, u32)> {
            match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => {
                    let x = s.parse().ok()?;
                    Some((x, x))
                }
            }
        };
        let (Some((h0, h1)), Some((c0, c1))) = (range(host), range(container)) else {
            return self.drop(
                key,
                format!("`{host}:{container}` is not a port or port range"),
            );
        };
        if h1 < h0 || c1 < c0 || h1 - h0 != c1 - c0 {
            return self.drop(
                key,
                "the host and container ranges differ in size; compose would pick one port, windlass needs each pair",
            );
        }
        let mut out = Vec::new();
        for i in 0..=(h1 - h0) {
            let ip_part = match ip {
                Some(ip) if ip.contains(':') => format!("[{ip}]:"),
                Some(ip) => format!("{ip}:"),
                None => String::new(),
            };
            let p = format!(
                "{ip_part}{}:{}{}",
                h0 + i,
                c0 + i,
                proto.map(|p| format!("/{p}")).unwrap_or_default()
            );
            if let Err(e) = parse_port(&p) {
                return self.drop(key, e);
            }
            out.push(p);
        }
        if out.len() > 1 {
            self.note(
                key,
                Action::Changed,
                format!("the range became {} ports", out.len()),
            );
        }
        self.m.ports.extend(out);
    }

    fn ports(&mut self, v: &Value) {
        let Some(items) = v.as_sequence() else {
            return self.drop("ports", "expected a list");
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("ports[{i}]");
            match item {
                Value::String(_) | Value::Number(_) => {
                    let s = scalar_text(item).unwrap_or_default();
                    if s.contains("${") {
                        // `${PORT}:80` with PORT unset is no mapping.
                        self.drop(
                            key,
                            format!("`{s}` is no port mapping while its variable has no value (see the variable's entry)"),
                        );
                        continue;
                    }
                    let (rest, proto) = match s.rsplit_once('/') {
                        Some((r, p)) => (r.to_string(), Some(p.to_string())),
                        None => (s.clone(), None),
                    };
                    let (ip, ports) = if let Some(r) = rest.strip_prefix('[') {
                        match r.split_once("]:") {
                            Some((ip, p)) => (Some(ip.to_string()), p.to_string()),
                            None => {
                                self.drop(key, format!("`{s}` is not a port mapping"));
                                continue;
                            }
                        }
                    } else {
                        let parts: Vec<&str> = rest.split(':').collect();
                        match parts.len() {
                            1 | 2 => (None, rest.clone()),
                            3 => (
                                Some(parts[0].to_string()),
                                format!("{}:{}", parts[1], parts[2]),
                            ),
                            _ => {
                                self.drop(key, format!("`{s}` is not a port mapping"));
                                continue;
                            }
                        }
                    };
                    let (host, container) = match ports.split_once(':') {
                        Some((h, c)) => (h.to_string(), c.to_string()),
                        None => (String::new(), ports.clone()),
                    };
                    self.port_out(&key, ip.as_deref(), &host, &container, proto.as_deref());
                }
                Value::Mapping(m) => {
                    let sub = self.known_subset(
                        m,
                        &format!("{key}."),
                        &[
                            "target",
                            "published",
                            "host_ip",
                            "protocol",
                            "mode",
                            "name",
                            "app_protocol",
                        ],
                    );
                    for meta in ["name", "app_protocol"] {
                        if sub.contains_key(meta) {
                            self.drop(
                                format!("{key}.{meta}"),
                                "port metadata has no windlass equivalent",
                            );
                        }
                    }
                    if let Some(mode) = sub.get("mode").and_then(scalar_text)
                        && mode != "host"
                    {
                        self.note(
                            format!("{key}.mode"),
                            Action::Ignored,
                            format!("mode `{mode}` applies to swarm only"),
                        );
                    }
                    let mut sub = sub;
                    if let Some(p) = sub.get("published").and_then(scalar_text) {
                        sub.insert("published".into(), Value::String(p));
                    }
                    sub.remove("name");
                    sub.remove("app_protocol");
                    let port: dct::Port = match typed(&Value::Mapping(sub)) {
                        Ok(p) => p,
                        Err(e) => {
                            self.drop(key, e);
                            continue;
                        }
                    };
                    let host = match &port.published {
                        Some(dct::PublishedPort::Single(p)) => p.to_string(),
                        Some(dct::PublishedPort::Range(r)) => r.clone(),
                        None => String::new(),
                    };
                    self.port_out(
                        &key,
                        port.host_ip.as_deref(),
                        &host,
                        &port.target.to_string(),
                        port.protocol.as_deref(),
                    );
                }
                _ => self.drop(key, "expected a port mapping"),
            }
        }
    }

    /// `relabel` is `z` or `Z` (SELinux), if given.
    fn add_volume(
        &mut self,
        key: &str,
        src: Option<&str>,
        target: &str,
        ro: bool,
        relabel: Option<&str>,
        bind: bool,
    ) {
        let Some(src) = src.filter(|s| !s.is_empty()) else {
            return self.drop(
                key,
                "an anonymous volume has no windlass equivalent: give it a name",
            );
        };
        let source = if bind {
            if (src == "~" || src.starts_with("~/")) && self.ctx.home.is_none() {
                // Compose expands `~` to the user's home; without HOME
                // there is nothing to expand it to.
                return self.drop(
                    key,
                    format!("host path {src} starts with `~` and HOME is not set, so it cannot be resolved to the home directory as compose resolves it"),
                );
            }
            let abs = self.host_path(src);
            if abs.contains(char::is_whitespace) {
                // Quadlet copies the host path into `RequiresMountsFor=`
                // unquoted, where systemd splits it at the white space.
                return self.drop(
                    key,
                    format!("host path {abs} holds white space, which Quadlet cannot carry into RequiresMountsFor="),
                );
            }
            if abs != src {
                self.note(key, Action::Changed, format!("host path resolved to {abs}"));
            }
            abs
        } else {
            self.volume_name(key, src)
        };
        let opts: Vec<&str> = ro.then_some("ro").into_iter().chain(relabel).collect();
        let spec = if opts.is_empty() {
            format!("{source}:{target}")
        } else {
            format!("{source}:{target}:{}", opts.join(","))
        };
        match parse_volume(&spec) {
            Ok(_) => {
                if !bind && !self.uses.volumes.contains(&source) {
                    self.uses.volumes.push(source);
                }
                self.m.volumes.push(spec);
            }
            Err(e) => self.drop(key, e),
        }
    }

    fn volumes(&mut self, v: &Value) {
        let Some(items) = v.as_sequence() else {
            return self.drop("volumes", "expected a list");
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("volumes[{i}]");
            match item {
                Value::String(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    let (src, target, opts) = match parts.as_slice() {
                        [t] => (None, *t, ""),
                        [s, t] => (Some(*s), *t, ""),
                        [s, t, o] => (Some(*s), *t, *o),
                        _ => {
                            self.drop(key, format!("`{s}` is not SOURCE:TARGET[:MODE]"));
                            continue;
                        }
                    };
                    let mut ro = false;
                    let mut relabel = None;
                    for o in opts.split(',').filter(|o| !o.is_empty()) {
                        match o {
                            "ro" => ro = true,
                            "rw" => ro = false,
                            "z" | "Z" => relabel = Some(o),
                            other => self.drop(
                                format!("{key}:{other}"),
                                format!("mount option `{other}` has no windlass equivalent"),
                            ),
                        }
                    }
                    let bind = src.is_some_and(|s| {
                        s.starts_with('/') || s.starts_with('.') || s.starts_with('~')
                    });
                    self.add_volume(&key, src, target, ro, relabel, bind);
                }
                Value::Mapping(m) => {
                    let sub = self.known_subset(
                        m,
                        &format!("{key}."),
                        &[
                            "type",
                            "source",
                            "target",
                            "read_only",
                            "bind",
                            "volume",
                            "tmpfs",
                            "consistency",
                        ],
                    );
                    if sub.contains_key("consistency") {
                        self.note(
                            format!("{key}.consistency"),
                            Action::Ignored,
                            "applies to Docker Desktop only",
                        );
                    }
                    let mut filtered = sub.clone();
                    filtered.remove("consistency");
                    if sub.get("type").and_then(Value::as_str) == Some("tmpfs") {
                        self.tmpfs_mount(&key, &sub);
                        continue;
                    }
                    let relabel = match sub.get("bind").and_then(|b| b.get("selinux")) {
                        Some(Value::String(z)) if z == "z" || z == "Z" => Some(z.as_str()),
                        Some(other) => {
                            self.drop(
                                format!("{key}.bind.selinux"),
                                format!(
                                    "expected z or Z, found {}",
                                    scalar_text(other).unwrap_or_default()
                                ),
                            );
                            None
                        }
                        None => None,
                    };
                    for (nested, known) in [
                        ("bind", &["propagation", "create_host_path", "selinux"][..]),
                        ("volume", &["nocopy", "subpath"][..]),
                        ("tmpfs", &["size", "mode"][..]),
                    ] {
                        if let Some(Value::Mapping(nm)) = sub.get(nested) {
                            let kept = self.known_subset(nm, &format!("{key}.{nested}."), known);
                            for (k, val) in &kept {
                                let kk = key_str(k);
                                if nested == "bind"
                                    && kk == "create_host_path"
                                    && val.as_bool() != Some(false)
                                {
                                    continue;
                                }
                                if nested == "bind" && kk == "selinux" {
                                    continue;
                                }
                                self.drop(format!("{key}.{nested}.{kk}"), "no windlass equivalent");
                            }
                            filtered.remove(nested);
                        }
                    }
                    let vol: dct::AdvancedVolumes = match typed(&Value::Mapping(filtered)) {
                        Ok(x) => x,
                        Err(e) => {
                            self.drop(key, e);
                            continue;
                        }
                    };
                    match vol._type.as_str() {
                        "bind" => self.add_volume(&key, vol.source.as_deref(), &vol.target, vol.read_only, relabel, true),
                        "volume" => self.add_volume(&key, vol.source.as_deref(), &vol.target, vol.read_only, None, false),
                        other => self.drop(key, format!("volume type `{other}` has no windlass equivalent (bind and volume only)")),
                    }
                }
                _ => self.drop(key, "expected a volume"),
            }
        }
    }

    /// A long-form `type: tmpfs` volume, as `container.tmpfs`: its `size`
    /// (bytes or a size such as 64m) is carried; its `mode` is not (compose
    /// and Docker disagree on whether the number is octal).
    fn tmpfs_mount(&mut self, key: &str, m: &Mapping) {
        let Some(target) = m.get("target").and_then(Value::as_str) else {
            return self.drop(key, "a tmpfs mount needs a `target`");
        };
        let mut opts = Vec::new();
        if m.get("read_only").and_then(Value::as_bool) == Some(true) {
            opts.push("ro".to_string());
        }
        if let Some(Value::Mapping(t)) = m.get("tmpfs") {
            let kept = self.known_subset(t, &format!("{key}.tmpfs."), &["size", "mode"]);
            if let Some(size) = kept.get("size").and_then(scalar_text) {
                let bytes = size.bytes().all(|b| b.is_ascii_digit());
                let spec = if bytes {
                    size.clone()
                } else {
                    size.to_ascii_lowercase()
                };
                opts.push(format!("size={spec}"));
            }
            if kept.contains_key("mode") {
                self.drop(
                    format!("{key}.tmpfs.mode"),
                    "not carried (compose and Docker read the number differently): add mode=OCTAL to the entry in `container.tmpfs`",
                );
            }
        }
        let spec = if opts.is_empty() {
            target.to_string()
        } else {
            format!("{target}:{}", opts.join(","))
        };
        match parse_tmpfs(&spec) {
            Ok(t) if !self.m.tmpfs.contains(&t) => {
                self.note(
                    key,
                    Action::Changed,
                    format!("a tmpfs mount: written to `container.tmpfs` as `{t}`"),
                );
                self.m.tmpfs.push(t);
            }
            Ok(_) => {}
            Err(e) => self.drop(key, e),
        }
    }

    fn network_ref(&mut self, key: &str, name: &str) -> String {
        let n = match self.ctx.networks.get(name) {
            Some(n) => n.clone(),
            None => {
                let n = format!("{}_{name}", self.ctx.project);
                self.note(key, Action::Changed, format!("network `{name}` is not declared under the top-level `networks`; declared as `{n}`"));
                n
            }
        };
        if name == "default" {
            self.uses.default_network = true;
        }
        if !self.m.networks.contains(&n) {
            self.m.networks.push(n.clone());
        }
        if !self.uses.networks.contains(&n) {
            self.uses.networks.push(n.clone());
        }
        n
    }

    fn networks(&mut self, v: &Value) {
        match v {
            Value::Sequence(s) => {
                for (i, n) in s.iter().enumerate() {
                    match n.as_str() {
                        Some(name) => {
                            self.network_ref(&format!("networks[{i}]"), name);
                        }
                        None => self.drop(format!("networks[{i}]"), "expected a network name"),
                    }
                }
            }
            Value::Mapping(m) => {
                for (k, settings) in m {
                    let name = key_str(k);
                    let key = format!("networks.{name}");
                    let net = self.network_ref(&key, &name);
                    if let Value::Mapping(sm) = settings {
                        self.network_settings(&key, &name, &net, sm);
                    }
                }
            }
            _ => self.drop("networks", "expected a list or a map"),
        }
    }

    fn network_mode(&mut self, v: &Value) {
        match v.as_str() {
            Some("host") => self.m.networks = vec!["host".into()],
            Some(m) => self.drop(
                "network_mode",
                format!("`{m}` has no windlass equivalent (only `host`); the app joins no network"),
            ),
            None => self.drop("network_mode", "expected a string"),
        }
    }

    fn healthcheck(&mut self, v: &Value) {
        let Value::Mapping(m) = v else {
            return self.drop("healthcheck", "expected a map");
        };
        let mut sub = self.known_subset(
            m,
            "healthcheck.",
            &[
                "test",
                "interval",
                "timeout",
                "retries",
                "start_period",
                "start_interval",
                "disable",
            ],
        );
        if sub.remove("start_interval").is_some() {
            self.drop(
                "healthcheck.start_interval",
                "no windlass key: checks run at `interval` from the start",
            );
        }
        let sub = {
            let mut s = sub.clone();
            for k in ["interval", "timeout", "start_period"] {
                if let Some(x) = s.get(k).and_then(scalar_text) {
                    s.insert(k.into(), Value::String(x));
                }
            }
            s
        };
        let hc: dct::Healthcheck = match typed(&Value::Mapping(sub)) {
            Ok(h) => h,
            Err(e) => return self.drop("healthcheck", e),
        };
        let none = || "disables the image's own health check; windlass cannot disable it (the image's HEALTHCHECK still runs if it has one)";
        if hc.disable {
            return self.drop("healthcheck.disable", none());
        }
        let cmd = match hc.test {
            None => {
                return self.drop(
                    "healthcheck",
                    "no `test`: the image's own check is not known to windlass",
                );
            }
            Some(dct::HealthcheckTest::Single(s)) if s.is_empty() => {
                return self.drop("healthcheck.test", "empty");
            }
            Some(dct::HealthcheckTest::Single(s)) => {
                vec!["/bin/sh".to_string(), "-c".to_string(), s]
            }
            Some(dct::HealthcheckTest::Multiple(list)) => match list.split_first() {
                Some((first, rest)) if first == "CMD" && !rest.is_empty() => rest.to_vec(),
                Some((first, rest)) if first == "CMD-SHELL" && rest.len() == 1 => {
                    vec!["/bin/sh".to_string(), "-c".to_string(), rest[0].clone()]
                }
                Some((first, _)) if first == "NONE" => {
                    return self.drop("healthcheck.test", none());
                }
                _ => {
                    return self.drop(
                        "healthcheck.test",
                        "expected [\"CMD\", args…], [\"CMD-SHELL\", command] or [\"NONE\"]",
                    );
                }
            },
        };
        if cmd[0].is_empty() {
            return self.drop("healthcheck.test", "the program (first word) is empty");
        }
        let mut h = Health {
            cmd,
            ..Health::default()
        };
        for (k, src, dst) in [
            ("interval", &hc.interval, &mut h.interval),
            ("timeout", &hc.timeout, &mut h.timeout),
            ("start_period", &hc.start_period, &mut h.start_period),
        ] {
            if let Some(s) = src {
                match convert::duration(s) {
                    Ok(d) => *dst = Some(d),
                    Err(e) => self.drop(format!("healthcheck.{k}"), e),
                }
            }
        }
        if hc.retries > 0 {
            h.retries = Some(hc.retries);
        } else if m.contains_key("retries") {
            self.drop(
                "healthcheck.retries",
                "must be at least 1; Podman's default (3) applies",
            );
        }
        self.health_deadline(&h);
        self.m.health = Some(h);
    }

    /// `update.health_deadline` from the health check's own timing (compose's
    /// defaults for what it leaves out), reported with how it was derived:
    /// the deadline is the unit's `TimeoutStartSec=` and the agent's health
    /// gate, so a fixed one would fail a slow but healthy start.
    fn health_deadline(&mut self, h: &Health) {
        let usec = |v: &Option<String>| {
            v.as_deref()
                .and_then(|s| convert::duration_usec(s).ok())
                .filter(|&u| u > 0)
        };
        let start = usec(&h.start_period).unwrap_or(0);
        let interval = usec(&h.interval).unwrap_or(convert::HEALTH_INTERVAL_USEC);
        let timeout = usec(&h.timeout).unwrap_or(convert::HEALTH_TIMEOUT_USEC);
        let retries = h
            .retries
            .and_then(|r| u64::try_from(r).ok())
            .unwrap_or(convert::HEALTH_RETRIES);
        let (window, deadline) = convert::health_deadline(start, interval, timeout, retries);
        let text = format_timespan(deadline);
        let defaults: Vec<&str> = [
            ("start_period", h.start_period.is_none()),
            ("retries", h.retries.is_none()),
            ("interval", h.interval.is_none()),
            ("timeout", h.timeout.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, default)| default.then_some(k))
        .collect();
        // As the manifest writes them; compose's defaults otherwise.
        let shown = |v: &Option<String>, default: &'static str| {
            v.clone().unwrap_or_else(|| default.to_string())
        };
        let mut how = format!(
            "start_period {} + retries {retries} × (interval {} + timeout {}) + {} for pulling the image",
            shown(&h.start_period, "0s"),
            shown(&h.interval, "30s"),
            shown(&h.timeout, "30s"),
            format_timespan(convert::HEALTH_MARGIN_USEC),
        );
        if deadline == convert::HEALTH_DEADLINE_FLOOR_USEC
            && window + convert::HEALTH_MARGIN_USEC < deadline
        {
            how.push_str(", raised to windlass's default");
        }
        if !defaults.is_empty() {
            how.push_str(&format!("; compose's default for {}", defaults.join(", ")));
        }
        self.note(
            "healthcheck",
            Action::Changed,
            format!(
                "start deadline {text} = {how}. It is update.health_deadline: the unit's TimeoutStartSec= and the agent's health gate. Unlike compose, the unit does not start until the check passes: one that never passes holds back the app and every app that requires it"
            ),
        );
        self.m.health_deadline = Some(text);
    }

    fn depends_on(&mut self, v: &Value) {
        // Fill in compose's default condition before the typed read.
        let v = match v {
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, dep) in m {
                    let name = key_str(k);
                    let mut d = match dep {
                        Value::Mapping(dm) => self.known_subset(
                            dm,
                            &format!("depends_on.{name}."),
                            &["condition", "restart", "required"],
                        ),
                        _ => Mapping::new(),
                    };
                    if !d.contains_key("condition") {
                        d.insert("condition".into(), "service_started".into());
                    }
                    out.insert(k.clone(), Value::Mapping(d));
                }
                Value::Mapping(out)
            }
            other => other.clone(),
        };
        let deps: dct::DependsOnOptions = match typed(&v) {
            Ok(d) => d,
            Err(e) => return self.drop("depends_on", e),
        };
        let list: Vec<(String, String, dct::DependsCondition)> = match deps {
            dct::DependsOnOptions::Simple(names) => names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        format!("depends_on[{i}]"),
                        n,
                        dct::DependsCondition::service_started(),
                    )
                })
                .collect(),
            dct::DependsOnOptions::Conditional(map) => map
                .into_iter()
                .map(|(n, c)| (format!("depends_on.{n}"), n, c))
                .collect(),
        };
        for (key, dep, cond) in list {
            let Some(app) = self.ctx.apps.get(&dep).cloned() else {
                self.drop(
                    key,
                    format!("service `{dep}` is not imported (see its entries)"),
                );
                continue;
            };
            if cond.restart == Some(true) {
                self.drop(
                    format!("{key}.restart"),
                    "windlass does not restart an app when a dependency restarts",
                );
            }
            let wanted = cond.required == Some(false);
            match cond.condition.as_str() {
                "service_started" => {}
                "service_healthy" => {
                    if !self.ctx.healthy.get(&dep).copied().unwrap_or(false) {
                        self.drop(
                            format!("{key}.condition"),
                            format!("`{dep}` has no health check windlass knows, so the start is ordered but not gated on its health"),
                        );
                    }
                }
                "service_completed_successfully" => {
                    self.drop(
                        format!("{key}.condition"),
                        "windlass apps are long-running: ordered after it, without waiting for it to exit",
                    );
                }
                other => self.drop(
                    format!("{key}.condition"),
                    format!("unknown condition `{other}`"),
                ),
            }
            let list = if wanted || cond.condition == "service_completed_successfully" {
                &mut self.m.wants
            } else {
                &mut self.m.requires
            };
            if !list.contains(&app) {
                list.push(app);
            }
        }
    }

    fn restart(&mut self, v: &Value) {
        let s = scalar_text(v).unwrap_or_default();
        self.m.restart = match s.as_str() {
            "no" | "false" => Some("no"),
            "always" => Some("always"),
            "unless-stopped" => {
                self.note(
                    "restart",
                    Action::Changed,
                    "`unless-stopped` became `always`: systemd never restarts a unit stopped on purpose",
                );
                Some("always")
            }
            s if s == "on-failure" || s.starts_with("on-failure:") => {
                if s != "on-failure" {
                    self.drop(
                        "restart",
                        "the retry limit has no windlass equivalent; restarts are unlimited",
                    );
                }
                Some("on-failure")
            }
            other => {
                self.drop("restart", format!("`{other}` is not a restart policy"));
                None
            }
        };
    }

    fn cpus(&mut self, key: &str, v: &Value) {
        match scalar_text(v).and_then(|s| s.parse::<f64>().ok()) {
            Some(x) if x > 0.0 && x.is_finite() => self.m.cpus = Some(x),
            Some(_) if scalar_text(v).as_deref() == Some("0") => {} // compose: no limit
            _ => self.drop(key, "expected a number of CPUs greater than 0"),
        }
    }

    fn deploy(&mut self, v: &Value) {
        let Value::Mapping(m) = v else {
            return self.drop("deploy", "expected a map");
        };
        for (k, val) in m {
            let key = format!("deploy.{}", key_str(k));
            match key_str(k).as_str() {
                "resources" => {
                    let Value::Mapping(r) = val else {
                        self.drop(key, "expected a map");
                        continue;
                    };
                    for (rk, rv) in r {
                        let rkey = format!("{key}.{}", key_str(rk));
                        if key_str(rk) != "limits" {
                            self.drop(
                                rkey,
                                "no windlass equivalent (only limits.memory and limits.cpus)",
                            );
                            continue;
                        }
                        let Value::Mapping(l) = rv else {
                            self.drop(rkey, "expected a map");
                            continue;
                        };
                        for (lk, lv) in l {
                            let lkey = format!("{rkey}.{}", key_str(lk));
                            match key_str(lk).as_str() {
                                "memory" => match scalar_text(lv).map(|s| convert::byte_size(&s)) {
                                    Some(Ok(mem)) => {
                                        if let Some(prev) = self.m.memory.replace(mem.clone())
                                            && prev != mem
                                        {
                                            self.drop(
                                                "mem_limit",
                                                format!("overridden by {lkey} ({mem})"),
                                            );
                                        }
                                    }
                                    Some(Err(e)) => self.drop(lkey, e),
                                    None => self.drop(lkey, "expected a size"),
                                },
                                "cpus" => self.cpus(&lkey, lv),
                                _ => {
                                    self.drop(lkey, "no windlass equivalent (only memory and cpus)")
                                }
                            }
                        }
                    }
                }
                "replicas" if scalar_text(val).as_deref() == Some("1") => {}
                "replicas" => self.drop(key, "windlass runs one container per app"),
                "restart_policy" => self.drop(key, "swarm only: use `restart`"),
                _ => self.drop(key, "swarm only: no windlass equivalent"),
            }
        }
    }

    fn labels(&mut self, v: &Value) {
        let labels: dct::Labels = match typed(&scalars_to_strings(v)) {
            Ok(l) => l,
            Err(e) => return self.drop("labels", e),
        };
        let pairs: Vec<(String, String, String)> = match labels {
            dct::Labels::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
                    (format!("labels[{i}]"), k.to_string(), v.to_string())
                })
                .collect(),
            dct::Labels::Map(map) => map
                .into_iter()
                .map(|(k, v)| (format!("labels.{k}"), k, v))
                .collect(),
        };
        for (key, k, val) in pairs {
            if let Err(e) = check_label_key(&k) {
                self.drop(key, e);
            } else if k.starts_with("io.windlass.") {
                self.drop(key, "labels under `io.windlass.` are reserved for windlass");
            } else if val.contains('\u{80}') {
                self.drop(key, "U+0080 cannot pass through Quadlet");
            } else {
                set_pair(&mut self.m.labels, &k, val);
            }
        }
    }

    fn extra_hosts(&mut self, v: &Value) {
        let items: Vec<(String, String, String)> = match v {
            Value::Sequence(s) => s
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let s = scalar_text(x).unwrap_or_default();
                    // host:ip, or host=ip (newer compose)
                    let (h, ip) = s
                        .split_once('=')
                        .or_else(|| s.split_once(':'))
                        .unwrap_or((s.as_str(), ""));
                    (format!("extra_hosts[{i}]"), h.to_string(), ip.to_string())
                })
                .collect(),
            Value::Mapping(m) => m
                .iter()
                .map(|(k, x)| {
                    let h = key_str(k);
                    (
                        format!("extra_hosts.{h}"),
                        h,
                        scalar_text(x).unwrap_or_default(),
                    )
                })
                .collect(),
            _ => return self.drop("extra_hosts", "expected a list or a map"),
        };
        for (key, host, ip) in items {
            let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
            let entry = format!("{host}:{ip}");
            match parse_add_host(&entry) {
                Ok(_) => self.m.add_hosts.push(entry),
                Err(e) if ip == "host-gateway" => self.drop(
                    key,
                    format!("`host-gateway` is resolved by the engine at run time; windlass needs an IP address ({e})"),
                ),
                Err(e) => self.drop(key, e),
            }
        }
    }

    fn user(&mut self, v: &Value) {
        let Some(u) = scalar_text(v) else {
            return self.drop("user", "expected a user");
        };
        let ok_part = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && (s.bytes().all(|b| b.is_ascii_digit())
                    || (s.as_bytes()[0].is_ascii_alphabetic() || s.as_bytes()[0] == b'_')
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        };
        let ok = match u.split_once(':') {
            Some((a, b)) => ok_part(a) && ok_part(b),
            None => ok_part(&u),
        };
        if ok {
            self.m.user = Some(u);
        } else {
            self.drop("user", format!("`{u}` is not uid[:gid] or a user name"));
        }
    }

    fn service_secrets(&mut self, v: &Value) {
        let Some(items) = v.as_sequence() else {
            return self.drop("secrets", "expected a list");
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("secrets[{i}]");
            let (source, target, mode) = match item {
                Value::String(s) => (s.clone(), None, None),
                Value::Mapping(m) => {
                    let sub = self.known_subset(
                        m,
                        &format!("{key}."),
                        &["source", "target", "uid", "gid", "mode"],
                    );
                    for k in ["uid", "gid"] {
                        if sub.contains_key(k) {
                            self.drop(
                                format!("{key}.{k}"),
                                "no windlass key: the secret is owned by root",
                            );
                        }
                    }
                    let mode = match sub.get("mode") {
                        Some(Value::Number(n)) => n.as_u64().map(|n| format!("{n:04o}")),
                        Some(Value::String(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let Some(source) = sub.get("source").and_then(Value::as_str) else {
                        self.drop(key, "no `source`");
                        continue;
                    };
                    (
                        source.to_string(),
                        sub.get("target").and_then(scalar_text),
                        mode,
                    )
                }
                _ => {
                    self.drop(key, "expected a secret");
                    continue;
                }
            };
            let path_target = match &target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) => format!("/run/secrets/{t}"),
                None => format!("/run/secrets/{source}"),
            };
            let def = self.ctx.secrets.get(&source).cloned();
            let (name, is_file) = match def {
                Some(SecretDef::File(p)) => (p, true),
                Some(SecretDef::Podman { name, from_env }) => {
                    if let Some(var) = from_env {
                        self.note(
                            key.clone(),
                            Action::Withheld,
                            format!("compose reads it from ${var}; windlass references the podman secret `{name}`: create it with `podman secret create {name} -` (the value on stdin)"),
                        );
                    }
                    (name, false)
                }
                None => {
                    self.note(
                        key.clone(),
                        Action::Changed,
                        format!("secret `{source}` is not declared under the top-level `secrets`; referenced as the podman secret `{source}`"),
                    );
                    (source.clone(), false)
                }
            };
            if !is_file && !is_object_name(&name) {
                self.drop(key, format!("`{name}` is not a podman secret name"));
                continue;
            }
            let mode = match mode {
                Some(m) if u32::from_str_radix(&m, 8).is_ok_and(|v| v <= 0o777) => Some(m),
                Some(m) => {
                    self.drop(
                        format!("{key}.mode"),
                        format!("`{m}` is not an octal file mode"),
                    );
                    None
                }
                None => None,
            };
            let default_target =
                format!("/run/secrets/{}", name.rsplit('/').next().unwrap_or(&name));
            if let Err(e) = check_path(&path_target) {
                self.drop(key, format!("target {path_target}: {e}"));
                continue;
            }
            self.m.secrets.push(SecretRef {
                name,
                target: (path_target != default_target).then_some(path_target),
                mode,
            });
        }
    }
}

/// The manifest for one service, or `None` when it cannot be imported
/// (then the report says why).
pub fn map_service(
    ctx: &Context<'_>,
    report: &mut Report,
    service: &str,
    raw: &Mapping,
) -> Option<(AppManifest, Uses)> {
    let app = ctx.apps.get(service)?.clone();
    let mut mp = Mapper {
        ctx,
        report,
        service,
        m: AppManifest {
            app,
            service: service.to_string(),
            ..AppManifest::default()
        },
        env_file_keys: Vec::new(),
        uses: Uses::default(),
    };
    let image = raw.get("image").and_then(Value::as_str)?;
    let built = raw.contains_key("build");
    let normalised = if built {
        convert::local_image(image).map(|f| (f, false))
    } else {
        convert::normalize_image(image)
    };
    let (full, changed) = match normalised {
        Ok(x) => x,
        Err(_) => return None,
    };
    if built {
        let pulls = if full.starts_with("localhost/") {
            "when it is missing, Podman's pull of localhost/… fails, so nothing is pulled from a registry"
        } else {
            "the manifest has no pull policy: when it is missing on the host, Podman pulls it from its registry instead"
        };
        mp.note(
            "image",
            Action::Changed,
            format!("`{image}` is built locally (compose builds it and tags it `{image}`), not pulled: carried as `{full}`, the name Podman gives a local build; {pulls}"),
        );
    } else if changed {
        mp.note(
            "image",
            Action::Changed,
            format!(
                "`{image}` normalised to `{full}` (Docker's defaults: docker.io, library/, :latest)"
            ),
        );
    }
    mp.m.image = full;
    mp.map(raw);
    // Variables that stayed literal, and secrets withheld outside `environment`.
    let prefix = format!("services.{service}.");
    for (path, subs) in ctx.subs.range(prefix.clone()..) {
        let Some(rel) = path.strip_prefix(&prefix) else {
            break;
        };
        for s in subs {
            match s.outcome {
                // An environment entry says it itself (it is not written).
                Outcome::Unset if !rel.starts_with("environment") => mp.note(
                    rel,
                    Action::Uninterpolated,
                    format!("${{{}}} {}", s.var, super::UNSET),
                ),
                Outcome::Withheld if !rel.starts_with("environment") => mp.note(
                    rel,
                    Action::Withheld,
                    format!(
                        "${{{}}} is secret and was not substituted; kept literally",
                        s.var
                    ),
                ),
                _ => {}
            }
        }
    }
    let Mapper { m, uses, .. } = mp;
    Some((m, uses))
}

/// Why a service cannot become an app at all, if it cannot (a clause
/// that starts with "it" or "its"). `image_subs` are the variables of its
/// `image`: one without a value is named as the cause.
pub fn unimportable(
    raw: &Mapping,
    image_subs: &[super::interpolate::Substitution],
) -> Option<String> {
    let missing: Vec<String> = image_subs
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Unset | Outcome::Withheld))
        .map(|s| format!("${{{}}}", s.var))
        .collect();
    match raw.get("image") {
        None if raw.contains_key("build") => Some(
            "it has `build` and no `image`: windlass runs images and never builds them; build and push it, then add `image`".into(),
        ),
        None => Some("it has no `image`".into()),
        Some(Value::String(s)) if !missing.is_empty() => {
            let secret = image_subs.iter().any(|s| s.outcome == Outcome::Withheld);
            Some(format!(
                "its image `{s}` holds {}, which {}: set {} in .env, or pass --env-file FILE or --process-env",
                missing.join(", "),
                match (secret, missing.len()) {
                    (true, _) => "has a secret's name and is never substituted; rename the variable",
                    (false, 1) => "is not set and has no default",
                    (false, _) => "are not set and have no default",
                },
                if missing.len() == 1 { "it" } else { "them" },
            ))
        }
        Some(Value::String(s)) => convert::normalize_image(s)
            .err()
            .map(|e| format!("its image `{s}` is not usable: {e}")),
        Some(_) => Some("its `image` is not a string".into()),
    }
}
