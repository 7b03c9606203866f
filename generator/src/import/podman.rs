//! `windlass import podman [FILE]`: the JSON of `podman container inspect`
//! (a file, or stdin) → app manifests plus `windlass.toml`, with the same
//! report as `import quadlet` (file, container, JSON key).
//!
//! Field names as Podman writes them (`libpod/define/container_inspect.go`:
//! `ImageName`, `Config.{Entrypoint,Cmd,Env,Labels,User,Healthcheck,
//! StopTimeout}`, `HostConfig.{PortBindings,RestartPolicy,Memory,NanoCpus,
//! ReadonlyRootfs,ExtraHosts,NetworkMode,…}`, `Mounts[]`,
//! `NetworkSettings.Networks`). Read through `serde_json::Value`, so older
//! and newer layouts (an `Entrypoint` string or array) both read.
//!
//! What was created is what is carried: `Config.Env`, `Config.Cmd` and
//! `Config.Labels` already hold the image's defaults, which inspect does not
//! tell apart; that is reported once per container.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ImportError;
use super::adopt::{AdoptReport, Adopted, AdoptedApp, Extra, UnitResult, valid_user};
use super::convert;
use super::manifest::{AppManifest, Health, NetworkDef, VolumeDef, set_pair};
use super::report::Action;
use crate::model::time::format_timespan;
use crate::model::values::{
    check_label_key, check_path, is_env_key, is_object_name, parse_add_host, parse_port,
};

pub const HEADER_APP: &str = "Imported by `windlass import podman` from the container `{unit}`.\nWhat did not carry over is in the import report (stderr, or --report FILE).";

/// Labels Podman (or its tools) set on their own.
const PODMAN_LABELS: &[&str] = &["PODMAN_SYSTEMD_UNIT", "io.podman.annotations.autoremove"];

/// Settings of `HostConfig` that windlass has no key for, reported when
/// they differ from Podman's defaults.
const UNCARRIED_HOST: &[&str] = &[
    "CapAdd",
    "CapDrop",
    "Devices",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "GroupAdd",
    "Privileged",
    "SecurityOpt",
    "Tmpfs",
    "Ulimits",
    "PidsLimit",
    "ShmSize",
    "IpcMode",
    "PidMode",
    "UTSMode",
    "UsernsMode",
    "VolumesFrom",
    "MemorySwap",
    "MemoryReservation",
    "CpusetCpus",
    "CpuShares",
    "OomScoreAdj",
    "Sysctls",
    "Init",
];

