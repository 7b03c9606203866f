//! Quadlet units: `<app>.container`, `<volume>.volume`, `<network>.network`.
//!
//! Version-aware: a key the target Podman does not know is never written;
//! the feature falls back to `PodmanArgs=` where Podman has a flag for it,
//! degrades with a warning where only the start signal is lost
//! (`Notify=healthy` before 5.0), and is refused with a clear error where
//! nothing can carry it.

use std::collections::BTreeMap;

use super::keys::KeySet;
use super::{EmitContext, EmitError, go_duration, podman, unitfile};
use crate::escape::{json, systemd as esc};
use crate::model::*;
use crate::output_file::OutputFile;
use crate::templates::safe;

type Entries = Vec<(String, String)>;

fn push(list: &mut Entries, key: &str, value: String) {
    list.push((key.to_string(), value));
}

/// Collects `[Container]` settings, falling back to `PodmanArgs=` words.
struct ContainerSection<'a> {
    keys: &'a KeySet,
    entries: Entries,
    podman_args: Vec<String>,
}

impl ContainerSection<'_> {
    /// Writes `key=value` when the version knows `key`, else the flag.
    fn set_or_flag(&mut self, key: &str, value: String, flag: impl FnOnce() -> String) {
        if self.keys.has("Container", key) {
            push(&mut self.entries, key, value);
        } else {
            self.podman_args.push(flag());
        }
    }
}

pub fn emit(fleet: &Fleet, ctx: &mut EmitContext<'_>) -> Result<Vec<OutputFile>, EmitError> {
    let keys = KeySet::for_version(ctx.podman);
    let mut files = super::per_app(fleet, ctx, |app, c| {
        Ok(OutputFile {
            path: format!("quadlet/{}.container", app.name),
            content: container(app, &keys, c)?,
        })
    })?;
    for (name, vol) in &fleet.volumes {
        files.push(volume(name, vol, &keys, ctx)?);
    }
    for (name, net) in &fleet.networks {
        files.push(network(name, net, &keys, ctx)?);
    }
    Ok(files)
}

