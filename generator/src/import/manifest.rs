//! The manifests an import writes, as plain data, and their TOML text.
//!
//! The text is produced by `toml_edit`, never by concatenation, so any
//! compose value (quotes, newlines, `$`, `%`, non-ASCII) is written as a
//! TOML string that reads back byte for byte.

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub target: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub cmd: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<i64>,
}

/// What a container sets on one network (`{ name, aliases, ipv4, ipv6 }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    pub aliases: Vec<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

impl NetworkOptions {
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty() && self.ipv4.is_none() && self.ipv6.is_none()
    }
}

/// One app manifest, in the order its keys are written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppManifest {
    pub app: String,
    pub service: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_files: Vec<String>,
    pub secrets: Vec<SecretRef>,
    pub networks: Vec<String>,
    /// Per network of `networks`: aliases and static addresses.
    pub network_options: Vec<(String, NetworkOptions)>,
    /// `container_name`, when it is not the app's name.
    pub container_name: Option<String>,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub add_hosts: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub read_only: bool,
    pub restart: Option<&'static str>,
    pub stop_timeout: Option<String>,
    pub health: Option<Health>,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    /// `update.health_deadline`, derived from the health check.
    pub health_deadline: Option<String>,
    pub shm_size: Option<String>,
    pub security_opt: Vec<String>,
    /// name → (soft, hard), in the order given.
    pub ulimits: Vec<(String, i64, i64)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub tmpfs: Vec<String>,
    pub sysctls: Vec<(String, String)>,
    pub dns: Vec<String>,
    pub hostname: Option<String>,
    pub privileged: bool,
    pub devices: Vec<String>,
    pub init: bool,
    pub stop_signal: Option<String>,
    pub pids_limit: Option<i64>,
}

/// Sets `key` in an ordered list of pairs; a later value replaces an
/// earlier one in place (compose: the last entry wins).
pub fn set_pair(list: &mut Vec<(String, String)>, key: &str, val: String) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = val,
        None => list.push((key.to_string(), val)),
    }
}

fn strings(items: &[String]) -> Item {
    let mut a = Array::new();
    for s in items {
        a.push(s.as_str());
    }
    value(a)
}

fn string_table(pairs: &[(String, String)]) -> Table {
    let mut t = Table::new();
    for (k, v) in pairs {
        t.insert(k, value(v.as_str()));
    }
    t
}

impl AppManifest {
    /// The kernel, security and process settings of `[container]`.
    fn settings(&self, c: &mut Table) {
        if let Some(v) = &self.shm_size {
            c.insert("shm_size", value(v.as_str()));
        }
        if !self.security_opt.is_empty() {
            c.insert("security_opt", strings(&self.security_opt));
        }
        if !self.ulimits.is_empty() {
            let mut t = InlineTable::new();
            for (name, soft, hard) in &self.ulimits {
                if soft == hard {
                    t.insert(name, (*soft).into());
                } else {
                    let mut l = InlineTable::new();
                    l.insert("soft", (*soft).into());
                    l.insert("hard", (*hard).into());
                    t.insert(name, l.into());
                }
            }
            c.insert("ulimits", value(t));
        }
        for (key, list) in [("cap_add", &self.cap_add), ("cap_drop", &self.cap_drop)] {
            if !list.is_empty() {
                c.insert(key, strings(list));
            }
        }
        if !self.tmpfs.is_empty() {
            c.insert("tmpfs", strings(&self.tmpfs));
        }
        if !self.sysctls.is_empty() {
            let mut t = InlineTable::new();
            for (k, v) in &self.sysctls {
                t.insert(k, v.as_str().into());
            }
            c.insert("sysctls", value(t));
        }
        if !self.dns.is_empty() {
            c.insert("dns", strings(&self.dns));
        }
        if let Some(h) = &self.hostname {
            c.insert("hostname", value(h.as_str()));
        }
        if self.privileged {
            c.insert("privileged", value(true));
        }
        if !self.devices.is_empty() {
            c.insert("devices", strings(&self.devices));
        }
        if self.init {
            c.insert("init", value(true));
        }
        if let Some(sig) = &self.stop_signal {
            c.insert("stop_signal", value(sig.as_str()));
        }
        if let Some(n) = self.pids_limit {
            c.insert("pids_limit", value(n));
        }
    }

