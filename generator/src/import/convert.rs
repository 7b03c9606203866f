//! Conversions of single compose values into the manifest's forms: names,
//! image references, durations, byte sizes. Each either converts exactly or
//! says why it cannot; none guesses.

use crate::model::time::{format_timespan, parse_timespan};
use crate::model::values::{is_name, parse_image};

/// Compose service name → windlass app name: lowercase, every character
/// outside `[a-z0-9-]` becomes `-`, and a name not starting with a letter
/// gets the prefix `app-`. Deterministic; collisions are the caller's to
/// refuse.
pub fn app_name(service: &str) -> Result<String, String> {
    prefixed_app_name(service, None)
}

/// [`app_name`] with `--prefix`: `<prefix>-<name>` (the prefix supplies
/// the leading letter, so no `app-` is added).
pub fn prefixed_app_name(service: &str, prefix: Option<&str>) -> Result<String, String> {
    let mut n: String = service
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if let Some(p) = prefix {
        n = format!("{p}-{n}");
    } else if !n.starts_with(|c: char| c.is_ascii_lowercase()) {
        n = format!("app-{n}");
    }
    if is_name(&n) {
        Ok(n)
    } else {
        Err(format!(
            "cannot become an app name matching ^[a-z][a-z0-9-]{{0,62}}$ (tried `{n}`)"
        ))
    }
}

/// Checks `--prefix`: an app name's start (`^[a-z][a-z0-9-]*$`, at most
/// 40 characters so that names stay within 63), without a trailing `-`
/// (one is added).
pub fn app_prefix(p: &str) -> Result<String, String> {
    let p = p.strip_suffix('-').unwrap_or(p);
    if p.len() <= 40 && is_name(p) {
        Ok(p.to_string())
    } else {
        Err(format!(
            "--prefix {p:?}: expected the start of an app name, ^[a-z][a-z0-9-]*$ (at most 40 characters)"
        ))
    }
}

/// A compose project name as compose normalises it: lowercase, only
/// `[a-z0-9_-]`, starting with a letter or digit.
pub fn project_name(s: &str) -> Option<String> {
    let n: String = s
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    let n = n.trim_start_matches(['_', '-']).to_string();
    (!n.is_empty()).then_some(n)
}

/// Docker's reference normalisation: an image without a registry is on
/// `docker.io`, a one-component path there is under `library/`, and an image
/// without tag or digest means `:latest`. Returns the full reference and
/// whether anything was added.
pub fn normalize_image(image: &str) -> Result<(String, bool), String> {
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name_tag.split('/').next().unwrap_or_default();
    let has_domain = name_tag.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name_tag.to_string()
    } else if name_tag.contains('/') {
        format!("docker.io/{name_tag}")
    } else {
        format!("docker.io/library/{name_tag}")
    };
    let slash = full.rfind('/').unwrap_or(0);
    let has_tag = full[slash..].contains(':');
    if !has_tag && digest.is_none() {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    parse_image(&full)?;
    let changed = full != image;
    Ok((full, changed))
}

/// The reference of an image compose builds (`build:` with `image:`):
/// compose builds it and tags it with `image`; Podman names a local build
/// of a name without a registry `localhost/<name>` (`podman build -t app`
/// gives `localhost/app:latest`), and one with a registry as written.
/// `:latest` when no tag is given, as both do.
pub fn local_image(image: &str) -> Result<String, String> {
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name_tag.split('/').next().unwrap_or_default();
    let has_domain = name_tag.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name_tag.to_string()
    } else {
        format!("localhost/{name_tag}")
    };
    let slash = full.rfind('/').unwrap_or(0);
    if !full[slash..].contains(':') && digest.is_none() {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    parse_image(&full)?;
    Ok(full)
}

/// A compose duration (Go's `time.ParseDuration`: `1h30m`, `10s`, `1.5s`,
/// `500ms`) as a systemd time span. The compose text is kept when systemd
/// reads it as the same span; otherwise it is rewritten exactly.
pub fn duration(s: &str) -> Result<String, String> {
    let usec = go_duration_usec(s)?;
    if usec == 0 {
        return Err("a zero duration has no windlass equivalent".into());
    }
    if parse_timespan(s).ok() == Some(usec) {
        Ok(s.to_string())
    } else {
        Ok(format_timespan(usec))
    }
}