fn render(
    ctx: &EmitContext<'_>,
    keys: &KeySet,
    template: &str,
    file: &str,
    source: &str,
    sections: &[(&'static str, &[(String, String)])],
    name: &str,
) -> Result<String, EmitError> {
    let text = ctx.templates.render_unit(template, source, sections, || {
        vec![("name", safe(name.to_string()))]
    })?;
    unitfile::check_quadlet(&text, keys).map_err(|message| EmitError::Invalid {
        file: file.to_string(),
        message: format!("{message} (rendered from template {template})"),
    })?;
    Ok(text)
}

/// What Quadlet calls the app's Podman objects: a `.volume` or `.network`
/// unit's object is named `systemd-<name>` unless the unit sets
/// `VolumeName=` / `NetworkName=` (which `volume` and `network` write
/// whenever the target Podman knows them).
pub fn names(app: &App, podman_version: PodmanVersion) -> podman::Names<'_> {
    let keys = KeySet::for_version(podman_version);
    let prefix = |section, key| {
        if keys.has(section, key) {
            ""
        } else {
            "systemd-"
        }
    };
    podman::Names {
        container: app.container_name(),
        volume_prefix: prefix("Volume", "VolumeName"),
        network_prefix: prefix("Network", "NetworkName"),
    }
}

/// This app's entry in `windlass-generation.json`: its Quadlet service,
/// its hooks and the volumes it purges, named as [`names`] does.
pub fn app_contract(app: &App, podman_version: PodmanVersion) -> windlass_contract::App {
    podman::app_contract(app, app.service_name(), &names(app, podman_version))
}

/// `<app>.container`: `[Unit]`, `[Container]` (only keys the target Podman
/// knows, the rest as `PodmanArgs=`), `[Service]` and `[Install]`.
fn container(app: &App, keys: &KeySet, ctx: &mut EmitContext<'_>) -> Result<String, EmitError> {
    let c = &app.container;
    let mut s = ContainerSection {
        keys,
        entries: Entries::new(),
        podman_args: Vec::new(),
    };
    push(&mut s.entries, "Image", esc::verbatim(&c.image.full));
    push(
        &mut s.entries,
        "ContainerName",
        app.container_name().to_string(),
    );
    s.exec_form(c);
    s.user(c);
    s.ports_and_volumes(c);
    s.environment(c);
    s.secrets(c);
    s.networks(c);
    s.labels(app);
    if c.read_only {
        push(&mut s.entries, "ReadOnly", "true".into());
    }
    if let Some(h) = &app.health {
        s.health(app, h, &mut ctx.warnings);
    }
    s.resources(c);
    s.settings(app)?;
    let container = s.finish(app)?;

    render(
        ctx,
        keys,
        "quadlet/container.j2",
        &format!("quadlet/{}.container", app.name),
        &esc::text(&app.source),
        &[
            ("unit", &unit_section(app)),
            ("container", &container),
            ("service", &service_section(app)),
            ("install", &install_section()),
        ],
        &app.name,
    )
}

/// `[Unit]`: the description and the dependencies on other apps.
fn unit_section(app: &App) -> Entries {
    let mut unit = Entries::new();
    let desc = app
        .description
        .clone()
        .unwrap_or_else(|| format!("windlass app {}", app.name));
    push(&mut unit, "Description", esc::text(&desc));
    for dep in &app.requires {
        push(&mut unit, "Requires", format!("{dep}.service"));
    }
    for dep in &app.wants {
        push(&mut unit, "Wants", format!("{dep}.service"));
    }
    for dep in app.requires.iter().chain(&app.wants) {
        push(&mut unit, "After", format!("{dep}.service"));
    }
    unit
}

/// `[Service]`: restart policy and the start and stop budgets.
fn service_section(app: &App) -> Entries {
    let mut service = Entries::new();
    push(
        &mut service,
        "Restart",
        app.container.restart.as_str().into(),
    );
    // Pulling and the health gate both happen before the unit is active.
    push(
        &mut service,
        "TimeoutStartSec",
        (app.update.health_deadline.div_ceil(1_000_000))
            .max(90)
            .to_string(),
    );
    if let Some(us) = app.container.stop_timeout {
        // Podman's own stop timeout must expire before systemd's.
        push(
            &mut service,
            "TimeoutStopSec",
            (us.div_ceil(1_000_000) + 30).to_string(),
        );
    }
    service
}

fn install_section() -> Entries {
    let mut install = Entries::new();
    push(
        &mut install,
        "WantedBy",
        "multi-user.target default.target".into(),
    );
    install
}

/// The steps of `[Container]`, in the order its keys are written.
impl ContainerSection<'_> {
    /// `Entrypoint=` and `Exec=`. An empty argument or a lone `;` cannot
    /// pass `Exec=`, so when an entrypoint is given the whole command
    /// travels in its JSON instead.
    fn exec_form(&mut self, c: &Container) {
        let merge = c.entrypoint.is_some()
            && c.command
                .as_ref()
                .is_some_and(|cmd| cmd.iter().any(|a| a.is_empty() || a == ";"));
        if let Some(ep) = &c.entrypoint {
            let mut all = ep.clone();
            if merge {
                all.extend(c.command.iter().flatten().cloned());
            }
            let j = json::ascii_array(&all);
            self.set_or_flag("Entrypoint", esc::verbatim(&j), || {
                esc::word(&format!("--entrypoint={j}"))
            });
        }
        if let (Some(cmd), false) = (&c.command, merge) {
            let words: Vec<String> = cmd.iter().map(|a| esc::word(a)).collect();
            push(&mut self.entries, "Exec", words.join(" "));
        }
    }

    fn user(&mut self, c: &Container) {
        if let Some(u) = &c.user {
            push(&mut self.entries, "User", u.clone());
        }
        if let Some(g) = &c.group {
            push(&mut self.entries, "Group", g.clone());
        }
    }

    /// `PublishPort=` and `Volume=` (a named volume is its `.volume` unit).
    fn ports_and_volumes(&mut self, c: &Container) {
        for p in &c.ports {
            push(
                &mut self.entries,
                "PublishPort",
                esc::verbatim(&p.to_string()),
            );
        }
        for m in &c.volumes {
            let src = match &m.source {
                VolumeSource::Named(n) => format!("{n}.volume"),
                VolumeSource::Host(p) => p.clone(),
            };
            push(
                &mut self.entries,
                "Volume",
                esc::verbatim(&format!("{src}:{}{}", m.target, m.options())),
            );
        }
    }

    fn environment(&mut self, c: &Container) {
        for (k, val) in &c.env {
            push(
                &mut self.entries,
                "Environment",
                esc::word(&format!("{k}={val}")),
            );
        }
        for f in &c.env_files {
            push(&mut self.entries, "EnvironmentFile", esc::verbatim(f));
        }
    }

    /// File secrets as read-only volumes, podman secrets as `Secret=`.
    fn secrets(&mut self, c: &Container) {
        for v in podman::secret_volumes(c) {
            push(&mut self.entries, "Volume", esc::verbatim(&v));
        }
        for spec in c.secrets.iter().filter_map(podman::secret_spec) {
            if !self.keys.has("Container", "Secret") {
                self.podman_args
                    .push(esc::word(&format!("--secret={spec}")));
            } else {
                push(&mut self.entries, "Secret", esc::verbatim(&spec));
            }
        }
    }

    /// `Network=` (a declared network is its `.network` unit, with the
    /// container's aliases and addresses on it as Podman's per-network
    /// options, `x.network:alias=a,ip=…`, which Quadlet passes on from
    /// 4.4; `NetworkAlias=` (5.2) would set an alias on every network)
    /// and `AddHost=`.
    fn networks(&mut self, c: &Container) {
        for n in &c.networks {
            let value = if n == "host" {
                "host".to_string()
            } else {
                c.network_arg(n, &format!("{n}.network"))
            };
            push(&mut self.entries, "Network", value);
        }
        for (host, ip) in &c.add_hosts {
            let hv = format!("{host}:{ip}");
            self.set_or_flag("AddHost", esc::verbatim(&hv), || {
                esc::word(&format!("--add-host={hv}"))
            });
        }
    }

    /// `AutoUpdate=` (or its label before Quadlet knew the key) and every
    /// `Label=`, windlass's `io.windlass.app` among them.
    fn labels(&mut self, app: &App) {
        let c = &app.container;
        let mut labels = c.labels.clone();
        labels.insert("io.windlass.app".into(), app.name.clone());
        match c.auto_update {
            AutoUpdate::None => {}
            a => {
                let policy = if a == AutoUpdate::Registry {
                    "registry"
                } else {
                    "local"
                };
                if self.keys.has("Container", "AutoUpdate") {
                    push(&mut self.entries, "AutoUpdate", policy.to_string());
                } else {
                    labels.insert("io.containers.autoupdate".into(), policy.into());
                }
            }
        }
        for (k, val) in &labels {
            push(&mut self.entries, "Label", esc::word(&format!("{k}={val}")));
        }
    }

    /// The health check and `Notify=healthy`; before Podman 5.0 the unit
    /// cannot wait for health, which is said in `warnings`.
    fn health(&mut self, app: &App, h: &Health, warnings: &mut Vec<String>) {
        let Some(cmd) = &h.cmd else {
            return;
        };
        let j = json::ascii_array(cmd);
        self.set_or_flag("HealthCmd", esc::verbatim(&j), || {
            esc::word(&format!("--health-cmd={j}"))
        });
        let durations = [
            ("HealthInterval", "--health-interval", h.interval),
            ("HealthTimeout", "--health-timeout", h.timeout),
            ("HealthStartPeriod", "--health-start-period", h.start_period),
        ];
        for (key, flag, value) in durations {
            if let Some(us) = value {
                let d = go_duration(us);
                self.set_or_flag(key, d.clone(), || format!("{flag}={d}"));
            }
        }
        if let Some(r) = h.retries {
            self.set_or_flag("HealthRetries", r.to_string(), || {
                format!("--health-retries={r}")
            });
        }
        let v = self.keys.version;
        if v >= PodmanVersion::new(5, 0) {
            push(&mut self.entries, "Notify", "healthy".into());
        } else {
            warnings.push(format!(
                "app `{}`: Podman {v} has no Notify=healthy (5.0+): the unit is active once the container starts; windlassd still waits for the health check before committing",
                app.name
            ));
        }
    }

    /// Memory, CPUs and the stop timeout.
    fn resources(&mut self, c: &Container) {
        if let Some(bytes) = c.memory {
            self.set_or_flag("Memory", bytes.to_string(), || format!("--memory={bytes}"));
        }
        if let Some(cpus) = c.cpus {
            self.podman_args.push(format!("--cpus={cpus}"));
        }
        if let Some(us) = c.stop_timeout {
            let secs = us.div_ceil(1_000_000);
            self.set_or_flag("StopTimeout", secs.to_string(), || {
                format!("--stop-timeout={secs}")
            });
        }
    }

    /// Kernel, security and process settings: each by its own key where
    /// the target's Quadlet has one and the value passes it unchanged
    /// (Quadlet splits some of these keys at white space and keeps
    /// backslashes), else as its `podman run` flag.
    /// A setting no version-`keys` Podman can carry is an error.
    fn settings(&mut self, app: &App) -> Result<(), EmitError> {
        for st in podman::settings(&app.container) {
            if let Some(since) = st.since
                && self.keys.version < since
            {
                return Err(EmitError::Unsupported {
                    app: app.name.clone(),
                    message: format!(
                        "Podman {} cannot carry {} (it needs Podman {since})",
                        self.keys.version, st.flag
                    ),
                });
            }
            match st.key {
                Some((key, value)) if self.keys.has("Container", key) && plain(&value) => {
                    push(&mut self.entries, key, value);
                }
                _ => self.podman_args.push(esc::word(&st.flag)),
            }
        }
        Ok(())
    }

    /// The entries, with the collected flags as the last `PodmanArgs=`;
    /// an error when the target's Quadlet has no `PodmanArgs=` to carry them.
    fn finish(mut self, app: &App) -> Result<Entries, EmitError> {
        if !self.podman_args.is_empty() {
            if !self.keys.has("Container", "PodmanArgs") {
                return Err(EmitError::Unsupported {
                    app: app.name.clone(),
                    message: format!(
                        "Podman {}'s Quadlet has no PodmanArgs= to carry {}",
                        self.keys.version,
                        self.podman_args.join(" ")
                    ),
                });
            }
            let words = std::mem::take(&mut self.podman_args);
            push(&mut self.entries, "PodmanArgs", words.join(" "));
        }
        Ok(self.entries)
    }
}

