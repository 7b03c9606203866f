//! `windlass import quadlet DIR`: hand-written Quadlet units (`.container`,
//! `.volume`, `.network`) → app manifests plus `windlass.toml`, and a report
//! line (file, line, section, key) for every setting that did not carry
//! over unchanged.
//!
//! Values are read as Quadlet reads them (see [`unit_syntax`]) and then as
//! systemd reads the `ExecStart=` Quadlet writes: `%%` and `$$` become `%`
//! and `$`; a value with any other specifier (`%h`) or a variable reference
//! (`${X}`) is decided on the host at run time and is not carried.
//!
//! Named after the resources Podman creates, so an adopted app keeps its
//! data: `data.volume` without `VolumeName=` is the Podman volume
//! `systemd-data`, and becomes `[volumes.systemd-data]` (likewise networks).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::ImportError;
use super::adopt::{
    AdoptReport, Adopted, AdoptedApp, Extra, UnitResult, valid_description, valid_user,
};
use super::convert;
use super::manifest::{AppManifest, Health, NetworkDef, SecretRef, VolumeDef, set_pair};
use super::report::Action;
use super::unit_syntax::{
    Setting, UnitFile, parse, parse_bool, resolve_exec, resolve_text, split_words, unquote_whole,
};
use crate::model::values::{
    ULIMITS, Ulimit, check_label_key, check_path, check_sysctl_key, check_sysctl_value,
    is_dns_name, is_env_key, is_object_name, parse_add_host, parse_capability, parse_device,
    parse_hostname, parse_port, parse_security_opt, parse_signal, parse_tmpfs,
};

pub const HEADER_APP: &str = "Imported by `windlass import quadlet` from the unit `{unit}`.\nWhat did not carry over is in the import report (stderr, or --report FILE).";

/// Keys Quadlet knows in `[Container]` (Podman 5.x); any other key makes
/// Quadlet refuse the unit.
const CONTAINER_KEYS: &[&str] = &[
    "AddCapability",
    "AddDevice",
    "AddHost",
    "Annotation",
    "AutoUpdate",
    "CgroupsMode",
    "ContainerName",
    "ContainersConfModule",
    "DNS",
    "DNSOption",
    "DNSSearch",
    "DropCapability",
    "Entrypoint",
    "Environment",
    "EnvironmentFile",
    "EnvironmentHost",
    "Exec",
    "ExposeHostPort",
    "GIDMap",
    "GlobalArgs",
    "Group",
    "GroupAdd",
    "HealthCmd",
    "HealthInterval",
    "HealthLogDestination",
    "HealthMaxLogCount",
    "HealthMaxLogSize",
    "HealthOnFailure",
    "HealthRetries",
    "HealthStartPeriod",
    "HealthStartupCmd",
    "HealthStartupInterval",
    "HealthStartupRetries",
    "HealthStartupSuccess",
    "HealthStartupTimeout",
    "HealthTimeout",
    "HostName",
    "IP",
    "IP6",
    "Image",
    "Label",
    "LogDriver",
    "LogOpt",
    "Mask",
    "Memory",
    "Mount",
    "Network",
    "NetworkAlias",
    "NoNewPrivileges",
    "Notify",
    "PidsLimit",
    "Pod",
    "PodmanArgs",
    "PublishPort",
    "Pull",
    "ReadOnly",
    "ReadOnlyTmpfs",
    "ReloadCmd",
    "ReloadSignal",
    "RemapGid",
    "RemapUid",
    "RemapUidSize",
    "RemapUsers",
    "Retry",
    "RetryDelay",
    "Rootfs",
    "RunInit",
    "SeccompProfile",
    "Secret",
    "SecurityLabelDisable",
    "SecurityLabelFileType",
    "SecurityLabelLevel",
    "SecurityLabelNested",
    "SecurityLabelType",
    "ServiceName",
    "ShmSize",
    "StartWithPod",
    "StopSignal",
    "StopTimeout",
    "SubGIDMap",
    "SubUIDMap",
    "Sysctl",
    "Timezone",
    "Tmpfs",
    "UIDMap",
    "Ulimit",
    "Unmask",
    "User",
    "UserNS",
    "VolatileTmp",
    "Volume",
    "WorkingDir",
];

/// The dependency keys of `[Unit]` that can name another container.
const DEPENDENCY_KEYS: &[&str] = &["Requires", "Wants", "BindsTo", "Requisite", "After"];

