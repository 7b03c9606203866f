//! A small reader for the unit files we render, used to check every output
//! (the embedded templates and any override) before it is written: only
//! sections, comments and `Key=value` lines, and in Quadlet sections only
//! keys the target Podman version knows.

use super::keys::KeySet;

/// (section, key, value) for every setting, in order.
pub fn parse(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut section: Option<String> = None;
    let mut out = Vec::new();
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
            section = Some(name.to_string());
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
        let sec = section
            .clone()
            .ok_or_else(|| format!("line {n}: setting outside any section"))?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("line {n}: invalid key {k:?}"));
        }
        out.push((sec, k.to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Checks a rendered Quadlet file against the key table.
pub fn check_quadlet(text: &str, keys: &KeySet) -> Result<(), String> {
    for (section, key, _) in parse(text)? {
        if keys.is_quadlet_section(&section) && !keys.has(&section, &key) {
            return Err(format!(
                "key `{key}` in [{section}] is not known to Podman {}'s Quadlet",
                keys.version
            ));
        }
    }
    Ok(())
}
