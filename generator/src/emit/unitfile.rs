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

/// The lines of `text` as `str::lines` gives them (split at `\n`, a `\r`
/// before it dropped, no empty line after a final `\n`), the line breaks
/// found in one `memchr` pass: every rendered unit is read this way, and
/// the standard library's search starts over on each line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut breaks = memchr::memchr_iter(b'\n', text.as_bytes());
    std::iter::from_fn(move || match breaks.next() {
        Some(end) => {
            let line = &text[start..end];
            start = end + 1;
            Some(line.strip_suffix('\r').unwrap_or(line))
        }
        None if start < text.len() => {
            let line = &text[start..];
            start = text.len();
            Some(line)
        }
        None => None,
    })
}

/// `s.trim()`, with its answer given at once when `s` starts and ends with
/// a printable ASCII character (no white space to take off: almost every
/// line, key and value of a rendered unit).
fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    if b.first().is_some_and(u8::is_ascii_graphic) && b.last().is_some_and(u8::is_ascii_graphic) {
        s
    } else {
        s.trim()
    }
}

/// Calls `each` with (section, key, value) for every setting, in order,
/// borrowing them from `text`.
fn settings<'t>(
    text: &'t str,
    mut each: impl FnMut(&'t str, &'t str, &'t str) -> Result<(), String>,
) -> Result<(), String> {
    let mut section: Option<&str> = None;
    for (i, line) in lines(text).enumerate() {
        let n = i + 1;
        let l = trim(line);
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
        let k = trim(k);
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("line {n}: invalid key {k:?}"));
        }
        each(sec, k, trim(v))?;
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

    #[test]
    fn lines_are_str_lines() {
        for text in [
            "",
            "\n",
            "\n\n",
            "[A]\r\nK=v\r\n",
            "[A]\nK=v\\\r",
            "[A]\nK=v\r",
            "\r",
            "\r\n",
            "[A]\n\rK=v",
            "K=v",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn trim_is_str_trim(s in "[ \t\r\n\u{b}\u{c}\u{85}\u{a0}\u{3000}a~!\u{7f}\u{1}é]{0,8}") {
            prop_assert_eq!(trim(&s), s.trim());
        }

        #[test]
        fn lines_agree_with_str_lines(text in "[AK=\\[\\]#; \\\\\r\n\t\u{a0}v-]{0,40}") {
            prop_assert_eq!(lines(&text).collect::<Vec<_>>(), text.lines().collect::<Vec<_>>());
        }
    }
}
