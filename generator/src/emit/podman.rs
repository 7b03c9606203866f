//! Podman's `run` flags for what a target has no setting of its own for,
//! shared by the NixOS (`extraOptions`) and Guix (`extra-arguments`)
//! emitters and by Quadlet's `PodmanArgs=` fallbacks, and the whole
//! `podman run` line of each lifecycle hook for the generation contract.
//! Each flag is one whole argument (`--flag=value`); escaping for the
//! target happens later (a hook's line is never escaped: it is an argv).

use std::collections::BTreeMap;

use super::go_duration;
use crate::escape::json;
use windlass_contract as contract;

use crate::model::{
    App, AutoUpdate, Container, Health, Hook, PodmanVersion, Relabel, SecretRef, SecretTarget,
    VolumeSource,
};

/// `--secret=` value for a Podman secret (`None` for a host-path secret,
/// which mounts as a read-only volume instead).
pub fn secret_spec(s: &SecretRef) -> Option<String> {
    if s.is_file() {
        return None;
    }
    let mut spec = s.name.clone();
    match &s.target {
        SecretTarget::File(t) => spec.push_str(&format!(",type=mount,target={t}")),
        SecretTarget::Env(var) => spec.push_str(&format!(",type=env,target={var}")),
    }
    if let Some(mode) = s.mode {
        spec.push_str(&format!(",mode={mode:04o}"));
    }
    Some(spec)
}

/// `host:target:ro` volumes for host-path secrets.
pub fn secret_volumes(c: &Container) -> Vec<String> {
    c.secrets
        .iter()
        .filter(|s| s.is_file())
        .map(|s| {
            let SecretTarget::File(t) = &s.target else {
                unreachable!("file secrets mount as files")
            };
            format!("{}:{t}:ro", s.name)
        })
        .collect()
}

/// The manifest's labels plus windlass's own (`io.windlass.app`) and, for
/// targets without an auto-update setting, Podman's auto-update label.
pub fn labels(app: &App, auto_update_as_label: bool) -> BTreeMap<String, String> {
    let mut labels = app.container.labels.clone();
    labels.insert("io.windlass.app".into(), app.name.clone());
    if auto_update_as_label {
        let policy = match app.container.auto_update {
            AutoUpdate::None => None,
            AutoUpdate::Registry => Some("registry"),
            AutoUpdate::Local => Some("local"),
        };
        if let Some(p) = policy {
            labels.insert("io.containers.autoupdate".into(), p.into());
        }
    }
    labels
}

/// `--health-*` flags, when the app has a container health check.
pub fn health_flags(h: &Health) -> Vec<String> {
    let Some(cmd) = &h.cmd else {
        return Vec::new();
    };
    let mut a = vec![format!("--health-cmd={}", json::ascii_array(cmd))];
    for (flag, value) in [
        ("--health-interval", h.interval),
        ("--health-timeout", h.timeout),
        ("--health-start-period", h.start_period),
    ] {
        if let Some(us) = value {
            a.push(format!("{flag}={}", go_duration(us)));
        }
    }
    if let Some(r) = h.retries {
        a.push(format!("--health-retries={r}"));
    }
    a
}

/// `--memory`, `--cpus`, `--stop-timeout` (memory in exact bytes).
pub fn resource_flags(c: &Container) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(bytes) = c.memory {
        a.push(format!("--memory={bytes}"));
    }
    if let Some(cpus) = c.cpus {
        a.push(format!("--cpus={cpus}"));
    }
    if let Some(us) = c.stop_timeout {
        a.push(format!("--stop-timeout={}", us.div_ceil(1_000_000)));
    }
    a
}

/// One container setting of the kernel, security and process kind
/// (`shm_size`, `security_opt`, `ulimits`, capabilities, `tmpfs`,
/// `sysctls`, `dns`, `hostname`, `privileged`, `devices`, `init`,
/// `stop_signal`, `pids_limit`): the Quadlet key that carries it, when
/// there is one, with its value, and the equivalent `podman run` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The `[Container]` key and its value (unescaped).
    pub key: Option<(&'static str, String)>,
    /// The whole `--flag=value` argument.
    pub flag: String,
    /// The first Podman whose `podman run` understands the flag, when that
    /// is newer than the oldest Podman windlass targets (4.4).
    pub since: Option<PodmanVersion>,
}

fn setting(key: &'static str, value: impl Into<String>, flag: String) -> Setting {
    Setting {
        key: Some((key, value.into())),
        flag,
        since: None,
    }
}

