//! `windlass-generation.json`: the generation manifest at the root of a
//! generator output tree.
//!
//! Field order in every struct is alphabetical, the order the generator
//! has always written (serde_json's sorted maps), and [`Manifest::to_json`]
//! goes through a sorted map anyway, so keys kept in `other` land in their
//! sorted place too. `Option`s are written as `null`, as the generator
//! always has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FORMAT, MANIFEST};

/// The health deadline when no app among the changed units names one.
pub const DEFAULT_DEADLINE_SEC: u64 = 300;

/// Keys this version does not know (from a newer generator), kept so that
/// reading and writing a document back preserves them.
type Other = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Each app's contract, sorted by name.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Every output file except the manifest itself, sorted by path.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    pub format: u32,
    #[serde(default)]
    pub generator: Option<Generator>,
    /// The fleet's input files (relative to the fleet directory).
    #[serde(default)]
    pub inputs: Vec<FileEntry>,
    /// The Podman version the Quadlet output is valid for (`5.4`).
    #[serde(default)]
    pub podman: Option<String>,
    /// The targets generated (`quadlet`, `systemd`, `nixos`, `guix`).
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(flatten)]
    pub other: Other,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            apps: Vec::new(),
            files: Vec::new(),
            format: FORMAT,
            generator: None,
            inputs: Vec::new(),
            podman: None,
            targets: Vec::new(),
            other: Other::new(),
        }
    }
}

/// Who wrote the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    pub name: String,
    pub version: String,
}

/// A file and the sha256 (lower-case hex) of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
}

/// One app's contract: what the agent checks after a switch and how it
/// may update the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// What the agent does about drift in what the app owns; absent when
    /// it is the default (report only, nothing ignored), so contracts
    /// that do not use it keep their bytes.
    #[serde(default, skip_serializing_if = "DriftPolicy::is_default")]
    pub drift: DriftPolicy,
    /// `null` when the app has no health check at all.
    #[serde(default)]
    pub health: Option<Health>,
    /// The app's lifecycle hooks; absent when it has none.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
    /// The full image reference the generation runs.
    #[serde(default)]
    pub image: String,
    /// The app's job units, without suffix (`lnd-backup`).
    #[serde(default)]
    pub jobs: Vec<String>,
    pub name: String,
    /// The Podman volumes (as this target names them) removed once a
    /// switch that removes the app has committed: the app's own named
    /// volumes when its manifest says `update.on_remove = "purge-data"`;
    /// empty (absent) when its data is kept, the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purge_on_remove: Vec<String>,
    #[serde(default)]
    pub release: Release,
    #[serde(default)]
    pub requires: Vec<String>,
    /// The unit that runs the container on this target (`lnd.service`,
    /// `podman-lnd.service` on NixOS with oci-containers, `lnd` on Guix).
    pub unit: String,
    #[serde(default)]
    pub update: Update,
    /// Every named Podman volume the app's container mounts, as this
    /// target names them (absent when none, and in contracts of older
    /// generators): a volume another generation purges is kept while an
    /// app of the generation switched to mounts it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub wants: Vec<String>,
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The container has a health command (Quadlet/Podman health).
    #[serde(default)]
    pub container_check: bool,
    /// A loopback URL the agent probes after a switch.
    #[serde(default)]
    pub http: Option<String>,
    #[serde(flatten)]
    pub other: Other,
}

/// An app's lifecycle hooks, pinned into the generation: the hooks a
/// rollback runs are those of the generation being left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// Run when a switch away from this generation is rolled back (the
    /// new release's down-migrations), in reverse dependency order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Hook>,
    /// Run after the switch committed; a failure is reported, nothing is
    /// undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_commit: Option<Hook>,
    /// Run before the generation's units are (re)started; a failure rolls
    /// the switch back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_activate: Option<Hook>,
    /// Run once the changed apps are healthy, before the commit; a
    /// failure rolls the switch back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_commit: Option<Hook>,
    #[serde(flatten)]
    pub other: Other,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.down.is_none()
            && self.post_commit.is_none()
            && self.pre_activate.is_none()
            && self.pre_commit.is_none()
            && self.other.is_empty()
    }

    pub fn get(&self, kind: HookKind) -> Option<&Hook> {
        match kind {
            HookKind::PreActivate => self.pre_activate.as_ref(),
            HookKind::PreCommit => self.pre_commit.as_ref(),
            HookKind::PostCommit => self.post_commit.as_ref(),
            HookKind::Down => self.down.as_ref(),
        }
    }
}

