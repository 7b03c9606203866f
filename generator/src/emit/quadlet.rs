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
    /// For a key Quadlet reads whole (`Lookup`): writes `key=value` when
    /// the version knows `key` and [`whole_value`] can spell the value for
    /// it, else the flag.
    fn set_or_flag(&mut self, key: &str, value: String, flag: impl FnOnce() -> String) {
        match whole_value(self.keys.version, &value) {
            Some(v) if self.keys.has("Container", key) => push(&mut self.entries, key, v),
            _ => self.podman_args.push(flag()),
        }
    }

    /// For a key Quadlet reads as written (`LookupAll`, one value a
    /// line): `key=value` when the version knows `key`, else the flag.
    fn set_as_written_or_flag(&mut self, key: &str, value: String, flag: impl FnOnce() -> String) {
        if self.keys.has("Container", key) {
            push(&mut self.entries, key, value);
        } else {
            self.podman_args.push(flag());
        }
    }
}

/// How to write `value` (escaped for systemd already) for a key Quadlet
/// reads whole with `UnitFile.Lookup` (`Entrypoint=`, `HealthCmd=`,
/// `Memory=`, …) so that Quadlet passes exactly `value` on, or `None` when
/// the target has no such spelling (the caller then passes the `podman
/// run` flag through `PodmanArgs=`, which Quadlet splits into words).
///
/// `Lookup` has had three rules (pkg/systemd/parser/unitfile.go): 4.x
/// returns the value as written; 5.0 to 5.8.1 trim every `"` at either
/// end (`strings.Trim(v, "\"")`, Podman commit 9d0da9d0fd); from 5.8.2
/// (commit 9c262736e4, "Fix Quadlet `Lookup()` stripping unmatched
/// quotes", in 6.0 too) one matched pair is stripped, when the value both
/// starts and ends with `"`. A value with no `"` at either end reads back
/// unchanged under all three. One with a `"` there is wrapped in one more
/// pair for Podman 6 (always the last rule); before 6.0 no spelling is
/// right for the target and every newer Podman (a 5.8 target may be 5.8.0
/// or 5.8.2; 4.x output must stay valid on 5.x), so `None`.
pub fn whole_value(target: PodmanVersion, value: &str) -> Option<String> {
    if !value.starts_with('"') && !value.ends_with('"') {
        Some(value.to_string())
    } else if target >= PodmanVersion::new(6, 0) {
        Some(format!("\"{value}\""))
    } else {
        None
    }
}

/// What `Lookup` returns for `written` under the quote rule of `target`
/// (see [`whole_value`]); 5.8 is taken as 5.8.0 unless `patch_2` (5.8.2+).
pub fn lookup_reads(target: PodmanVersion, patch_2: bool, written: &str) -> String {
    let v = written.trim_end();
    if target.major < 5 {
        v.to_string()
    } else if target >= PodmanVersion::new(6, 0) || (target == PodmanVersion::new(5, 8) && patch_2)
    {
        match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            Some(inner) => inner.to_string(),
            None => v.to_string(),
        }
    } else {
        v.trim_matches('"').to_string()
    }
}

