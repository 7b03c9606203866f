//! What `windlass import quadlet` and `windlass import podman` share: the
//! report (every setting that did not carry over, by file, line, section
//! and key) and writing the manifests with the same all-or-nothing staging
//! as the compose import.

use std::fs;
use std::path::Path;

use serde::Serialize;
use toml_edit::{DocumentMut, value};

use super::manifest::{AppManifest, NetworkDef, VolumeDef, merge_fleet_file};
use super::report::Action;
use super::{ImportError, Written, write_files};

/// One setting that did not become a manifest key unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The file (a unit's file name, or the inspect JSON's name).
    pub file: String,
    /// The line the setting starts on (unit files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The unit section (`Container`, `Unit`, …), or the JSON container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The key (`PublishPort`, `HostConfig.Devices`, …); none for a whole
    /// file or section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub action: Action,
    pub reason: String,
}

/// One source unit or container and the app it became (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitResult {
    pub file: String,
    pub app: Option<String>,
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdoptReport {
    pub format: u32,
    /// `quadlet` or `podman`.
    pub source: String,
    pub units: Vec<UnitResult>,
    pub entries: Vec<Entry>,
}

impl AdoptReport {
    pub fn new(source: &str) -> Self {
        AdoptReport {
            format: 1,
            source: source.to_string(),
            ..AdoptReport::default()
        }
    }

    pub fn push(
        &mut self,
        file: &str,
        line: Option<usize>,
        section: Option<&str>,
        key: Option<&str>,
        action: Action,
        reason: impl Into<String>,
    ) {
        self.entries.push(Entry {
            file: file.to_string(),
            line,
            section: section.map(str::to_string),
            key: key.map(str::to_string),
            action,
            reason: reason.into(),
        });
    }

    /// Entries that `--strict` refuses.
    pub fn losses(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.action.is_loss())
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serializes");
        s.push('\n');
        s
    }

    /// The human form: one block per file, one line per entry, each
    /// `file:line [Section] Key: reason`.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut files: Vec<&str> = self.units.iter().map(|u| u.file.as_str()).collect();
        for e in &self.entries {
            if !files.contains(&e.file.as_str()) {
                files.push(&e.file);
            }
        }
        for f in files {
            match self.units.iter().find(|u| u.file == f) {
                Some(UnitResult {
                    app: Some(app),
                    manifest: Some(m),
                    ..
                }) => {
                    let _ = writeln!(out, "{f} → app {app} ({m})");
                }
                Some(_) => {
                    let _ = writeln!(out, "{f} → not imported");
                }
                None => {
                    let _ = writeln!(out, "{f}:");
                }
            }
            for e in self.entries.iter().filter(|e| e.file == f) {
                let mut place = e.file.clone();
                if let Some(l) = e.line {
                    let _ = write!(place, ":{l}");
                }
                if let Some(s) = &e.section {
                    let _ = write!(place, " [{s}]");
                }
                if let Some(k) = &e.key {
                    let _ = write!(place, " {k}");
                }
                let _ = writeln!(out, "  {:<14} {place}: {}", e.action.as_str(), e.reason);
            }
        }
        out
    }
}

/// `container.user` as the manifest accepts it: `uid[:gid]` or names.
pub fn valid_user(u: &str) -> bool {
    let ok_part = |s: &str| {
        !s.is_empty()
            && s.len() <= 32
            && (s.bytes().all(|b| b.is_ascii_digit())
                || (s.as_bytes()[0].is_ascii_alphabetic() || s.as_bytes()[0] == b'_')
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    };
    match u.split_once(':') {
        Some((a, b)) => ok_part(a) && ok_part(b),
        None => ok_part(u),
    }
}

/// `description` as the manifest accepts it: one line without control
/// characters, not ending in `\`.
pub fn valid_description(d: &str) -> bool {
    !d.chars().any(char::is_control) && !d.ends_with('\\')
}

/// Manifest keys `AppManifest` has no field for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    pub description: Option<String>,
    pub auto_update: Option<&'static str>,
}

/// An adopted app: its manifest and the keys `AppManifest` does not hold.
#[derive(Debug, Clone)]
pub struct AdoptedApp {
    pub manifest: AppManifest,
    pub extra: Extra,
}

/// The result of `import quadlet` / `import podman`, in memory.
#[derive(Debug)]
pub struct Adopted {
    /// What the fleet file header names as the source.
    pub source: String,
    pub apps: Vec<AdoptedApp>,
    pub networks: Vec<(String, NetworkDef)>,
    pub volumes: Vec<(String, VolumeDef)>,
    pub report: AdoptReport,
}

impl AdoptedApp {
    /// The manifest text: the compose import's writer, plus `description`
    /// and `container.auto_update`, through `toml_edit` (never by
    /// concatenation).
    pub fn to_toml(&self, header: &str) -> String {
        let text = self.manifest.to_toml(header);
        if self.extra == Extra::default() {
            return text;
        }
        let (head, body) = split_header(&text);
        let mut doc: DocumentMut = body.parse().expect("the manifest writer writes TOML");
        if let Some(d) = &self.extra.description {
            doc.insert("description", value(d.as_str()));
            if let Some(c) = doc.get_mut("container").and_then(|c| c.as_table_mut()) {
                c.decor_mut().set_prefix("\n");
            }
        }
        if let Some(a) = self.extra.auto_update
            && let Some(c) = doc.get_mut("container").and_then(|c| c.as_table_mut())
        {
            c.insert("auto_update", value(a));
        }
        format!("{head}{doc}")
    }
}