fn go_duration_usec(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration such as 30s, 1m30s or 500ms");
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        // Nanoseconds per unit.
        let ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut value = int.checked_mul(ns).ok_or_else(bad)?;
        let mut scale = ns;
        for d in frac.chars() {
            scale /= 10;
            let d = u128::from(d.to_digit(10).ok_or_else(bad)?);
            value += d * scale;
        }
        total = total.checked_add(value).ok_or_else(bad)?;
    }
    if !total.is_multiple_of(1000) {
        return Err(format!(
            "`{s}` is finer than a microsecond, which systemd cannot hold"
        ));
    }
    u64::try_from(total / 1000).map_err(|_| bad())
}

/// A compose byte value (`512m`, `1g`, `1.5gb`, `1048576`; units ×1024, as
/// Docker reads them) as a manifest memory size, exactly.
pub fn byte_size(s: &str) -> Result<String, String> {
    let bad = || format!("`{s}` is not a size such as 512m or 1g");
    let t = s.trim().to_ascii_lowercase();
    let num_len = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_len);
    let mult: u128 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut bytes = int * mult;
    // A fraction must come out as whole bytes, or it is refused.
    if !frac.is_empty() {
        let digits = u32::try_from(frac.len()).map_err(|_| bad())?;
        let den = 10u128.checked_pow(digits).ok_or_else(bad)?;
        let f: u128 = frac.parse().map_err(|_| bad())?;
        if !(f * mult).is_multiple_of(den) {
            return Err(format!("`{s}` is not a whole number of bytes"));
        }
        bytes += f * mult / den;
    }
    if bytes == 0 {
        return Err("a zero size has no windlass equivalent".into());
    }
    let bytes = u64::try_from(bytes).map_err(|_| bad())?;
    for (suffix, unit) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes.is_multiple_of(unit) {
            return Ok(format!("{}{suffix}", bytes / unit));
        }
    }
    Ok(bytes.to_string())
}

/// The exact microseconds of a compose duration.
pub fn duration_usec(s: &str) -> Result<u64, String> {
    go_duration_usec(s)
}

/// Compose's (and Docker's, and Podman's) health check defaults, used
/// where a compose `healthcheck` leaves a field out.
pub const HEALTH_INTERVAL_USEC: u64 = 30_000_000;
pub const HEALTH_TIMEOUT_USEC: u64 = 30_000_000;
pub const HEALTH_RETRIES: u64 = 3;

/// Added to the health window for pulling the image and creating the
/// container, which count against `TimeoutStartSec=` too.
pub const HEALTH_MARGIN_USEC: u64 = 60_000_000;

/// windlass's own default `update.health_deadline` (2 min): a derived
/// deadline is never shorter.
pub const HEALTH_DEADLINE_FLOOR_USEC: u64 = 120_000_000;

