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

/// SELinux relabelling of a volume's content (`:z` / `:Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relabel {
    /// `z`: a label shared with other containers.
    Shared,
    /// `Z`: a label private to this container.
    Private,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
    pub relabel: Option<Relabel>,
}

impl VolumeMount {
    /// The options part of `-v src:dst[:opts]` with its `:` (`""`,
    /// `":ro"`, `":Z"`, `":ro,Z"`), as Podman reads it on every target.
    pub fn options(&self) -> String {
        let mut opts = Vec::new();
        if self.read_only {
            opts.push("ro");
        }
        match self.relabel {
            Some(Relabel::Shared) => opts.push("z"),
            Some(Relabel::Private) => opts.push("Z"),
            None => {}
        }
        if opts.is_empty() {
            String::new()
        } else {
            [":", &opts.join(",")].concat()
        }
    }
}

const VOLUME_EXPECTED: &str = "expected `named:/path[:options]` or `/abs/host:/path[:options]`, options being `ro` or `rw` and/or `z` or `Z`, comma-separated";

pub fn parse_volume(s: &str) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, target, opts) = match parts.as_slice() {
        [src, target] => (*src, *target, None),
        [src, target, opts] => (*src, *target, Some(*opts)),
        _ => {
            return Err(format!(
                "{VOLUME_EXPECTED}; found {} `:`-separated parts",
                parts.len()
            ));
        }
    };
    let mut read_only: Option<bool> = None;
    let mut relabel: Option<Relabel> = None;
    for opt in opts.into_iter().flat_map(|o| o.split(',')) {
        let taken = match opt {
            "ro" | "rw" => read_only.replace(opt == "ro").is_some(),
            "z" => relabel.replace(Relabel::Shared).is_some(),
            "Z" => relabel.replace(Relabel::Private).is_some(),
            other => {
                return Err(format!(
                    "{VOLUME_EXPECTED}; option `{other}` is not `ro`, `rw`, `z` or `Z`"
                ));
            }
        };
        if taken {
            return Err(format!(
                "{VOLUME_EXPECTED}; option `{opt}` conflicts with an earlier one (`ro`/`rw` and `z`/`Z` may each be given once)"
            ));
        }
    }
    let read_only = read_only.unwrap_or(false);
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
        relabel,
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

/// Names `podman run --network` reads as a network mode, not a network,
/// and that `podman network create` refuses (`NetworkCreate` in Podman's
/// pkg/domain/infra/abi/network.go, the same list from 4.4 to 6.0, `pasta`
/// from 5.0). `slirp4netns` is an error as a mode from Podman 6.0.
pub const PODMAN_NETWORK_MODES: &[&str] = &[
    "bridge",
    "container",
    "default",
    "host",
    "none",
    "ns",
    "pasta",
    "private",
    "slirp4netns",
];

/// A Podman version the Quadlet output targets (major.minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodmanVersion {
    pub major: u32,
    pub minor: u32,
}

impl PodmanVersion {
    /// The target when neither `--podman-version` nor `[host] podman` says
    /// one: Debian 13's Podman, the release the Quadlet oracle runs
    /// (docs/decisions.md, "The default Podman version"). Output for an
    /// older Podman stays valid on every newer one that windlass knows
    /// (Quadlet only ever added keys, and the values are written to read
    /// the same under every Quadlet from here to [`Self::NEWEST`]).
    pub const DEFAULT: PodmanVersion = PodmanVersion { major: 5, minor: 4 };
    pub const OLDEST: PodmanVersion = PodmanVersion { major: 4, minor: 4 };
    pub const NEWEST: PodmanVersion = PodmanVersion { major: 6, minor: 1 };

    pub const fn new(major: u32, minor: u32) -> PodmanVersion {
        PodmanVersion { major, minor }
    }

