//! `windlass import` end to end: the compose corpus in `tests/compose/`
//! imports, its manifests and drop reports match the golden files, secrets
//! from `.env` reach no manifest and no generated output, and writing is
//! all or nothing. The real-world projects in `../shared/corpus/compose`
//! (where this checkout has them) import with all their services.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn corpus_dir() -> PathBuf {
    common::repo_root().join("generator/tests/compose")
}

/// Every corpus case: (name, compose file).
pub fn corpus() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let dir = e.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .find(|f| {
                let n = f.file_name().unwrap().to_string_lossy().into_owned();
                n.contains("compose") && (n.ends_with(".yml") || n.ends_with(".yaml"))
            })
            .unwrap_or_else(|| panic!("no compose file in {}", dir.display()));
        out.push((
            dir.file_name().unwrap().to_string_lossy().into_owned(),
            file,
        ));
    }
    out.sort();
    out
}

/// Runs `windlass` with an empty environment, so only the corpus `.env`
/// files feed interpolation.
fn windlass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_windlass"))
        .env_clear()
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn import_ok(compose: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["import", s(compose), "-o", s(out)];
    args.extend_from_slice(extra);
    let o = windlass(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "import {} failed:\n{stderr}",
        compose.display()
    );
    stderr
}

fn redact(text: &str) -> String {
    text.replace(s(&corpus_dir()), "<CORPUS>")
}

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The corpus is imported with `--allow-partial`: a build-only service
/// (immich's `immich-dev`) is reported, and the rest is written.
fn golden(case: &str) {
    let (_, compose) = corpus().into_iter().find(|(n, _)| n == case).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fleet");
    let report = tmp.path().join("report.json");
    import_ok(&compose, &out, &["--report", s(&report), "--allow-partial"]);
    let tag = case;
    for (name, text) in files(&out) {
        insta::assert_snapshot!(format!("{tag}__{name}"), redact(&text));
    }
    insta::assert_snapshot!(
        format!("{tag}__report.json"),
        redact(&std::fs::read_to_string(&report).unwrap())
    );
}

#[test]
fn the_corpus_has_at_least_ten_real_world_shaped_projects() {
    assert!(corpus().len() >= 10, "{:?}", corpus());
}

#[test]
fn every_corpus_project_imports_and_matches_its_golden_manifests_and_report() {
    for (case, _) in corpus() {
        golden(&case);
    }
}

#[test]
fn every_imported_fleet_passes_windlass_validate() {
    for (case, compose) in corpus() {
        for extra in [
            &["--allow-partial"][..],
            &["--allow-partial", "--process-env"][..],
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("fleet");
            import_ok(&compose, &out, extra);
            let o = windlass(&["validate", s(&out)]);
            assert!(
                o.status.success(),
                "{case} {extra:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

const POISON: &str = "POISON-7f3a9c";

fn tree_text(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree_text(&p));
        } else {
            out.push((
                p.clone(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
            ));
        }
    }
    out
}

#[test]
fn a_secret_in_dot_env_reaches_no_manifest_and_no_output_unless_put_in_a_plain_key() {
    let compose = corpus_dir().join("secrets-marker/docker-compose.yml");
    // The process environment holds the markers too: with --process-env
    // they are read from there as well, and withheld all the same.
    for process_env in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let fleet = tmp.path().join("fleet");
        let report = tmp.path().join("report.json");
        let mut args = vec![
            "import",
            s(&compose),
            "-o",
            s(&fleet),
            "--report",
            s(&report),
        ];
        if process_env {
            args.push("--process-env");
        }
        let o = Command::new(env!("CARGO_BIN_EXE_windlass"))
            .env_clear()
            .env("DB_PASSWORD", "POISON-7f3a9c-db")
            .env("MARKER_PLAIN", "POISON-7f3a9c-plain")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        let gen_out = tmp.path().join("out");
        let o = windlass(&["generate", s(&fleet), "-o", s(&gen_out)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(!stderr.contains(POISON), "the report printed a secret");
        let mut everything = tree_text(&fleet);
        everything.extend(tree_text(&gen_out));
        everything.push((report.clone(), std::fs::read_to_string(&report).unwrap()));
        for (path, text) in &everything {
            for secret in ["-db", "-key", "-api"] {
                assert!(
                    !text.contains(&format!("{POISON}{secret}")),
                    "{}: holds the secret {POISON}{secret}",
                    path.display()
                );
            }
        }
        // Only GREETING (a plain key fed by a plain variable) carries the
        // plain marker; SESSION_TOKEN (a secret key) never.
        let app = std::fs::read_to_string(fleet.join("app.toml")).unwrap();
        let doc: toml_edit::DocumentMut = app.parse().unwrap();
        let env = doc["container"]["env"].as_table().unwrap();
        assert_eq!(
            env.get("GREETING").and_then(|v| v.as_str()),
            Some("POISON-7f3a9c-plain")
        );
        assert_eq!(env.get("TITLE").and_then(|v| v.as_str()), Some("My Title"));
        for k in [
            "DB_PASSWORD",
            "DATABASE_URL",
            "SESSION_TOKEN",
            "APP_SECRET_KEY",
        ] {
            assert!(!env.contains_key(k), "{k}: {app}");
        }
        assert!(
            app.contains("{ name = \"secrets-marker_db-password\", target = \"DB_PASSWORD\" }")
        );
        let plain = everything
            .iter()
            .filter(|(_, t)| t.contains("POISON-7f3a9c-plain"))
            .count();
        assert!(
            plain >= 2,
            "the plain marker must reach manifest and output"
        );
    }
}

#[test]
fn an_existing_manifest_is_never_replaced_without_force() {
    let compose = corpus_dir().join("gitea/docker-compose.yml");
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(
        fleet.join("db.toml"),
        "# mine\n[container]\nimage = \"docker.io/library/postgres:14\"\n",
    )
    .unwrap();
    let o = windlass(&["import", s(&compose), "-o", s(&fleet)]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(files(&fleet).len(), 1, "nothing else was written");
    assert!(
        std::fs::read_to_string(fleet.join("db.toml"))
            .unwrap()
            .starts_with("# mine")
    );
    import_ok(&compose, &fleet, &["--force"]);
    assert!(
        std::fs::read_to_string(fleet.join("db.toml"))
            .unwrap()
            .contains("windlass import")
    );
    assert!(fleet.join("server.toml").is_file());
}

#[test]
fn importing_a_second_project_adds_to_the_fleet_and_keeps_windlass_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    import_ok(
        &corpus_dir().join("traefik/docker-compose.yml"),
        &fleet,
        &[],
    );
    let before = std::fs::read_to_string(fleet.join("windlass.toml")).unwrap();
    std::fs::write(
        fleet.join("windlass.toml"),
        format!("{before}\n# my note\n[host]\npodman = \"5.4\"\n"),
    )
    .unwrap();
    import_ok(&corpus_dir().join("vaultwarden/compose.yml"), &fleet, &[]);
    let after = std::fs::read_to_string(fleet.join("windlass.toml")).unwrap();
    assert!(after.contains("# my note"));
    assert!(after.contains("[networks.traefik_default]"));
    assert!(after.contains("[networks.vaultwarden_default]"));
    let o = windlass(&["validate", s(&fleet)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files(&fleet).len(), 4);
}

#[test]
fn strict_refuses_any_drop_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let report = tmp.path().join("r.json");
    let o = windlass(&[
        "import",
        s(&corpus_dir().join("traefik/docker-compose.yml")),
        "-o",
        s(&fleet),
        "--strict",
        "--report",
        s(&report),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--strict"));
    assert!(!fleet.exists());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(
        r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "dropped")
    );
}

#[test]
fn strict_accepts_a_file_that_maps_completely() {
    let tmp = tempfile::tempdir().unwrap();
    let compose = tmp.path().join("compose.yaml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: docker.io/library/nginx:1.27\n    ports: [\"8080:80\"]\n    restart: always\n",
    )
    .unwrap();
    import_ok(&compose, &tmp.path().join("fleet"), &["--strict"]);
}

#[test]
fn colliding_service_names_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let compose = tmp.path().join("compose.yaml");
    std::fs::write(
        &compose,
        "services:\n  my_app:\n    image: busybox:1\n  my-app:\n    image: busybox:1\n",
    )
    .unwrap();
    let fleet = tmp.path().join("fleet");
    let o = windlass(&["import", s(&compose), "-o", s(&fleet)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`my_app` and `my-app` would both become the app `my-app`"),
        "{err}"
    );
    assert!(!fleet.exists());
}

#[test]
fn a_required_variable_that_is_unset_fails_naming_the_variable_and_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let compose = tmp.path().join("compose.yaml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: nginx:${TAG:?set TAG}\n",
    )
    .unwrap();
    let fleet = tmp.path().join("fleet");
    let o = windlass(&["import", s(&compose), "-o", s(&fleet)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: interpolation: services.web.image: required variable TAG is missing a value: set TAG (no variables were read: there is no .env beside the compose file",
            compose.display()
        )),
        "{err}"
    );
    assert!(!fleet.exists());
    // Empty in .env is missing too for `:?`; the message names the file read.
    let env = tmp.path().join(".env");
    std::fs::write(&env, "TAG=\n").unwrap();
    let o = windlass(&["import", s(&compose), "-o", s(&fleet)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("required variable TAG"), "{err}");
    assert!(
        err.contains(&format!("(variables were read from {})", env.display())),
        "{err}"
    );
    assert!(!fleet.exists());
    std::fs::write(&env, "TAG=1.27\n").unwrap();
    import_ok(&compose, &fleet, &[]);
    let m = std::fs::read_to_string(fleet.join("web.toml")).unwrap();
    assert!(
        m.contains("image = \"docker.io/library/nginx:1.27\""),
        "{m}"
    );
}

#[test]
fn a_compose_file_nested_fifty_thousand_deep_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let compose = tmp.path().join("compose.yaml");
    let fleet = tmp.path().join("fleet");
    let n = 50_000;
    let cases = [
        // Flow collections: refused by the scan before the parser (which
        // took 5-30 s over them).
        (
            format!("x: {}{}\n", "[".repeat(n), "]".repeat(n)),
            "line 1 column 132",
        ),
        (
            format!("x: {}1{}\n", "{a: ".repeat(n), "}".repeat(n)),
            "line 1 column 516",
        ),
        // Block nesting: cheap to parse, refused by the deserializer's
        // limit, in the same words.
        (format!("x:\n  {}y\n", "- ".repeat(n)), "line 2 column 257"),
    ];
    for (text, at) in cases {
        std::fs::write(&compose, &text).unwrap();
        let started = std::time::Instant::now();
        let o = windlass(&["import", s(&compose), "-o", s(&fleet)]);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "{}: nested deeper than 128 levels at {at}",
                compose.display()
            )),
            "{err}"
        );
        // The parser took 5-30 s over the flow cases; the scan takes
        // milliseconds. 4 s leaves room for a loaded CI machine (1 s
        // failed once with two builds and a VM beside it).
        assert!(took < std::time::Duration::from_secs(4), "took {took:?}");
        assert!(!fleet.exists());
    }
}

