//! `windlass import quadlet` end to end: the hand-written units in
//! `tests/quadlet/basic/` import, generate again (Quadlet target), and the
//! regenerated `.container` files mean what the originals meant: image,
//! exec argv and entrypoint (compared after Quadlet's word splitting and
//! systemd's `%%`/`$$` resolution, not as text), environment, ports,
//! volumes and networks (by the Podman resource they name), labels, health,
//! user, restart and dependencies. The hostile units give report lines with
//! file and line; a syntax error is an error naming file and line.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use windlass::import::convert::{duration_usec, normalize_image};
use windlass::import::unit_syntax::{
    UnitFile, parse, resolve_exec, resolve_text, split_words, unquote_whole,
};
use windlass::model::values::{parse_memory, parse_port};

fn fixtures() -> PathBuf {
    common::repo_root().join("generator/tests/quadlet")
}

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

fn unit(path: &Path) -> UnitFile {
    parse(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}:{}: {}", path.display(), e.line, e.message))
}

fn last(u: &UnitFile, section: &str, key: &str) -> Option<String> {
    u.indices(section, key)
        .last()
        .map(|&i| u.settings[i].value.clone())
}

/// Every value of a list key, after the last empty assignment.
fn all(u: &UnitFile, section: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in u.indices(section, key) {
        let v = &u.settings[i].value;
        if v.is_empty() {
            out.clear();
        } else {
            out.push(v.clone());
        }
    }
    out
}

fn whole(v: &str) -> String {
    resolve_exec(unquote_whole(v).0).unwrap()
}

fn words(v: &str) -> Vec<String> {
    split_words(v)
        .unwrap()
        .iter()
        .map(|w| resolve_exec(w).unwrap())
        .collect()
}

/// The Podman resource a `x.volume` / `x.network` reference names.
fn resource(dir: &Path, reference: &str, kind: &str, name_key: &str) -> String {
    let Some(stem) = reference.strip_suffix(&format!(".{kind}")) else {
        return reference.to_string();
    };
    let u = unit(&dir.join(reference));
    let section = if kind == "volume" {
        "Volume"
    } else {
        "Network"
    };
    last(&u, section, name_key)
        .map(|n| whole(&n))
        .unwrap_or_else(|| format!("systemd-{stem}"))
}

/// What a `.container` means to the container it runs.
#[derive(Debug, PartialEq)]
struct Meaning {
    image: String,
    exec: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    env: BTreeMap<String, String>,
    ports: BTreeSet<String>,
    volumes: BTreeSet<String>,
    networks: BTreeSet<String>,
    container_name: Option<String>,
    labels: BTreeMap<String, String>,
    health_cmd: Option<Vec<String>>,
    health_times: BTreeMap<String, u64>,
    health_retries: Option<String>,
    user: Option<String>,
    read_only: bool,
    /// Bytes, from `Memory=` or the `--memory=` of `PodmanArgs=`.
    memory: Option<u64>,
    stop_timeout: Option<String>,
    auto_update: Option<String>,
    restart: String,
    requires: BTreeSet<String>,
    wants: BTreeSet<String>,
}