/// A value every Quadlet key reads back unchanged, whether it takes the
/// value whole, one per line, or split at white space and unquoted: no
/// white space, quotes, backslashes, `%` or `$`.
fn plain(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.,:/=+@-".contains(&b))
}

fn label_entries(list: &mut Entries, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        push(list, "Label", esc::word(&format!("{k}={v}")));
    }
}

fn volume(
    name: &str,
    vol: &Volume,
    keys: &KeySet,
    ctx: &EmitContext<'_>,
) -> Result<OutputFile, EmitError> {
    let file = format!("quadlet/{name}.volume");
    let mut unit = Entries::new();
    push(
        &mut unit,
        "Description",
        esc::text(&format!("windlass volume {name}")),
    );
    let mut v = Entries::new();
    if keys.has("Volume", "VolumeName") {
        push(&mut v, "VolumeName", name.to_string());
    }
    if let Some(d) = &vol.driver {
        if !keys.has("Volume", "Driver") {
            return Err(EmitError::Invalid {
                file,
                message: format!(
                    "Podman {}'s Quadlet has no Driver= for volumes (volumes.{name}.driver)",
                    keys.version
                ),
            });
        }
        push(&mut v, "Driver", d.clone());
    }
    label_entries(&mut v, &vol.labels);
    let content = render(
        ctx,
        keys,
        "quadlet/volume.j2",
        &file,
        "windlass.toml",
        &[("unit", &unit), ("volume", &v)],
        name,
    )?;
    Ok(OutputFile {
        path: file,
        content,
    })
}

fn network(
    name: &str,
    net: &Network,
    keys: &KeySet,
    ctx: &EmitContext<'_>,
) -> Result<OutputFile, EmitError> {
    let file = format!("quadlet/{name}.network");
    let mut unit = Entries::new();
    push(
        &mut unit,
        "Description",
        esc::text(&format!("windlass network {name}")),
    );
    let mut n = Entries::new();
    if keys.has("Network", "NetworkName") {
        push(&mut n, "NetworkName", name.to_string());
    }
    if let Some(d) = &net.driver {
        push(&mut n, "Driver", d.clone());
    }
    if let Some(s) = &net.subnet {
        push(&mut n, "Subnet", s.clone());
    }
    if let Some(g) = &net.gateway {
        push(&mut n, "Gateway", g.clone());
    }
    if net.internal {
        push(&mut n, "Internal", "true".into());
    }
    if net.ipv6 {
        push(&mut n, "IPv6", "true".into());
    }
    label_entries(&mut n, &net.labels);
    let content = render(
        ctx,
        keys,
        "quadlet/network.j2",
        &file,
        "windlass.toml",
        &[("unit", &unit), ("network", &n)],
        name,
    )?;
    Ok(OutputFile {
        path: file,
        content,
    })
}