/// One hook: the command line of the transient unit that runs it (for a
/// container hook, a whole `podman run --rm …` line the generator wrote
/// for the target). A first word without `/` is looked up in the agent's
/// `PATH`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub argv: Vec<String>,
    /// Further attempts after a failed one (exit status other than 0 and
    /// [`HOOK_RETRY_EXIT`]).
    #[serde(default)]
    pub retries: u32,
    /// How long the hook may take, all attempts together.
    pub timeout_sec: u64,
    #[serde(flatten)]
    pub other: Other,
}

impl Hook {
    /// Where the image is in [`Hook::argv`]: the first word after the
    /// `run` subcommand that does not start with `-` (the generator writes
    /// every option as one word, `--flag=value`; docs/decisions.md
    /// "Hooks"). The subcommand is the first word after the program that
    /// does not start with `-`; `None` when it is not `run` or no word
    /// follows its options (a command line that is not `podman run`).
    pub fn image_index(&self) -> Option<usize> {
        let not_option = |(_, w): &(usize, &String)| !w.starts_with('-');
        let mut words = self.argv.iter().enumerate().skip(1);
        let (_, sub) = words.find(not_option)?;
        if sub != "run" {
            return None;
        }
        words.find(not_option).map(|(i, _)| i)
    }

    /// The image the hook runs ([`Hook::image_index`]).
    pub fn image(&self) -> Option<&str> {
        self.image_index().map(|i| self.argv[i].as_str())
    }

    /// Puts `image` in place of the image word; returns its index, or
    /// `None` (and changes nothing) when the argv has none.
    pub fn set_image(&mut self, image: &str) -> Option<usize> {
        let i = self.image_index()?;
        self.argv[i] = image.to_string();
        Some(i)
    }
}

/// The exit status by which a hook says "not yet, run me again": the
/// agent runs it again after a pause until its timeout, whatever its
/// `retries` (sysexits' `EX_TEMPFAIL`).
pub const HOOK_RETRY_EXIT: i32 = 75;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    PreActivate,
    PreCommit,
    PostCommit,
    Down,
}

impl HookKind {
    pub const ALL: [HookKind; 4] = [
        HookKind::PreActivate,
        HookKind::PreCommit,
        HookKind::PostCommit,
        HookKind::Down,
    ];
    /// The name in records, journal fields and unit names (`pre-commit`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreActivate => "pre-activate",
            HookKind::PreCommit => "pre-commit",
            HookKind::PostCommit => "post-commit",
            HookKind::Down => "down",
        }
    }
    /// The key in manifests and the contract (`pre_commit`).
    pub fn key(self) -> &'static str {
        match self {
            HookKind::PreActivate => "pre_activate",
            HookKind::PreCommit => "pre_commit",
            HookKind::PostCommit => "post_commit",
            HookKind::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// How long a switch may take to become healthy; `None` when the
    /// manifest does not say (the agent uses [`DEFAULT_DEADLINE_SEC`]).
    #[serde(default)]
    pub health_deadline_sec: Option<u64>,
    #[serde(default)]
    pub order: UpdateOrder,
    #[serde(default)]
    pub rollback: Rollback,
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old container, then start the new one.
    #[default]
    StopFirst,
    /// Start the new container first (both run for a while).
    StartFirst,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rollback {
    /// The agent rolls back on its own when the switch is not healthy.
    #[default]
    Auto,
    /// An operator decides: a switch that changes the app commits only on
    /// Confirm, and is reverted when its deadline passes without one.
    Manual,
}

/// An app's drift policy (`update.drift`, `update.drift_ignore`, with
/// the fleet's `[host]` defaults already applied by the generator).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftPolicy {
    /// Findings not reported nor restored: `GLOB` or `KIND:GLOB`, the
    /// glob matched against the finding's absolute path, else its unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub mode: DriftMode,
    #[serde(flatten)]
    pub other: Other,
}

impl DriftPolicy {
    /// Report only, nothing ignored, nothing unknown: the policy not
    /// written to the contract.
    pub fn is_default(&self) -> bool {
        self.mode == DriftMode::Report && self.ignore.is_empty() && self.other.is_empty()
    }
}

/// The kinds of drift by the names a `KIND:GLOB` ignore pattern uses,
/// those windlassd reports (`DriftKind` in the agent).
pub const DRIFT_KINDS: [&str; 6] = [
    "modified",
    "removed",
    "drop-in-added",
    "masked",
    "not-loaded",
    "image",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    /// Drift is reported, nothing is changed.
    #[default]
    Report,
    /// Drift is reported, then undone by a Restore operation.
    Restore,
}