/// Reads every unit of `dir` and maps it. Writes nothing.
pub fn import(dir: &Path) -> Result<Adopted, ImportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { path, source }
    };
    let mut report = AdoptReport::new("quadlet");
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        names.push((name, p));
    }
    names.sort();
    let abs_dir = std::path::absolute(dir).map_err(io(dir))?;
    let mut units: Vec<(String, UnitFile)> = Vec::new();
    for (name, p) in &names {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if p.is_dir() {
            let why = if name.ends_with(".d") {
                "drop-in directories are not read: merge their settings into the unit first"
            } else {
                "a directory; Quadlet units are read from DIR only, not from subdirectories"
            };
            report.push(name, None, None, None, Action::Dropped, why);
            continue;
        }
        match ext {
            "container" | "volume" | "network" if name.contains('@') => report.push(
                name,
                None,
                None,
                None,
                Action::Dropped,
                "template units (`name@.container`, instances) have no windlass equivalent",
            ),
            "container" | "volume" | "network" => {
                let text = fs::read_to_string(p).map_err(io(p))?;
                let unit = parse(&text).map_err(|e| ImportError::Compose {
                    path: PathBuf::from(format!("{}:{}", p.display(), e.line)),
                    message: e.message,
                })?;
                units.push((name.clone(), unit));
            }
            "pod" | "kube" | "image" | "build" | "artifact" => report.push(
                name,
                None,
                None,
                None,
                Action::Dropped,
                format!("`.{ext}` units have no windlass equivalent"),
            ),
            _ => report.push(
                name,
                None,
                None,
                None,
                Action::Ignored,
                "not a .container, .volume or .network unit",
            ),
        }
    }
    let containers: Vec<&(String, UnitFile)> = units
        .iter()
        .filter(|(n, _)| n.ends_with(".container"))
        .collect();
    if containers.is_empty() {
        return Err(ImportError::Compose {
            path: dir.to_path_buf(),
            message: "no .container unit to import".into(),
        });
    }

    // Volumes and networks first: the names containers refer to.
    let mut volume_units = BTreeMap::new();
    let mut network_units = BTreeMap::new();
    let mut volumes: Vec<(String, VolumeDef)> = Vec::new();
    let mut networks: Vec<(String, NetworkDef)> = Vec::new();
    for (name, unit) in &units {
        if let Some(stem) = name.strip_suffix(".volume") {
            let mut u = Unit::new(name, unit, &mut report);
            if let Some((n, def)) = u.volume(stem) {
                volume_units.insert(name.clone(), n.clone());
                volumes.push((n, def));
            }
            u.finish("Volume");
        } else if let Some(stem) = name.strip_suffix(".network") {
            let mut u = Unit::new(name, unit, &mut report);
            if let Some((n, def)) = u.network(stem) {
                network_units.insert(name.clone(), n.clone());
                networks.push((n, def));
            }
            u.finish("Network");
        }
    }

    // App names: the unit's stem, as the compose import names services.
    let mut apps = BTreeMap::new();
    let mut by_app: BTreeMap<String, String> = BTreeMap::new();
    let mut name_errors = Vec::new();
    for (name, unit) in &containers {
        let stem = name.trim_end_matches(".container");
        match convert::app_name(stem) {
            Ok(app) => {
                if let Some(prev) = by_app.insert(app.clone(), name.clone()) {
                    name_errors.push(format!(
                        "{prev} and {name} would both become the app `{app}`; rename one"
                    ));
                }
                // Other units name it by its file or by its service.
                apps.insert(name.clone(), app.clone());
                let service = unit
                    .indices("Container", "ServiceName")
                    .last()
                    .map(|&i| unit.settings[i].value.clone())
                    .unwrap_or_else(|| stem.to_string());
                apps.insert(format!("{service}.service"), app);
            }
            Err(e) => name_errors.push(format!("{name}: the unit name {e}")),
        }
    }
    if !name_errors.is_empty() {
        return Err(ImportError::Names(name_errors.join("\n")));
    }

    let ctx = Refs {
        dir: abs_dir,
        apps,
        volume_units,
        network_units,
    };
    let mut out_apps = Vec::new();
    for (name, unit) in &containers {
        let mut u = Unit::new(name, unit, &mut report);
        let mapped = u.container(&ctx);
        u.finish("Container");
        match mapped {
            Some((app, uses)) => {
                for v in uses.volumes {
                    if !volumes.iter().any(|(n, _)| *n == v) {
                        volumes.push((v, VolumeDef::default()));
                    }
                }
                for n in uses.networks {
                    if !networks.iter().any(|(x, _)| *x == n) {
                        networks.push((n, NetworkDef::default()));
                    }
                }
                report.units.push(UnitResult {
                    file: name.clone(),
                    app: Some(app.manifest.app.clone()),
                    manifest: Some(format!("{}.toml", app.manifest.app)),
                });
                out_apps.push(app);
            }
            None => report.units.push(UnitResult {
                file: name.clone(),
                app: None,
                manifest: None,
            }),
        }
    }
    // A dependency on a container that was not imported cannot stay.
    let imported: BTreeSet<String> = out_apps.iter().map(|a| a.manifest.app.clone()).collect();
    for a in &mut out_apps {
        let m = &mut a.manifest;
        for (key, list) in [("Requires", &mut m.requires), ("Wants", &mut m.wants)] {
            for gone in list.iter().filter(|d| !imported.contains(*d)) {
                report.push(
                    &m.service,
                    None,
                    Some("Unit"),
                    Some(key),
                    Action::Dropped,
                    format!("`{gone}` was not imported, so the dependency on it is not carried"),
                );
            }
            list.retain(|d| imported.contains(d));
        }
    }
    if out_apps.is_empty() {
        return Err(ImportError::Compose {
            path: dir.to_path_buf(),
            message: "no container could be imported (each needs an `Image=`; see the report)"
                .into(),
        });
    }
    // By file, then by line (a stable sort: a setting's entries keep their order).
    report
        .entries
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(Adopted {
        source: format!("the Quadlet directory {}", dir.display()),
        apps: out_apps,
        networks,
        volumes,
        report,
    })
}

/// What a container may refer to.
struct Refs {
    dir: PathBuf,
    /// `x.container` and `x.service` → app name.
    apps: BTreeMap<String, String>,
    /// `x.volume` → Podman volume name.
    volume_units: BTreeMap<String, String>,
    /// `x.network` → Podman network name.
    network_units: BTreeMap<String, String>,
}

#[derive(Default)]
struct Uses {
    volumes: Vec<String>,
    networks: Vec<String>,
}

/// One unit being mapped: which of its settings are accounted for.
struct Unit<'a> {
    file: &'a str,
    unit: &'a UnitFile,
    done: Vec<bool>,
    report: &'a mut AdoptReport,
}

impl<'a> Unit<'a> {
    fn new(file: &'a str, unit: &'a UnitFile, report: &'a mut AdoptReport) -> Self {
        Unit {
            file,
            unit,
            done: vec![false; unit.settings.len()],
            report,
        }
    }

    fn note(&mut self, i: usize, action: Action, reason: impl Into<String>) {
        let s = &self.unit.settings[i];
        self.done[i] = true;
        self.report.push(
            self.file,
            Some(s.line),
            Some(&s.section),
            Some(&s.key),
            action,
            reason,
        );
    }

    /// The last `section.key` (as Quadlet and systemd read single-valued
    /// keys); earlier ones are reported as overridden.
    fn last(&mut self, section: &str, key: &str) -> Option<(usize, &'a Setting)> {
        let idx = self.unit.indices(section, key);
        let (&last, earlier) = idx.split_last()?;
        let line = self.unit.settings[last].line;
        for &i in earlier {
            self.note(i, Action::Ignored, format!("overridden by line {line}"));
        }
        self.done[last] = true;
        let unit = self.unit;
        if unit.settings[last].value.is_empty() {
            if section == "Container" && key == "Entrypoint" {
                // Podman commit 7f37fbd6af (5.8.2, 6.0).
                self.note(last, Action::Dropped, "empty: Quadlet before 5.8.2 ignores it (the image's entrypoint runs, as imported), 5.8.2 and later clear the image's entrypoint, which a manifest cannot say");
                return None;
            }
            // Quadlet and systemd read an empty single value as unset.
            self.note(last, Action::Ignored, "empty: the key is unset");
            return None;
        }
        Some((last, &unit.settings[last]))
    }