/// The health window and the start deadline derived from it, in
/// microseconds. The window is the longest a check may take to pass
/// before the engine gives up on it: failures inside `start_period` do
/// not count, then `retries` failed probes, each `timeout` long at most
/// and each followed by `interval` before the next one starts. The
/// deadline is that plus [`HEALTH_MARGIN_USEC`], in whole seconds, and at
/// least [`HEALTH_DEADLINE_FLOOR_USEC`].
pub fn health_deadline(start_period: u64, interval: u64, timeout: u64, retries: u64) -> (u64, u64) {
    let window =
        start_period.saturating_add(retries.saturating_mul(interval.saturating_add(timeout)));
    let deadline = window
        .saturating_add(HEALTH_MARGIN_USEC)
        .div_ceil(1_000_000)
        .saturating_mul(1_000_000)
        .max(HEALTH_DEADLINE_FLOOR_USEC);
    (window, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_become_app_names() {
        assert_eq!(app_name("web").unwrap(), "web");
        assert_eq!(app_name("My_App.v2").unwrap(), "my-app-v2");
        assert_eq!(app_name("1password").unwrap(), "app-1password");
        assert!(app_name(&"a".repeat(64)).is_err());
        assert_eq!(prefixed_app_name("db", Some("mc")).unwrap(), "mc-db");
        assert_eq!(prefixed_app_name("1st", Some("mc")).unwrap(), "mc-1st");
        assert_eq!(app_prefix("mc-").unwrap(), "mc");
        assert!(app_prefix("1mc").is_err());
        assert!(app_prefix("Mc").is_err());
    }

    #[test]
    fn images_are_normalised_like_docker() {
        let n = |s| normalize_image(s).unwrap().0;
        assert_eq!(n("redis"), "docker.io/library/redis:latest");
        assert_eq!(n("redis:7.2"), "docker.io/library/redis:7.2");
        assert_eq!(n("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(n("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        let d = format!("postgres@sha256:{}", "a".repeat(64));
        assert_eq!(
            n(&d),
            format!("docker.io/library/postgres@sha256:{}", "a".repeat(64))
        );
        assert!(!normalize_image("ghcr.io/a/b:1").unwrap().1);
        assert!(normalize_image("Bad/Image").is_err());
    }

    #[test]
    fn a_built_image_is_named_as_podman_names_a_local_build() {
        let n = |s| local_image(s).unwrap();
        assert_eq!(n("myapp"), "localhost/myapp:latest");
        assert_eq!(n("org/myapp:dev"), "localhost/org/myapp:dev");
        assert_eq!(n("ghcr.io/a/b"), "ghcr.io/a/b:latest");
        assert_eq!(n("localhost:5000/app:1"), "localhost:5000/app:1");
        assert!(local_image("Bad/Image").is_err());
    }

    #[test]
    fn durations_are_exact() {
        assert_eq!(duration("30s").unwrap(), "30s");
        assert_eq!(duration("1m30s").unwrap(), "1m30s");
        assert_eq!(duration("1.5s").unwrap(), "1.5s");
        assert_eq!(duration("500ms").unwrap(), "500ms");
        assert_eq!(duration("2h").unwrap(), "2h");
        assert_eq!(duration_usec("1m30s").unwrap(), 90_000_000);
        assert!(duration("10").is_err());
        assert!(duration("1ns").is_err());
        assert!(duration("0s").is_err());
    }

    #[test]
    fn health_deadlines_cover_the_whole_window_with_a_margin() {
        let s = 1_000_000;
        // start_period 300s, interval 10s, retries 5, timeout 30s (default).
        assert_eq!(
            health_deadline(300 * s, 10 * s, 30 * s, 5),
            (500 * s, 560 * s)
        );
        // All of compose's defaults: 3 × (30s + 30s) + 60s.
        assert_eq!(
            health_deadline(0, HEALTH_INTERVAL_USEC, HEALTH_TIMEOUT_USEC, HEALTH_RETRIES),
            (180 * s, 240 * s)
        );
        // A quick check keeps windlass's default, and fractions round up.
        assert_eq!(health_deadline(0, 2 * s, s, 3), (9 * s, 120 * s));
        assert_eq!(health_deadline(100 * s, 500_000, 0, 3).1, 162 * s);
        assert_eq!(health_deadline(u64::MAX, u64::MAX, 1, u64::MAX).0, u64::MAX);
    }

    #[test]
    fn byte_sizes_are_exact() {
        assert_eq!(byte_size("512m").unwrap(), "512Mi");
        assert_eq!(byte_size("1g").unwrap(), "1Gi");
        assert_eq!(byte_size("1.5g").unwrap(), "1536Mi");
        assert_eq!(byte_size("1000").unwrap(), "1000");
        assert_eq!(byte_size("2048").unwrap(), "2Ki");
        assert!(byte_size("0").is_err());
        assert!(byte_size("1.3b").is_err());
        assert!(byte_size("lots").is_err());
    }
}