/// Which image tags count as the app's releases (for sweeps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    #[serde(default)]
    pub allow_prerelease: bool,
    /// A semver requirement a release must meet (`^0.18`).
    #[serde(default)]
    pub constraint: Option<String>,
    #[serde(default)]
    pub track: Track,
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    /// Tags that parse as semantic versions are releases.
    Semver,
    /// The app is not swept (`"none"`).
    #[default]
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: unknown format {found} (this windlass reads format {FORMAT})", path.display())]
    Format { path: PathBuf, found: u32 },
}

/// Reads `bytes` as a `T` whose `format` must be [`FORMAT`]; the format is
/// checked first, so a newer format is named as such rather than failing
/// on whatever field it changed.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
) -> Result<T, ManifestError> {
    #[derive(Deserialize)]
    struct Probe {
        format: u32,
    }
    let parse_err = |source| ManifestError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(parse_err)?;
    if probe.format != FORMAT {
        return Err(ManifestError::Format {
            path: path.to_path_buf(),
            found: probe.format,
        });
    }
    serde_json::from_slice(bytes).map_err(parse_err)
}

/// Whether any app holds keys this version does not know (read from a
/// newer generator's document).
pub(crate) fn apps_have_unknown_keys(apps: &[App]) -> bool {
    apps.iter().any(|a| {
        let hooks = &a.hooks;
        !a.other.is_empty()
            || !a.drift.other.is_empty()
            || a.health.as_ref().is_some_and(|h| !h.other.is_empty())
            || !hooks.other.is_empty()
            || [
                &hooks.down,
                &hooks.post_commit,
                &hooks.pre_activate,
                &hooks.pre_commit,
            ]
            .into_iter()
            .flatten()
            .any(|h| !h.other.is_empty())
            || !a.release.other.is_empty()
            || !a.update.other.is_empty()
    })
}

/// One app's contract as pretty JSON with sorted keys (no final newline),
/// for [`Manifest::to_json_with`]: laid out as an element of the
/// document's `apps`, every line four spaces in.
pub fn app_json(app: &App) -> String {
    as_element(&pretty_sorted(
        app,
        apps_have_unknown_keys(std::slice::from_ref(app)),
    ))
}

/// `json` laid out as an element of a top-level array of the manifest:
/// every line four spaces in (no string holds a raw line break).
fn as_element(json: &str) -> String {
    // The line breaks found once, in one `memchr` pass (a manifest holds
    // tens of thousands of short lines; `str::split` searches anew for each).
    let breaks: Vec<usize> = memchr::memchr_iter(b'\n', json.as_bytes()).collect();
    let mut out = String::with_capacity(json.len() + 4 * (breaks.len() + 1));
    let mut start = 0;
    for at in breaks {
        out.push_str("    ");
        out.push_str(&json[start..=at]);
        start = at + 1;
    }
    out.push_str("    ");
    out.push_str(&json[start..]);
    out
}

/// `text`, a document's pretty JSON whose top-level arrays `arrays` name
/// are empty (`"key": []`, in this order), with each array's parts, laid
/// out as elements at depth 2 (see [`as_element`]), in it.
pub(crate) fn splice(text: &str, arrays: &[(&str, &[String])]) -> String {
    // Each part and its separator (`,\n`), and for each array the
    // brackets and line breaks that replace its `[]` (four bytes more).
    let size: usize = arrays
        .iter()
        .flat_map(|(_, parts)| parts.iter())
        .map(|a| a.len() + 2)
        .sum::<usize>()
        + arrays.len() * 4;
    let mut out = String::with_capacity(text.len() + size);
    let room = out.capacity();
    let mut rest = text;
    for &(key, parts) in arrays {
        // Top-level keys start a line two spaces in; no string holds a
        // raw line break, so the key is found where it is.
        let key = format!("\n  \"{key}\": ");
        let at = rest
            .find(&format!("{key}[]"))
            .expect("the key is in the text")
            + key.len();
        out.push_str(&rest[..at]);
        rest = &rest[at + 2..];
        if parts.is_empty() {
            out.push_str("[]");
            continue;
        }
        out.push_str("[\n");
        // Each part is already laid out as an element at depth 2.
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            out.push_str(part);
        }
        out.push_str("\n  ]");
    }
    out.push_str(rest);
    debug_assert_eq!(
        out.capacity(),
        room,
        "the text outgrew the room made for it"
    );
    out
}

/// A part given to [`Manifest::to_json_with`], read back.
pub(crate) fn parse_part<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).expect("the parts are their JSON")
}

