//! The import report: every compose key that did not become a manifest key
//! unchanged, with what happened to it and why. Printed per service on
//! stderr and written as JSON with `--report`.
//!
//! The report lists places and variable names, never values: a withheld
//! secret must not reach it either.

use serde::Serialize;

/// How the report entry of a service that is not imported begins.
pub const NOT_IMPORTED: &str = "the service is not imported: ";

/// What happened to a compose key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Not carried into the manifest: windlass has no equivalent.
    Dropped,
    /// Carried, but in another form (a rename, a normalised image, a
    /// converted size); the reason says how.
    Changed,
    /// A `${VAR}` kept literally because the variable is unset and has no
    /// default; or, for the same reason, an `environment` entry that was
    /// not carried.
    Uninterpolated,
    /// A secret value that was not written; the reason says where it went.
    Withheld,
    /// Ignored as compose itself ignores it (`x-` extensions, `version`).
    Ignored,
    /// Carried as written, but the container would receive another value
    /// than under compose (an `env_file` variable Podman reads otherwise);
    /// the reason names the variable, never its value.
    Differs,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Dropped => "dropped",
            Action::Changed => "changed",
            Action::Uninterpolated => "uninterpolated",
            Action::Withheld => "withheld",
            Action::Ignored => "ignored",
            Action::Differs => "differs",
        }
    }

    /// Whether `--strict` refuses the import because of this entry: what
    /// was not carried, and every withheld secret (one not written at all,
    /// or a podman secret reference the operator must still create, so the
    /// fleet does not run as imported).
    pub fn is_loss(self) -> bool {
        matches!(
            self,
            Action::Dropped | Action::Uninterpolated | Action::Withheld | Action::Differs
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The compose service, or `None` for a top-level key.
    pub service: Option<String>,
    /// The key's path inside the service (or the document), e.g.
    /// `ports[1]`, `deploy.replicas`, `environment.DB_PASSWORD`.
    pub key: String,
    pub action: Action,
    pub reason: String,
}

/// One imported service: its app name and manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceResult {
    pub service: String,
    /// `None` when the service could not be imported at all.
    pub app: Option<String>,
    pub manifest: Option<String>,
}

/// A podman secret the imported fleet references, which must exist on
/// each host before its apps start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretNeeded {
    pub name: String,
    /// The apps that reference it.
    pub apps: Vec<String>,
    /// The command that creates it, reading the value from stdin (never
    /// the value itself).
    pub command: String,
}

/// The report's totals: services imported and entries by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub services_total: usize,
    pub services_imported: usize,
    /// Entries per action (`dropped`, `changed`, …), only those that occur.
    pub entries: std::collections::BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format: u32,
    pub project: String,
    /// Where the project name came from, in words (`--project`,
    /// `COMPOSE_PROJECT_NAME in the env file`, …); empty for imports that
    /// have no project.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project_from: String,
    /// Always true: variables are interpolated as compose does.
    pub interpolated: bool,
    /// Whether the process environment was read (`--process-env`).
    pub process_env: bool,
    pub services: Vec<ServiceResult>,
    pub entries: Vec<Entry>,
    /// What the imported fleet should be checked for, though nothing was
    /// lost (an app named like a distribution's service).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The podman secrets the fleet references (see [`SecretNeeded`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub podman_secrets: Vec<SecretNeeded>,
    /// Totals, filled in when the report is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The compose files read, in order (later over earlier, then the
    /// included ones); only when there was more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Why the override file beside the compose file was read, if it was.
    #[serde(skip)]
    pub files_note: String,
}

impl Report {
    pub fn push(
        &mut self,
        service: Option<&str>,
        key: impl Into<String>,
        action: Action,
        reason: impl Into<String>,
    ) {
        self.entries.push(Entry {
            service: service.map(str::to_string),
            key: key.into(),
            action,
            reason: reason.into(),
        });
    }

    /// The services that were not imported, each with why.
    pub fn not_imported(&self) -> Vec<(&str, &str)> {
        self.services
            .iter()
            .filter(|s| s.app.is_none())
            .map(|s| {
                let why = self
                    .entries
                    .iter()
                    .find_map(|e| {
                        (e.service.as_deref() == Some(&s.service))
                            .then(|| e.reason.strip_prefix(NOT_IMPORTED))
                            .flatten()
                    })
                    .unwrap_or("see its entries");
                (s.service.as_str(), why)
            })
            .collect()
    }

    /// Entries that `--strict` refuses.
    pub fn losses(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.action.is_loss())
    }

    /// The totals: services imported of all, entries by action.
    pub fn summary(&self) -> Summary {
        let mut entries = std::collections::BTreeMap::new();
        for e in &self.entries {
            *entries.entry(e.action.as_str()).or_insert(0) += 1;
        }
        Summary {
            services_total: self.services.len(),
            services_imported: self.services.iter().filter(|s| s.app.is_some()).count(),
            entries,
        }
    }

    pub fn to_json(&self) -> String {
        let mut with = self.clone();
        with.summary = Some(self.summary());
        let mut s = serde_json::to_string_pretty(&with).expect("report serializes");
        s.push('\n');
        s
    }

    /// The human form: one block per service (top-level keys first), one
    /// line per entry.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let sum = self.summary();
        let by: Vec<String> = sum
            .entries
            .iter()
            .map(|(a, n)| format!("{n} {a}"))
            .collect();
        let _ = writeln!(
            out,
            "imported {} of {} service{}; report entries: {}",
            sum.services_imported,
            sum.services_total,
            if sum.services_total == 1 { "" } else { "s" },
            if by.is_empty() {
                "none".to_string()
            } else {
                by.join(", ")
            }
        );
        if !self.podman_secrets.is_empty() {
            out.push_str("podman secrets to create on each host before starting (each reads its value from stdin):
");
            for s in &self.podman_secrets {
                let _ = writeln!(out, "  {}    # {}", s.command, s.apps.join(", "));
            }
        }
        if !self.project_from.is_empty() {
            let p = &self.project;
            let _ = writeln!(
                out,
                "project {p} (from {}): volumes and networks are named {p}_<key>, as compose names them",
                self.project_from
            );
        }
        if !self.files.is_empty() {
            let _ = writeln!(
                out,
                "compose files (each later one over the earlier, then those `include` reads): {}",
                self.files.join(", ")
            );
        }
        if !self.files_note.is_empty() {
            let _ = writeln!(out, "{}", self.files_note);
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let top: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.service.is_none())
            .collect();
        if !top.is_empty() {
            out.push_str("compose file:\n");
            for e in top {
                let _ = writeln!(out, "  {:<14} {}: {}", e.action.as_str(), e.key, e.reason);
            }
        }
        for s in &self.services {
            match (&s.app, &s.manifest) {
                (Some(app), Some(m)) if app == &s.service => {
                    let _ = writeln!(out, "service {} → {m}", s.service);
                }
                (Some(app), Some(m)) => {
                    let _ = writeln!(out, "service {} → app {app} ({m})", s.service);
                }
                _ => {
                    let _ = writeln!(out, "service {} → not imported", s.service);
                }
            }
            for e in self
                .entries
                .iter()
                .filter(|e| e.service.as_deref() == Some(&s.service))
            {
                let _ = writeln!(out, "  {:<14} {}: {}", e.action.as_str(), e.key, e.reason);
            }
        }
        out
    }
}