    /// Every `section.key` after the last empty one (an empty assignment
    /// clears the list, as in Quadlet); the cleared ones are reported.
    fn all(&mut self, section: &str, key: &str) -> Vec<(usize, &'a Setting)> {
        let unit = self.unit;
        let idx = self.unit.indices(section, key);
        let reset = idx
            .iter()
            .rposition(|&i| self.unit.settings[i].value.is_empty());
        let mut out = Vec::new();
        for (pos, &i) in idx.iter().enumerate() {
            match reset {
                Some(r) if pos < r => {
                    let line = self.unit.settings[idx[r]].line;
                    self.note(
                        i,
                        Action::Ignored,
                        format!("cleared by the empty `{key}=` at line {line}"),
                    );
                }
                Some(r) if pos == r => self.done[i] = true,
                _ => {
                    self.done[i] = true;
                    out.push((i, &unit.settings[i]));
                }
            }
        }
        out
    }

    /// A value Quadlet passes whole into `ExecStart=`, as the container
    /// receives it; `None` (reported) when it is decided at run time.
    fn whole(&mut self, i: usize) -> Option<String> {
        self.value(i, true)
    }

    /// A value of a list key (`PublishPort=`, `Volume=`, `Network=`,
    /// `AddHost=`): Quadlet's `LookupAll` keeps quotes as they are.
    fn item(&mut self, i: usize) -> Option<String> {
        self.value(i, false)
    }

    fn value(&mut self, i: usize, strip_quotes: bool) -> Option<String> {
        let raw = &self.unit.settings[i].value;
        let (v, quoted) = if strip_quotes {
            unquote_whole(raw)
        } else {
            (raw.as_str(), false)
        };
        let v = v.to_string();
        match resolve_exec(&v) {
            Ok(r) => {
                if quoted {
                    self.note(
                        i,
                        Action::Changed,
                        "surrounding double quotes removed (as Quadlet 5.8.2+ does; 5.0 to 5.8.1 remove every quote at either end, 4.x none)",
                    );
                }
                Some(r)
            }
            Err(e) => {
                self.note(i, Action::Dropped, e);
                None
            }
        }
    }