/// The leading comment block and the rest.
fn split_header(text: &str) -> (&str, &str) {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('#') || line == "\n" {
            end += line.len();
        } else {
            break;
        }
    }
    text.split_at(end)
}

/// Writes an adoption into `out` (APPS_DIR) exactly as the compose import
/// writes: manifests under `apps/` when that exists, networks and volumes
/// merged into `windlass.toml`, everything staged and validated first, an
/// existing manifest replaced only with `force`.
pub fn write(
    out: &Path,
    adopted: &Adopted,
    header_app: &str,
    force: bool,
) -> Result<Written, ImportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { path, source }
    };
    let sub = if out.join("apps").is_dir() {
        "apps/"
    } else {
        ""
    };
    let mut files = Vec::new();
    for a in &adopted.apps {
        let header = header_app.replace("{unit}", &a.manifest.service);
        files.push((format!("{sub}{}.toml", a.manifest.app), a.to_toml(&header)));
    }
    let fleet_rel = if out.join("windlass.toml").is_file()
        || sub.is_empty()
        || !out.join("apps/windlass.toml").is_file()
    {
        "windlass.toml".to_string()
    } else {
        "apps/windlass.toml".to_string()
    };
    let fleet_path = out.join(&fleet_rel);
    let existing = if fleet_path.is_file() {
        Some(fs::read_to_string(&fleet_path).map_err(io(&fleet_path))?)
    } else {
        None
    };
    let header = format!(
        "Networks and volumes imported by `windlass import` from {}.",
        adopted.source
    );
    let (text, kept) = merge_fleet_file(
        existing.as_deref(),
        &header,
        &adopted.networks,
        &adopted.volumes,
    )
    .map_err(|message| ImportError::Compose {
        path: fleet_path.clone(),
        message,
    })?;
    if existing.as_deref() != Some(text.as_str()) {
        files.push((fleet_rel, text));
    }
    write_files(out, &files, kept, force)
}

/// Runs an adoption for the command line: prints the report, writes
/// `--report`, refuses with `--strict` when anything was dropped, writes
/// APPS_DIR. Exit codes as for the compose import: 0; 1 for an input,
/// name, `--strict` or validation problem; 2 for I/O errors and existing
/// manifests; 3 when some containers were not imported (the others are
/// written) unless `allow_partial`.
pub fn run(
    adopted: Result<Adopted, ImportError>,
    out: &Path,
    header_app: &str,
    report_file: Option<&Path>,
    strict: bool,
    force: bool,
    allow_partial: bool,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let mut not_imported = Vec::new();
    let mut total = 0;
    let result = adopted.and_then(|adopted| {
        total = adopted.report.units.len();
        not_imported = adopted
            .report
            .units
            .iter()
            .filter(|u| u.app.is_none())
            .map(|u| u.file.clone())
            .collect();
        eprint!("{}", adopted.report.render());
        if let Some(f) = report_file
            && let Err(e) = fs::write(f, adopted.report.to_json())
        {
            return Err(ImportError::Io {
                path: f.to_path_buf(),
                source: e,
            });
        }
        let losses = adopted.report.losses().count();
        if strict && losses > 0 {
            return Err(ImportError::Strict(losses));
        }
        write(out, &adopted, header_app, force)
    });
    match result {
        Ok(w) => {
            for k in &w.kept {
                crate::say!("kept: {k} was already declared in windlass.toml");
            }
            crate::say!(
                "wrote {}: {} created, {} replaced",
                out.display(),
                w.created.len(),
                w.replaced.len()
            );
            if not_imported.is_empty() {
                return ExitCode::SUCCESS;
            }
            crate::say!(
                "{}: {} of {total} containers were not imported ({}; see the report){}",
                if allow_partial { "warning" } else { "error" },
                not_imported.len(),
                not_imported.join(", "),
                if allow_partial {
                    ""
                } else {
                    "; --allow-partial makes this exit 0"
                }
            );
            if allow_partial {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(ImportError::Invalid(diags)) => {
            for d in &diags {
                crate::say!("{}", d.render());
            }
            crate::say!("error: {}", ImportError::Invalid(Vec::new()));
            ExitCode::from(1)
        }
        Err(e @ (ImportError::Io { .. } | ImportError::Exists(_))) => {
            crate::say!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            crate::say!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_and_auto_update_are_added_to_the_manifest_text() {
        let a = AdoptedApp {
            manifest: AppManifest {
                app: "web".into(),
                service: "web.container".into(),
                image: "docker.io/library/nginx:1".into(),
                ..AppManifest::default()
            },
            extra: Extra {
                description: Some("The \"web\" 100%".into()),
                auto_update: Some("registry"),
            },
        };
        let text = a.to_toml("line one\nline two");
        assert!(text.starts_with("# line one\n# line two\n\n"), "{text}");
        let doc: DocumentMut = text.parse().unwrap();
        assert_eq!(doc["description"].as_str(), Some("The \"web\" 100%"));
        assert_eq!(doc["container"]["auto_update"].as_str(), Some("registry"));
        assert!(text.find("description").unwrap() < text.find("[container]").unwrap());
    }
}
