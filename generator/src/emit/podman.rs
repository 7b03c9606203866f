//! Podman's `run` flags for what a target has no setting of its own for,
//! shared by the NixOS (`extraOptions`) and Guix (`extra-arguments`)
//! emitters and by Quadlet's `PodmanArgs=` fallbacks. Each flag is one
//! whole argument (`--flag=value`); escaping for the target happens later.

use std::collections::BTreeMap;

use super::go_duration;
use crate::escape::json;
use crate::model::{App, AutoUpdate, Container, Health, SecretRef, SecretTarget};

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