fn key_values(u: &UnitFile, key: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for v in all(u, "Container", key) {
        for w in words(&v) {
            let (k, v) = w.split_once('=').unwrap();
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

/// A dependency on `x.container` or `x.service`, as the app stem.
fn deps(u: &UnitFile, key: &str) -> BTreeSet<String> {
    all(u, "Unit", key)
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|d| {
            d.strip_suffix(".container")
                .or_else(|| d.strip_suffix(".service"))
                .map(str::to_string)
        })
        .collect()
}

fn memory(u: &UnitFile) -> Option<u64> {
    if let Some(m) = last(u, "Container", "Memory") {
        return Some(parse_memory(&normalize_memory(&m)).unwrap());
    }
    all(u, "Container", "PodmanArgs")
        .iter()
        .flat_map(|v| words(v))
        .find_map(|w| w.strip_prefix("--memory=").map(|b| b.parse().unwrap()))
}

/// Podman's `512m` (×1024) as a manifest size.
fn normalize_memory(s: &str) -> String {
    windlass::import::convert::byte_size(s).unwrap()
}

fn meaning(path: &Path) -> Meaning {
    let dir = path.parent().unwrap();
    let u = unit(path);
    let mut labels = key_values(&u, "Label");
    labels.remove("io.windlass.app");
    let health_cmd = last(&u, "Container", "HealthCmd").map(|v| {
        let v = whole(&v);
        serde_json::from_str::<Vec<String>>(&v)
            .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), v])
    });
    let mut health_times = BTreeMap::new();
    for k in ["HealthInterval", "HealthTimeout", "HealthStartPeriod"] {
        if let Some(v) = last(&u, "Container", k) {
            health_times.insert(k.to_string(), duration_usec(&whole(&v)).unwrap());
        }
    }
    let user = last(&u, "Container", "User").map(|us| match last(&u, "Container", "Group") {
        Some(g) => format!("{us}:{g}"),
        None => us,
    });
    Meaning {
        image: normalize_image(&whole(&last(&u, "Container", "Image").unwrap()))
            .unwrap()
            .0,
        exec: last(&u, "Container", "Exec").map(|v| words(&v)),
        entrypoint: last(&u, "Container", "Entrypoint")
            .map(|v| serde_json::from_str(&whole(&v)).unwrap()),
        env: key_values(&u, "Environment"),
        ports: all(&u, "Container", "PublishPort")
            .iter()
            .map(|p| parse_port(&whole(p)).unwrap().to_string())
            .collect(),
        volumes: all(&u, "Container", "Volume")
            .iter()
            .map(|v| {
                let v = whole(v);
                let (src, rest) = v.split_once(':').unwrap();
                format!("{}:{rest}", resource(dir, src, "volume", "VolumeName"))
            })
            .collect(),
        // By the Podman resource, with the per-network options as written.
        networks: all(&u, "Container", "Network")
            .iter()
            .map(|n| {
                let n = whole(n);
                match n.split_once(':') {
                    Some((net, opts)) => {
                        format!("{}:{opts}", resource(dir, net, "network", "NetworkName"))
                    }
                    None => resource(dir, &n, "network", "NetworkName"),
                }
            })
            .collect(),
        container_name: last(&u, "Container", "ContainerName"),
        labels,
        health_cmd,
        health_times,
        health_retries: last(&u, "Container", "HealthRetries"),
        user,
        read_only: last(&u, "Container", "ReadOnly").as_deref() == Some("true"),
        memory: memory(&u),
        stop_timeout: last(&u, "Container", "StopTimeout"),
        auto_update: last(&u, "Container", "AutoUpdate"),
        restart: last(&u, "Service", "Restart").unwrap_or_else(|| "no".into()),
        requires: deps(&u, "Requires"),
        wants: deps(&u, "Wants"),
    }
}