pub fn emit(fleet: &Fleet, ctx: &mut EmitContext<'_>) -> Result<Vec<OutputFile>, EmitError> {
    let keys = KeySet::for_version(ctx.podman);
    // The volumes' and networks' units (as many volumes as apps, often)
    // are rendered beside the apps' containers, also over all cores.
    let shared = ctx.fresh();
    let (containers, objects) = crate::par::join(
        || {
            super::per_app(fleet, ctx, |app, c| {
                let path = format!("quadlet/{}.container", app.name);
                let content = container(app, &keys, c, &path)?;
                Ok(OutputFile::new(path, content))
            })
        },
        || -> Result<Vec<OutputFile>, EmitError> {
            let volumes: Vec<(&String, &Volume)> = fleet.volumes.iter().collect();
            let mut files =
                crate::par::map(&volumes, |(name, vol)| volume(name, vol, &keys, &shared))
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
            for (name, net) in &fleet.networks {
                files.push(network(name, net, &keys, &shared)?);
            }
            Ok(files)
        },
    );
    let mut files = containers?;
    files.extend(objects?);
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
    let text = ctx
        .templates
        .render_unit(template, source, sections, &[("name", name)])?;
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
fn container(
    app: &App,
    keys: &KeySet,
    ctx: &mut EmitContext<'_>,
    file: &str,
) -> Result<String, EmitError> {
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
        file,
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
        push(&mut unit, "Requires", [dep, ".service"].concat());
    }
    for dep in &app.wants {
        push(&mut unit, "Wants", [dep, ".service"].concat());
    }
    for dep in app.requires.iter().chain(&app.wants) {
        push(&mut unit, "After", [dep, ".service"].concat());
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
                esc::word_of(&["--entrypoint=", &j])
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
                VolumeSource::Named(n) => [n, ".volume"].concat(),
                VolumeSource::Host(p) => p.clone(),
            };
            push(
                &mut self.entries,
                "Volume",
                esc::verbatim(&[&src, ":", &m.target, &m.options()].concat()),
            );
        }
    }

    fn environment(&mut self, c: &Container) {
        for (k, val) in &c.env {
            push(
                &mut self.entries,
                "Environment",
                esc::word_of(&[k, "=", val]),
            );
        }
        // Quadlet splits `EnvironmentFile=` into words (`LookupAllArgs`,
        // unquoting and C-unescaping): a path is one quoted word.
        for f in &c.env_files {
            push(&mut self.entries, "EnvironmentFile", esc::word(f));
        }
    }

    /// File secrets as read-only volumes, podman secrets as `Secret=`
    /// (which Quadlet splits into words, as `EnvironmentFile=`).
    fn secrets(&mut self, c: &Container) {
        for v in podman::secret_volumes(c) {
            push(&mut self.entries, "Volume", esc::verbatim(&v));
        }
        for spec in c.secrets.iter().filter_map(podman::secret_spec) {
            if !self.keys.has("Container", "Secret") {
                self.podman_args.push(esc::word_of(&["--secret=", &spec]));
            } else {
                push(&mut self.entries, "Secret", esc::word(&spec));
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
                c.network_arg(n, &[n, ".network"].concat())
            };
            push(&mut self.entries, "Network", value);
        }
        for (host, ip) in &c.add_hosts {
            let hv = format!("{host}:{ip}");
            self.set_as_written_or_flag("AddHost", esc::verbatim(&hv), || {
                esc::word_of(&["--add-host=", &hv])
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
            push(&mut self.entries, "Label", esc::word_of(&[k, "=", val]));
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
            esc::word_of(&["--health-cmd=", &j])
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
        push(list, "Label", esc::word_of(&[k, "=", v]));
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
    Ok(OutputFile::new(file, content))
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
    Ok(OutputFile::new(file, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OLD: PodmanVersion = PodmanVersion::new(5, 8);
    const NEW: PodmanVersion = PodmanVersion::new(6, 0);
    const V4: PodmanVersion = PodmanVersion::new(4, 9);

    /// The cases of Podman's own `TestLookupQuoteStripping`
    /// (pkg/systemd/parser/unitfile_test.go, from 5.8.2), and what the
    /// trim of 5.0 to 5.8.1 and the plain read of 4.x made of them.
    #[test]
    fn lookup_reads_as_quadlet_does_in_4_x_5_x_and_from_5_8_2() {
        let cases = [
            (r#""hello""#, "hello", "hello"),
            ("hello", "hello", "hello"),
            (r#""hello"#, r#""hello"#, "hello"),
            (
                r#"/bin/sh -c "echo "hello"""#,
                r#"/bin/sh -c "echo "hello"""#,
                r#"/bin/sh -c "echo "hello"#,
            ),
            (
                r#""/bin/sh -c "echo "hello""""#,
                r#"/bin/sh -c "echo "hello"""#,
                r#"/bin/sh -c "echo "hello"#,
            ),
            (r#""""#, "", ""),
            (r#"hello""#, r#"hello""#, "hello"),
            (
                r#"/bin/sh -c "echo 'hello world!'""#,
                r#"/bin/sh -c "echo 'hello world!'""#,
                r#"/bin/sh -c "echo 'hello world!'"#,
            ),
        ];
        for (written, new, old) in cases {
            assert_eq!(lookup_reads(NEW, false, written), new, "{written}");
            assert_eq!(lookup_reads(OLD, true, written), new, "{written}");
            assert_eq!(lookup_reads(OLD, false, written), old, "{written}");
            assert_eq!(lookup_reads(V4, false, written), written, "{written}");
        }
    }

    #[test]
    fn a_value_with_a_quote_at_either_end_is_wrapped_for_podman_6_and_a_flag_before() {
        assert_eq!(whole_value(OLD, "plain"), Some("plain".into()));
        assert_eq!(whole_value(NEW, "plain"), Some("plain".into()));
        assert_eq!(
            whole_value(OLD, "[\"a\",\"b\"]"),
            Some("[\"a\",\"b\"]".into())
        );
        for v in ["\"x\"", "\"x", "x\"", "\""] {
            assert_eq!(whole_value(OLD, v), None, "{v}");
            assert_eq!(whole_value(NEW, v), Some(format!("\"{v}\"")), "{v}");
        }
        let keys = KeySet::for_version(OLD);
        let mut s = ContainerSection {
            keys: &keys,
            entries: Entries::new(),
            podman_args: Vec::new(),
        };
        s.set_or_flag("StopSignal", "\"SIGTERM".into(), || "--flag".into());
        assert!(s.entries.is_empty());
        assert_eq!(s.podman_args, ["--flag"]);
        let keys = KeySet::for_version(NEW);
        let mut s = ContainerSection {
            keys: &keys,
            entries: Entries::new(),
            podman_args: Vec::new(),
        };
        s.set_or_flag("StopSignal", "\"SIGTERM".into(), || "--flag".into());
        assert_eq!(s.entries, [("StopSignal".into(), "\"\"SIGTERM\"".into())]);
        assert!(s.podman_args.is_empty());
    }

    proptest! {
        /// Whatever `whole_value` writes, Quadlet reads back as given:
        /// for a 4.x or 5.x target under the rule of every Podman from
        /// that major on (4.x as written, the 5.0-5.8.1 trim, the pair
        /// rule of 5.8.2+), for 6.x under the pair rule.
        #[test]
        fn whole_values_read_back_unchanged(v in "[^\u{0}-\u{1f}]*", minor in 0u32..=9) {
            // Values never have surrounding white space (`esc::verbatim`).
            prop_assume!(v.trim() == v);
            // Output for a 4.x or 5.x target reads back unchanged under
            // the rule of every Podman from the target on.
            let readers = [V4, PodmanVersion::new(5, 0), OLD, NEW];
            for target in [PodmanVersion::new(4, minor), PodmanVersion::new(5, minor.min(8))] {
                if let Some(w) = whole_value(target, &v) {
                    let from = PodmanVersion::new(target.major, 0);
                    for reader in readers.iter().filter(|r| **r >= from) {
                        for patch_2 in [false, true] {
                            prop_assert_eq!(lookup_reads(*reader, patch_2, &w), v.clone());
                        }
                    }
                }
            }
            for m in 0..=PodmanVersion::NEWEST.minor {
                let w = whole_value(PodmanVersion::new(6, m), &v);
                prop_assert!(w.is_some());
                let read = lookup_reads(PodmanVersion::new(6, m), false, &w.unwrap());
                prop_assert_eq!(read, v.clone());
            }
        }
    }
}