/// Values of those settings that are Podman's defaults.
fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "private" || s == "host:" || s == "shareable",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Reads `podman container inspect` JSON (an array, or one object) named
/// `file` (for the report). Writes nothing.
pub fn import(file: &str, text: &str) -> Result<Adopted, ImportError> {
    let bad = |message: String| ImportError::Compose {
        path: file.into(),
        message,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let items = match doc {
        Value::Array(a) => a,
        o @ Value::Object(_) => vec![o],
        _ => {
            return Err(bad(
                "expected the array `podman container inspect` prints".into()
            ));
        }
    };
    if items.is_empty() {
        return Err(bad("no container to import".into()));
    }
    let mut report = AdoptReport::new("podman");
    let mut apps = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut volumes: Vec<(String, VolumeDef)> = Vec::new();
    let mut networks: Vec<(String, NetworkDef)> = Vec::new();
    for (n, c) in items.iter().enumerate() {
        let name = c
            .get("Name")
            .and_then(Value::as_str)
            .map(|s| s.trim_start_matches('/').to_string())
            .unwrap_or_else(|| format!("container-{n}"));
        let app = convert::app_name(&name)
            .map_err(|e| ImportError::Names(format!("{file}: the container name `{name}` {e}")))?;
        if let Some(prev) = names.insert(app.clone(), name.clone()) {
            return Err(ImportError::Names(format!(
                "{file}: the containers `{prev}` and `{name}` would both become the app `{app}`"
            )));
        }
        let mut m = Mapper {
            file,
            name: &name,
            c,
            report: &mut report,
        };
        match m.container(&app) {
            Some((a, vols, nets)) => {
                for v in vols {
                    if !volumes.iter().any(|(x, _)| *x == v) {
                        volumes.push((v, VolumeDef::default()));
                    }
                }
                for net in nets {
                    if !networks.iter().any(|(x, _)| *x == net) {
                        networks.push((net, NetworkDef::default()));
                    }
                }
                report.units.push(UnitResult {
                    file: name.clone(),
                    app: Some(app.clone()),
                    manifest: Some(format!("{app}.toml")),
                });
                apps.push(a);
            }
            None => report.units.push(UnitResult {
                file: name.clone(),
                app: None,
                manifest: None,
            }),
        }
    }
    if apps.is_empty() {
        return Err(bad("no container could be imported (see the report)".into()));
    }
    Ok(Adopted {
        source: format!("`podman container inspect` output ({file})"),
        apps,
        networks,
        volumes,
        report,
    })
}

struct Mapper<'a> {
    file: &'a str,
    name: &'a str,
    c: &'a Value,
    report: &'a mut AdoptReport,
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// A Go `time.Duration` (nanoseconds) as a systemd time span; `None` for 0.
fn nanos(v: Option<&Value>) -> Result<Option<String>, String> {
    let Some(n) = v.and_then(Value::as_u64) else {
        return Ok(None);
    };
    if n == 0 {
        return Ok(None);
    }
    if n % 1000 != 0 {
        return Err(format!("{n}ns is finer than a microsecond"));
    }
    Ok(Some(format_timespan(n / 1000)))
}

type Mapped = (AdoptedApp, Vec<String>, Vec<String>);

impl Mapper<'_> {
    /// Reports the entry under this container (the report's `file` is the
    /// container's name; the JSON file is named in the report's source).
    fn note(&mut self, key: &str, action: Action, reason: impl Into<String>) {
        self.report
            .push(self.name, None, Some(self.file), Some(key), action, reason);
    }

    fn at(&self, path: &str) -> Option<&Value> {
        let mut v = self.c;
        for p in path.split('.') {
            v = v.get(p)?;
        }
        (!v.is_null()).then_some(v)
    }

    fn container(&mut self, app: &str) -> Option<Mapped> {
        let mut m = AppManifest {
            app: app.to_string(),
            service: self.name.to_string(),
            ..AppManifest::default()
        };
        let mut extra = Extra::default();
        if app != self.name {
            // A name that is not an app name cannot be another app's
            // either, so the container keeps it (`podman exec` still works).
            if is_object_name(self.name) {
                m.container_name = Some(self.name.to_string());
                self.note(
                    "Name",
                    Action::Changed,
                    format!(
                        "the app is `{app}`; the container keeps its name `{}` (container_name)",
                        self.name
                    ),
                );
            } else {
                self.note(
                    "Name",
                    Action::Changed,
                    format!("the app and container are `{app}`"),
                );
            }
        }
        let image = self
            .at("ImageName")
            .or_else(|| self.at("Config.Image"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(image) = image else {
            self.note(
                "ImageName",
                Action::Dropped,
                "the container is not imported: no image name",
            );
            return None;
        };
        match convert::normalize_image(&image) {
            Ok((full, changed)) => {
                if changed {
                    self.note(
                        "ImageName",
                        Action::Changed,
                        format!("normalised to `{full}`"),
                    );
                }
                m.image = full;
            }
            Err(e) => {
                self.note(
                    "ImageName",
                    Action::Dropped,
                    format!("the container is not imported: its image is not usable: {e}"),
                );
                return None;
            }
        }
        match self.at("Config.Entrypoint") {
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) if !s.contains(char::is_whitespace) => m.entrypoint = Some(vec![s.clone()]),
            Some(Value::String(_)) => self.note("Config.Entrypoint", Action::Dropped, "an entrypoint given as one string with spaces (older Podman) cannot be split back into its words"),
            Some(v @ Value::Array(_)) => match strings(Some(v)) {
                Some(e) if !e.is_empty() => m.entrypoint = Some(e),
                Some(_) => {}
                None => self.note("Config.Entrypoint", Action::Dropped, "not an array of strings"),
            },
            _ => {}
        }
        if m.entrypoint
            .as_ref()
            .is_some_and(|e| e.iter().any(|w| w.contains('\0')))
        {
            m.entrypoint = None;
            self.note(
                "Config.Entrypoint",
                Action::Dropped,
                "a NUL character cannot be carried",
            );
        }
        if let Some(cmd) = strings(self.at("Config.Cmd")).filter(|c| !c.is_empty()) {
            m.command = Some(cmd);
        }
        if m.command.is_some() || m.entrypoint.is_some() {
            self.note("Config.Cmd", Action::Changed, "carried as the container was created: the image's own entrypoint and command, when it was not overridden, are included");
        }
        for e in strings(self.at("Config.Env")).unwrap_or_default() {
            let (k, v) = e.split_once('=').unwrap_or((&e, ""));
            match k {
                "container" | "HOSTNAME" => {}
                k if is_env_key(k) => set_pair(&mut m.env, k, v.to_string()),
                k => self.note(
                    &format!("Config.Env.{k}"),
                    Action::Dropped,
                    "not a variable name windlass accepts",
                ),
            }
        }
        if !m.env.is_empty() {
            self.note("Config.Env", Action::Changed, "includes the image's default environment (PATH, …), which inspect does not tell apart; remove what the image sets");
        }
        if let Some(u) = self
            .at("Config.User")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
        {
            if valid_user(&u) {
                m.user = Some(u);
            } else {
                self.note(
                    "Config.User",
                    Action::Dropped,
                    format!("`{u}` is not `uid[:gid]` or a user name windlass accepts"),
                );
            }
        }
        self.labels(&mut m, &mut extra);
        self.health(&mut m);
        let vols = self.mounts(&mut m);
        let nets = self.networks(&mut m);
        self.host(&mut m);
        Some((AdoptedApp { manifest: m, extra }, vols, nets))
    }

    fn labels(&mut self, m: &mut AppManifest, extra: &mut Extra) {
        let Some(Value::Object(labels)) = self.at("Config.Labels").cloned() else {
            return;
        };
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default().to_string();
            let key = format!("Config.Labels.{k}");
            if PODMAN_LABELS.contains(&k.as_str()) {
                self.note(&key, Action::Ignored, "set by Podman itself");
            } else if k == "io.containers.autoupdate" {
                match v.as_str() {
                    "registry" => extra.auto_update = Some("registry"),
                    "local" => extra.auto_update = Some("local"),
                    _ => self.note(
                        &key,
                        Action::Dropped,
                        format!("`{v}` is not registry or local"),
                    ),
                }
            } else if k.starts_with("io.windlass.") {
                self.note(
                    &key,
                    Action::Dropped,
                    "io.windlass.* labels are windlass's own",
                );
            } else if let Err(e) = check_label_key(&k) {
                self.note(&key, Action::Dropped, e);
            } else {
                set_pair(&mut m.labels, &k, v);
            }
        }
        if !m.labels.is_empty() {
            self.note(
                "Config.Labels",
                Action::Changed,
                "includes the image's labels, which inspect does not tell apart",
            );
        }
    }

    fn health(&mut self, m: &mut AppManifest) {
        let Some(test) = strings(self.at("Config.Healthcheck.Test")) else {
            return;
        };
        let cmd = match test.split_first() {
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((k, [s])) if k == "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Some((k, _)) if k == "NONE" => {
                self.note(
                    "Config.Healthcheck.Test",
                    Action::Dropped,
                    "NONE disables the image's health check; windlass has no key for that",
                );
                return;
            }
            _ => {
                self.note(
                    "Config.Healthcheck.Test",
                    Action::Dropped,
                    "not a CMD or CMD-SHELL test",
                );
                return;
            }
        };
        let mut h = Health {
            cmd,
            ..Health::default()
        };
        for (key, slot) in [
            ("Interval", &mut h.interval),
            ("Timeout", &mut h.timeout),
            ("StartPeriod", &mut h.start_period),
        ] {
            let path = format!("Config.Healthcheck.{key}");
            match nanos(self.at(&path)) {
                Ok(d) => *slot = d,
                Err(e) => self.note(&path, Action::Dropped, e),
            }
        }
        if let Some(r) = self
            .at("Config.Healthcheck.Retries")
            .and_then(Value::as_i64)
            && r >= 1
        {
            h.retries = Some(r);
        }
        m.health = Some(h);
    }

    fn mounts(&mut self, m: &mut AppManifest) -> Vec<String> {
        let mut vols = Vec::new();
        let mounts = self
            .at("Mounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, mt) in mounts.iter().enumerate() {
            let key = format!("Mounts[{i}]");
            let get = |k: &str| {
                mt.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (kind, dest) = (get("Type"), get("Destination"));
            let ro = mt.get("RW").and_then(Value::as_bool) == Some(false);
            let src = match kind.as_str() {
                "volume" => {
                    let n = get("Name");
                    if !is_object_name(&n) {
                        self.note(
                            &key,
                            Action::Dropped,
                            format!("volume name `{n}` is not a Podman object name"),
                        );
                        continue;
                    }
                    if !vols.contains(&n) {
                        vols.push(n.clone());
                    }
                    n
                }
                "bind" => {
                    let s = get("Source");
                    if let Err(e) = check_path(&s) {
                        self.note(&key, Action::Dropped, format!("host path `{s}`: {e}"));
                        continue;
                    }
                    s
                }
                k => {
                    self.note(
                        &key,
                        Action::Dropped,
                        format!("a `{k}` mount has no windlass equivalent"),
                    );
                    continue;
                }
            };
            if let Err(e) = check_path(&dest) {
                self.note(
                    &key,
                    Action::Dropped,
                    format!("container path `{dest}`: {e}"),
                );
                continue;
            }
            // Podman's SELinux relabelling (`z`/`Z`); nothing else goes here.
            let mode = get("Mode");
            let relabel = match mode.as_str() {
                "z" | "Z" => Some(mode.as_str()),
                "" => None,
                other => {
                    self.note(
                        &key,
                        Action::Dropped,
                        format!("mount mode `{other}` is not carried (the mount is)"),
                    );
                    None
                }
            };
            let opts: Vec<&str> = ro.then_some("ro").into_iter().chain(relabel).collect();
            m.volumes.push(if opts.is_empty() {
                format!("{src}:{dest}")
            } else {
                format!("{src}:{dest}:{}", opts.join(","))
            });
        }
        vols
    }

    fn networks(&mut self, m: &mut AppManifest) -> Vec<String> {
        let mode = self
            .at("HostConfig.NetworkMode")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match mode.as_str() {
            "host" => {
                m.networks.push("host".into());
                return Vec::new();
            }
            "" | "bridge" | "default" => {}
            other => {
                self.note(
                    "HostConfig.NetworkMode",
                    Action::Dropped,
                    format!("the network mode `{other}` has no windlass equivalent"),
                );
                return Vec::new();
            }
        }
        let mut nets = Vec::new();
        if let Some(Value::Object(map)) = self.at("NetworkSettings.Networks").cloned() {
            for (n, _) in map {
                if is_object_name(&n) && !matches!(n.as_str(), "host" | "none" | "private") {
                    if n == "podman" {
                        self.note("NetworkSettings.Networks.podman", Action::Changed, "Podman's default network is declared in windlass.toml as `podman` (it exists already)");
                    }
                    m.networks.push(n.clone());
                    nets.push(n);
                } else {
                    self.note(
                        &format!("NetworkSettings.Networks.{n}"),
                        Action::Dropped,
                        "not a network windlass can declare",
                    );
                }
            }
        }
        nets
    }

    fn host(&mut self, m: &mut AppManifest) {
        if let Some(Value::Object(b)) = self.at("HostConfig.PortBindings").cloned() {
            for (cport, hosts) in b {
                let (cp, proto) = cport.split_once('/').unwrap_or((&cport, "tcp"));
                for h in hosts.as_array().cloned().unwrap_or_default() {
                    let ip = h.get("HostIp").and_then(Value::as_str).unwrap_or_default();
                    let hp = h
                        .get("HostPort")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let key = format!("HostConfig.PortBindings.{cport}");
                    let ip = if ip.contains(':') {
                        format!("[{ip}]:")
                    } else if ip.is_empty() {
                        String::new()
                    } else {
                        format!("{ip}:")
                    };
                    let spec = format!("{ip}{hp}:{cp}/{proto}");
                    match parse_port(&spec) {
                        Ok(p) => m.ports.push(p.to_string()),
                        Err(e) => self.note(&key, Action::Dropped, format!("`{spec}`: {e}")),
                    }
                }
            }
        }
        match self
            .at("HostConfig.RestartPolicy.Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "" | "no" => m.restart = Some("no"),
            "always" => m.restart = Some("always"),
            "unless-stopped" => {
                m.restart = Some("always");
                self.note(
                    "HostConfig.RestartPolicy.Name",
                    Action::Changed,
                    "unless-stopped becomes always (systemd restarts the unit)",
                );
            }
            "on-failure" => {
                m.restart = Some("on-failure");
                if self
                    .at("HostConfig.RestartPolicy.MaximumRetryCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    > 0
                {
                    self.note(
                        "HostConfig.RestartPolicy.MaximumRetryCount",
                        Action::Dropped,
                        "windlass has no retry limit",
                    );
                }
            }
            other => {
                m.restart = Some("no");
                self.note(
                    "HostConfig.RestartPolicy.Name",
                    Action::Dropped,
                    format!("`{other}` is not a restart policy windlass knows"),
                );
            }
        }
        if let Some(b) = self
            .at("HostConfig.Memory")
            .and_then(Value::as_u64)
            .filter(|b| *b > 0)
        {
            match convert::byte_size(&b.to_string()) {
                Ok(s) => m.memory = Some(s),
                Err(e) => self.note("HostConfig.Memory", Action::Dropped, e),
            }
        }
        let nano = self
            .at("HostConfig.NanoCpus")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let quota = self
            .at("HostConfig.CpuQuota")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let period = self
            .at("HostConfig.CpuPeriod")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if nano > 0 {
            m.cpus = Some(nano as f64 / 1e9);
        } else if quota > 0 && period > 0 {
            m.cpus = Some(quota as f64 / period as f64);
        }
        if self
            .at("HostConfig.ReadonlyRootfs")
            .and_then(Value::as_bool)
            == Some(true)
        {
            m.read_only = true;
        }
        for h in strings(self.at("HostConfig.ExtraHosts")).unwrap_or_default() {
            match parse_add_host(&h) {
                Ok((n, ip)) => m.add_hosts.push(format!("{n}:{ip}")),
                Err(e) => self.note(
                    "HostConfig.ExtraHosts",
                    Action::Dropped,
                    format!("`{h}`: {e}"),
                ),
            }
        }
        if let Some(t) = self.at("Config.StopTimeout").and_then(Value::as_u64)
            && t != 10
            && t > 0
        {
            m.stop_timeout = Some(format!("{t}s"));
        }
        for k in UNCARRIED_HOST {
            let path = format!("HostConfig.{k}");
            if let Some(v) = self.at(&path)
                && !is_default(v)
            {
                self.note(&path, Action::Dropped, "no windlass equivalent");
            }
        }
        if let Some(v) = self.at("HostConfig.LogConfig.Type").and_then(Value::as_str)
            && !matches!(v, "" | "journald" | "k8s-file")
        {
            self.note(
                "HostConfig.LogConfig.Type",
                Action::Dropped,
                format!("the log driver `{v}` is not carried"),
            );
        }
        if let Some(p) = self
            .at("Pod")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            self.note(
                "Pod",
                Action::Dropped,
                format!("member of the pod {p}; windlass has no pods"),
            );
        }
    }
}