    /// A value Quadlet splits into words, each as the container receives it.
    fn words(&mut self, i: usize) -> Option<Vec<String>> {
        let v = self.unit.settings[i].value.clone();
        let words = match split_words(&v) {
            Ok(w) => w,
            Err(e) => {
                self.note(
                    i,
                    Action::Dropped,
                    format!("cannot be split into words: {e}"),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for w in words {
            match resolve_exec(&w) {
                Ok(r) => out.push(r),
                Err(e) => {
                    self.note(i, Action::Dropped, e);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Reports every setting not yet accounted for.
    fn finish(mut self, kind: &str) {
        let known_sections = ["Unit", kind, "Service", "Install", "Quadlet"];
        let sections = self.unit.sections.clone();
        let mut said = BTreeSet::new();
        for (s, line) in &sections {
            if !known_sections.contains(&s.as_str()) && said.insert(s.clone()) {
                self.report.push(
                    self.file,
                    Some(*line),
                    Some(s),
                    None,
                    Action::Dropped,
                    format!("unknown section [{s}]: none of its settings are carried"),
                );
            }
        }
        let unit = self.unit;
        for i in 0..unit.settings.len() {
            if self.done[i] {
                continue;
            }
            let s = &unit.settings[i];
            let why = match s.section.as_str() {
                "Container" if kind == "Container" && !CONTAINER_KEYS.contains(&s.key.as_str()) => {
                    "not a Quadlet key (Quadlet refuses the unit because of it)".to_string()
                }
                sec if sec == kind => "no windlass equivalent".to_string(),
                "Install"
                    if s.key == "WantedBy"
                        && s.value
                            .split_whitespace()
                            .all(|t| t == "multi-user.target" || t == "default.target") =>
                {
                    self.note(
                        i,
                        Action::Ignored,
                        "windlass units are wanted by multi-user.target and default.target",
                    );
                    continue;
                }
                "Unit" | "Service" | "Install" | "Quadlet" => {
                    format!("no windlass equivalent in [{}]", s.section)
                }
                other => format!("in the unknown section [{other}]"),
            };
            self.note(i, Action::Dropped, why);
        }
    }

    fn volume(&mut self, stem: &str) -> Option<(String, VolumeDef)> {
        let name = match self.last("Volume", "VolumeName") {
            Some((i, _)) => self.whole(i),
            None => Some(format!("systemd-{stem}")),
        }?;
        if !is_object_name(&name) {
            self.report.push(
                self.file,
                None,
                None,
                None,
                Action::Dropped,
                format!("the volume name `{name}` is not a Podman object name; not declared"),
            );
            return None;
        }
        let mut def = VolumeDef::default();
        if let Some((i, _)) = self.last("Volume", "Driver")
            && let Some(d) = self.whole(i)
        {
            if d == "local" {
            } else if is_object_name(&d) && d != "image" {
                def.driver = Some(d);
            } else {
                self.note(
                    i,
                    Action::Dropped,
                    format!("`{d}` is not a volume driver windlass can declare"),
                );
            }
        }
        def.labels = self.labels("Volume");
        Some((name, def))
    }

    fn network(&mut self, stem: &str) -> Option<(String, NetworkDef)> {
        let name = match self.last("Network", "NetworkName") {
            Some((i, _)) => self.whole(i),
            None => Some(format!("systemd-{stem}")),
        }?;
        if !is_object_name(&name) || matches!(name.as_str(), "host" | "none" | "private") {
            self.report.push(
                self.file,
                None,
                None,
                None,
                Action::Dropped,
                format!("the network name `{name}` cannot be declared in windlass.toml"),
            );
            return None;
        }
        let mut def = NetworkDef::default();
        if let Some((i, _)) = self.last("Network", "Driver")
            && let Some(d) = self.whole(i)
        {
            match d.as_str() {
                "bridge" => {}
                "macvlan" | "ipvlan" => def.driver = Some(d),
                _ => self.note(
                    i,
                    Action::Dropped,
                    format!("driver `{d}`: windlass declares bridge, macvlan or ipvlan networks"),
                ),
            }
        }
        for (key, slot) in [("Subnet", &mut def.subnet), ("Gateway", &mut def.gateway)] {
            let all = self.all("Network", key);
            for (n, (i, _)) in all.into_iter().enumerate() {
                if n > 0 {
                    self.note(
                        i,
                        Action::Dropped,
                        format!("windlass networks take one {key}"),
                    );
                } else if let Some(v) = self.item(i) {
                    *slot = Some(v);
                }
            }
        }
        for (key, slot) in [("Internal", &mut def.internal), ("IPv6", &mut def.ipv6)] {
            if let Some((i, s)) = self.last("Network", key) {
                match parse_bool(&s.value) {
                    Some(b) => *slot = b,
                    None => self.note(i, Action::Dropped, "not a boolean"),
                }
            }
        }
        def.labels = self.labels("Network");
        Some((name, def))
    }

    /// `Label=` pairs (a label without `=` gets an empty value, as Podman
    /// gives it).
    fn labels(&mut self, section: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, _) in self.all(section, "Label") {
            let Some(words) = self.words(i) else { continue };
            for w in words {
                let (k, v) = match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => {
                        self.note(
                            i,
                            Action::Changed,
                            format!("label `{w}` without a value: carried with an empty value"),
                        );
                        (w.clone(), String::new())
                    }
                };
                if let Err(e) = check_label_key(&k) {
                    self.note(i, Action::Dropped, format!("label `{k}`: {e}"));
                } else if k.starts_with("io.windlass.") {
                    self.note(
                        i,
                        Action::Dropped,
                        format!("label `{k}`: io.windlass.* labels are windlass's own"),
                    );
                } else {
                    set_pair(&mut out, &k, v);
                }
            }
        }
        out
    }

    fn container(&mut self, refs: &Refs) -> Option<(AdoptedApp, Uses)> {
        let app = refs.apps.get(self.file).cloned()?;
        let mut m = AppManifest {
            app: app.clone(),
            service: self.file.to_string(),
            ..AppManifest::default()
        };
        let mut extra = Extra::default();
        let mut uses = Uses::default();

        if let Some((i, _)) = self.last("Container", "Rootfs") {
            self.note(
                i,
                Action::Dropped,
                "the container is not imported: windlass runs images, not a root file system",
            );
            return None;
        }
        let Some((i, _)) = self.last("Container", "Image") else {
            self.report.push(
                self.file,
                None,
                Some("Container"),
                Some("Image"),
                Action::Dropped,
                "the container is not imported: it has no Image=",
            );
            return None;
        };
        let image = self.whole(i)?;
        if image.ends_with(".image") || image.ends_with(".build") {
            self.note(i, Action::Dropped, "the container is not imported: its image comes from a .image/.build unit, which windlass has no equivalent for");
            return None;
        }
        match convert::normalize_image(&image) {
            Ok((full, changed)) => {
                if changed {
                    self.note(i, Action::Changed, format!("normalised to `{full}` (Podman may resolve a short name through its registries.conf instead)"));
                }
                m.image = full;
            }
            Err(e) => {
                self.note(
                    i,
                    Action::Dropped,
                    format!("the container is not imported: its image is not usable: {e}"),
                );
                return None;
            }
        }
        if let Some((i, _)) = self.last("Container", "ContainerName")
            && let Some(n) = self.whole(i)
            && n != app
        {
            if is_object_name(&n) && !refs.apps.values().any(|a| *a == n) {
                m.container_name = Some(n);
            } else {
                self.note(
                    i,
                    Action::Changed,
                    format!(
                        "the container is named `{app}` (after the app), not `{n}` (not a container name, or another app's)"
                    ),
                );
            }
        }
        if let Some((i, _)) = self.last("Container", "ServiceName") {
            self.note(i, Action::Changed, format!("the unit is `{app}.service`"));
        }
        if let Some((i, _)) = self.last("Container", "Exec") {
            m.command = self.words(i).filter(|w| !w.is_empty());
        }
        if let Some((i, _)) = self.last("Container", "Entrypoint")
            && let Some(v) = self.whole(i)
        {
            match serde_json::from_str::<Vec<String>>(&v) {
                Ok(a) if a.iter().any(|w| w.contains('\0')) => {
                    self.note(i, Action::Dropped, "a NUL character cannot be carried");
                }
                Ok(a) if a.is_empty() => {
                    self.note(i, Action::Dropped, "`[]` clears the image's entrypoint (podman runs the command alone), which a manifest cannot say: the image's entrypoint would run");
                }
                Ok(a) => m.entrypoint = Some(a),
                Err(_) => m.entrypoint = Some(vec![v]),
            }
        }
        self.user(&mut m);
        self.ports_and_volumes(refs, &mut m, &mut uses);
        self.environment(refs, &mut m);
        self.networks(refs, &mut m, &mut uses);
        m.labels = self.labels("Container");
        self.health(&mut m);
        self.misc(&mut m, &mut extra);
        self.settings(&mut m);
        self.unit_section(refs, &mut m, &mut extra);
        Some((AdoptedApp { manifest: m, extra }, uses))
    }

    fn user(&mut self, m: &mut AppManifest) {
        let user = self
            .last("Container", "User")
            .and_then(|(i, _)| self.whole(i).map(|u| (i, u)));
        let group = self
            .last("Container", "Group")
            .and_then(|(i, _)| self.whole(i).map(|g| (i, g)));
        let user_and_group = match (user, group) {
            (Some((i, u)), None) => Some((i, u)),
            (Some((i, u)), Some((_, g))) => Some((i, format!("{u}:{g}"))),
            (None, Some((i, _))) => {
                self.note(
                    i,
                    Action::Dropped,
                    "Group= without User= (Quadlet refuses it)",
                );
                None
            }
            (None, None) => None,
        };
        if let Some((i, u)) = user_and_group {
            if valid_user(&u) {
                m.user = Some(u);
            } else {
                self.note(
                    i,
                    Action::Dropped,
                    format!("`{u}` is not `uid[:gid]` or a user name windlass accepts"),
                );
            }
        }
    }

    fn ports_and_volumes(&mut self, refs: &Refs, m: &mut AppManifest, uses: &mut Uses) {
        for (i, _) in self.all("Container", "PublishPort") {
            let Some(v) = self.item(i) else { continue };
            match parse_port(&v) {
                Ok(p) => m.ports.push(p.to_string()),
                Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
            }
        }
        for (i, _) in self.all("Container", "Volume") {
            let Some(v) = self.item(i) else { continue };
            let parts: Vec<&str> = v.splitn(3, ':').collect();
            if parts.len() < 2 || parts[0].is_empty() {
                self.note(
                    i,
                    Action::Dropped,
                    "an anonymous volume (no source) has no windlass equivalent",
                );
                continue;
            }
            let (src, target) = (parts[0], parts[1]);
            let mut ro = false;
            let mut relabel = None;
            let mut dropped_opts = Vec::new();
            for o in parts
                .get(2)
                .map(|o| o.split(',').collect::<Vec<_>>())
                .unwrap_or_default()
            {
                match o {
                    "ro" => ro = true,
                    "rw" | "" => {}
                    "z" | "Z" => relabel = Some(o),
                    o => dropped_opts.push(o.to_string()),
                }
            }
            let source = if src.starts_with('/') || src.starts_with('.') {
                let abs = if src.starts_with('.') {
                    super::service::normalize(&refs.dir.join(src))
                        .to_string_lossy()
                        .into_owned()
                } else {
                    src.to_string()
                };
                if let Err(e) = check_path(&abs) {
                    self.note(i, Action::Dropped, format!("host path `{abs}`: {e}"));
                    continue;
                }
                if abs != src {
                    self.note(i, Action::Changed, format!("the relative host path `{src}` is `{abs}` (relative to the unit's directory, as Quadlet resolves it)"));
                }
                abs
            } else if src.ends_with(".volume") {
                match refs.volume_units.get(src) {
                    Some(n) => {
                        if !uses.volumes.contains(n) {
                            uses.volumes.push(n.clone());
                        }
                        n.clone()
                    }
                    None => {
                        self.note(i, Action::Dropped, format!("`{src}` is not a .volume unit of this directory (or was not imported)"));
                        continue;
                    }
                }
            } else if is_object_name(src) {
                if !uses.volumes.contains(&src.to_string()) {
                    uses.volumes.push(src.to_string());
                }
                src.to_string()
            } else {
                self.note(
                    i,
                    Action::Dropped,
                    format!("`{src}` is neither a volume name nor a host path"),
                );
                continue;
            };
            if let Err(e) = check_path(target) {
                self.note(
                    i,
                    Action::Dropped,
                    format!("container path `{target}`: {e}"),
                );
                continue;
            }
            if !dropped_opts.is_empty() {
                self.note(
                    i,
                    Action::Dropped,
                    format!(
                        "mount options {} are not carried (the mount is, without them)",
                        dropped_opts.join(",")
                    ),
                );
            }
            let opts: Vec<&str> = ro.then_some("ro").into_iter().chain(relabel).collect();
            m.volumes.push(if opts.is_empty() {
                format!("{source}:{target}")
            } else {
                format!("{source}:{target}:{}", opts.join(","))
            });
        }
    }

    fn environment(&mut self, refs: &Refs, m: &mut AppManifest) {
        for (i, _) in self.all("Container", "Environment") {
            let Some(words) = self.words(i) else { continue };
            for w in words {
                match w.split_once('=') {
                    Some((k, v)) if is_env_key(k) => set_pair(&mut m.env, k, v.to_string()),
                    Some((k, _)) => self.note(i, Action::Dropped, format!("`{k}` is not a variable name windlass accepts")),
                    None => self.note(i, Action::Dropped, format!("`{w}` without a value passes the host's variable, which a manifest cannot")),
                }
            }
        }
        for (i, _) in self.all("Container", "EnvironmentFile") {
            let Some(words) = self.words(i) else { continue };
            for f in words {
                let abs = if f.starts_with('/') {
                    f.clone()
                } else {
                    super::service::normalize(&refs.dir.join(&f))
                        .to_string_lossy()
                        .into_owned()
                };
                match check_path(&abs) {
                    Ok(()) => m.env_files.push(abs),
                    Err(e) => self.note(i, Action::Dropped, format!("`{abs}`: {e}")),
                }
            }
        }
        for (i, _) in self.all("Container", "Secret") {
            let Some(words) = self.words(i) else { continue };
            for w in words {
                match secret(&w) {
                    Ok((s, lost)) => {
                        if !lost.is_empty() {
                            self.note(
                                i,
                                Action::Dropped,
                                format!("secret `{}`: {} not carried", s.name, lost.join(", ")),
                            );
                        }
                        m.secrets.push(s);
                    }
                    Err(e) => self.note(i, Action::Dropped, e),
                }
            }
        }
    }

    fn networks(&mut self, refs: &Refs, m: &mut AppManifest, uses: &mut Uses) {
        for (i, _) in self.all("Container", "Network") {
            let Some(v) = self.item(i) else { continue };
            let (name, opts) = match v.split_once(':') {
                Some((n, o)) => (n.to_string(), Some(o.to_string())),
                None => (v.clone(), None),
            };
            let net = if name.ends_with(".network") {
                match refs.network_units.get(&name) {
                    Some(n) => n.clone(),
                    None => {
                        self.note(i, Action::Dropped, format!("`{name}` is not a .network unit of this directory (or was not imported)"));
                        continue;
                    }
                }
            } else if name == "host" {
                "host".to_string()
            } else if matches!(
                name.as_str(),
                "none" | "private" | "bridge" | "slirp4netns" | "pasta" | "container" | "ns"
            ) || name.ends_with(".container")
            {
                self.note(
                    i,
                    Action::Dropped,
                    format!("the network mode `{v}` has no windlass equivalent"),
                );
                continue;
            } else if is_object_name(&name) {
                self.note(i, Action::Changed, format!("the existing Podman network `{name}` is declared in windlass.toml (created if missing)"));
                name.clone()
            } else {
                self.note(
                    i,
                    Action::Dropped,
                    format!("`{name}` is not a network name"),
                );
                continue;
            };
            if let Some(o) = opts {
                // Aliases are carried; an address would need the
                // network's subnet to be checked, so it is not.
                let mut rest = Vec::new();
                for opt in o.split(',') {
                    match opt.split_once('=') {
                        Some(("alias", a)) if is_dns_name(a) && net != "host" => {
                            let list = match m.network_options.iter().position(|(k, _)| *k == net) {
                                Some(j) => &mut m.network_options[j].1.aliases,
                                None => {
                                    m.network_options.push((net.clone(), Default::default()));
                                    &mut m.network_options.last_mut().unwrap().1.aliases
                                }
                            };
                            if !list.iter().any(|x| x == a) {
                                list.push(a.to_string());
                            }
                        }
                        _ => rest.push(opt),
                    }
                }
                if !rest.is_empty() {
                    self.note(
                        i,
                        Action::Dropped,
                        format!(
                            "network options `{}` are not carried (the network and its aliases are)",
                            rest.join(",")
                        ),
                    );
                }
            }
            if net != "host" && !uses.networks.contains(&net) {
                uses.networks.push(net.clone());
            }
            if !m.networks.contains(&net) {
                m.networks.push(net);
            }
        }
    }

    fn health(&mut self, m: &mut AppManifest) {
        let mut h = Health::default();
        if let Some((i, _)) = self.last("Container", "HealthCmd")
            && let Some(v) = self.whole(i)
        {
            if v.eq_ignore_ascii_case("none") {
                self.note(
                    i,
                    Action::Dropped,
                    "disables the image's health check; windlass has no key for that",
                );
            } else if let Ok(a) = serde_json::from_str::<Vec<String>>(&v) {
                if a.is_empty() || a.iter().any(|w| w.contains('\0')) {
                    self.note(i, Action::Dropped, "an empty command or a NUL character");
                } else {
                    h.cmd = a;
                }
            } else {
                self.note(
                    i,
                    Action::Changed,
                    "a shell command: carried as [\"/bin/sh\", \"-c\", …] as Podman runs it",
                );
                h.cmd = vec!["/bin/sh".into(), "-c".into(), v];
            }
        }
        let has = !h.cmd.is_empty();
        for (key, slot) in [
            ("HealthInterval", &mut h.interval),
            ("HealthTimeout", &mut h.timeout),
            ("HealthStartPeriod", &mut h.start_period),
        ] {
            if let Some((i, _)) = self.last("Container", key)
                && let Some(v) = self.whole(i)
            {
                if !has {
                    self.note(i, Action::Dropped, "no health command is carried");
                    continue;
                }
                match convert::duration(&v) {
                    Ok(d) => *slot = Some(d),
                    Err(e) => self.note(i, Action::Dropped, e),
                }
            }
        }
        if let Some((i, _)) = self.last("Container", "HealthRetries")
            && let Some(v) = self.whole(i)
        {
            match v.parse::<u32>() {
                Ok(r) if r >= 1 && has => h.retries = Some(i64::from(r)),
                Ok(_) if !has => self.note(i, Action::Dropped, "no health command is carried"),
                _ => self.note(
                    i,
                    Action::Dropped,
                    format!("`{v}` is not a retry count ≥ 1"),
                ),
            }
        }
        if let Some((i, s)) = self.last("Container", "Notify") {
            if s.value.eq_ignore_ascii_case("healthy") {
                if has {
                    self.note(
                        i,
                        Action::Ignored,
                        "windlass writes Notify=healthy for every app with a health check",
                    );
                } else {
                    self.note(
                        i,
                        Action::Dropped,
                        "Notify=healthy without a health command",
                    );
                }
            } else if parse_bool(&s.value) == Some(false) {
                self.note(i, Action::Ignored, "the default");
            } else {
                self.note(
                    i,
                    Action::Dropped,
                    "the container's own sd_notify has no windlass equivalent",
                );
            }
        }
        if has {
            m.health = Some(h);
        }
    }

    fn misc(&mut self, m: &mut AppManifest, extra: &mut Extra) {
        if let Some((i, s)) = self.last("Container", "ReadOnly") {
            match parse_bool(&s.value) {
                Some(b) => m.read_only = b,
                None => self.note(i, Action::Dropped, "not a boolean"),
            }
        }
        if let Some((i, _)) = self.last("Container", "StopTimeout")
            && let Some(v) = self.whole(i)
        {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => m.stop_timeout = Some(format!("{n}s")),
                _ => self.note(
                    i,
                    Action::Dropped,
                    format!("`{v}` is not a positive number of seconds"),
                ),
            }
        }
        if let Some((i, _)) = self.last("Container", "Memory")
            && let Some(v) = self.whole(i)
        {
            match convert::byte_size(&v) {
                Ok(b) => m.memory = Some(b),
                Err(e) => self.note(i, Action::Dropped, e),
            }
        }
        if let Some((i, _)) = self.last("Container", "AutoUpdate")
            && let Some(v) = self.whole(i)
        {
            match v.as_str() {
                "registry" => extra.auto_update = Some("registry"),
                "local" => extra.auto_update = Some("local"),
                _ => self.note(
                    i,
                    Action::Dropped,
                    format!("`{v}` is not registry or local"),
                ),
            }
        }
        for (i, _) in self.all("Container", "AddHost") {
            let Some(v) = self.item(i) else { continue };
            match parse_add_host(&v) {
                Ok((h, ip)) => m.add_hosts.push(format!("{h}:{ip}")),
                Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
            }
        }
        for (i, _) in self.all("Container", "PodmanArgs") {
            let Some(words) = self.words(i) else { continue };
            let mut lost = Vec::new();
            let mut it = words.iter().peekable();
            while let Some(w) = it.next() {
                let cpus = if let Some(v) = w.strip_prefix("--cpus=") {
                    Some(v.to_string())
                } else if w == "--cpus" {
                    it.next().cloned()
                } else {
                    None
                };
                match cpus.as_deref().map(str::parse::<f64>) {
                    Some(Ok(c)) if c > 0.0 && c.is_finite() => m.cpus = Some(c),
                    _ => lost.push(w.clone()),
                }
            }
            if !lost.is_empty() {
                self.note(
                    i,
                    Action::Dropped,
                    format!("podman arguments with no windlass key: {}", lost.join(" ")),
                );
            }
        }
        match self.last("Service", "Restart") {
            Some((i, s)) => match s.value.as_str() {
                "always" => m.restart = Some("always"),
                "on-failure" => m.restart = Some("on-failure"),
                "no" => m.restart = Some("no"),
                v => {
                    m.restart = Some("no");
                    self.note(i, Action::Dropped, format!("Restart={v} has no windlass equivalent (always, on-failure, no); the app does not restart"));
                }
            },
            // systemd's default.
            None => m.restart = Some("no"),
        }
    }

    /// The kernel, security and process settings, each by its Quadlet key;
    /// a value the manifest would refuse is dropped with the reason.
    fn settings(&mut self, m: &mut AppManifest) {
        if let Some((i, _)) = self.last("Container", "ShmSize")
            && let Some(v) = self.whole(i)
        {
            match convert::byte_size(&v) {
                Ok(b) => m.shm_size = Some(b),
                Err(e) => self.note(i, Action::Dropped, e),
            }
        }
        // Security options, in the order Quadlet writes them.
        let mut opts: Vec<String> = Vec::new();
        for (key, opt) in [
            ("NoNewPrivileges", "no-new-privileges"),
            ("SecurityLabelDisable", "label=disable"),
            ("SecurityLabelNested", "label=nested"),
        ] {
            if let Some((i, s)) = self.last("Container", key) {
                match parse_bool(&s.value) {
                    Some(true) => opts.push(opt.to_string()),
                    Some(false) => {}
                    None => self.note(i, Action::Dropped, "not a boolean"),
                }
            }
        }
        for (key, prefix) in [
            ("SecurityLabelType", "label=type:"),
            ("SecurityLabelFileType", "label=filetype:"),
            ("SecurityLabelLevel", "label=level:"),
            ("AppArmor", "apparmor="),
            ("SeccompProfile", "seccomp="),
        ] {
            if let Some((i, _)) = self.last("Container", key)
                && let Some(v) = self.whole(i)
            {
                let o = format!("{prefix}{v}");
                match parse_security_opt(&o) {
                    Ok(_) => opts.push(o),
                    Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
                }
            }
        }
        for (key, prefix) in [("Mask", "mask="), ("Unmask", "unmask=")] {
            for (i, _) in self.all("Container", key) {
                let Some(words) = self.words(i) else { continue };
                for w in words {
                    let o = format!("{prefix}{w}");
                    match parse_security_opt(&o) {
                        Ok(_) => opts.push(o),
                        Err(e) => self.note(i, Action::Dropped, format!("`{w}`: {e}")),
                    }
                }
            }
        }
        m.security_opt = opts;
        for (i, _) in self.all("Container", "Ulimit") {
            let Some(v) = self.item(i) else { continue };
            match ulimit(&v) {
                Ok((name, soft, hard)) => {
                    m.ulimits.retain(|(n, _, _)| *n != name);
                    m.ulimits.push((name, soft, hard));
                }
                Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
            }
        }
        for (key, list) in [
            ("DropCapability", &mut m.cap_drop),
            ("AddCapability", &mut m.cap_add),
        ] {
            for (i, _) in self.all("Container", key) {
                let Some(words) = self.words(i) else { continue };
                for w in words {
                    match parse_capability(&w) {
                        Ok(c) if !list.contains(&c) => list.push(c),
                        Ok(_) => {}
                        Err(e) => self.note(i, Action::Dropped, format!("`{w}`: {e}")),
                    }
                }
            }
        }
        for (i, _) in self.all("Container", "Tmpfs") {
            let Some(v) = self.item(i) else { continue };
            match parse_tmpfs(&v) {
                Ok(t) => m.tmpfs.push(t),
                Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
            }
        }
        for (i, _) in self.all("Container", "Sysctl") {
            let Some(words) = self.words(i) else { continue };
            for w in words {
                let checked = match w.split_once('=') {
                    Some((k, v)) => check_sysctl_key(k)
                        .and_then(|()| check_sysctl_value(v))
                        .map(|()| (k.to_string(), v.to_string())),
                    None => Err("expected name=value".to_string()),
                };
                let host = m.networks.iter().any(|n| n == "host");
                match checked {
                    Ok((k, _)) if host && k.starts_with("net.") => self.note(
                        i,
                        Action::Dropped,
                        format!("`{w}`: a net.* sysctl cannot be set on the host's network (Network=host); Podman refuses it"),
                    ),
                    Ok((k, v)) => set_pair(&mut m.sysctls, &k, v),
                    Err(e) => self.note(i, Action::Dropped, format!("`{w}`: {e}")),
                }
            }
        }
        for (i, _) in self.all("Container", "DNS") {
            let Some(v) = self.item(i) else { continue };
            match v.parse::<std::net::IpAddr>() {
                Ok(ip) => m.dns.push(ip.to_string()),
                Err(_) => self.note(i, Action::Dropped, format!("`{v}` is not an IP address")),
            }
        }
        if let Some((i, _)) = self.last("Container", "HostName")
            && let Some(v) = self.whole(i)
        {
            match parse_hostname(&v) {
                Ok(h) => m.hostname = Some(h),
                Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
            }
        }
        for (i, _) in self.all("Container", "AddDevice") {
            let Some(words) = self.words(i) else { continue };
            for w in words {
                if w.starts_with('-') {
                    self.note(
                        i,
                        Action::Dropped,
                        format!(
                            "`{w}`: an optional device (only if it exists) has no windlass key"
                        ),
                    );
                    continue;
                }
                match parse_device(&w) {
                    Ok(d) => m.devices.push(d),
                    Err(e) => self.note(i, Action::Dropped, format!("`{w}`: {e}")),
                }
            }
        }
        if let Some((i, s)) = self.last("Container", "RunInit") {
            match parse_bool(&s.value) {
                Some(b) => m.init = b,
                None => self.note(i, Action::Dropped, "not a boolean"),
            }
        }
        if let Some((i, _)) = self.last("Container", "StopSignal")
            && let Some(v) = self.whole(i)
        {
            match parse_signal(&v.to_ascii_uppercase()) {
                Ok(sig) => m.stop_signal = Some(sig),
                Err(e) => self.note(i, Action::Dropped, format!("`{v}`: {e}")),
            }
        }
        if let Some((i, _)) = self.last("Container", "PidsLimit")
            && let Some(v) = self.whole(i)
        {
            match v.parse::<i64>() {
                Ok(n) if n == -1 || n >= 1 => m.pids_limit = Some(n),
                Ok(0) => {
                    self.note(i, Action::Changed, "0 (unlimited) written as -1");
                    m.pids_limit = Some(-1);
                }
                _ => self.note(
                    i,
                    Action::Dropped,
                    format!("`{v}` is not -1 or a number of processes"),
                ),
            }
        }
    }

    /// `[Unit]`: the description and the dependencies on other containers.
    fn unit_section(&mut self, refs: &Refs, m: &mut AppManifest, extra: &mut Extra) {
        if let Some((i, s)) = self.last("Unit", "Description") {
            match resolve_text(&s.value) {
                Ok(d) if !valid_description(&d) => self.note(
                    i,
                    Action::Dropped,
                    "a control character or a trailing backslash",
                ),
                Ok(d) if !d.trim().is_empty() => extra.description = Some(d.trim().to_string()),
                Ok(_) => {}
                Err(e) => self.note(i, Action::Dropped, e),
            }
        }
        let mut after: Vec<(usize, String)> = Vec::new();
        let volume_and_network_units: BTreeSet<&String> = refs
            .volume_units
            .keys()
            .chain(refs.network_units.keys())
            .collect();
        for key in DEPENDENCY_KEYS {
            for (i, s) in self.all("Unit", key) {
                if s.value.contains(['"', '\'', '\\']) {
                    self.note(i, Action::Dropped, "quoted unit names are not read");
                    continue;
                }
                for dep in s.value.split_whitespace() {
                    let target = refs.apps.get(dep).cloned();
                    match (*key, target) {
                        (_, Some(t)) if t == m.app => self.note(i, Action::Dropped, format!("`{dep}` is this unit itself")),
                        ("Requires" | "BindsTo" | "Requisite", Some(t)) => {
                            if *key != "Requires" {
                                self.note(i, Action::Changed, format!("{key}={dep} becomes depends.requires"));
                            }
                            if !m.requires.contains(&t) {
                                m.requires.push(t);
                            }
                        }
                        ("Wants", Some(t)) => {
                            if !m.wants.contains(&t) {
                                m.wants.push(t);
                            }
                        }
                        (_, Some(t)) => after.push((i, t)),
                        (_, None) if volume_and_network_units.contains(&dep.to_string()) => self.note(i, Action::Ignored, format!("`{dep}`: Quadlet adds the dependency on a volume or network the container uses")),
                        (_, None) if dep == "network-online.target" && matches!(*key, "After" | "Wants") => self.note(i, Action::Ignored, format!("`{dep}`: Quadlet adds it by default")),
                        (_, None) => self.note(i, Action::Dropped, format!("`{dep}` is not a container of this directory")),
                    }
                }
            }
        }
        m.wants.retain(|w| !m.requires.contains(w));
        for (i, t) in after {
            if !m.requires.contains(&t) && !m.wants.contains(&t) {
                self.note(i, Action::Dropped, format!("After= on `{t}` alone (ordering without a dependency) has no windlass equivalent"));
            }
        }
        // windlass orders an app after each of its dependencies.
        for (list, key) in [(&m.requires, "Requires"), (&m.wants, "Wants")] {
            for t in list {
                let ordered = self.unit.settings.iter().any(|s| {
                    s.section == "Unit"
                        && s.key == "After"
                        && s.value
                            .split_whitespace()
                            .any(|d| refs.apps.get(d) == Some(t))
                });
                if !ordered {
                    self.report.push(
                        self.file,
                        None,
                        Some("Unit"),
                        Some(key),
                        Action::Changed,
                        format!("windlass also orders the app after `{t}` (After=)"),
                    );
                }
            }
        }
    }
}

/// `Secret=name[,type=mount|env][,target=…][,mode=…][,uid=…][,gid=…]`:
/// the reference and what did not carry.
/// `NAME=SOFT[:HARD]` as Podman's `--ulimit` reads it.
fn ulimit(v: &str) -> Result<(String, i64, i64), String> {
    const EXPECTED: &str = "expected NAME=SOFT[:HARD]";
    let (name, limits) = v.split_once('=').ok_or(EXPECTED)?;
    if !ULIMITS.contains(&name) {
        return Err(format!("`{name}` is not a resource limit Podman knows"));
    }
    let num = |x: &str| x.parse::<i64>().map_err(|_| EXPECTED.to_string());
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(limits)?, num(limits)?),
    };
    Ulimit::new(soft, hard)?;
    Ok((name.to_string(), soft, hard))
}

fn secret(spec: &str) -> Result<(SecretRef, Vec<String>), String> {
    let mut parts = spec.split(',');
    let name = parts.next().unwrap_or_default().to_string();
    if !is_object_name(&name) {
        return Err(format!("secret `{name}` is not a podman secret name"));
    }
    let (mut kind, mut target, mut mode, mut lost) = ("mount", None, None, Vec::new());
    for p in parts {
        match p.split_once('=') {
            Some(("type", "env")) => kind = "env",
            Some(("type", "mount")) => kind = "mount",
            Some(("target", t)) => target = Some(t.to_string()),
            Some(("mode", m))
                if (1..=4).contains(&m.len()) && m.chars().all(|c| ('0'..='7').contains(&c)) =>
            {
                mode = Some(m.to_string())
            }
            _ => lost.push(p.to_string()),
        }
    }
    if kind == "env"
        && let Some(m) = mode.take()
    {
        lost.push(format!("mode={m}"));
    }
    let target = match (kind, target) {
        ("env", Some(t)) if is_env_key(&t) => Some(t),
        ("env", _) => {
            return Err(format!(
                "secret `{name}`: type=env needs a variable name as target"
            ));
        }
        (_, Some(t)) if t.starts_with('/') => Some(t),
        (_, Some(t)) => Some(format!("/run/secrets/{t}")),
        (_, None) => None,
    };
    Ok((SecretRef { name, target, mode }, lost))
}