    pub fn to_toml(&self, header: &str) -> String {
        let mut doc = DocumentMut::new();
        let mut c = Table::new();
        c.insert("image", value(self.image.as_str()));
        if let Some(e) = &self.entrypoint {
            c.insert("entrypoint", strings(e));
        }
        if let Some(cmd) = &self.command {
            c.insert("command", strings(cmd));
        }
        if let Some(u) = &self.user {
            c.insert("user", value(u.as_str()));
        }
        if !self.ports.is_empty() {
            c.insert("ports", strings(&self.ports));
        }
        if !self.volumes.is_empty() {
            c.insert("volumes", strings(&self.volumes));
        }
        if !self.env_files.is_empty() {
            c.insert("env_files", strings(&self.env_files));
        }
        if !self.secrets.is_empty() {
            let mut a = Array::new();
            for s in &self.secrets {
                let mut t = InlineTable::new();
                t.insert("name", s.name.as_str().into());
                if let Some(target) = &s.target {
                    t.insert("target", target.as_str().into());
                }
                if let Some(mode) = &s.mode {
                    t.insert("mode", mode.as_str().into());
                }
                a.push(t);
            }
            c.insert("secrets", value(a));
        }
        if !self.networks.is_empty() {
            let mut a = Array::new();
            for n in &self.networks {
                match self
                    .network_options
                    .iter()
                    .find(|(k, o)| k == n && !o.is_empty())
                {
                    Some((_, o)) => {
                        let mut t = InlineTable::new();
                        t.insert("name", n.as_str().into());
                        if !o.aliases.is_empty() {
                            let mut al = Array::new();
                            for x in &o.aliases {
                                al.push(x.as_str());
                            }
                            t.insert("aliases", al.into());
                        }
                        if let Some(ip) = &o.ipv4 {
                            t.insert("ipv4", ip.as_str().into());
                        }
                        if let Some(ip) = &o.ipv6 {
                            t.insert("ipv6", ip.as_str().into());
                        }
                        a.push(t);
                    }
                    None => {
                        a.push(n.as_str());
                    }
                }
            }
            c.insert("networks", value(a));
        }
        if let Some(n) = &self.container_name {
            c.insert("container_name", value(n.as_str()));
        }
        if let Some(m) = &self.memory {
            c.insert("memory", value(m.as_str()));
        }
        if let Some(x) = self.cpus {
            c.insert("cpus", value(x));
        }
        if !self.add_hosts.is_empty() {
            c.insert("add_hosts", strings(&self.add_hosts));
        }
        if self.read_only {
            c.insert("read_only", value(true));
        }
        if let Some(r) = self.restart {
            c.insert("restart", value(r));
        }
        if let Some(t) = &self.stop_timeout {
            c.insert("stop_timeout", value(t.as_str()));
        }
        self.settings(&mut c);
        if !self.env.is_empty() {
            c.insert("env", Item::Table(string_table(&self.env)));
        }
        if !self.labels.is_empty() {
            c.insert("labels", Item::Table(string_table(&self.labels)));
        }
        doc.insert("container", Item::Table(c));
        if let Some(h) = &self.health {
            let mut t = Table::new();
            t.insert("cmd", strings(&h.cmd));
            if let Some(v) = &h.interval {
                t.insert("interval", value(v.as_str()));
            }
            if let Some(v) = &h.timeout {
                t.insert("timeout", value(v.as_str()));
            }
            if let Some(v) = &h.start_period {
                t.insert("start_period", value(v.as_str()));
            }
            if let Some(r) = h.retries {
                t.insert("retries", value(r));
            }
            doc.insert("health", Item::Table(t));
        }
        if !self.requires.is_empty() || !self.wants.is_empty() {
            let mut t = Table::new();
            if !self.requires.is_empty() {
                t.insert("requires", strings(&self.requires));
            }
            if !self.wants.is_empty() {
                t.insert("wants", strings(&self.wants));
            }
            doc.insert("depends", Item::Table(t));
        }
        if let Some(d) = &self.health_deadline {
            let mut t = Table::new();
            t.insert("health_deadline", value(d.as_str()));
            doc.insert("update", Item::Table(t));
        }
        let mut text = String::new();
        for line in header.lines() {
            text.push_str("# ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&doc.to_string());
        text
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkDef {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub ipv6: bool,
    pub driver: Option<String>,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeDef {
    pub driver: Option<String>,
    pub labels: Vec<(String, String)>,
}

fn network_table(n: &NetworkDef) -> Table {
    let mut t = Table::new();
    if let Some(s) = &n.subnet {
        t.insert("subnet", value(s.as_str()));
    }
    if let Some(g) = &n.gateway {
        t.insert("gateway", value(g.as_str()));
    }
    if n.internal {
        t.insert("internal", value(true));
    }
    if n.ipv6 {
        t.insert("ipv6", value(true));
    }
    if let Some(d) = &n.driver {
        t.insert("driver", value(d.as_str()));
    }
    insert_labels(&mut t, &n.labels);
    t
}

fn insert_labels(t: &mut Table, labels: &[(String, String)]) {
    if !labels.is_empty() {
        let mut l = InlineTable::new();
        for (k, v) in labels {
            l.insert(k, v.as_str().into());
        }
        t.insert("labels", value(l));
    }
}

fn volume_table(v: &VolumeDef) -> Table {
    let mut t = Table::new();
    if let Some(d) = &v.driver {
        t.insert("driver", value(d.as_str()));
    }
    insert_labels(&mut t, &v.labels);
    t
}

/// Adds the networks and volumes to `windlass.toml` (`existing` is its
/// current text, if any; comments and order are kept). A name already
/// declared is left as it is; returns those names.
pub fn merge_fleet_file(
    existing: Option<&str>,
    header: &str,
    networks: &[(String, NetworkDef)],
    volumes: &[(String, VolumeDef)],
) -> Result<(String, Vec<String>), String> {
    let mut doc: DocumentMut = match existing {
        Some(text) => text
            .parse()
            .map_err(|e| format!("windlass.toml: cannot parse it to add to it: {e}"))?,
        None => DocumentMut::new(),
    };
    let mut kept = Vec::new();
    for (section, entries) in [
        (
            "networks",
            networks
                .iter()
                .map(|(n, d)| (n, network_table(d)))
                .collect::<Vec<_>>(),
        ),
        (
            "volumes",
            volumes
                .iter()
                .map(|(n, d)| (n, volume_table(d)))
                .collect::<Vec<_>>(),
        ),
    ] {
        if entries.is_empty() {
            continue;
        }
        if doc.get(section).is_none() {
            let mut t = Table::new();
            t.set_implicit(true);
            doc.insert(section, Item::Table(t));
        }
        let Some(sect) = doc.get_mut(section).and_then(Item::as_table_mut) else {
            return Err(format!("windlass.toml: `{section}` is not a table"));
        };
        for (name, table) in entries {
            if sect.contains_key(name) {
                kept.push(format!("{section}.{name}"));
            } else {
                sect.insert(name, Item::Table(table));
            }
        }
    }
    let mut text = String::new();
    if existing.is_none() {
        for line in header.lines() {
            text.push_str("# ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
    }
    text.push_str(&doc.to_string());
    Ok((text, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_string_round_trips_through_the_toml_text() {
        let nasty = [
            "plain",
            "quote \" and ' and \\",
            "line1\nline2\r\n\ttab",
            "$HOME ${X:-y} $$ %n %%",
            "ünïcødé ✓ 中文 😀",
            "'''triple''' \"\"\"double\"\"\"",
            "\u{1}\u{7f}",
            "  padded  ",
            "",
        ];
        let m = AppManifest {
            app: "a".into(),
            service: "a".into(),
            image: "docker.io/library/busybox:1.36".into(),
            command: Some(nasty.iter().map(|s| s.to_string()).collect()),
            env: nasty
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("V{i}"), s.to_string()))
                .collect(),
            labels: vec![("k \"q\" ✓".into(), nasty[2].into())],
            ..AppManifest::default()
        };
        let text = m.to_toml("header");
        let doc: DocumentMut = text.parse().unwrap();
        let cmd: Vec<&str> = doc["container"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(cmd, nasty);
        for (i, s) in nasty.iter().enumerate() {
            assert_eq!(doc["container"]["env"][&format!("V{i}")].as_str(), Some(*s));
        }
        assert_eq!(
            doc["container"]["labels"]["k \"q\" ✓"].as_str(),
            Some(nasty[2])
        );
    }

    #[test]
    fn existing_fleet_files_keep_their_comments_and_entries() {
        let existing = "# mine\n[networks.a]\nsubnet = \"10.0.0.0/24\" # keep\n";
        let (text, kept) = merge_fleet_file(
            Some(existing),
            "h",
            &[
                ("a".into(), NetworkDef::default()),
                ("b".into(), NetworkDef::default()),
            ],
            &[("v".into(), VolumeDef::default())],
        )
        .unwrap();
        assert!(text.starts_with("# mine\n[networks.a]\nsubnet = \"10.0.0.0/24\" # keep\n"));
        assert!(text.contains("[networks.b]"));
        assert!(text.contains("[volumes.v]"));
        assert_eq!(kept, vec!["networks.a".to_string()]);
    }
}
