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
    // Lines as `str::lines` reads them (split at `\n`, a `\r` before it
    // dropped), the line breaks found by one `memchr` pass: every rendered
    // file is read here, and the standard library's search starts over on
    // each line.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]);
    for (i, end) in ends.enumerate() {
        let n = i + 1;
        let mut line = &text[start..end];
        start = end + 1;
        if end < text.len() {
            line = line.strip_suffix('\r').unwrap_or(line);
        }
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
        let (k, v) = memchr::memchr(b'=', l.as_bytes())
            .map(|at| (&l[..at], &l[at + 1..]))
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
    // The section's keys, looked up again only when the section changes.
    let mut current: Option<(&str, Option<&super::keys::SectionKeys>)> = None;
    settings(text, |section, key, value| {
        let in_section = match current {
            Some((name, known)) if name == section => known,
            _ => {
                let known = keys.section(section);
                current = Some((section, known));
                known
            }
        };
        let Some(in_section) = in_section else {
            return Ok(());
        };
        if !in_section.has(key) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `settings` as it read lines before its one `memchr` pass: with
    /// `str::lines` and `split_once`.
    fn settings_by_lines(text: &str) -> Result<Vec<(String, String, String)>, String> {
        let mut out = Vec::new();
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
            out.push((sec.to_string(), k.to_string(), v.trim().to_string()));
        }
        Ok(out)
    }

    #[test]
    fn line_ends_are_read_as_str_lines_reads_them() {
        for text in [
            "",
            "\n",
            "[A]\r\nK=v\r\n",
            "[A]\nK=v\\\r",
            "[A]\nK=v\\\r\n",
            "[A]\nK=v\r",
            "[A]\n\rK=v",
            "[A]\nK=a=b\n\n",
            "K=v",
            "[A\n",
        ] {
            assert_eq!(parse(text), settings_by_lines(text), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn settings_agree_with_str_lines(text in "[AK=\\[\\]#; \\\\\r\n\t\u{a0}v-]{0,40}") {
            prop_assert_eq!(parse(&text), settings_by_lines(&text));
        }
    }
}
