//! Value rules for single manifest fields: names, image references, ports,
//! volumes, sizes, versions. Each parser returns the typed value or a message
//! saying what was expected; it never guesses or silently repairs.

use std::fmt;
use std::net::IpAddr;

/// `^[a-z][a-z0-9-]{0,62}$`: app and job names.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Podman object names (volumes, networks, secrets): `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub fn is_object_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A network alias: a DNS name of labels separated by `.`, each 1–63
/// letters, digits, `-` or `_`, not starting or ending with `-` (compose
/// service names such as `my_db` are reached by their name as written);
/// at most 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        })
}

/// Whether `ip` lies in `subnet` (CIDR, as `windlass.toml` declares it);
/// false for another address family or a subnet that does not parse.
pub fn ip_in_subnet(ip: std::net::IpAddr, subnet: &str) -> bool {
    use std::net::IpAddr;
    let Some((net, len)) = subnet.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`: environment variable names.
pub fn is_env_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// An absolute path that survives every target unchanged: no control
/// characters, no white space (Quadlet lists host paths in
/// `RequiresMountsFor=`, separated by white space), no `:` (the volume
/// separator) and no `,` (the mount option separator).
pub fn check_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("expected an absolute path (starting with `/`)".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "expected a path without control characters, found U+{:04X}",
            c as u32
        ));
    }
    if s.contains(char::is_whitespace) {
        // Quadlet copies host paths into RequiresMountsFor=, a list
        // separated by white space: a space would split the path.
        return Err("expected a path without white space".into());
    }
    if s.contains(':') || s.contains(',') {
        return Err("expected a path without `:` or `,`".into());
    }
    if s.split('/').any(|c| c == "..") {
        return Err("expected a path without `..` components".into());
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The whole reference as written.
    pub full: String,
    /// registry/path, without tag or digest.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn registry(&self) -> &str {
        self.repository.split('/').next().unwrap_or_default()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

const IMAGE_EXPECTED: &str = "expected a fully-qualified image reference `registry/path:tag` or `registry/path@sha256:<64 hex>`";

fn is_path_component(c: &str) -> bool {
    // [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    if !b[b.len() - 1].is_ascii_lowercase() && !b[b.len() - 1].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // separator run
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        // Nothing of [a-z0-9._-] here: not a path component (and no step
        // forward, so this must return).
        let ok = !sep.is_empty()
            && (sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-'));
        if !ok {
            return false;
        }
    }
    true
}

fn is_domain(d: &str) -> bool {
    let host = match d.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => d,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (d.contains('.') || d.contains(':') || d == "localhost")
        && !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b':')
        })
}

pub fn parse_image(s: &str) -> Result<ImageRef, String> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or_else(|| format!("{IMAGE_EXPECTED}; the digest must be sha256:<64 hex>"))?;
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            {
                return Err(format!(
                    "{IMAGE_EXPECTED}; the digest must be sha256: and 64 lowercase hex digits"
                ));
            }
            (n, Some(d.to_string()))
        }
        None => (s, None),
    };
    // A tag is after the last ':' that follows the last '/'.
    let slash = name_tag.rfind('/');
    let (repo, tag) = match name_tag.rfind(':') {
        Some(i) if slash.is_none_or(|sl| i > sl) => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    let Some((domain, path)) = repo.split_once('/') else {
        return Err(format!(
            "{IMAGE_EXPECTED}; found no registry (write e.g. docker.io/library/{repo})"
        ));
    };
    if !is_domain(domain) {
        return Err(format!(
            "{IMAGE_EXPECTED}; `{domain}` is not a registry host (write e.g. docker.io/{repo})"
        ));
    }
    if !path.split('/').all(is_path_component) {
        return Err(format!(
            "{IMAGE_EXPECTED}; `{path}` is not a valid repository path (lowercase letters, digits, `.`, `_`, `-`)"
        ));
    }
    if let Some(t) = tag {
        let b = t.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return Err(format!("{IMAGE_EXPECTED}; `{t}` is not a valid tag"));
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "{IMAGE_EXPECTED}; found neither a tag nor a digest (`:latest` is never implied)"
        ));
    }
    Ok(ImageRef {
        full: s.to_string(),
        repository: repo.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub ip: Option<IpAddr>,
    pub host: u16,
    pub container: u16,
    pub protocol: Option<Protocol>,
}

impl fmt::Display for Port {
    /// Podman's `--publish` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(f, "{}:{}", self.host, self.container)?;
        match self.protocol {
            Some(Protocol::Tcp) => f.write_str("/tcp"),
            Some(Protocol::Udp) => f.write_str("/udp"),
            None => Ok(()),
        }
    }
}

const PORT_EXPECTED: &str = "expected `[ip:]host:container[/tcp|/udp]` with ports 1–65535";

fn port_number(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) && !s.starts_with('+') => Ok(n as u16),
        Ok(n) => Err(format!("{PORT_EXPECTED}; port {n} is out of range")),
        Err(_) => Err(format!("{PORT_EXPECTED}; `{s}` is not a port number")),
    }
}

pub fn parse_port(s: &str) -> Result<Port, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, "tcp")) => (r, Some(Protocol::Tcp)),
        Some((r, "udp")) => (r, Some(Protocol::Udp)),
        Some((_, p)) => return Err(format!("{PORT_EXPECTED}; `{p}` is not tcp or udp")),
        None => (s, None),
    };
    let (ip, ports) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| format!("{PORT_EXPECTED}; unclosed `[`"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| PORT_EXPECTED.to_string())?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{PORT_EXPECTED}; `{ip}` is not an IP address"))?;
        (Some(ip), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            2 => (None, rest),
            3 => {
                let ip: IpAddr = parts[0]
                    .parse()
                    .map_err(|_| format!("{PORT_EXPECTED}; `{}` is not an IP address", parts[0]))?;
                (Some(ip), &rest[parts[0].len() + 1..])
            }
            _ => return Err(format!("{PORT_EXPECTED}; found {} parts", parts.len())),
        }
    };
    let (h, c) = ports
        .split_once(':')
        .ok_or_else(|| format!("{PORT_EXPECTED}; a host and a container port are both required"))?;
    Ok(Port {
        ip,
        host: port_number(h)?,
        container: port_number(c)?,
        protocol,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    Named(String),
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

const VOLUME_EXPECTED: &str = "expected `named:/path[:ro]` or `/abs/host:/path[:ro]`";

pub fn parse_volume(s: &str) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, target, read_only) = match parts.as_slice() {
        [src, target] => (*src, *target, false),
        [src, target, "ro"] => (*src, *target, true),
        [src, target, "rw"] => (*src, *target, false),
        [_, _, opt] => {
            return Err(format!(
                "{VOLUME_EXPECTED}; option `{opt}` is not `ro` or `rw`"
            ));
        }
        _ => {
            return Err(format!(
                "{VOLUME_EXPECTED}; found {} `:`-separated parts",
                parts.len()
            ));
        }
    };
    check_path(target).map_err(|e| format!("{VOLUME_EXPECTED}; container path: {e}"))?;
    let source = if src.starts_with('/') {
        check_path(src).map_err(|e| format!("{VOLUME_EXPECTED}; host path: {e}"))?;
        VolumeSource::Host(src.to_string())
    } else if is_object_name(src) {
        VolumeSource::Named(src.to_string())
    } else {
        return Err(format!(
            "{VOLUME_EXPECTED}; `{src}` is neither a volume name nor an absolute path"
        ));
    };
    Ok(VolumeMount {
        source,
        target: target.to_string(),
        read_only,
    })
}

/// Memory sizes: an integer and an optional unit, converted exactly.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected an integer with an optional unit K, M, G, T (×1000), Ki, Mi, Gi, Ti (×1024) or B, e.g. \"512Mi\"";
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(EXPECTED.to_string());
    }
    let unit = &s[digits..];
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" => 1000,
        "M" => 1000u64.pow(2),
        "G" => 1000u64.pow(3),
        "T" => 1000u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        other => return Err(format!("{EXPECTED}; `{other}` is not a unit")),
    };
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("{EXPECTED}; the number is too large"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{EXPECTED}; the size overflows 64 bits"))?;
    if bytes == 0 {
        return Err("expected a memory size greater than 0".to_string());
    }
    Ok(bytes)
}

/// A Podman version the Quadlet output targets (major.minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodmanVersion {
    pub major: u32,
    pub minor: u32,
}

impl PodmanVersion {
    pub const DEFAULT: PodmanVersion = PodmanVersion { major: 5, minor: 4 };
    pub const OLDEST: PodmanVersion = PodmanVersion { major: 4, minor: 4 };
    pub const NEWEST: PodmanVersion = PodmanVersion { major: 5, minor: 8 };

    pub const fn new(major: u32, minor: u32) -> PodmanVersion {
        PodmanVersion { major, minor }
    }
}

impl fmt::Display for PodmanVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

pub fn parse_podman_version(s: &str) -> Result<PodmanVersion, String> {
    let expected = format!(
        "expected a Podman version from {} to {}, e.g. \"5.4\"",
        PodmanVersion::OLDEST,
        PodmanVersion::NEWEST
    );
    let mut it = s.trim_start_matches('v').split('.');
    let major = it.next().and_then(|x| x.parse().ok());
    let minor = it.next().and_then(|x| x.parse().ok());
    let patch_ok = it.next().is_none_or(|p| p.parse::<u32>().is_ok()) && it.next().is_none();
    match (major, minor) {
        (Some(major), Some(minor)) if patch_ok => {
            let v = PodmanVersion { major, minor };
            let known =
                (v.major == 4 && (4..=9).contains(&v.minor)) || (v.major == 5 && v.minor <= 8);
            if !known {
                Err(format!("{expected}; {v} is not supported"))
            } else {
                Ok(v)
            }
        }
        _ => Err(expected),
    }
}

/// `host:ip` for /etc/hosts.
pub fn parse_add_host(s: &str) -> Result<(String, IpAddr), String> {
    const EXPECTED: &str = "expected `host:ip`, e.g. \"db.internal:10.89.0.5\"";
    let (host, ip) = s.split_once(':').ok_or_else(|| EXPECTED.to_string())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    if !host_ok {
        return Err(format!("{EXPECTED}; `{host}` is not a host name"));
    }
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{EXPECTED}; `{ip}` is not an IP address"))?;
    Ok((host.to_string(), ip))
}

/// Label keys: printable, no `=`, no white space.
pub fn check_label_key(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.chars()
            .any(|c| c == '=' || c.is_whitespace() || c.is_control())
    {
        return Err("expected a label key without `=`, white space or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_dns_names_and_addresses_lie_in_their_subnet() {
        for ok in ["db", "my_db", "db.internal", "a-1", &"a".repeat(63)] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-db",
            "db-",
            "a..b",
            "a b",
            "a:b",
            "a,b",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(ip_in_subnet(ip("10.89.0.5"), "10.89.0.0/24"));
        assert!(!ip_in_subnet(ip("10.89.1.5"), "10.89.0.0/24"));
        assert!(ip_in_subnet(ip("10.1.2.3"), "0.0.0.0/0"));
        assert!(ip_in_subnet(ip("fd00::5"), "fd00::/64"));
        assert!(!ip_in_subnet(ip("fd01::5"), "fd00::/64"));
        assert!(!ip_in_subnet(ip("10.89.0.5"), "fd00::/64"));
    }

    #[test]
    fn paths_with_white_space_are_refused() {
        assert!(check_path("/srv/data").is_ok());
        for p in ["/srv/a b", "/srv/a\tb", "/srv/x ", "/srv/\u{a0}x"] {
            assert!(check_path(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn memory_sizes_convert_exactly() {
        assert_eq!(parse_memory("2Gi"), Ok(2_147_483_648));
        assert_eq!(parse_memory("512M"), Ok(512_000_000));
        assert_eq!(parse_memory("1024"), Ok(1024));
        assert_eq!(parse_memory("7B"), Ok(7));
        assert_eq!(parse_memory("1Ti"), Ok(1 << 40));
    }

    #[test]
    fn memory_sizes_never_become_zero_or_wrap() {
        assert!(parse_memory("0Mi").is_err());
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("512MiB").is_err());
        assert!(parse_memory("99999999999Ti").is_err());
        assert!(parse_memory("-1").is_err());
        assert!(parse_memory("1.5G").is_err());
        assert!(parse_memory("").is_err());
    }

    #[test]
    fn ports_follow_publish_syntax() {
        assert_eq!(parse_port("9735:9735").unwrap().to_string(), "9735:9735");
        assert_eq!(
            parse_port("127.0.0.1:10009:10009/tcp").unwrap().to_string(),
            "127.0.0.1:10009:10009/tcp"
        );
        assert_eq!(
            parse_port("[::1]:53:53/udp").unwrap().to_string(),
            "[::1]:53:53/udp"
        );
        for bad in [
            "0:80",
            "70000:80",
            "80",
            "a:b",
            "1.2.3:80:80",
            "80:80/sctp",
            "1:2:3:4",
            ":80",
            "80:",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_must_be_fully_qualified_and_tagged() {
        let i = parse_image("docker.io/lightninglabs/lnd:v0.18.3-beta").unwrap();
        assert_eq!(i.repository, "docker.io/lightninglabs/lnd");
        assert_eq!(i.tag.as_deref(), Some("v0.18.3-beta"));
        assert!(parse_image("localhost:5000/app:1").is_ok());
        assert!(parse_image(&format!("quay.io/a/b@sha256:{}", "a".repeat(64))).is_ok());
        for bad in [
            "nginx",
            "nginx:1",
            "docker.io/library/nginx",
            "docker.io/Library/nginx:1",
            "docker.io/x:bad tag",
            "docker.io/x@sha256:abc",
            // Characters outside [a-z0-9._-] inside a path component (these
            // once looped forever).
            "docker.io/library/b*usybox:1.36",
            "docker.io/library/alp=ne:3",
            "docker.io/a/bUsybox:1",
            "docker.io/a/b-é:1",
        ] {
            assert!(parse_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_are_named_or_absolute() {
        assert_eq!(
            parse_volume("data:/data").unwrap().source,
            VolumeSource::Named("data".into())
        );
        assert!(parse_volume("/srv/x:/x:ro").unwrap().read_only);
        for bad in ["data", "rel/x:/x", "data:rel", "data:/x:rx", "/a:/b:ro:z"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn podman_versions_are_bounded() {
        assert_eq!(parse_podman_version("5.4"), Ok(PodmanVersion::new(5, 4)));
        assert_eq!(parse_podman_version("4.9.3"), Ok(PodmanVersion::new(4, 9)));
        assert!(parse_podman_version("4.3").is_err());
        assert!(parse_podman_version("6.0").is_err());
        assert!(parse_podman_version("five").is_err());
    }
}