    /// Whether windlass has the Quadlet keys of this release.
    pub fn is_known(self) -> bool {
        match self.major {
            4 => (4..=9).contains(&self.minor),
            5 => self.minor <= 8,
            6 => self.minor <= Self::NEWEST.minor,
            _ => false,
        }
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
            if v > PodmanVersion::NEWEST {
                Err(format!(
                    "{expected}; {v} is newer than the newest Podman whose Quadlet keys windlass knows ({}): target {} (output for an older Podman stays valid on newer ones) or update windlass",
                    PodmanVersion::NEWEST,
                    PodmanVersion::NEWEST
                ))
            } else if !v.is_known() {
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

/// Linux capabilities (capabilities(7)), without the `CAP_` prefix.
pub const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// A capability name in any case, with or without `CAP_`, or `ALL`;
/// returned as Podman prints it (`CAP_NET_ADMIN`, `ALL`).
pub fn parse_capability(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if CAPABILITIES.contains(&bare) {
        Ok(format!("CAP_{bare}"))
    } else {
        Err(
            "expected a Linux capability such as \"NET_ADMIN\" or \"CAP_NET_ADMIN\" (see capabilities(7)), or \"ALL\""
                .into(),
        )
    }
}

/// Signals a container may be stopped with, without the `SIG` prefix.
pub const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "KILL", "PIPE",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// A signal name (`SIGINT` or `INT`, upper case), returned with `SIG`.
pub fn parse_signal(s: &str) -> Result<String, String> {
    let bare = s.strip_prefix("SIG").unwrap_or(s);
    if SIGNALS.contains(&bare) {
        Ok(format!("SIG{bare}"))
    } else {
        Err("expected a signal name such as \"SIGINT\" or \"SIGQUIT\" (see signal(7))".into())
    }
}

/// `ulimit` resource names Podman knows (`--ulimit NAME=soft[:hard]`, read
/// by go-units, which leaves out `as`).
pub const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// A resource limit; `-1` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    /// Checks a soft and hard limit: each `-1` (unlimited) or ≥ 0, and
    /// the soft one no higher than the hard one.
    pub fn new(soft: i64, hard: i64) -> Result<Ulimit, String> {
        if soft < -1 || hard < -1 {
            return Err(format!(
                "expected limits of -1 (unlimited) or more, found soft {soft} and hard {hard}"
            ));
        }
        // -1 (unlimited) is above every finite limit.
        if hard != -1 && (soft == -1 || soft > hard) {
            return Err(format!(
                "expected the soft limit to be at most the hard limit, found soft {soft} and hard {hard}"
            ));
        }
        Ok(Ulimit { soft, hard })
    }

    /// The value of `--ulimit=NAME=…`: `N` when soft and hard agree.
    pub fn podman(&self, name: &str) -> String {
        if self.soft == self.hard {
            format!("{name}={}", self.soft)
        } else {
            format!("{name}={}:{}", self.soft, self.hard)
        }
    }
}

/// A container's tmpfs mount, `/path[:options]`, with the options every
/// supported Podman (4.4 on) accepts for a tmpfs mount: others (`uid=`,
/// `nr_inodes=`, …) make `podman run` fail.
pub fn parse_tmpfs(s: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected `/path[:options]`, options comma-separated from ro, rw, exec, noexec, suid, nosuid, dev, nodev, tmpcopyup, notmpcopyup, U, size=N[k|m|g|%], mode=OCTAL";
    let (path, opts) = match s.split_once(':') {
        Some((p, o)) => (p, Some(o)),
        None => (s, None),
    };
    check_path(path).map_err(|e| format!("{EXPECTED}; {e}"))?;
    let size = |v: &str| {
        let digits = v.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && matches!(&v[digits..], "" | "k" | "m" | "g" | "K" | "M" | "G" | "%")
    };
    for opt in opts.into_iter().flat_map(|o| o.split(',')) {
        let ok = match opt.split_once('=') {
            None => matches!(
                opt,
                "ro" | "rw"
                    | "exec"
                    | "noexec"
                    | "suid"
                    | "nosuid"
                    | "dev"
                    | "nodev"
                    | "tmpcopyup"
                    | "notmpcopyup"
                    | "U"
            ),
            Some(("size", v)) => size(v),
            Some(("mode", v)) => {
                !v.is_empty() && v.len() <= 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b))
            }
            Some(_) => false,
        };
        if !ok {
            return Err(format!("{EXPECTED}; `{opt}` is not such an option"));
        }
    }
    Ok(s.to_string())
}

/// The namespaced sysctls Podman sets in a container: `kernel.msgmax`,
/// `kernel.msgmnb`, `kernel.msgmni`, `kernel.sem`, `kernel.shmall`,
/// `kernel.shmmax`, `kernel.shmmni`, `kernel.shm_rmid_forced`,
/// `fs.mqueue.*` and `net.*`.
pub fn check_sysctl_key(k: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected a namespaced sysctl: kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, fs.mqueue.* or net.*";
    let well_formed = k.split('.').count() >= 2
        && k.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        });
    let namespaced = matches!(
        k,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || k.starts_with("fs.mqueue.")
        || k.starts_with("net.");
    if well_formed && namespaced {
        Ok(())
    } else {
        Err(EXPECTED.into())
    }
}