/// One file entry as pretty JSON (no final newline), for
/// [`Manifest::to_json_with`], laid out as an element of the document's
/// `files`, every line four spaces in.
pub fn file_json(f: &FileEntry) -> String {
    file_json_of(&f.path, &f.sha256)
}

/// [`file_json`] of a path and a sha256 not (yet) in a [`FileEntry`]. A
/// manifest holds one for every file of the tree: the two strings are
/// written into their places directly (each escaped by `serde_json`, as
/// the pretty serialization of a [`FileEntry`] would), not serialized
/// as a document and then indented (`file_json_is_the_pretty_entry`).
pub fn file_json_of(path: &str, sha256: &str) -> String {
    let mut out = Vec::with_capacity(path.len() + sha256.len() + 64);
    out.extend_from_slice(b"    {\n      \"path\": ");
    serde_json::to_writer(&mut out, path).expect("a string serializes");
    out.extend_from_slice(b",\n      \"sha256\": ");
    serde_json::to_writer(&mut out, sha256).expect("a string serializes");
    out.extend_from_slice(b"\n    }");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Pretty JSON with sorted keys and a final newline, always through a
/// `Value`: what the direct serialization must equal (tests).
#[cfg(test)]
fn to_json<T: Serialize>(doc: &T) -> String {
    let mut text = pretty_sorted(doc, true);
    text.push('\n');
    text
}

/// Pretty JSON of `doc` with sorted keys, no final newline. Every struct
/// of the contract declares its fields in sorted order, so unless the
/// document holds `unknown_keys` (flattened, so written last) serializing
/// directly gives the sorted text, without building a `Value` tree of it
/// first (a tenth of a 1,000-app generation's time). With them, through a
/// `Value`, whose maps are sorted: keys kept in `other` take their sorted
/// place like every other key.
pub(crate) fn pretty_sorted<T: Serialize>(doc: &T, unknown_keys: bool) -> String {
    if unknown_keys {
        let value = serde_json::to_value(doc).expect("contract types serialize");
        return serde_json::to_string_pretty(&value).expect("JSON values serialize");
    }
    serde_json::to_string_pretty(doc).expect("contract types serialize")
}

impl Manifest {
    /// Reads `dir/windlass-generation.json`.
    pub fn read(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        parse(&bytes, &path)
    }

    /// Parses a manifest's bytes; errors name the file `windlass-generation.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        parse(bytes, Path::new(MANIFEST))
    }

    /// The manifest as the generator writes it: pretty JSON, keys sorted,
    /// a final newline.
    pub fn to_json(&self) -> String {
        let mut text = pretty_sorted(self, self.has_unknown_keys());
        text.push('\n');
        text
    }

    /// [`Manifest::to_json`] of `self` with `apps`, `files` and `inputs`
    /// in place of `self.apps`, `self.files` and `self.inputs` (which must
    /// be empty): each app's [`app_json`] and each file's and input's
    /// [`file_json`], made beforehand, so that a large manifest's parts
    /// can be written on many threads. The text is the same (tested).
    pub fn to_json_with(&self, apps: &[String], files: &[String], inputs: &[String]) -> String {
        assert!(
            self.apps.is_empty() && self.files.is_empty() && self.inputs.is_empty(),
            "the apps, files and inputs are given as JSON"
        );
        if self.has_unknown_keys() {
            let mut whole = self.clone();
            whole.apps = apps.iter().map(|j| parse_part(j)).collect();
            whole.files = files.iter().map(|j| parse_part(j)).collect();
            whole.inputs = inputs.iter().map(|j| parse_part(j)).collect();
            return whole.to_json();
        }
        // The arrays in the order the sorted keys put them in.
        splice(
            &self.to_json(),
            &[("apps", apps), ("files", files), ("inputs", inputs)],
        )
    }

    /// Whether any part of the document holds keys this version does not
    /// know (read from a newer generator's manifest).
    fn has_unknown_keys(&self) -> bool {
        !self.other.is_empty() || apps_have_unknown_keys(&self.apps)
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// systemd unit name → sha256 of the file that defines it.
    pub fn units(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .filter_map(|f| unit_of(&f.path).map(|u| (u, f.sha256.clone())))
            .collect()
    }

    /// The longest health deadline of the apps in `units`;
    /// [`DEFAULT_DEADLINE_SEC`] when no app with a deadline is among them.
    pub fn deadline_for(&self, units: &[String]) -> u64 {
        self.apps
            .iter()
            .filter(|a| units.contains(&a.unit))
            .filter_map(|a| a.update.health_deadline_sec)
            .max()
            .unwrap_or(DEFAULT_DEADLINE_SEC)
    }
}

/// The unit a generator output file defines, if any.
pub fn unit_of(path: &str) -> Option<String> {
    let (dir, file) = path.split_once('/')?;
    match dir {
        "quadlet" => {
            let (name, ext) = file.rsplit_once('.')?;
            match ext {
                "container" => Some(format!("{name}.service")),
                "volume" => Some(format!("{name}-volume.service")),
                "network" => Some(format!("{name}-network.service")),
                "pod" => Some(format!("{name}-pod.service")),
                _ => None,
            }
        }
        "systemd" if file.ends_with(".service") || file.ends_with(".timer") => {
            Some(file.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_generator_files() {
        assert_eq!(
            unit_of("quadlet/web.container").as_deref(),
            Some("web.service")
        );
        assert_eq!(
            unit_of("quadlet/data.volume").as_deref(),
            Some("data-volume.service")
        );
        assert_eq!(
            unit_of("quadlet/net.network").as_deref(),
            Some("net-network.service")
        );
        assert_eq!(
            unit_of("quadlet/pod.pod").as_deref(),
            Some("pod-pod.service")
        );
        assert_eq!(
            unit_of("systemd/web-job.timer").as_deref(),
            Some("web-job.timer")
        );
        assert_eq!(unit_of("systemd/README"), None);
        assert_eq!(unit_of("nixos/default.nix"), None);
        assert_eq!(unit_of(MANIFEST), None);
    }

    #[test]
    fn file_json_is_the_pretty_entry() {
        let strings = [
            "",
            "quadlet/web.container",
            "a\"b\\c/d",
            "\u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f}",
            "é ü \u{2028} \u{1F600}",
            "sha256 0123456789abcdef",
        ];
        for path in strings {
            for sha256 in strings {
                let f = FileEntry {
                    path: path.to_string(),
                    sha256: sha256.to_string(),
                };
                let pretty = as_element(&serde_json::to_string_pretty(&f).unwrap());
                assert_eq!(file_json(&f), pretty, "{path:?} {sha256:?}");
            }
        }
    }

    /// What the agent's own tests write: only the keys they need.
    const MINIMAL: &str = r#"{
        "format": 1,
        "files": [{"path": "quadlet/web.container", "sha256": "ab"}],
        "apps": [{"name": "web", "unit": "web.service", "image": "x/web:1"}]
    }"#;

    #[test]
    fn a_minimal_manifest_reads_with_the_defaults() {
        let m = Manifest::from_slice(MINIMAL.as_bytes()).unwrap();
        let web = m.app("web").unwrap();
        assert_eq!(web.image, "x/web:1");
        assert_eq!(web.health, None);
        assert_eq!(web.update.order, UpdateOrder::StopFirst);
        assert_eq!(web.update.rollback, Rollback::Auto);
        assert_eq!(web.update.health_deadline_sec, None);
        assert_eq!(web.release.track, Track::None);
        assert_eq!(m.generator, None);
        assert_eq!(
            m.units(),
            BTreeMap::from([("web.service".to_string(), "ab".to_string())])
        );
    }

    #[test]
    fn the_deadline_is_the_longest_among_the_changed_units() {
        let mut m = Manifest::from_slice(MINIMAL.as_bytes()).unwrap();
        let units = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            m.deadline_for(&units(&["web.service"])),
            DEFAULT_DEADLINE_SEC
        );
        let mut db = m.apps[0].clone();
        db.name = "db".into();
        db.unit = "db.service".into();
        db.update.health_deadline_sec = Some(900);
        m.apps[0].update.health_deadline_sec = Some(60);
        m.apps.push(db);
        assert_eq!(m.deadline_for(&units(&["web.service"])), 60);
        assert_eq!(m.deadline_for(&units(&["web.service", "db.service"])), 900);
        assert_eq!(
            m.deadline_for(&units(&["other.service"])),
            DEFAULT_DEADLINE_SEC
        );
    }

    /// The direct serialization `to_json` takes when no unknown keys are
    /// held equals the sorted one through `Value`, for a manifest with
    /// every field set (and each optional part present), so a field added
    /// out of order fails here.
    #[test]
    fn the_direct_json_equals_the_sorted_json() {
        let hook = |n: &str| Hook {
            argv: vec![n.to_string(), "ünï \"q\"\n".into()],
            retries: 2,
            timeout_sec: 30,
            other: Other::new(),
        };
        let app = App {
            drift: DriftPolicy {
                ignore: vec!["unit:*.timer".into()],
                mode: DriftMode::Restore,
                other: Other::new(),
            },
            health: Some(Health {
                container_check: true,
                http: Some("http://127.0.0.1:8080/".into()),
                other: Other::new(),
            }),
            hooks: Hooks {
                down: Some(hook("down")),
                post_commit: Some(hook("post")),
                pre_activate: Some(hook("pre")),
                pre_commit: Some(hook("commit")),
                other: Other::new(),
            },
            image: "docker.io/library/web:1".into(),
            jobs: vec!["web-backup".into()],
            name: "web".into(),
            purge_on_remove: vec!["web-data".into()],
            release: Release {
                allow_prerelease: true,
                constraint: Some(">=1, <2".into()),
                track: Track::Semver,
                other: Other::new(),
            },
            requires: vec!["db".into()],
            unit: "web.service".into(),
            update: Update {
                health_deadline_sec: Some(90),
                order: UpdateOrder::StartFirst,
                rollback: Rollback::Manual,
                other: Other::new(),
            },
            volumes: vec!["web-data".into()],
            wants: vec!["cache".into()],
            other: Other::new(),
        };
        let mut bare = app.clone();
        bare.name = "bare".into();
        bare.drift = DriftPolicy::default();
        bare.health = None;
        bare.hooks = Hooks::default();
        let m = Manifest {
            apps: vec![bare, app],
            files: vec![FileEntry {
                path: "quadlet/web.container".into(),
                sha256: "ab".into(),
            }],
            format: FORMAT,
            generator: Some(Generator {
                name: "windlass".into(),
                version: "1".into(),
            }),
            inputs: vec![FileEntry {
                path: "apps/web.toml".into(),
                sha256: "cd".into(),
            }],
            podman: Some("5.4".into()),
            targets: vec!["quadlet".into()],
            other: Other::new(),
        };
        assert!(!m.has_unknown_keys());
        assert_eq!(m.to_json(), to_json(&m));
        let parts = |m: &Manifest| {
            let apps: Vec<String> = m.apps.iter().map(app_json).collect();
            let files: Vec<String> = m.files.iter().map(file_json).collect();
            let inputs: Vec<String> = m.inputs.iter().map(file_json).collect();
            let mut bare = m.clone();
            bare.apps.clear();
            bare.files.clear();
            bare.inputs.clear();
            bare.to_json_with(&apps, &files, &inputs)
        };
        assert_eq!(parts(&m), m.to_json());
        for no in 1..8 {
            let (no_apps, no_files, no_inputs) = (no & 1 != 0, no & 2 != 0, no & 4 != 0);
            let mut some = m.clone();
            if no_apps {
                some.apps.clear();
            }
            if no_files {
                some.files.clear();
            }
            if no_inputs {
                some.inputs.clear();
            }
            assert_eq!(
                parts(&some),
                some.to_json(),
                "{no_apps} {no_files} {no_inputs}"
            );
        }
        let mut many = m.clone();
        many.files.push(FileEntry {
            path: "nixos/apps/\"q\"\n é.nix".into(),
            sha256: "ef".into(),
        });
        assert_eq!(parts(&many), many.to_json());
        for (top, app) in [(true, false), (false, true), (true, true)] {
            let mut odd = m.clone();
            if top {
                // Sorted before "apps".
                odd.other.insert("aardvark".into(), Value::from(1));
            }
            if app {
                odd.apps[1].other.insert("zz".into(), Value::from("x"));
                odd.apps[1].other.insert("aa".into(), Value::from("y"));
            }
            assert_eq!(parts(&odd), odd.to_json(), "top {top}, app {app}");
        }
        for backend in [None, Some(crate::system::NixosBackend::Quadlet)] {
            let g = crate::system::SystemGeneration {
                apps: m.apps.clone(),
                backend,
                format: FORMAT,
                platform: crate::system::Platform::Nixos,
                other: Other::new(),
            };
            assert_eq!(g.to_json(), to_json(&g));
            // Its apps laid out beforehand give the same text, with keys
            // this version does not know at the top or in an app too.
            for (top, app) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut g = g.clone();
                if top {
                    g.other.insert("aardvark".into(), Value::from(1));
                    g.other.insert("zz".into(), Value::from(2));
                }
                if app {
                    g.apps[1].other.insert("aa".into(), Value::from("y"));
                }
                let parts: Vec<String> = g.apps.iter().map(app_json).collect();
                let bare = crate::system::SystemGeneration {
                    apps: Vec::new(),
                    ..g.clone()
                };
                assert_eq!(
                    bare.to_json_with(&parts),
                    g.to_json(),
                    "top {top}, app {app}"
                );
                assert_eq!(bare.to_json_with(&[]), bare.to_json());
            }
        }
        let mut newer = m.clone();
        newer.apps[1]
            .hooks
            .pre_commit
            .as_mut()
            .unwrap()
            .other
            .insert("a".into(), Value::Null);
        assert!(newer.has_unknown_keys());
    }

    #[test]
    fn keys_from_a_newer_generator_are_kept_through_a_rewrite() {
        let text = r#"{
            "format": 1,
            "zz_top": [1],
            "apps": [{"name": "web", "unit": "web.service", "probes": {"startup": ["true"]},
                      "update": {"order": "start-first", "canary": true},
                      "release": {"track": "semver", "window": "sun"},
                      "health": {"container_check": true, "tcp": 80}}]
        }"#;
        let m = Manifest::from_slice(text.as_bytes()).unwrap();
        let web = &m.apps[0];
        assert_eq!(web.update.order, UpdateOrder::StartFirst);
        assert_eq!(web.release.track, Track::Semver);
        assert!(web.other.contains_key("probes"));
        let again = Manifest::from_slice(m.to_json().as_bytes()).unwrap();
        assert_eq!(again, m);
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["zz_top"], serde_json::json!([1]));
        assert_eq!(v["apps"][0]["update"]["canary"], true);
        assert_eq!(v["apps"][0]["release"]["window"], "sun");
        assert_eq!(v["apps"][0]["health"]["tcp"], 80);
        assert_eq!(v["apps"][0]["probes"]["startup"][0], "true");
    }

    #[test]
    fn numbers_in_unknown_keys_survive_rewrites_to_the_last_bit() {
        // Found by the generation fuzz target: without exact float
        // parsing, 1.2000000004e42 read back as 1.2000000003999999e42.
        let text = br#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
            "wantsupdate": {"deadline": 1200000000400000000000000000000000000000000}}],
            "ratio": 0.30000000000000004, "tiny": 5e-324, "big": 1.7976931348623157e308}"#;
        let m = Manifest::from_slice(text).unwrap();
        let once = m.to_json();
        let again = Manifest::from_slice(once.as_bytes()).unwrap();
        assert_eq!(again, m);
        assert_eq!(again.to_json(), once);
        assert!(once.contains("1.2000000004e+42"), "{once}");
    }

    #[test]
    fn an_unknown_format_is_refused_by_name() {
        let e = Manifest::from_slice(br#"{"format": 2, "apps": "changed shape"}"#).unwrap_err();
        assert!(matches!(e, ManifestError::Format { found: 2, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "windlass-generation.json: unknown format 2 (this windlass reads format 1)"
        );
        let e = Manifest::from_slice(br#"{"apps": []}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `format`"), "{e}");
    }

    #[test]
    fn an_unknown_enum_value_is_an_error_naming_it() {
        let text = r#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
                       "update": {"rollback": "sometimes"}}]}"#;
        let e = Manifest::from_slice(text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
    }

    #[test]
    fn read_names_the_file_it_could_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = Manifest::read(dir.path()).unwrap_err();
        assert!(matches!(e, ManifestError::Read { .. }));
        assert!(
            e.to_string()
                .starts_with(&dir.path().join(MANIFEST).display().to_string()),
            "{e}"
        );
        std::fs::write(dir.path().join(MANIFEST), MINIMAL).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap().apps.len(), 1);
    }

    fn hook(words: &[&str]) -> Hook {
        Hook {
            argv: words.iter().map(|w| w.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_hooks_image_is_the_first_word_after_run_that_is_not_an_option() {
        // Options before it (one word each, also one holding a JSON
        // entrypoint), command words after it that start with `-`.
        let mut h = hook(&[
            "podman",
            "run",
            "--rm",
            "--replace",
            "--name=web-hook-pre-activate",
            "--label=io.windlass.app=web",
            "--entrypoint=[\"a\"]",
            "--volume=/srv/x:/x:z",
            "x/web:1",
            "-c",
            "--all",
            "x/web:1",
        ]);
        assert_eq!(h.image_index(), Some(8));
        assert_eq!(h.image(), Some("x/web:1"));
        let before = h.argv.clone();
        assert_eq!(h.set_image("x/web:2"), Some(8));
        let mut want = before;
        want[8] = "x/web:2".into();
        assert_eq!(
            h.argv, want,
            "only the image word; a command word equal to it is kept"
        );
        // Global options before `run`; an absolute program path.
        let h = hook(&["/usr/bin/podman", "--log-level=info", "run", "--rm", "i:1"]);
        assert_eq!(h.image(), Some("i:1"));
        assert_eq!(hook(&["podman", "run", "i:1"]).image_index(), Some(2));
    }

    #[test]
    fn a_hook_without_an_image_word_is_left_alone() {
        for words in [
            &[][..],
            &["podman"],
            &["podman", "run"],
            &["podman", "run", "--rm", "--name=x"],
            // Not `podman run`: `run` is not the subcommand.
            &["podman", "start", "run", "x/web:1"],
            &["/usr/local/bin/migrate", "up"],
        ] {
            let mut h = hook(words);
            assert_eq!(h.image(), None, "{words:?}");
            assert_eq!(h.set_image("x/web:2"), None, "{words:?}");
            assert_eq!(h, hook(words), "unchanged");
        }
    }

    #[test]
    fn the_default_drift_policy_is_not_written() {
        let m = Manifest::from_slice(MINIMAL.as_bytes()).unwrap();
        let web = m.app("web").unwrap();
        assert_eq!(web.drift, DriftPolicy::default());
        assert!(web.drift.is_default());
        assert_eq!(web.drift.mode, DriftMode::Report);
        let text = m.to_json();
        assert!(!text.contains("drift"), "{text}");
        // Written out explicitly, the default reads back as the default
        // and is dropped again: the bytes of a contract that never used
        // the keys do not change.
        let explicit = r#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
                          "drift": {"mode": "report", "ignore": []}}]}"#;
        let m2 = Manifest::from_slice(explicit.as_bytes()).unwrap();
        assert!(m2.apps[0].drift.is_default());
        assert!(!m2.to_json().contains("drift"));
    }

    #[test]
    fn a_drift_policy_round_trips() {
        let text = r#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
                       "drift": {"mode": "restore", "ignore": ["/etc/web/*", "masked:web.service"]}}]}"#;
        let m = Manifest::from_slice(text.as_bytes()).unwrap();
        let d = &m.apps[0].drift;
        assert_eq!(d.mode, DriftMode::Restore);
        assert_eq!(d.ignore, ["/etc/web/*", "masked:web.service"]);
        assert!(!d.is_default());
        let again = Manifest::from_slice(m.to_json().as_bytes()).unwrap();
        assert_eq!(again, m);
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v["apps"][0]["drift"],
            serde_json::json!({"mode": "restore", "ignore": ["/etc/web/*", "masked:web.service"]})
        );
        // Restore alone: no `ignore` key.
        let mut only = m.clone();
        only.apps[0].drift.ignore.clear();
        let v: Value = serde_json::from_str(&only.to_json()).unwrap();
        assert_eq!(
            v["apps"][0]["drift"],
            serde_json::json!({"mode": "restore"})
        );
        // Ignore alone, mode left out: report.
        let text = r#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
                       "drift": {"ignore": ["web.*"]}}]}"#;
        let m = Manifest::from_slice(text.as_bytes()).unwrap();
        assert_eq!(m.apps[0].drift.mode, DriftMode::Report);
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v["apps"][0]["drift"],
            serde_json::json!({"mode": "report", "ignore": ["web.*"]})
        );
    }

    #[test]
    fn unknown_keys_in_a_drift_policy_are_kept() {
        let text = r#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
                       "drift": {"quiet_hours": "22-06"}}]}"#;
        let m = Manifest::from_slice(text.as_bytes()).unwrap();
        let d = &m.apps[0].drift;
        assert_eq!(d.mode, DriftMode::Report);
        assert!(!d.is_default(), "an unknown key is kept, so written back");
        let again = Manifest::from_slice(m.to_json().as_bytes()).unwrap();
        assert_eq!(again, m);
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["apps"][0]["drift"]["quiet_hours"], "22-06");
        // An unknown mode is an error naming it, like every enum.
        let text = r#"{"format": 1, "apps": [{"name": "web", "unit": "web.service",
                       "drift": {"mode": "sometimes"}}]}"#;
        let e = Manifest::from_slice(text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
    }

    #[test]
    fn enums_are_written_as_the_strings_the_generator_always_wrote() {
        fn json(v: impl Serialize) -> String {
            serde_json::to_string(&v).unwrap()
        }
        assert_eq!(json(UpdateOrder::StartFirst), r#""start-first""#);
        assert_eq!(json(UpdateOrder::StopFirst), r#""stop-first""#);
        assert_eq!(json(Rollback::Auto), r#""auto""#);
        assert_eq!(json(Rollback::Manual), r#""manual""#);
        assert_eq!(json(Track::Semver), r#""semver""#);
        assert_eq!(json(Track::None), r#""none""#);
        assert_eq!(json(DriftMode::Report), r#""report""#);
        assert_eq!(json(DriftMode::Restore), r#""restore""#);
    }
}