/// A compose project written by a test: `compose.yaml`, and `.env` when
/// given, in a fresh directory; it is imported into `fleet/` beside them
/// as the project `demo`, with the JSON report in `report.json`.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(compose: &str, env: Option<&str>) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
        if let Some(env) = env {
            std::fs::write(dir.path().join(".env"), env).unwrap();
        }
        Project { dir }
    }

    fn fleet(&self) -> PathBuf {
        self.dir.path().join("fleet")
    }

    fn import(&self, extra: &[&str]) -> Output {
        self.import_with_env(extra, &[])
    }

    /// Imports with only `env` in the process environment.
    fn import_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let compose = self.dir.path().join("compose.yaml");
        let report = self.dir.path().join("report.json");
        let fleet = self.fleet();
        let mut args = vec![
            "import",
            s(&compose),
            "-o",
            s(&fleet),
            "--project",
            "demo",
            "--report",
            s(&report),
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_windlass"))
            .env_clear()
            .envs(env.iter().copied())
            .args(&args)
            .output()
            .unwrap()
    }

    /// Imports, which must succeed; returns stderr (the report).
    fn import_ok(&self, extra: &[&str]) -> String {
        let o = self.import(extra);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "import failed:\n{stderr}");
        stderr
    }

    /// An app's manifest.
    fn manifest(&self, app: &str) -> toml_edit::DocumentMut {
        let text = std::fs::read_to_string(self.fleet().join(format!("{app}.toml"))).unwrap();
        text.parse().unwrap()
    }

    /// The `[container]` table of an app's manifest.
    fn container(&self, app: &str) -> toml_edit::Table {
        self.manifest(app)["container"].as_table().unwrap().clone()
    }

    /// The report entries of one service: (key, action, reason).
    fn entries(&self, service: &str) -> Vec<(String, String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("report.json")).unwrap();
        let r: serde_json::Value = serde_json::from_str(&text).unwrap();
        r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["service"] == service)
            .map(|e| {
                (
                    e["key"].as_str().unwrap().to_string(),
                    e["action"].as_str().unwrap().to_string(),
                    e["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// A manifest's array of strings.
fn strs(item: &toml_edit::Item) -> Vec<String> {
    item.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn merge_keys_inside_merged_maps_are_resolved_with_written_and_earlier_keys_winning() {
    let p = Project::new(
        r#"
x-restart: &restart
  restart: unless-stopped
  pull_policy: always
  stop_grace_period: 20s
x-user: &user
  user: "1000"
  stop_grace_period: 30s
x-base: &base
  <<: [*restart, *user]
  read_only: true
x-other: &other
  read_only: false
  labels:
    tier: web
services:
  web:
    <<: [*base, *other]
    image: docker.io/library/nginx:1.27
  api:
    <<: *base
    image: docker.io/library/nginx:1.27
    restart: "no"
    user: "2000"
"#,
        None,
    );
    p.import_ok(&[]);
    let web = p.container("web");
    // From the map merged into the merged map.
    assert_eq!(web["restart"].as_str(), Some("always"));
    assert_eq!(web["user"].as_str(), Some("1000"));
    // Of [*restart, *user] the earlier wins; of [*base, *other] too.
    assert_eq!(web["stop_timeout"].as_str(), Some("20s"));
    assert_eq!(web["read_only"].as_bool(), Some(true));
    // What only the later map has is merged as well.
    assert_eq!(web["labels"]["tier"].as_str(), Some("web"));
    // Keys written in the service win over every merged one.
    let api = p.container("api");
    assert_eq!(api["restart"].as_str(), Some("no"));
    assert_eq!(api["user"].as_str(), Some("2000"));
    assert_eq!(api["read_only"].as_bool(), Some(true));
    for svc in ["web", "api"] {
        let entries = p.entries(svc);
        assert!(
            entries
                .iter()
                .any(|(k, a, _)| k == "pull_policy" && a == "dropped"),
            "{svc}: {entries:?}"
        );
        assert!(
            !entries.iter().any(|(k, _, _)| k.contains("<<")),
            "{svc}: {entries:?}"
        );
    }
}

#[test]
fn interpolated_numbers_and_booleans_are_cast_as_compose_casts_them() {
    let p = Project::new(
        r#"
services:
  web:
    image: docker.io/library/nginx:1.27
    read_only: ${RO}
    ports:
      - target: ${TARGET}
        published: "8080"
    healthcheck:
      test: ["CMD", "true"]
      retries: $HEALTHCHECK_RETRIES
      disable: "${HC_OFF:-false}"
    deploy:
      replicas: ${REPLICAS:-1}
    volumes:
      - type: volume
        source: data
        target: /data
        read_only: "${DATA_RO}"
  db:
    image: docker.io/library/postgres:16
    read_only: "yes"
volumes:
  data:
"#,
        Some("RO=true\nTARGET=80\nHEALTHCHECK_RETRIES=10\nDATA_RO=on\n"),
    );
    p.import_ok(&[]);
    let web = p.manifest("web");
    assert_eq!(web["container"]["read_only"].as_bool(), Some(true));
    assert_eq!(strs(&web["container"]["ports"]), ["8080:80"]);
    assert_eq!(strs(&web["container"]["volumes"]), ["demo_data:/data:ro"]);
    assert_eq!(web["health"]["retries"].as_integer(), Some(10));
    // Only the start deadline derived from the health check and what
    // Podman's read-only root allows are reported.
    let entries = p.entries("web");
    let keys: Vec<(&str, &str)> = entries
        .iter()
        .map(|(k, a, _)| (k.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("read_only", "changed"), ("healthcheck", "changed")],
        "{entries:?}"
    );
    // Compose reads the YAML 1.1 words as booleans in these places.
    assert_eq!(p.container("db")["read_only"].as_bool(), Some(true));
}

/// Podman mounts writable tmpfs on /tmp, /run, /var/tmp and /dev of a
/// read-only container, Docker does not: the report says so.
#[test]
fn a_read_only_root_reports_the_writable_tmpfs_podman_adds() {
    let p = Project::new(
        "services:\n  web:\n    image: docker.io/library/nginx:1.27\n    read_only: true\n  api:\n    image: docker.io/library/nginx:1.27\n    read_only: false\n",
        None,
    );
    p.import_ok(&[]);
    let web = p.entries("web");
    assert!(
        web.iter()
            .any(|(k, a, r)| k == "read_only" && a == "changed" && r.contains("/tmp")),
        "{web:?}"
    );
    assert!(
        !p.entries("api").iter().any(|(k, _, _)| k == "read_only"),
        "{:?}",
        p.entries("api")
    );
}

/// Compose expands `~` in a bind source to the home directory; without
/// HOME the mount is dropped and reported, never bound below the compose
/// file's directory as a literal `~`.
#[test]
fn a_bind_source_under_home_needs_home_and_is_never_a_literal_tilde() {
    let p = Project::new(
        "services:\n  web:\n    image: docker.io/library/nginx:1.27\n    volumes: [\"~/site:/usr/share/nginx/html:ro\"]\n",
        None,
    );
    let o = p.import_with_env(&[], &[("HOME", "/home/alice")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        strs(&p.container("web")["volumes"]),
        ["/home/alice/site:/usr/share/nginx/html:ro"]
    );
    std::fs::remove_dir_all(p.fleet()).unwrap();
    let o = p.import_with_env(&["--allow-partial"], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(p.container("web").get("volumes").is_none());
    let web = p.entries("web");
    assert!(
        web.iter()
            .any(|(k, a, r)| k == "volumes[0]" && a == "dropped" && r.contains("HOME is not set")),
        "{web:?}"
    );
}

/// Podman's stop timeout is whole seconds: a fraction of a second is
/// rounded up, and the report says so.
#[test]
fn a_stop_grace_period_with_a_fraction_of_a_second_reports_the_rounding() {
    let p = Project::new(
        "services:\n  web:\n    image: docker.io/library/nginx:1.27\n    stop_grace_period: 1500ms\n  api:\n    image: docker.io/library/nginx:1.27\n    stop_grace_period: 1m\n",
        None,
    );
    p.import_ok(&[]);
    let web = p.entries("web");
    assert!(
        web.iter().any(|(k, a, r)| k == "stop_grace_period"
            && a == "changed"
            && r.contains("becomes 2s")),
        "{web:?}"
    );
    assert!(
        !p.entries("api")
            .iter()
            .any(|(k, _, _)| k == "stop_grace_period"),
        "{:?}",
        p.entries("api")
    );
}

#[test]
fn a_value_compose_cannot_cast_fails_the_import_naming_service_key_and_variable() {
    let p = Project::new(
        "services:\n  web:\n    image: docker.io/library/nginx:1.27\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      retries: ${RETRIES}\n",
        Some("RETRIES=ten\n"),
    );
    let o = p.import(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "services.web.healthcheck.retries: \"ten\" is not an integer, which compose requires here (interpolated from $RETRIES)"
        ),
        "{err}"
    );
    assert!(!p.fleet().exists());
    // Unset, the variable stays literal: no cast, and the health check's
    // retries are reported as uninterpolated.
    std::fs::remove_file(p.dir.path().join(".env")).unwrap();
    let o = p.import(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        p.entries("web")
            .iter()
            .any(|(k, a, _)| k == "healthcheck.retries" && a == "uninterpolated")
    );
}

#[test]
fn a_port_with_an_empty_host_ip_is_published_on_every_address() {
    let p = Project::new(
        r#"
services:
  web:
    image: docker.io/library/nginx:1.27
    ports:
      - ":443:443"
      - ":8443:8443/udp"
      - "127.0.0.1:80:80"
"#,
        None,
    );
    p.import_ok(&["--strict"]);
    let ports: Vec<String> = p.container("web")["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ports, ["443:443", "8443:8443/udp", "127.0.0.1:80:80"]);
    let entries = p.entries("web");
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn a_service_that_cannot_be_imported_is_reported_in_a_whole_sentence() {
    let p = Project::new(
        r#"
services:
  web:
    image: docker.io/library/nginx:1.27
  odd:
    image: Not/A/Valid/Image
  built:
    build: .
  bare:
    command: ["true"]
"#,
        None,
    );
    let stderr = p.import_ok(&["--allow-partial"]);
    let reason = |svc: &str| {
        let e = p.entries(svc);
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].2.clone()
    };
    assert!(
        reason("odd").starts_with(
            "the service is not imported: its image `Not/A/Valid/Image` is not usable: "
        ),
        "{}",
        reason("odd")
    );
    assert!(
        reason("built").starts_with("the service is not imported: it has `build` and no `image`")
    );
    assert_eq!(
        reason("bare"),
        "the service is not imported: it has no `image`"
    );
    assert!(!stderr.contains("it image"), "{stderr}");
}

#[test]
fn a_pass_through_environment_entry_takes_its_value_from_dot_env_or_the_environment() {
    let p = Project::new(
        r#"
services:
  app:
    image: docker.io/library/busybox:1.36
    environment:
      - GREETING
      - DB_PASSWORD
      - NOT_SET_ANYWHERE
      - FROM_SHELL
  db:
    image: docker.io/library/postgres:16
    environment:
      LEVEL:
      EMPTY:
"#,
        Some("GREETING=hello\nDB_PASSWORD=POISON-7f3a9c-pass\nLEVEL=info\nEMPTY=\n"),
    );
    let env = [("FROM_SHELL", "shell"), ("LEVEL", "debug")];
    // `--interpolate`, the older name of --process-env, still reads the
    // environment.
    let o = p.import_with_env(&["--interpolate"], &env);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    let app = p.container("app");
    let app_env = app["env"].as_table().unwrap();
    assert_eq!(app_env["GREETING"].as_str(), Some("hello"));
    assert_eq!(app_env["FROM_SHELL"].as_str(), Some("shell"));
    // A secret is never written: the app reads the podman secret instead.
    assert!(!app_env.contains_key("DB_PASSWORD"));
    let text = std::fs::read_to_string(p.fleet().join("app.toml")).unwrap();
    assert!(
        text.contains("{ name = \"demo_db-password\", target = \"DB_PASSWORD\" }"),
        "{text}"
    );
    // Unset everywhere: compose leaves it out too, and the report says so.
    assert!(!app_env.contains_key("NOT_SET_ANYWHERE"));
    let entries = p.entries("app");
    assert!(
        entries.iter().any(|(k, a, r)| k == "environment[2]"
            && a == "uninterpolated"
            && r.contains("which the env file does not set nor the environment")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(k, a, _)| k == "environment[1]" && a == "withheld"),
        "{entries:?}"
    );
    // The environment wins over .env, as in compose; an empty value is set.
    let db_env = p.container("db")["env"].as_table().unwrap().clone();
    assert_eq!(db_env["LEVEL"].as_str(), Some("debug"));
    assert_eq!(db_env["EMPTY"].as_str(), Some(""));
    let entries = p.entries("db");
    assert!(entries.is_empty(), "{entries:?}");
    let report = std::fs::read_to_string(p.dir.path().join("report.json")).unwrap();
    for (name, text) in files(&p.fleet())
        .into_iter()
        .chain([("stderr".into(), stderr), ("report".into(), report)])
    {
        assert!(!text.contains("POISON"), "{name} holds the secret");
        assert!(!text.contains("from the shell"), "{name}: {text}");
    }

    // Without --process-env only .env is read: the shell's values are not
    // carried, and the report says how to carry them.
    let o = p.import_with_env(&["--force"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let app_env = p.container("app")["env"].as_table().unwrap().clone();
    assert_eq!(app_env["GREETING"].as_str(), Some("hello"));
    assert!(!app_env.contains_key("FROM_SHELL"));
    assert_eq!(
        p.container("db")["env"]["LEVEL"].as_str(),
        Some("info"),
        ".env only"
    );
    let entries = p.entries("app");
    assert!(
        entries.iter().any(|(k, a, r)| k == "environment[3]"
            && a == "uninterpolated"
            && r.contains("pass --env-file FILE or --process-env")),
        "{entries:?}"
    );
}

/// A `[container]` table's `env` as pairs (empty when there is none).
fn env_of(c: &toml_edit::Table) -> Vec<(String, String)> {
    c.get("env")
        .and_then(|e| e.as_table())
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.to_string(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_health_check_sets_the_start_deadline_from_its_own_timing() {
    let p = Project::new(
        r#"
services:
  db:
    image: docker.io/library/postgres:16
    healthcheck:
      test: ["CMD", "pg_isready"]
      start_period: 300s
      interval: 10s
      retries: 5
  cache:
    image: docker.io/library/redis:7
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
  web:
    image: docker.io/library/nginx:1.27
    depends_on:
      db:
        condition: service_healthy
"#,
        None,
    );
    p.import_ok(&[]);
    // 300s + 5 × (10s + 30s, compose's default timeout) + 60s margin.
    let deadline = |app: &str| {
        p.manifest(app)
            .get("update")
            .map(|u| u["health_deadline"].as_str().unwrap().to_string())
    };
    assert_eq!(deadline("db").as_deref(), Some("9min 20s"));
    // Compose's defaults throughout: 3 × (30s + 30s) + 60s.
    assert_eq!(deadline("cache").as_deref(), Some("4min"));
    assert_eq!(deadline("web"), None, "no health check, windlass's default");
    let entries = p.entries("db");
    let (_, action, reason) = entries
        .iter()
        .find(|(k, _, _)| k == "healthcheck")
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(action, "changed");
    assert!(reason.starts_with("start deadline 9min 20s "), "{reason}");
    assert!(
        reason.contains(
            "= start_period 300s + retries 5 × (interval 10s + timeout 30s) + 1min for pulling the image; compose's default for timeout. It is update.health_deadline"
        ),
        "{reason}"
    );

    // The deadline reaches the unit's start budget and the agent's contract.
    let out = p.dir.path().join("out");
    let o = windlass(&["generate", s(&p.fleet()), "-o", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (app, sec) in [("db", 560), ("cache", 240), ("web", 120)] {
        let unit = std::fs::read_to_string(out.join(format!("quadlet/{app}.container"))).unwrap();
        assert!(
            unit.lines().any(|l| l == format!("TimeoutStartSec={sec}")),
            "{app}: {unit}"
        );
        let nix = std::fs::read_to_string(out.join(format!("nixos/apps/{app}.nix"))).unwrap();
        assert!(
            nix.contains(&format!("TimeoutStartSec = lib.mkForce {sec};")),
            "{app}: {nix}"
        );
    }
    let generation: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("windlass-generation.json")).unwrap(),
    )
    .unwrap();
    let db = generation["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "db")
        .unwrap();
    assert_eq!(db["update"]["health_deadline_sec"], 560, "{db}");
}

#[test]
fn defaults_written_in_the_compose_file_apply_without_any_env_file() {
    let p = Project::new(
        r#"
services:
  web:
    image: nginx:${TAG:-1.27}
    ports: ["${PORT:-8080}:80"]
    environment:
      LEVEL: ${LEVEL:-info}
      MODE: ${MODE-prod}
      EMPTY_OK: ${NOPE:+set}
    restart: ${RESTART:-always}
"#,
        None,
    );
    p.import_ok(&["--strict"]);
    let web = p.container("web");
    assert_eq!(web["image"].as_str(), Some("docker.io/library/nginx:1.27"));
    assert_eq!(strs(&web["ports"]), ["8080:80"]);
    assert_eq!(web["restart"].as_str(), Some("always"));
    assert_eq!(
        env_of(&web),
        [
            ("LEVEL".to_string(), "info".to_string()),
            ("MODE".into(), "prod".into()),
            ("EMPTY_OK".into(), String::new()),
        ]
    );
}

#[test]
fn dot_env_and_env_files_are_read_and_the_process_environment_only_when_asked() {
    let p = Project::new(
        "services:\n  web:\n    image: nginx:${TAG}\n    environment:\n      LEVEL: ${LEVEL:-info}\n",
        Some("TAG=1.25\nLEVEL=debug\n"),
    );
    let tag_and_level = || {
        let c = p.container("web");
        (
            c["image"].as_str().unwrap().to_string(),
            env_of(&c)[0].1.clone(),
        )
    };
    let shell = [("TAG", "9.9")];
    let o = p.import_with_env(&[], &shell);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        tag_and_level(),
        ("docker.io/library/nginx:1.25".into(), "debug".into()),
        ".env is read, the shell is not"
    );
    let o = p.import_with_env(&["--force", "--process-env"], &shell);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        tag_and_level(),
        ("docker.io/library/nginx:9.9".into(), "debug".into()),
        "the process environment wins over .env, as in compose"
    );
    // --env-file replaces .env; of two, the later wins.
    let a = p.dir.path().join("a.env");
    let b = p.dir.path().join("b.env");
    std::fs::write(&a, "TAG=1.26\nLEVEL=warn\n").unwrap();
    std::fs::write(&b, "TAG=1.27\n").unwrap();
    p.import_ok(&["--force", "--env-file", s(&a), "--env-file", s(&b)]);
    assert_eq!(
        tag_and_level(),
        ("docker.io/library/nginx:1.27".into(), "warn".into())
    );
    p.import_ok(&["--force", "--env-file", s(&b)]);
    assert_eq!(
        tag_and_level(),
        ("docker.io/library/nginx:1.27".into(), "info".into()),
        ".env is not read when --env-file is given"
    );
}

#[test]
fn a_partial_import_exits_3_unless_allowed_and_writes_the_services_it_could() {
    let p = Project::new(
        r#"
services:
  web:
    image: ${REGISTRY}/web:1
  db:
    image: docker.io/library/postgres:16
  app:
    build: .
    depends_on: [db]
"#,
        None,
    );
    let o = p.import(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("error: 2 of 3 services not imported, the other 1 written: web (its image `${REGISTRY}/web:1` holds ${REGISTRY}, which is not set and has no default: set it in .env, or pass --env-file FILE or --process-env); app (it has `build` and no `image`"),
        "{err}"
    );
    assert!(err.contains("--allow-partial"), "{err}");
    // What was written is a valid fleet of the services imported.
    assert_eq!(
        files(&p.fleet())
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["db.toml", "windlass.toml"]
    );
    let v = windlass(&["validate", s(&p.fleet())]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let o = p.import(&["--force", "--allow-partial"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: 2 of 3 services not imported"),
        "{err}"
    );
}

#[test]
fn when_no_service_can_be_imported_the_error_names_each_one_and_its_cause() {
    let p = Project::new(
        "services:\n  web:\n    image: ${REGISTRY}/web:${TAG:-1}\n  app:\n    build: .\n",
        None,
    );
    let o = p.import(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no service could be imported:\n"), "{err}");
    assert!(
        err.contains(
            "  service `web`: its image `${REGISTRY}/web:1` holds ${REGISTRY}, which is not set"
        ),
        "{err}"
    );
    assert!(
        err.contains("  service `app`: it has `build` and no `image`"),
        "{err}"
    );
    assert!(!err.contains("each needs"), "{err}");
    assert!(!p.fleet().exists());
}

#[test]
fn no_manifest_value_holds_a_literal_variable_and_secrets_are_references_set_or_not() {
    let p = Project::new(
        r#"
services:
  db:
    image: docker.io/library/postgres:16
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
      POSTGRES_USER: ${POSTGRES_USER:-app}
      DATABASE_URL: postgres://app:${POSTGRES_PASSWORD:?set it}@db/app
      PLAIN: ${NOT_SET}
      HALF: "x-${NOT_SET}-y"
  app:
    image: docker.io/library/busybox:1.36
    environment:
      - API_TOKEN
      - SMTP_PASS=${SMTP_PASS:-changeme}
      - GREETING=${GREETING}
"#,
        Some("GREETING=hi\n"),
    );
    p.import_ok(&[]);
    for (name, text) in files(&p.fleet()) {
        assert!(!text.contains("${"), "{name}: {text}");
        assert!(!text.contains("changeme"), "{name}: a secret's default");
    }
    let db = std::fs::read_to_string(p.fleet().join("db.toml")).unwrap();
    assert!(
        db.contains("{ name = \"demo_postgres-password\", target = \"POSTGRES_PASSWORD\" }"),
        "{db}"
    );
    assert_eq!(
        env_of(&p.container("db")),
        [("POSTGRES_USER".to_string(), "app".to_string())]
    );
    let app = std::fs::read_to_string(p.fleet().join("app.toml")).unwrap();
    for s in [
        "{ name = \"demo_api-token\", target = \"API_TOKEN\" }",
        "{ name = \"demo_smtp-pass\", target = \"SMTP_PASS\" }",
    ] {
        assert!(app.contains(s), "{s}: {app}");
    }
    assert_eq!(
        env_of(&p.container("app")),
        [("GREETING".to_string(), "hi".to_string())]
    );
    let entries = p.entries("db");
    for (key, action, says) in [
        (
            "environment.POSTGRES_PASSWORD",
            "withheld",
            "podman secret `demo_postgres-password`",
        ),
        (
            "environment.DATABASE_URL",
            "withheld",
            "put it in an env_file",
        ),
        (
            "environment.PLAIN",
            "uninterpolated",
            "`PLAIN` is not written: ${NOT_SET} is not set",
        ),
        (
            "environment.HALF",
            "uninterpolated",
            "`HALF` is not written: ${NOT_SET} is not set",
        ),
    ] {
        assert!(
            entries
                .iter()
                .any(|(k, a, r)| k == key && a == action && r.contains(says)),
            "{key}: {entries:?}"
        );
    }
    // Withheld secrets need work by hand: --strict refuses them (#10).
    let o = p.import(&["--force", "--strict"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("dropped, left uninterpolated, withheld or would be read differently"),
        "{err}"
    );
}

#[test]
fn strict_refuses_a_withheld_secret_even_when_nothing_else_is_lost() {
    let p = Project::new(
        "services:\n  db:\n    image: docker.io/library/postgres:16\n    restart: always\n    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n",
        Some("POSTGRES_PASSWORD=POISON-7f3a9c\n"),
    );
    let o = p.import(&["--strict"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--strict: 1 key(s)"), "{err}");
    assert!(!err.contains("POISON"), "{err}");
    assert!(!p.fleet().exists());
    p.import_ok(&[]);
}

/// The real-world projects in `../shared/corpus/compose` (each a directory
/// with `compose.yml`), where this checkout has them; read in place.
fn shared_corpus() -> Option<Vec<(String, PathBuf)>> {
    let root = common::repo_root().join("../shared/corpus/compose");
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
        .ok()?
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("compose.yml").is_file())
        .map(|d| {
            (
                d.file_name().unwrap().to_string_lossy().into_owned(),
                d.join("compose.yml"),
            )
        })
        .collect();
    out.sort();
    Some(out)
}

#[test]
fn every_shared_corpus_project_imports_every_service_that_has_an_image() {
    let Some(projects) = shared_corpus() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no ../shared/corpus/compose beside this checkout (CI=true: not skipped)"
        );
        eprintln!("SKIPPED: no ../shared/corpus/compose beside this checkout");
        return;
    };
    assert!(!projects.is_empty());
    let (mut total, mut imported) = (0, 0);
    for (name, compose) in &projects {
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(compose).unwrap()).unwrap();
        let services = doc["services"].as_mapping().unwrap().len();
        total += services;
        let tmp = tempfile::tempdir().unwrap();
        let fleet = tmp.path().join("fleet");
        let report = tmp.path().join("report.json");
        let o = windlass(&[
            "import",
            s(compose),
            "-o",
            s(&fleet),
            "--report",
            s(&report),
            "--allow-partial",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        // Only a service without an image (build-only, or `extends` it
        // from elsewhere) may stay behind; never for want of a variable.
        let build_only = |why: &str| {
            why.starts_with("it has `build` and no `image`") || why == "it has no `image`"
        };
        if !o.status.success() {
            assert_eq!(o.status.code(), Some(1), "{name}: {err}");
            let causes: Vec<&str> = err
                .lines()
                .filter_map(|l| l.strip_prefix("  service `"))
                .map(|l| l.split_once("`: ").unwrap().1)
                .collect();
            assert_eq!(causes.len(), services, "{name}: {err}");
            assert!(causes.iter().all(|c| build_only(c)), "{name}: {err}");
            eprintln!("{name}: 0 of {services} (none has an image)");
            continue;
        }
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let mut n = 0;
        for svc in r["services"].as_array().unwrap() {
            if svc["app"].is_string() {
                n += 1;
                continue;
            }
            let why = r["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["service"] == svc["service"] && e["key"] == "image")
                .and_then(|e| e["reason"].as_str())
                .and_then(|r| r.strip_prefix("the service is not imported: "))
                .unwrap_or_default();
            assert!(build_only(why), "{name}: {}: {why}", svc["service"]);
        }
        imported += n;
        let v = windlass(&["validate", s(&fleet)]);
        assert!(
            v.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        // No literal variable in any environment value or secret.
        for (file, text) in files(&fleet) {
            let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
                continue;
            };
            let Some(c) = doc.get("container").and_then(|c| c.as_table()) else {
                continue;
            };
            for (k, v) in env_of(c) {
                assert!(!v.contains("${"), "{name}/{file}: {k} = {v:?}");
            }
            if let Some(secrets) = c.get("secrets") {
                assert!(!secrets.to_string().contains('$'), "{name}/{file}");
            }
        }
        eprintln!("{name}: {n} of {services}");
    }
    eprintln!(
        "shared corpus: {imported} of {total} services imported from {} projects",
        projects.len()
    );
}

/// Imports `dir/compose.yaml` into `dir/fleet` with `args` and only `env`
/// in the process environment (no `--project`): returns the exit status
/// code, stderr and the JSON report.
fn import_dir(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, serde_json::Value) {
    let compose = dir.join("compose.yaml");
    let fleet = dir.join("fleet");
    let report = dir.join("report.json");
    let mut all = vec![
        "import",
        s(&compose),
        "-o",
        s(&fleet),
        "--report",
        s(&report),
    ];
    all.extend_from_slice(args);
    let o = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .env_clear()
        .envs(env.iter().copied())
        .args(&all)
        .output()
        .unwrap();
    let r = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        r,
    )
}

/// Compose names volumes and networks `<project>_<key>`, the project being
/// `-p`, else COMPOSE_PROJECT_NAME (the process environment, or `.env`),
/// else the top-level `name:`, else the directory. A migrated host must
/// find its existing volumes (`mailcowdockerized_vmail`) under the same
/// names.
#[test]
fn the_project_name_comes_from_compose_project_name_then_name_then_the_directory() {
    let compose = "name: Other\nservices:\n  mail:\n    image: docker.io/library/busybox:1.36\n    restart: always\n    volumes: [\"vmail:/var/vmail\"]\n    networks: [back]\nvolumes:\n  vmail: {}\nnetworks:\n  back: {}\n";
    let case = |env_file: Option<&str>, args: &[&str], env: &[(&str, &str)]| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("My Dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), compose).unwrap();
        if let Some(e) = env_file {
            std::fs::write(dir.join(".env"), e).unwrap();
        }
        let (code, err, r) = import_dir(&dir, args, env);
        assert_eq!(code, 0, "{err}");
        let fleet = std::fs::read_to_string(dir.join("fleet/windlass.toml")).unwrap();
        let app = std::fs::read_to_string(dir.join("fleet/mail.toml")).unwrap();
        (fleet, app, err, r)
    };
    // COMPOSE_PROJECT_NAME in .env wins over `name:`, normalised as compose does.
    let (fleet, app, err, r) = case(Some("COMPOSE_PROJECT_NAME=MailcowDockerized\n"), &[], &[]);
    assert!(
        fleet.contains("[volumes.mailcowdockerized_vmail]"),
        "{fleet}"
    );
    assert!(
        fleet.contains("[networks.mailcowdockerized_back]"),
        "{fleet}"
    );
    assert!(
        app.contains("\"mailcowdockerized_vmail:/var/vmail\""),
        "{app}"
    );
    assert_eq!(r["project"], "mailcowdockerized");
    assert_eq!(r["project_from"], "COMPOSE_PROJECT_NAME in the env file");
    assert!(
        err.contains("project mailcowdockerized (from COMPOSE_PROJECT_NAME in the env file): volumes and networks are named mailcowdockerized_<key>"),
        "{err}"
    );
    // The process environment is read only with --process-env, and then wins.
    let env = [("COMPOSE_PROJECT_NAME", "fromshell")];
    let (fleet, ..) = case(Some("COMPOSE_PROJECT_NAME=dotenv\n"), &[], &env);
    assert!(fleet.contains("[volumes.dotenv_vmail]"), "{fleet}");
    let (fleet, _, _, r) = case(
        Some("COMPOSE_PROJECT_NAME=dotenv\n"),
        &["--process-env"],
        &env,
    );
    assert!(fleet.contains("[volumes.fromshell_vmail]"), "{fleet}");
    assert_eq!(
        r["project_from"],
        "COMPOSE_PROJECT_NAME in the process environment"
    );
    // --project wins over everything.
    let (fleet, ..) = case(
        Some("COMPOSE_PROJECT_NAME=dotenv\n"),
        &["--project", "mine"],
        &[],
    );
    assert!(fleet.contains("[volumes.mine_vmail]"), "{fleet}");
    // Without it: `name:`, then the directory's name.
    let (fleet, _, _, r) = case(None, &[], &[]);
    assert!(fleet.contains("[volumes.other_vmail]"), "{fleet}");
    assert_eq!(r["project_from"], "the top-level `name:`");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("My Dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        compose.replace("name: Other\n", ""),
    )
    .unwrap();
    let (code, err, r) = import_dir(&dir, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["project"], "mydir");
    let fleet = std::fs::read_to_string(dir.join("fleet/windlass.toml")).unwrap();
    assert!(fleet.contains("[volumes.mydir_vmail]"), "{fleet}");
}

/// `--prefix PFX` names every app `PFX-<service>`, dependencies included,
/// so that two projects with a `db` each import into one fleet.
#[test]
fn prefix_names_every_app_and_lets_two_projects_share_a_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let compose = "services:\n  db:\n    image: docker.io/library/postgres:16\n    restart: always\n  web:\n    image: docker.io/library/nginx:1.27\n    restart: always\n    depends_on: [db]\n";
    for p in ["one", "two"] {
        let dir = tmp.path().join(p);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), compose).unwrap();
        let o = windlass(&[
            "import",
            s(&dir.join("compose.yaml")),
            "-o",
            s(&fleet),
            "--prefix",
            &format!("{p}-"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let names: Vec<String> = files(&fleet).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "one-db.toml",
            "one-web.toml",
            "two-db.toml",
            "two-web.toml",
            "windlass.toml"
        ]
    );
    let web = std::fs::read_to_string(fleet.join("two-web.toml")).unwrap();
    assert!(web.contains("requires = [\"two-db\"]"), "{web}");
    let o = windlass(&["validate", s(&fleet)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A prefix that cannot start an app name is refused, naming it.
    let o = windlass(&[
        "import",
        s(&tmp.path().join("one/compose.yaml")),
        "-o",
        s(&tmp.path().join("other")),
        "--prefix",
        "1x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--prefix \"1x\""));
}

/// An app named like a distribution's service (postgresql, nginx, redis)
/// would hide it on a host that has it: a warning at import and at
/// validate, not an error; `--prefix` avoids it.
#[test]
fn an_app_named_like_a_distribution_service_is_warned_about_at_import_and_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  postgresql:\n    image: docker.io/library/postgres:16\n    restart: always\n  app:\n    image: docker.io/library/nginx:1.27\n    restart: always\n",
    )
    .unwrap();
    let (code, err, r) = import_dir(dir, &[], &[]);
    assert_eq!(code, 0, "{err}");
    let w = r["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    let w = w[0].as_str().unwrap();
    assert!(
        w.contains("the app `postgresql` has the name of a service Debian and NixOS ship"),
        "{w}"
    );
    assert!(w.contains("--prefix"), "{w}");
    assert!(err.contains(&format!("warning: {w}")), "{err}");
    let o = windlass(&["validate", s(&dir.join("fleet"))]);
    let verr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{verr}");
    assert!(
        verr.contains(
            "warning: `name`: app `postgresql` has the name of a service Debian and NixOS ship"
        ),
        "{verr}"
    );
    assert!(!verr.contains("app `app`"), "{verr}");
    // Prefixed, nothing to warn about.
    std::fs::remove_dir_all(dir.join("fleet")).unwrap();
    let (code, err, r) = import_dir(dir, &["--prefix", "demo"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(r.get("warnings").is_none(), "{r}");
    let o = windlass(&["validate", s(&dir.join("fleet"))]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
}

/// `container_name`, network `aliases` and `ipv4_address` are carried, and
/// the service name stays reachable when the container's name is another
/// (a rename, `--prefix`, `container_name`): compose makes it an alias on
/// each network, and so does the import. An address the network's subnet
/// does not hold is dropped, saying why.
#[test]
fn container_names_aliases_and_static_addresses_are_carried_down_to_the_units() {
    let p = Project::new(
        r#"
services:
  db:
    image: docker.io/library/postgres:16
    restart: always
    container_name: legacy-postgres
    networks:
      back:
        aliases: [postgres, "not an alias"]
        ipv4_address: 10.77.0.5
  web_front:
    image: docker.io/library/nginx:1.27
    restart: always
    networks:
      back:
        ipv4_address: 10.78.0.9
      front:
        ipv6_address: fd77::9
        aliases: [www]
  plain:
    image: docker.io/library/nginx:1.27
    restart: always
networks:
  back:
    ipam:
      config:
        - subnet: 10.77.0.0/24
          gateway: 10.77.0.1
  front: {}
"#,
        None,
    );
    p.import_ok(&[]);
    let db = p.container("db");
    assert_eq!(db["container_name"].as_str(), Some("legacy-postgres"));
    assert_eq!(
        db["networks"].to_string().trim(),
        r#"[{ name = "demo_back", aliases = ["db", "postgres"], ipv4 = "10.77.0.5" }]"#
    );
    let web = p.container("web-front");
    assert!(web.get("container_name").is_none());
    assert_eq!(
        web["networks"].to_string().trim(),
        r#"[{ name = "demo_back", aliases = ["web_front"] }, { name = "demo_front", aliases = ["web_front", "www"] }]"#
    );
    // Named as compose names it, nothing to add.
    assert_eq!(strs(&p.container("plain")["networks"]), ["demo_default"]);
    let e = p.entries("db");
    assert!(
        e.iter().any(|(k, a, r)| k == "networks.back.aliases[1]"
            && a == "dropped"
            && r.contains("not a DNS name")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|(k, a, r)| k == "(service name)"
            && a == "changed"
            && r.contains("`db` stays a network alias on `demo_back`")),
        "{e:?}"
    );
    assert!(!e.iter().any(|(k, ..)| k == "container_name"), "{e:?}");
    let e = p.entries("web_front");
    for (key, why) in [
        (
            "networks.back.ipv4_address",
            "10.78.0.9 is not in the subnet 10.77.0.0/24",
        ),
        ("networks.front.ipv6_address", "declares no subnet"),
    ] {
        assert!(
            e.iter()
                .any(|(k, a, r)| k == key && a == "dropped" && r.contains(why)),
            "{key}: {e:?}"
        );
    }
    // Down to the Quadlet units.
    let out = p.dir.path().join("out");
    let o = windlass(&[
        "generate",
        s(&p.fleet()),
        "-o",
        s(&out),
        "--target",
        "quadlet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unit = std::fs::read_to_string(out.join("quadlet/db.container")).unwrap();
    assert!(unit.contains("\nContainerName=legacy-postgres\n"), "{unit}");
    assert!(
        unit.contains("\nNetwork=demo_back.network:alias=db,alias=postgres,ip=10.77.0.5\n"),
        "{unit}"
    );
    let unit = std::fs::read_to_string(out.join("quadlet/web-front.container")).unwrap();
    assert!(
        unit.contains("\nNetwork=demo_front.network:alias=web_front,alias=www\n"),
        "{unit}"
    );
}

/// With `--prefix`, every app is renamed, and each service name stays a
/// network alias, so `db:5432` in another service's environment still
/// resolves.
#[test]
fn prefixed_apps_keep_their_service_names_as_aliases() {
    let p = Project::new(
        "services:\n  db:\n    image: docker.io/library/postgres:16\n    restart: always\n  web:\n    image: docker.io/library/nginx:1.27\n    restart: always\n    environment:\n      DB_HOST: db\n",
        None,
    );
    p.import_ok(&["--prefix", "shop"]);
    for (app, svc) in [("shop-db", "db"), ("shop-web", "web")] {
        assert_eq!(
            p.container(app)["networks"].to_string().trim(),
            format!(r#"[{{ name = "demo_default", aliases = ["{svc}"] }}]"#)
        );
    }
    let o = windlass(&["validate", s(&p.fleet())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Compose reads an `env_file` with its dotenv rules (quotes, `export `,
/// comments, interpolation); Podman's `--env-file` takes each line
/// literally. Every variable the container would receive with another
/// value is reported `differs` by name (never the value), with the fix
/// when one line reads the same in both; a file both read alike gives no
/// entry; `--strict` refuses the rest.
#[test]
fn an_env_file_podman_reads_differently_is_reported_key_by_key_without_values() {
    let p = Project::new(
        "services:\n  web:\n    image: docker.io/library/busybox:1.36\n    restart: always\n    env_file: [app.env, same.env]\n    environment:\n      OVERRIDDEN: x\n",
        Some("HOST=db.example\n"),
    );
    let app = "# comment\nSECRET_KEY='r(m)POISON-1'\nexport EXPORTED=POISON-2\nURL=http://${HOST}/\nPRICE='5$'\nPLAIN=POISON-3\nCOMMENTED=POISON-4 # note\nMULTI=\"POISON-5\nPOISON-6=tail\"\nOVERRIDDEN='POISON-7'\n";
    std::fs::write(p.dir.path().join("app.env"), app).unwrap();
    std::fs::write(p.dir.path().join("same.env"), "A=1\n# c\nB=two words\n").unwrap();
    let o = p.import(&[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let report = std::fs::read_to_string(p.dir.path().join("report.json")).unwrap();
    for text in [&err, &report] {
        assert!(!text.contains("POISON"), "a value leaked:\n{text}");
    }
    let entries = p.entries("web");
    let differs: Vec<&(String, String, String)> =
        entries.iter().filter(|(_, a, _)| a == "differs").collect();
    let has = |key: &str, says: &str| {
        assert!(
            differs.iter().any(|(k, _, r)| k == key && r.contains(says)),
            "{key} / {says}: {differs:#?}"
        )
    };
    has("env_file[0].SECRET_KEY", "keeps the single quotes");
    has(
        "env_file[0].SECRET_KEY",
        "write the line as SECRET_KEY= and the value compose reads, unquoted",
    );
    has("env_file[0].SECRET_KEY", "line 2");
    has("env_file[0].EXPORTED", "reads `export KEY` as the name");
    has("env_file[0].URL", "does not interpolate");
    has("env_file[0].URL", "unquoted");
    has("env_file[0].PRICE", "no line reads the same in both");
    has("env_file[0].COMMENTED", "keeps the ` #` comment");
    has("env_file[0].MULTI", "reads only the first line");
    has("env_file", "also set 2 variable(s)");
    for quiet in ["PLAIN", "OVERRIDDEN", ".A", ".B"] {
        assert!(
            !differs.iter().any(|(k, _, _)| k.ends_with(quiet)),
            "{quiet}: {differs:#?}"
        );
    }
    // The file itself stays a reference: nothing of it reaches the fleet.
    let c = p.container("web");
    let files = strs(&c["env_files"]);
    assert!(files[0].ends_with("/app.env"), "{files:?}");
    for (_, text) in tree_text(&p.fleet()) {
        assert!(!text.contains("POISON"), "{text}");
    }
    let o = p.import(&["--force", "--strict"]);
    assert_eq!(o.status.code(), Some(1));

    // Files both read alike: no entry, and --strict passes.
    std::fs::write(p.dir.path().join("app.env"), "SECRET_KEY=r(m)x\n").unwrap();
    p.import_ok(&["--force", "--strict"]);
    assert!(!p.entries("web").iter().any(|(_, a, _)| a == "differs"));
}

/// `build:` with `image:` is an image compose builds and tags `image`, not
/// a pull of docker.io/library/…: the manifest names it as Podman names a
/// local build (`localhost/…`, so a missing image is never pulled from a
/// registry), and the report gives the build command with the absolute
/// context, naming build args without their values.
#[test]
fn build_with_image_is_a_local_image_with_its_build_command() {
    let p = Project::new(
        "services:\n  web:\n    image: myapp:dev\n    restart: always\n    build:\n      context: ./src\n      dockerfile: Containerfile\n      args:\n        TOKEN: POISON-9\n  worker:\n    image: ghcr.io/acme/worker\n    restart: always\n    build: ./worker\n  cache:\n    image: redis\n    restart: always\n",
        None,
    );
    p.import_ok(&["--allow-partial"]);
    let image = |app: &str| p.container(app)["image"].as_str().unwrap().to_string();
    assert_eq!(image("web"), "localhost/myapp:dev");
    assert_eq!(image("worker"), "ghcr.io/acme/worker:latest");
    assert_eq!(image("cache"), "docker.io/library/redis:latest");
    let dir = p.dir.path().to_str().unwrap().to_string();
    let web = p.entries("web");
    let has = |entries: &[(String, String, String)], key: &str, action: &str, says: &str| {
        assert!(
            entries
                .iter()
                .any(|(k, a, r)| k == key && a == action && r.contains(says)),
            "{key} {action} {says}: {entries:#?}"
        )
    };
    has(&web, "image", "changed", "is built locally");
    has(
        &web,
        "image",
        "changed",
        "nothing is pulled from a registry",
    );
    has(
        &web,
        "build",
        "dropped",
        &format!("`podman build -t localhost/myapp:dev -f Containerfile {dir}/src`"),
    );
    has(&web, "build", "dropped", "build args (TOKEN)");
    let worker = p.entries("worker");
    has(
        &worker,
        "build",
        "dropped",
        &format!("`podman build -t ghcr.io/acme/worker:latest {dir}/worker`"),
    );
    has(
        &worker,
        "image",
        "changed",
        "Podman pulls it from its registry instead",
    );
    let report = std::fs::read_to_string(p.dir.path().join("report.json")).unwrap();
    assert!(!report.contains("POISON"));
    // windlass does not build: --strict refuses it.
    assert_eq!(p.import(&["--force", "--strict"]).status.code(), Some(1));
}

/// Same-file `extends` (long and short form) is merged as compose merges
/// it, instead of a service "without an image": the base's image,
/// environment (interpolated at the extending service), ports and
/// volumes are inherited, the extending service's values win, lists are
/// appended with one entry per key; a base that is missing fails the
/// import naming it.
#[test]
fn same_file_extends_is_merged_as_compose_merges_it() {
    let p = Project::new(
        "x-base: &b\n  restart: always\nservices:\n  base:\n    <<: *b\n    image: docker.io/library/app:${TAG}\n    command: [serve]\n    environment:\n      MODE: base\n      LEVEL: ${LEVEL:-info}\n    ports: [\"8080:80\"]\n    volumes: [\"data:/data\"]\n  worker:\n    extends:\n      service: base\n    command: [work]\n    environment:\n      MODE: worker\n    ports: [\"9090:90\"]\n    volumes: [\"/srv/w:/data\"]\n  short:\n    extends: worker\n    restart: on-failure\nvolumes:\n  data: {}\n",
        Some("TAG=1.2\n"),
    );
    p.import_ok(&[]);
    let w = p.container("worker");
    assert_eq!(w["image"].as_str(), Some("docker.io/library/app:1.2"));
    assert_eq!(strs(&w["command"]), ["work"]);
    assert_eq!(
        env_of(&w),
        [
            ("LEVEL".to_string(), "info".to_string()),
            ("MODE".into(), "worker".into())
        ]
    );
    assert_eq!(strs(&w["ports"]), ["8080:80", "9090:90"]);
    assert_eq!(strs(&w["volumes"]), ["/srv/w:/data"]);
    assert_eq!(w["restart"].as_str(), Some("always"));
    let s = p.container("short");
    assert_eq!(strs(&s["command"]), ["work"]);
    assert_eq!(s["restart"].as_str(), Some("on-failure"));
    let b = p.container("base");
    assert_eq!(strs(&b["command"]), ["serve"]);
    assert!(
        p.entries("worker")
            .iter()
            .any(|(k, a, r)| k == "extends" && a == "changed" && r.contains("`base`")),
        "{:?}",
        p.entries("worker")
    );
    let p = Project::new(
        "services:\n  a:\n    extends: nope\n    restart: always\n",
        None,
    );
    let o = p.import(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("services.a") && err.contains("`nope`"),
        "{err}"
    );
}

/// Podman secrets the import creates names for are scoped by the project
/// (`<project>_<name>`, as compose scopes what it creates), so two
/// projects' `DB_PASSWORD` do not collide in one fleet; external ones keep
/// their names. The report begins with the totals and lists every secret
/// the fleet needs as a ready-to-run `podman secret create NAME -`, never
/// a value; the JSON gains `summary` and `podman_secrets`.
#[test]
fn secrets_are_scoped_by_project_and_the_report_starts_with_totals_and_secret_commands() {
    let compose = "services:\n  db:\n    image: docker.io/library/postgres:16\n    restart: always\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n    secrets: [api, ext]\n  web:\n    image: docker.io/library/nginx:1\n    restart: always\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n    profiles: [x]\nsecrets:\n  api:\n    environment: API_KEY\n  ext:\n    external: true\n";
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let mut reports = Vec::new();
    for project in ["one", "two"] {
        let dir = tmp.path().join(project);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), compose).unwrap();
        std::fs::write(
            dir.join(".env"),
            "DB_PASSWORD=POISON-s3\nAPI_KEY=POISON-k4\n",
        )
        .unwrap();
        let report = dir.join("report.json");
        let o = windlass(&[
            "import",
            s(&dir.join("compose.yaml")),
            "-o",
            s(&fleet),
            "--prefix",
            project,
            "--report",
            s(&report),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        assert!(!err.contains("POISON"), "{err}");
        assert!(
            err.starts_with("imported 2 of 2 services; report entries: "),
            "{err}"
        );
        assert!(
            err.contains(" dropped") && err.contains(" withheld"),
            "{err}"
        );
        for cmd in [
            format!(
                "  podman secret create {project}_db-password -    # {project}-db, {project}-web"
            ),
            format!("  podman secret create {project}_api -    # {project}-db"),
            format!("  podman secret create ext -    # {project}-db"),
        ] {
            assert!(err.contains(&cmd), "{cmd}\n{err}");
        }
        let text = std::fs::read_to_string(&report).unwrap();
        assert!(!text.contains("POISON"));
        reports.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }
    let r = &reports[1];
    assert_eq!(r["summary"]["services_total"], 2);
    assert_eq!(r["summary"]["services_imported"], 2);
    assert_eq!(r["summary"]["entries"]["dropped"], 1);
    let names: Vec<&str> = r["podman_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["two_db-password", "two_api", "ext"]);
    assert_eq!(
        r["podman_secrets"][0]["command"],
        "podman secret create two_db-password -"
    );
    // Existing fields keep their names.
    for k in ["format", "project", "services", "entries", "interpolated"] {
        assert!(r.get(k).is_some(), "{k}");
    }
    let v = windlass(&["validate", s(&fleet)]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

/// A project of several files in `tests/compose-files/CASE`, read in
/// place.
fn multi(case: &str) -> PathBuf {
    common::repo_root()
        .join("generator/tests/compose-files")
        .join(case)
}

/// `windlass import ARGS -o TMP/fleet --project demo --report
/// TMP/report.json` with an empty environment: the status, stderr, the
/// JSON report (Null when none was written) and TMP.
fn import_files(args: &[&str]) -> (Output, String, serde_json::Value, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let report = tmp.path().join("report.json");
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", s(&fleet), "--project", "demo", "--report", s(&report)]);
    let o = windlass(&all);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let r = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (o, err, r, tmp)
}

fn container_in(fleet: &Path, app: &str) -> toml_edit::Table {
    let text = std::fs::read_to_string(fleet.join(format!("{app}.toml")))
        .unwrap_or_else(|e| panic!("{app}.toml: {e}"));
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc["container"].as_table().unwrap().clone()
}

/// As `docker compose` without `-f`: the override file beside the compose
/// file (`compose.override.yml`) is merged over it, and the report says
/// so; `-f compose.yaml` reads that file alone.
#[test]
fn the_override_file_beside_the_compose_file_is_read_over_it_unless_f_names_the_files() {
    let main = multi("override/compose.yaml");
    let (o, err, r, tmp) = import_files(&[s(&main)]);
    assert!(o.status.success(), "{err}");
    let fleet = tmp.path().join("fleet");
    let web = container_in(&fleet, "web");
    assert_eq!(web["image"].as_str(), Some("docker.io/library/nginx:1.27"));
    assert_eq!(strs(&web["command"]), ["nginx-debug", "-g", "daemon off;"]);
    // One entry per published port, the later file's in the earlier's place.
    assert_eq!(strs(&web["ports"]), ["8080:80", "8081:81"]);
    assert_eq!(
        env_of(&web),
        [
            ("LEVEL".to_string(), "info".to_string()),
            ("MODE".into(), "dev".into())
        ]
    );
    assert!(fleet.join("cache.toml").is_file());
    let files: Vec<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[1].ends_with("override/compose.override.yml"),
        "{files:?}"
    );
    assert!(
        err.contains("compose.override.yml was read over") && err.contains("no -f is given"),
        "{err}"
    );

    let (o, err, r, tmp) = import_files(&["-f", s(&main)]);
    assert!(o.status.success(), "{err}");
    let fleet = tmp.path().join("fleet");
    let web = container_in(&fleet, "web");
    assert_eq!(strs(&web["command"]), ["nginx", "-g", "daemon off;"]);
    assert_eq!(strs(&web["ports"]), ["8080:80"]);
    assert!(!fleet.join("cache.toml").exists());
    assert!(r.get("files").is_none(), "{r}");
    assert!(!err.contains("override"), "{err}");

    // COMPOSE_FILE and -f are one or the other.
    let (o, err, _, _) = import_files(&[s(&main), "-f", s(&main)]);
    assert_eq!(o.status.code(), Some(2), "{err}");
}

/// `-f a -f b`: b is merged over a as compose merges files (maps key by
/// key, lists appended then one entry per key, `!override` replaces,
/// `!reset` removes, networks' `ipam.config` by subnet), and b's relative
/// paths are relative to the project directory, a's.
#[test]
fn later_files_merge_over_earlier_ones_with_reset_and_override() {
    let dir = multi("files");
    let (o, err, r, tmp) = import_files(&[
        "-f",
        s(&dir.join("compose.yaml")),
        "-f",
        s(&dir.join("env/prod.yml")),
    ]);
    assert!(o.status.success(), "{err}");
    let fleet = tmp.path().join("fleet");
    let app = container_in(&fleet, "app");
    assert_eq!(app["image"].as_str(), Some("docker.io/library/app:2"));
    assert_eq!(
        env_of(&app),
        [("A".to_string(), "1".to_string()), ("B".into(), "3".into())]
    );
    assert_eq!(strs(&app["ports"]), ["443:443"]);
    assert_eq!(
        strs(&app["volumes"]),
        [format!("{}:/data", s(&dir.join("data")))]
    );
    let text = std::fs::read_to_string(fleet.join("app.toml")).unwrap();
    assert!(!text.contains("[health]"), "{text}");
    let toml = std::fs::read_to_string(fleet.join("windlass.toml")).unwrap();
    assert!(
        toml.contains("[networks.demo_front]")
            && toml.contains("subnet = \"10.5.0.0/24\"")
            && toml.contains("gateway = \"10.5.0.254\""),
        "{toml}"
    );
    assert_eq!(r["files"].as_array().unwrap().len(), 2);
    assert!(!err.contains("was read over"), "{err}");
}

/// `include`: each entry is its own project, read with its own project
/// directory (the file's, or `project_directory`) and variables (the
/// including project's first, then its `env_file` or its `.env`), with
/// its override files (`path` as a list); its services join the project.
#[test]
fn include_reads_each_project_with_its_own_directory_and_variables() {
    let dir = multi("include");
    let (o, err, r, tmp) = import_files(&[s(&dir.join("compose.yaml"))]);
    assert!(o.status.success(), "{err}");
    let fleet = tmp.path().join("fleet");
    let db = container_in(&fleet, "db");
    // DB_TAG is set by both; the including project's value wins.
    assert_eq!(
        db["image"].as_str(),
        Some("docker.io/library/postgres:16-main")
    );
    assert_eq!(
        env_of(&db),
        [
            ("PGDATA_DIR".to_string(), "/srv/pg".to_string()),
            ("LOCALE".into(), "C.UTF-8".into())
        ]
    );
    assert_eq!(
        strs(&db["volumes"]),
        [format!(
            "{}:/var/lib/postgresql/data",
            s(&dir.join("lib/pgdata"))
        )]
    );
    assert_eq!(strs(&db["env_files"]), [s(&dir.join("lib/db.env"))]);
    let cache = container_in(&fleet, "cache");
    assert_eq!(cache["image"].as_str(), Some("docker.io/library/redis:7.2"));
    assert_eq!(
        strs(&cache["command"]),
        ["redis-server", "--maxmemory", "64mb"]
    );
    assert_eq!(
        strs(&cache["volumes"]),
        [format!("{}:/conf:ro", s(&dir.join("extra-root/conf")))]
    );
    let web = container_in(&fleet, "web");
    assert_eq!(web["image"].as_str(), Some("docker.io/library/web:5"));
    assert_eq!(env_of(&web), [("SHARED".to_string(), "main".to_string())]);
    let notes: Vec<(&str, &str)> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["key"].as_str().unwrap().starts_with("include"))
        .map(|e| (e["key"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        notes,
        [("include[0]", "changed"), ("include[1]", "changed")]
    );
    assert_eq!(r["files"].as_array().unwrap().len(), 4, "{}", r["files"]);
    assert_eq!(r["summary"]["services_imported"], 3);
}

/// A service defined both by the including file and, differently, by an
/// included one is an error, as in compose; so is an include cycle.
#[test]
fn an_include_conflict_or_cycle_fails_the_import_and_writes_nothing() {
    let (o, err, _, tmp) = import_files(&[s(&multi("include-conflict/compose.yaml"))]);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("services.db is defined here and by the included")
            && err.contains("lib/db.yaml"),
        "{err}"
    );
    assert!(!tmp.path().join("fleet").exists());
    let (o, err, _, tmp) = import_files(&[s(&multi("include-cycle/compose.yaml"))]);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("include cycle"), "{err}");
    assert!(!tmp.path().join("fleet").exists());
}