/// A sysctl value: printable ASCII, spaces allowed inside
/// (`kernel.sem = "250 32000 100 128"`), no `,` or `"` (Podman reads
/// `--sysctl` as comma-separated CSV) and no `=` (Podman keeps only what
/// comes before a second `=`).
pub fn check_sysctl_value(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.trim() == v
        && v.bytes()
            .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b',' | b'"' | b'='));
    if ok {
        Ok(())
    } else {
        Err("expected a non-empty value of printable ASCII without `,`, `\"` or `=` and without leading or trailing spaces".into())
    }
}

/// A host name (RFC 1123): dot-separated labels of letters, digits and
/// `-`, each 1–63 long and not starting or ending with `-`; 253 at most.
pub fn parse_hostname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(
            "expected a host name (RFC 1123: labels of letters, digits and `-`, separated by `.`)"
                .into(),
        )
    }
}

/// A device, `/dev/host[:/dev/container][:permissions]`, permissions
/// being some of `r`, `w`, `m`.
pub fn parse_device(s: &str) -> Result<String, String> {
    const EXPECTED: &str =
        "expected `/host/device[:/container/path][:permissions]`, permissions some of r, w, m";
    let parts: Vec<&str> = s.split(':').collect();
    let perms_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
            && p.bytes().collect::<std::collections::BTreeSet<_>>().len() == p.len()
    };
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, None, None),
        [h, p] if !p.starts_with('/') => (*h, None, Some(*p)),
        [h, c] => (*h, Some(*c), None),
        [h, c, p] => (*h, Some(*c), Some(*p)),
        _ => {
            return Err(format!(
                "{EXPECTED}; it has {} `:`-separated parts",
                parts.len()
            ));
        }
    };
    check_path(host).map_err(|e| format!("{EXPECTED}; host device: {e}"))?;
    if let Some(c) = container {
        check_path(c).map_err(|e| format!("{EXPECTED}; container path: {e}"))?;
    }
    if let Some(p) = perms
        && !perms_ok(p)
    {
        return Err(format!("{EXPECTED}; `{p}` is not a set of permissions"));
    }
    Ok(s.to_string())
}

/// One `--security-opt` of Podman's, in its `key=value` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    NoNewPrivileges,
    LabelDisable,
    LabelNested,
    LabelType(String),
    LabelLevel(String),
    LabelFileType(String),
    LabelUser(String),
    LabelRole(String),
    Seccomp(String),
    Apparmor(String),
    /// Colon-separated paths.
    Mask(String),
    /// `ALL` or colon-separated paths.
    Unmask(String),
}

impl SecurityOpt {
    /// The value of `--security-opt=`.
    pub fn podman(&self) -> String {
        match self {
            SecurityOpt::NoNewPrivileges => "no-new-privileges".into(),
            SecurityOpt::LabelDisable => "label=disable".into(),
            SecurityOpt::LabelNested => "label=nested".into(),
            SecurityOpt::LabelType(v) => format!("label=type:{v}"),
            SecurityOpt::LabelLevel(v) => format!("label=level:{v}"),
            SecurityOpt::LabelFileType(v) => format!("label=filetype:{v}"),
            SecurityOpt::LabelUser(v) => format!("label=user:{v}"),
            SecurityOpt::LabelRole(v) => format!("label=role:{v}"),
            SecurityOpt::Seccomp(v) => format!("seccomp={v}"),
            SecurityOpt::Apparmor(v) => format!("apparmor={v}"),
            SecurityOpt::Mask(v) => format!("mask={v}"),
            SecurityOpt::Unmask(v) => format!("unmask={v}"),
        }
    }

    /// Options that may be given once only share a kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SecurityOpt::NoNewPrivileges => "no-new-privileges",
            SecurityOpt::LabelDisable => "label=disable",
            SecurityOpt::LabelNested => "label=nested",
            SecurityOpt::LabelType(_) => "label=type",
            SecurityOpt::LabelLevel(_) => "label=level",
            SecurityOpt::LabelFileType(_) => "label=filetype",
            SecurityOpt::LabelUser(_) => "label=user",
            SecurityOpt::LabelRole(_) => "label=role",
            SecurityOpt::Seccomp(_) => "seccomp",
            SecurityOpt::Apparmor(_) => "apparmor",
            SecurityOpt::Mask(_) => "mask",
            SecurityOpt::Unmask(_) => "unmask",
        }
    }
}