fn flag_only(flag: String) -> Setting {
    Setting {
        key: None,
        flag,
        since: None,
    }
}

/// Quadlet's key for a security option; Quadlet adds `label=user:`
/// and `label=role:` only through `PodmanArgs=`.
fn security_key(o: &crate::model::SecurityOpt) -> Option<(&'static str, String)> {
    use crate::model::SecurityOpt as S;
    Some(match o {
        S::NoNewPrivileges => ("NoNewPrivileges", "true".into()),
        S::LabelDisable => ("SecurityLabelDisable", "true".into()),
        S::LabelNested => ("SecurityLabelNested", "true".into()),
        S::LabelType(v) => ("SecurityLabelType", v.clone()),
        S::LabelLevel(v) => ("SecurityLabelLevel", v.clone()),
        S::LabelFileType(v) => ("SecurityLabelFileType", v.clone()),
        S::Seccomp(v) => ("SeccompProfile", v.clone()),
        S::Apparmor(v) => ("AppArmor", v.clone()),
        S::Mask(v) => ("Mask", v.clone()),
        S::Unmask(v) => ("Unmask", v.clone()),
        S::LabelUser(_) | S::LabelRole(_) => return None,
    })
}

/// The settings of `c`, in the order every target writes them.
pub fn settings(c: &Container) -> Vec<Setting> {
    let mut s = Vec::new();
    if let Some(bytes) = c.shm_size {
        s.push(setting(
            "ShmSize",
            bytes.to_string(),
            format!("--shm-size={bytes}"),
        ));
    }
    for o in &c.security_opt {
        s.push(Setting {
            key: security_key(o),
            flag: format!("--security-opt={}", o.podman()),
            // Podman 4.4 hands `nested` to SELinux as a label option,
            // which refuses it.
            since: matches!(o, crate::model::SecurityOpt::LabelNested)
                .then_some(PodmanVersion::new(4, 5)),
        });
    }
    for (name, u) in &c.ulimits {
        let v = u.podman(name);
        s.push(setting("Ulimit", v.clone(), format!("--ulimit={v}")));
    }
    for cap in &c.cap_drop {
        s.push(setting(
            "DropCapability",
            cap.clone(),
            format!("--cap-drop={cap}"),
        ));
    }
    for cap in &c.cap_add {
        s.push(setting(
            "AddCapability",
            cap.clone(),
            format!("--cap-add={cap}"),
        ));
    }
    for t in &c.tmpfs {
        s.push(setting("Tmpfs", t.clone(), format!("--tmpfs={t}")));
    }
    for (k, v) in &c.sysctls {
        let kv = format!("{k}={v}");
        s.push(setting("Sysctl", kv.clone(), format!("--sysctl={kv}")));
    }
    for ip in &c.dns {
        s.push(setting("DNS", ip.to_string(), format!("--dns={ip}")));
    }
    if let Some(h) = &c.hostname {
        s.push(setting("HostName", h.clone(), format!("--hostname={h}")));
    }
    if c.privileged {
        // Quadlet has no key for it at any version.
        s.push(flag_only("--privileged".into()));
    }
    for d in &c.devices {
        s.push(setting("AddDevice", d.clone(), format!("--device={d}")));
    }
    if c.init {
        s.push(setting("RunInit", "true", "--init".into()));
    }
    if let Some(sig) = &c.stop_signal {
        s.push(setting(
            "StopSignal",
            sig.clone(),
            format!("--stop-signal={sig}"),
        ));
    }
    if let Some(n) = c.pids_limit {
        s.push(setting(
            "PidsLimit",
            n.to_string(),
            format!("--pids-limit={n}"),
        ));
    }
    s
}

/// The flags of [`settings`], for targets that pass `podman run` flags.
pub fn setting_flags(c: &Container) -> Vec<String> {
    settings(c).into_iter().map(|s| s.flag).collect()
}

/// What a target calls the Podman objects an app's container uses: the
/// container itself, and the fleet's volumes and networks (Quadlet before
/// Podman 4.7 names them `systemd-<name>`; NixOS and Guix create them
/// under their own names).
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub container: &'a str,
    pub volume_prefix: &'static str,
    pub network_prefix: &'static str,
}

impl Names<'_> {
    fn volume(&self, name: &str) -> String {
        format!("{}{name}", self.volume_prefix)
    }

    fn network(&self, name: &str) -> String {
        if name == "host" {
            name.to_string()
        } else {
            format!("{}{name}", self.network_prefix)
        }
    }
}

