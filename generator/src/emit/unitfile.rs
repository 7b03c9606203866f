//! A small reader for the unit files we render, used to check every output
//! (the embedded templates and any override) before it is written: only
//! sections, comments and `Key=value` lines, and in Quadlet sections only
//! keys the target Podman version knows.

use super::keys::KeySet;

/// (section, key, value) for every setting, in order.
pub fn parse(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    settings(text, |section, key, value| {
        out.push((section.to_string(), key.to_string(), value.to_string()));
        Ok(())
    })?;
    Ok(out)
}

/// Checks that `text` reads as a unit file, without keeping anything.
pub fn check(text: &str) -> Result<(), String> {
    settings(text, |_, _, _| Ok(()))
}

/// Calls `each` with (section, key, value) for every setting, in order,
/// borrowing them from `text`.
fn settings<'t>(
    text: &'t str,
    mut each: impl FnMut(&'t str, &'t str, &'t str) -> Result<(), String>,
) -> Result<(), String> {
    let mut section: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {n}: unclosed section header"))?;
            section = Some(name);
            continue;
        }
        if line.ends_with('\\') {
            return Err(format!(
                "line {n}: a line ending in `\\` would continue onto the next"
            ));
        }
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("line {n}: expected `Key=value`, found {line:?}"))?;
        let sec = section.ok_or_else(|| format!("line {n}: setting outside any section"))?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("line {n}: invalid key {k:?}"));
        }
        each(sec, k, v.trim())?;
    }
    Ok(())
}

/// Keys of a Quadlet section that Quadlet reads whole (`UnitFile.Lookup`
/// in pkg/systemd/quadlet/quadlet.go), among those windlass writes; the
/// others it writes are split into words (`Environment=`, `Exec=`, …) or
/// read as written (`Volume=`, `PublishPort=`, …).
const READ_WHOLE: &[&str] = &[
    "AppArmor",
    "AutoUpdate",
    "ContainerName",
    "Driver",
    "Entrypoint",
    "Group",
    "HealthCmd",
    "HealthInterval",
    "HealthRetries",
    "HealthStartPeriod",
    "HealthTimeout",
    "HostName",
    "Image",
    "Memory",
    "NetworkName",
    "Notify",
    "PidsLimit",
    "SeccompProfile",
    "SecurityLabelFileType",
    "SecurityLabelLevel",
    "SecurityLabelType",
    "ShmSize",
    "StopSignal",
    "StopTimeout",
    "User",
    "VolumeName",
];

/// Checks a rendered Quadlet file against the key table, and that no value
/// Quadlet reads whole starts or ends with `"` for a target before Podman
/// 6.0, where Quadlet 5.0 to 5.8.1 would remove those quotes (see
/// `quadlet::whole_value`, which writes such a value as a `PodmanArgs=`
/// flag instead; this catches template overrides too).
pub fn check_quadlet(text: &str, keys: &KeySet) -> Result<(), String> {
    settings(text, |section, key, value| {
        if !keys.is_quadlet_section(section) {
            return Ok(());
        }
        if !keys.has(section, key) {
            return Err(format!(
                "key `{key}` in [{section}] is not known to Podman {}'s Quadlet",
                keys.version
            ));
        }
        // The quotes first: few values have them, and every line's key
        // would otherwise be looked up in the list.
        if keys.version < crate::model::PodmanVersion::new(6, 0)
            && (value.starts_with('"') || value.ends_with('"'))
            && READ_WHOLE.contains(&key)
        {
            return Err(format!(
                "`{key}={value}` in [{section}]: Podman 5.0 to 5.8.1's Quadlet removes every `\"` at either end of it (and 5.8.2's one pair), so it would not reach podman as written for Podman {}",
                keys.version
            ));
        }
        Ok(())
    })
}