/// A `--security-opt` value in the forms Podman documents (`=` between
/// key and value): `no-new-privileges`, `label=disable`, `label=nested`,
/// `label=type:T`, `label=level:L`, `label=filetype:T`, `label=user:U`,
/// `label=role:R`, `seccomp=unconfined|/profile.json`,
/// `apparmor=unconfined|PROFILE`, `mask=/p[:/q…]`, `unmask=ALL|/p[:/q…]`.
pub fn parse_security_opt(s: &str) -> Result<SecurityOpt, String> {
    let selinux_name = |v: &str| {
        !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let selinux_level = |v: &str| {
        !v.is_empty()
            && v.len() <= 255
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b',' | b'.' | b'-'))
    };
    let paths = |v: &str| v.split(':').all(|p| check_path(p).is_ok());
    let Some((key, val)) = s.split_once('=') else {
        return match s.split_once(':') {
            None if s == "no-new-privileges" => Ok(SecurityOpt::NoNewPrivileges),
            Some((k, _)) if matches!(k, "no-new-privileges" | "label" | "seccomp" | "apparmor") => {
                Err(format!(
                    "expected `=` between key and value (the `{k}:` form is Docker's older spelling){}",
                    if k == "no-new-privileges" {
                        "; write `no-new-privileges` alone"
                    } else {
                        ""
                    }
                ))
            }
            _ => Err(format!("expected a security option: {SECURITY_OPTS}")),
        };
    };
    let err = |e: &str| Err(format!("expected {e}"));
    match key {
        "label" => match val.split_once(':') {
            None if val == "disable" => Ok(SecurityOpt::LabelDisable),
            None if val == "nested" => Ok(SecurityOpt::LabelNested),
            Some(("type", t)) if selinux_name(t) => Ok(SecurityOpt::LabelType(t.into())),
            Some(("filetype", t)) if selinux_name(t) => Ok(SecurityOpt::LabelFileType(t.into())),
            Some(("user", t)) if selinux_name(t) => Ok(SecurityOpt::LabelUser(t.into())),
            Some(("role", t)) if selinux_name(t) => Ok(SecurityOpt::LabelRole(t.into())),
            Some(("level", t)) if selinux_level(t) => Ok(SecurityOpt::LabelLevel(t.into())),
            _ => err(
                "label=disable, label=nested, or label=type:, filetype:, user:, role: with an SELinux name (letters, digits, `_`) or label=level: with an MLS level such as s0:c1,c2",
            ),
        },
        "seccomp" if val == "unconfined" || check_path(val).is_ok() => {
            Ok(SecurityOpt::Seccomp(val.into()))
        }
        "seccomp" => err("seccomp=unconfined or seccomp= an absolute path of a profile"),
        "apparmor"
            if !val.is_empty()
                && val.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
                }) =>
        {
            Ok(SecurityOpt::Apparmor(val.into()))
        }
        "apparmor" => err("apparmor=unconfined or apparmor= a profile name"),
        "mask" if paths(val) => Ok(SecurityOpt::Mask(val.into())),
        "unmask" if val == "ALL" || paths(val) => Ok(SecurityOpt::Unmask(val.into())),
        "mask" => err("mask= absolute paths separated by `:`"),
        "unmask" => err("unmask=ALL or unmask= absolute paths separated by `:`"),
        "no-new-privileges" => {
            err("`no-new-privileges` alone (it means true; false is the default)")
        }
        _ => Err(format!("expected a security option: {SECURITY_OPTS}")),
    }
}