/// This app's entry in the generation contract, `unit` being the unit
/// that runs its container on the target, with its hooks and the volumes
/// it purges as the target `names` them.
pub fn app_contract(app: &App, unit: String, names: &Names<'_>) -> contract::App {
    let mut c = app.contract(unit, hooks(app, names), purge_on_remove(app, names));
    c.volumes = named_volumes(app, names);
    c
}

/// The app's named volumes, as the target `names` them, in manifest
/// order, each once.
fn named_volumes(app: &App, names: &Names<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in &app.container.volumes {
        if let VolumeSource::Named(n) = &m.source {
            let name = names.volume(n);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The Podman volumes removed once a switch that removes the app commits,
/// as the target `names` them: the app's named volumes, in manifest order,
/// when it says `update.on_remove = "purge-data"` (validation made sure no
/// other app mounts them); none when its data is kept. Host paths (bind
/// mounts, host-path secrets) are never volumes to remove.
pub fn purge_on_remove(app: &App, names: &Names<'_>) -> Vec<String> {
    if !app.update.purge_data {
        return Vec::new();
    }
    named_volumes(app, names)
}

/// The app's hooks for the generation contract, each the `podman run`
/// line of a one-shot container next to the app's, as the target `names`
/// the app's objects.
pub fn hooks(app: &App, names: &Names<'_>) -> contract::Hooks {
    let mut out = contract::Hooks::default();
    for hook in &app.hooks {
        let h = contract::Hook {
            argv: hook_argv(app, hook, names),
            retries: hook.retries,
            timeout_sec: hook.timeout.div_ceil(1_000_000),
            other: Default::default(),
        };
        let slot = match hook.kind {
            contract::HookKind::PreActivate => &mut out.pre_activate,
            contract::HookKind::PreCommit => &mut out.pre_commit,
            contract::HookKind::PostCommit => &mut out.post_commit,
            contract::HookKind::Down => &mut out.down,
        };
        *slot = Some(h);
    }
    out
}

/// `podman run --rm --replace --name <container>-hook-<kind> …`: the
/// app's environment, env files, secrets (references), volumes, networks
/// and user, then the entrypoint, image and command. Not the app's ports,
/// name, aliases, addresses, labels, health check or restart policy: the
/// hook runs beside the running app and must not take what is its.
/// `--replace` removes a container a crash left behind under that name.
/// A volume relabelled `Z` (private to the app's container) is mounted
/// `z`: a private label for the hook would lock the running app out.
pub fn hook_argv(app: &App, hook: &Hook, names: &Names<'_>) -> Vec<String> {
    let c = &app.container;
    let kind = hook.kind.as_str();
    let mut a: Vec<String> = ["podman", "run", "--rm", "--replace"]
        .map(String::from)
        .into();
    a.push(format!(
        "--name={}",
        App::hook_container_name(names.container, hook.kind)
    ));
    a.push(format!("--label=io.windlass.app={}", app.name));
    a.push(format!("--label=io.windlass.hook={kind}"));
    for (k, v) in &c.env {
        a.push(format!("--env={k}={v}"));
    }
    for f in &c.env_files {
        a.push(format!("--env-file={f}"));
    }
    for spec in c.secrets.iter().filter_map(secret_spec) {
        a.push(format!("--secret={spec}"));
    }
    for m in &c.volumes {
        let src = match &m.source {
            VolumeSource::Named(n) => names.volume(n),
            VolumeSource::Host(p) => p.clone(),
        };
        let mut m = m.clone();
        if m.relabel == Some(Relabel::Private) {
            m.relabel = Some(Relabel::Shared);
        }
        a.push(format!("--volume={src}:{}{}", m.target, m.options()));
    }
    for v in secret_volumes(c) {
        a.push(format!("--volume={v}"));
    }
    for n in &c.networks {
        a.push(format!("--network={}", names.network(n)));
    }
    if let Some(u) = &c.user {
        match &c.group {
            Some(g) => a.push(format!("--user={u}:{g}")),
            None => a.push(format!("--user={u}")),
        }
    }
    if let Some(ep) = hook.entrypoint.as_ref().or(c.entrypoint.as_ref()) {
        // The JSON form: Podman runs it as the exec form, every argument
        // intact.
        a.push(format!("--entrypoint={}", json::ascii_array(ep)));
    }
    a.push(hook.image.as_ref().unwrap_or(&c.image).full.clone());
    a.extend(hook.command.iter().cloned());
    a
}
