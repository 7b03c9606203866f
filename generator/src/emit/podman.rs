//! Podman's `run` flags for what a target has no setting of its own for,
//! shared by the NixOS (`extraOptions`) and Guix (`extra-arguments`)
//! emitters and by Quadlet's `PodmanArgs=` fallbacks. Each flag is one
//! whole argument (`--flag=value`); escaping for the target happens later.

use std::collections::BTreeMap;

use super::go_duration;
use crate::escape::json;
use crate::model::{App, AutoUpdate, Container, Health, PodmanVersion, SecretRef, SecretTarget};

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