/// The forms `parse_security_opt` accepts, for messages.
const SECURITY_OPTS: &str = "no-new-privileges, label=disable|nested|type:T|level:L|filetype:T|user:U|role:R, seccomp=unconfined|/profile.json, apparmor=unconfined|PROFILE, mask=/path[:/path…], unmask=ALL|/path[:/path…]";

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
    fn volume_options_combine_access_and_relabelling_in_podmans_form() {
        for (spec, opts) in [
            ("data:/d", ""),
            ("data:/d:rw", ""),
            ("data:/d:ro", ":ro"),
            ("data:/d:Z", ":Z"),
            ("/srv:/d:z", ":z"),
            ("/srv:/d:Z,ro", ":ro,Z"),
            ("/srv:/d:rw,z", ":z"),
        ] {
            assert_eq!(parse_volume(spec).unwrap().options(), opts, "{spec}");
        }
        for bad in [
            "data:/d:z,Z",
            "data:/d:ro,ro",
            "data:/d:",
            "data:/d:ro,",
            "data:/d:shared",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capabilities_and_signals_are_normalised_or_refused() {
        assert_eq!(parse_capability("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(parse_capability("Cap_Sys_Nice").unwrap(), "CAP_SYS_NICE");
        assert_eq!(parse_capability("all").unwrap(), "ALL");
        assert!(parse_capability("CAP_").is_err());
        assert!(parse_capability("NET_ADMIN ").is_err());
        assert_eq!(parse_signal("SIGINT").unwrap(), "SIGINT");
        assert_eq!(parse_signal("QUIT").unwrap(), "SIGQUIT");
        for bad in ["sigint", "15", "SIGRTMIN+3", ""] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn security_options_parse_to_podmans_spelling() {
        for ok in [
            "no-new-privileges",
            "label=disable",
            "label=nested",
            "label=type:spc_t",
            "label=level:s0:c1,c2",
            "label=filetype:container_file_t",
            "label=user:system_u",
            "label=role:system_r",
            "seccomp=unconfined",
            "seccomp=/etc/containers/seccomp.json",
            "apparmor=unconfined",
            "mask=/proc/a:/proc/b",
            "unmask=ALL",
        ] {
            assert_eq!(parse_security_opt(ok).unwrap().podman(), ok);
        }
        for bad in [
            "no-new-privileges=true",
            "no-new-privileges:true",
            "label:disable",
            "label=type:",
            "label=bogus",
            "seccomp=rel.json",
            "apparmor=",
            "mask=rel",
            "unmask=all",
            "proc-opts=x",
            "",
        ] {
            assert!(parse_security_opt(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ulimits_keep_soft_below_hard_with_minus_one_unlimited() {
        assert_eq!(Ulimit::new(5, 5).unwrap().podman("nofile"), "nofile=5");
        assert_eq!(Ulimit::new(1, 2).unwrap().podman("nofile"), "nofile=1:2");
        assert_eq!(Ulimit::new(1, -1).unwrap().podman("core"), "core=1:-1");
        assert_eq!(Ulimit::new(-1, -1).unwrap().podman("core"), "core=-1");
        for (s, h) in [(2, 1), (-1, 5), (-2, -2), (0, -3)] {
            assert!(Ulimit::new(s, h).is_err(), "{s}:{h}");
        }
    }

    #[test]
    fn tmpfs_devices_sysctls_and_host_names_follow_podmans_grammar() {
        for ok in ["/run", "/tmp:rw,size=64m,mode=1777,noexec", "/x:size=50%,U"] {
            assert!(parse_tmpfs(ok).is_ok(), "{ok}");
        }
        for bad in [
            "run",
            "/x:size=",
            "/x:mode=999",
            "/x:bogus",
            "/x:/y",
            "/x:size=1t",
            "/x:uid=1000",
            "/x:nr_inodes=1k",
        ] {
            assert!(parse_tmpfs(bad).is_err(), "{bad}");
        }
        for ok in [
            "/dev/fuse",
            "/dev/fuse:rw",
            "/dev/a:/dev/b",
            "/dev/a:/dev/b:rwm",
        ] {
            assert!(parse_device(ok).is_ok(), "{ok}");
        }
        for bad in [
            "fuse",
            "/dev/a:rwx",
            "/dev/a:rr",
            "/dev/a:/dev/b:",
            "/dev/a:b:r",
        ] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
        for ok in ["net.core.somaxconn", "kernel.shmmax", "fs.mqueue.msg_max"] {
            assert!(check_sysctl_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "vm.swappiness",
            "kernel.pid_max",
            "net",
            "net..x",
            "net.a b",
        ] {
            assert!(check_sysctl_key(bad).is_err(), "{bad}");
        }
        assert!(check_sysctl_value("250 32000 100 128").is_ok());
        for bad in ["", " 1", "1,2", "a\"b", "tab\t", "a=b"] {
            assert!(check_sysctl_value(bad).is_err(), "{bad:?}");
        }
        assert!(parse_hostname("db.example-1.internal").is_ok());
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b"] {
            assert!(parse_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn podman_versions_are_bounded() {
        assert_eq!(parse_podman_version("5.4"), Ok(PodmanVersion::new(5, 4)));
        assert_eq!(parse_podman_version("4.9.3"), Ok(PodmanVersion::new(4, 9)));
        assert!(parse_podman_version("4.3").is_err());
        assert_eq!(parse_podman_version("6.0"), Ok(PodmanVersion::new(6, 0)));
        assert_eq!(parse_podman_version("6.1.3"), Ok(PodmanVersion::new(6, 1)));
        assert_eq!(parse_podman_version("v6.1"), Ok(PodmanVersion::new(6, 1)));
        assert!(parse_podman_version("5.9").is_err());
        assert!(parse_podman_version("4.10").is_err());
        assert!(parse_podman_version("five").is_err());
        for newer in ["6.2", "7.0", "6.2.0"] {
            let e = parse_podman_version(newer).unwrap_err();
            assert!(
                e.contains("newer than the newest") && e.contains("6.1"),
                "{e}"
            );
        }
    }
}