fn import_and_generate(case: &str) -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let report = tmp.path().join("report.json");
    let src = fixtures().join(case);
    let o = windlass(&[
        "import",
        "quadlet",
        s(&src),
        "-o",
        s(&fleet),
        "--report",
        s(&report),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "import {case}: {stderr}");
    let out = tmp.path().join("out");
    let o = windlass(&["generate", s(&fleet), "-o", s(&out), "--target", "quadlet"]);
    assert!(
        o.status.success(),
        "generate {case}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (tmp, fleet, out, std::fs::read_to_string(&report).unwrap())
}

#[test]
fn hand_written_units_mean_the_same_after_import_and_generate() {
    let (_tmp, _fleet, out, _) = import_and_generate("basic");
    let mut compared = 0;
    for e in std::fs::read_dir(fixtures().join("basic")).unwrap() {
        let orig = e.unwrap().path();
        if orig.extension().and_then(|x| x.to_str()) != Some("container") {
            continue;
        }
        let stem = orig.file_stem().unwrap().to_str().unwrap();
        let regen = out.join(format!("quadlet/{stem}.container"));
        let (orig, mut regen) = (meaning(&orig), meaning(&regen));
        // Without ContainerName= Quadlet names the container
        // `systemd-<stem>`; windlass names it after the app.
        if orig.container_name.is_none() {
            regen.container_name = None;
        }
        assert_eq!(orig, regen, "{stem}");
        compared += 1;
    }
    assert_eq!(compared, 3);
}

/// Kernel, security and process settings (and `:Z`/`:ro,z` volumes) come
/// back from import and generate as the same Quadlet settings.
#[test]
fn container_settings_carry_over_key_for_key() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let report = tmp.path().join("report.json");
    let src = fixtures().join("settings");
    let o = windlass(&[
        "import",
        "quadlet",
        s(&src),
        "-o",
        s(&fleet),
        "--report",
        s(&report),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let dropped: Vec<&serde_json::Value> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "dropped")
        .collect();
    assert!(dropped.is_empty(), "{dropped:?}");
    let out = tmp.path().join("out");
    let o = windlass(&[
        "generate",
        s(&fleet),
        "-o",
        s(&out),
        "--target",
        "quadlet",
        "--podman-version",
        "5.8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Quadlet reads these list keys split at white space: compare words.
    let split = ["AddCapability", "DropCapability", "Sysctl", "AddDevice"];
    let settings = |path: &Path| -> BTreeSet<String> {
        let u = unit(path);
        u.settings
            .iter()
            .filter(|st| st.section == "Container")
            .filter(|st| !["Image", "ContainerName", "Label", "Notify"].contains(&st.key.as_str()))
            .flat_map(|st| {
                if split.contains(&st.key.as_str()) {
                    st.value
                        .split_whitespace()
                        .map(|w| format!("{}={w}", st.key))
                        .collect::<Vec<_>>()
                } else {
                    vec![format!("{}={}", st.key, st.value)]
                }
            })
            .collect()
    };
    let orig = settings(&src.join("db.container"));
    let regen = settings(&out.join("quadlet/db.container"));
    assert_eq!(orig, regen);
    assert!(orig.len() >= 24, "{orig:?}");
}

/// The meaning of the originals, written out by hand, so that the
/// comparison above does not rest on the reader alone.
#[test]
fn the_originals_mean_what_they_were_written_to_mean() {
    let web = meaning(&fixtures().join("basic/web.container"));
    assert_eq!(
        web.exec.unwrap(),
        [
            "/app/server",
            "--listen",
            "0.0.0.0:8080",
            "--motd",
            "it's \"quoted\"\tand tabbed",
            "single quoted $HOME"
        ]
    );
    assert_eq!(web.entrypoint.unwrap(), ["/usr/bin/tini", "--"]);
    assert_eq!(web.volumes.len(), 2);
    assert_eq!(web.memory, Some(512 * 1024 * 1024));
    assert!(web.networks.contains("shop-backend:alias=shop,alias=front"));
    assert_eq!(web.container_name.as_deref(), Some("shop-web"));
    let db = meaning(&fixtures().join("basic/db.container"));
    assert_eq!(db.env["GREETING"], "cost: $5, 50% off");
    assert_eq!(db.env["POSTGRES_USER"], "shop owner");
    assert!(
        db.volumes
            .contains("systemd-pgdata:/var/lib/postgresql/data")
    );
    assert_eq!(db.labels["com.example.note"], "a label with spaces");
    assert_eq!(db.health_times["HealthStartPeriod"], 90_000_000);
    let worker = meaning(&fixtures().join("basic/worker.container"));
    assert_eq!(worker.env.len(), 1, "Environment= clears the list");
    assert_eq!(worker.wants, BTreeSet::from(["db".to_string()]));
}

#[test]
fn descriptions_volumes_and_networks_carry_over() {
    let (_tmp, fleet, out, report) = import_and_generate("basic");
    let db = std::fs::read_to_string(fleet.join("db.toml")).unwrap();
    let doc: toml_edit::DocumentMut = db.parse().unwrap();
    assert_eq!(
        doc["description"].as_str(),
        Some("Postgres for the shop (100% local)")
    );
    let regen = unit(&out.join("quadlet/db.container"));
    assert_eq!(
        resolve_text(&last(&regen, "Unit", "Description").unwrap()).unwrap(),
        "Postgres for the shop (100% local)"
    );
    let net = unit(&out.join("quadlet/shop-backend.network"));
    assert_eq!(last(&net, "Network", "Subnet").unwrap(), "10.89.7.0/24");
    assert_eq!(last(&net, "Network", "Gateway").unwrap(), "10.89.7.1");
    let vol = unit(&out.join("quadlet/systemd-pgdata.volume"));
    assert_eq!(
        last(&vol, "Volume", "VolumeName").unwrap(),
        "systemd-pgdata"
    );
    assert_eq!(all(&vol, "Volume", "Label"), ["\"backup=nightly\""]);
    // Nothing unaccounted for: the report names what windlass writes its own way.
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    let entries = r["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["file"] == "web.container"
        && e["line"] == 29
        && e["section"] == "Service"
        && e["key"] == "TimeoutStartSec"
        && e["action"] == "dropped"));
    assert_eq!(r["units"].as_array().unwrap().len(), 3);
}

#[test]
fn hostile_units_give_report_lines_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let report = tmp.path().join("report.json");
    let src = fixtures().join("hostile");
    let o = windlass(&[
        "import",
        "quadlet",
        s(&src),
        "-o",
        s(&fleet),
        "--report",
        s(&report),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    for line in [
        "app.container:6 [Container] Exec: cannot be split into words: unbalanced quote",
        "app.container:7 [Container] Environment: the systemd specifier %h",
        "app.container:8 [Container] Environment: `${",
        "app.container:10 [Container] Volume: the systemd specifier %h",
        "app.container:11 [Container] PublishPort:",
        "app.container:12 [Container] Timezone: no windlass equivalent",
        "app.container:13 [Container] NotAQuadletKey: not a Quadlet key",
        "app.container:15 [X-Custom]: unknown section [X-Custom]",
        "app.container:16 [X-Custom] Anything:",
        "app.container:19 [Service] Restart: Restart=on-abnormal",
        "app.container:2 [Unit] Description: the systemd specifier %n",
        "app.container.d: drop-in directories are not read",
        "group.pod: `.pod` units have no windlass equivalent",
        "worker@.container: template units",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let lines: Vec<u64> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["line"].as_u64())
        .collect();
    assert_eq!(lines, [2, 6, 7, 8, 10, 11, 12, 13, 15, 16, 19]);
    // Only what is certain is carried.
    let app: toml_edit::DocumentMut = std::fs::read_to_string(fleet.join("app.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let env = app["container"]["env"].as_table().unwrap();
    assert_eq!(env.len(), 1);
    assert!(app["container"].get("command").is_none());
    assert_eq!(app["container"]["restart"].as_str(), Some("no"));

    // --strict refuses it and writes nothing.
    let fleet2 = tmp.path().join("strict");
    let o = windlass(&["import", "quadlet", s(&src), "-o", s(&fleet2), "--strict"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!fleet2.exists());
}

#[test]
fn a_syntax_error_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let o = windlass(&[
        "import",
        "quadlet",
        s(&fixtures().join("syntax")),
        "-o",
        s(&fleet),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.container:3: expected `Key=value`"),
        "{stderr}"
    );
    assert!(!fleet.exists());
}

#[test]
fn existing_manifests_are_not_replaced_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let src = fixtures().join("basic");
    let args = ["import", "quadlet", s(&src), "-o", s(&fleet)];
    assert!(windlass(&args).status.success());
    let o = windlass(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exist"));
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(windlass(&forced).status.success());
}

#[test]
fn a_container_without_an_image_is_not_imported_and_nothing_depends_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let src = fixtures().join("partial");
    // A partial import writes what it could and exits 3, naming what it
    // left out; --allow-partial makes it exit 0.
    let o = windlass(&["import", "quadlet", s(&src), "-o", s(&fleet)]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("error: 1 of 2 containers were not imported (b.container"),
        "{stderr}"
    );
    assert!(fleet.join("a.toml").exists());
    let o = windlass(&[
        "import",
        "quadlet",
        s(&src),
        "-o",
        s(&fleet),
        "--force",
        "--allow-partial",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("b.container → not imported"), "{stderr}");
    assert!(
        stderr.contains("b.container [Container] Image: the container is not imported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.container [Unit] Requires: `b` was not imported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.container:9 [Container] User: `app user` is not"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.container:8 [Container] Secret: secret `tls`: uid=1000 not carried"),
        "{stderr}"
    );
    assert!(!fleet.join("b.toml").exists());
    let a: toml_edit::DocumentMut = std::fs::read_to_string(fleet.join("a.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(a.get("depends").is_none());
    let secrets = a["container"]["secrets"].as_array().unwrap();
    let secret = |n: usize, k: &str| {
        secrets
            .get(n)
            .unwrap()
            .as_inline_table()
            .unwrap()
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    assert_eq!(secret(0, "name").as_deref(), Some("dbpass"));
    assert_eq!(secret(0, "target").as_deref(), Some("DB_PASS"));
    assert_eq!(
        secret(1, "target").as_deref(),
        Some("/run/secrets/cert.pem")
    );
    assert_eq!(secret(1, "mode").as_deref(), Some("0400"));
    // The adopted fleet validates.
    assert!(windlass(&["validate", s(&fleet)]).status.success());
}

/// An entrypoint that clears the image's (`Entrypoint=[]` at any Podman,
/// an empty `Entrypoint=` from Podman 5.8.2) cannot be said in a
/// manifest: each is reported as dropped, naming file and line, and
/// `--strict` refuses the import, rather than the image's entrypoint
/// silently running.
#[test]
fn an_entrypoint_that_clears_the_images_is_reported_as_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("units");
    std::fs::create_dir(&src).unwrap();
    let image = "Image=docker.io/library/busybox:1.36\n";
    std::fs::write(
        src.join("empty.container"),
        format!("[Container]\n{image}Entrypoint=\nExec=echo hi\n"),
    )
    .unwrap();
    std::fs::write(
        src.join("json.container"),
        format!("[Container]\n{image}Entrypoint=[]\nExec=echo hi\n"),
    )
    .unwrap();
    let fleet = tmp.path().join("fleet");
    let o = windlass(&["import", "quadlet", s(&src), "-o", s(&fleet)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("dropped        empty.container:3 [Container] Entrypoint: empty: Quadlet before 5.8.2 ignores it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dropped        json.container:3 [Container] Entrypoint: `[]` clears the image's entrypoint"),
        "{stderr}"
    );
    let strict = tmp.path().join("strict");
    let o = windlass(&["import", "quadlet", s(&src), "-o", s(&strict), "--strict"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!strict.exists());
}
