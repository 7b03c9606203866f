//! Every imported corpus fleet is judged by the real consumers, as the
//! generator's own fleets are (`oracle_quadlet.rs`): Podman 5.4's
//! `quadlet -dryrun` accepts every unit and systemd 257's
//! `systemd-analyze verify` every service. Then the round trip: the podman
//! argv systemd would exec carries the image, environment, ports, volumes
//! and command that the compose file specifies — read from the compose
//! YAML here, independently of the importer's mapping — except what the
//! import report says it did not carry.
//!
//! Runs inside the trixie rootfs (`tools/oracle`); fails when it cannot.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use windlass::import::interpolate::{self, Interpolator, SecretRule, Vars};

fn corpus() -> Vec<(String, PathBuf)> {
    let root = common::repo_root().join("generator/tests/compose");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root).unwrap() {
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
            .unwrap();
        out.push((
            dir.file_name().unwrap().to_string_lossy().into_owned(),
            file,
        ));
    }
    out.sort();
    out
}

fn run(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .env_clear()
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "windlass {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SCRIPT: &str = r#"
set -u
cd /w
QUADLET_UNIT_DIRS=/w/out/quadlet /usr/libexec/podman/quadlet -dryrun >/w/dryrun.out 2>/w/dryrun.err
echo $? >/w/dryrun.rc
mkdir -p /w/gen
QUADLET_UNIT_DIRS=/w/out/quadlet /usr/libexec/podman/quadlet /w/gen /w/gen /w/gen 2>/dev/null
if [ -d /w/out/systemd ]; then cp /w/out/systemd/* /w/gen/; fi
units=$(ls /w/gen/*.service /w/gen/*.timer 2>/dev/null)
SYSTEMD_UNIT_PATH=/w/gen: systemd-analyze verify --recursive-errors=no $units >/w/verify.out 2>/w/verify.err
echo $? >/w/verify.rc
SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug SYSTEMD_UNIT_PATH=/w/gen: systemd-analyze verify --recursive-errors=no $units >/w/dump.txt 2>/dev/null
true
"#;

/// unit → ExecStart argv, from systemd's debug dump (see oracle_quadlet.rs).
fn exec_lines(dump: &str) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    let mut unit = String::new();
    let mut in_start = false;
    for line in dump.lines() {
        let t = line.trim().replace("-> ", "→ ");
        if let Some(u) = t.strip_prefix("→ Unit ").and_then(|u| u.strip_suffix(':')) {
            unit = u.to_string();
        } else if t == "→ ExecStart:" {
            in_start = true;
        } else if let Some(cmd) = t.strip_prefix("Command Line: ") {
            if in_start {
                map.insert(unit.clone(), unquote(cmd));
            }
            in_start = false;
        }
    }
    map
}

/// Undoes systemd's `quote_command_line()`, then exec-time `$$` → `$`.
fn unquote(line: &str) -> Vec<String> {
    let b: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == ' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let (mut w, mut quoted) = (String::new(), false);
        while i < b.len() && (quoted || b[i] != ' ') {
            let c = b[i];
            i += 1;
            match c {
                '"' => quoted = !quoted,
                '\\' => {
                    let e = b[i];
                    i += 1;
                    let simple = match e {
                        'n' => Some('\n'),
                        't' => Some('\t'),
                        'r' => Some('\r'),
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'f' => Some('\x0c'),
                        'v' => Some('\x0b'),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        w.push(s);
                    } else if e.is_digit(8) {
                        let oct: String = [e, b[i], b[i + 1]].iter().collect();
                        i += 2;
                        w.push(char::from(u8::from_str_radix(&oct, 8).unwrap()));
                    } else if e == 'x' {
                        let hex: String = [b[i], b[i + 1]].iter().collect();
                        i += 2;
                        w.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                    } else {
                        w.push(e);
                    }
                }
                c => w.push(c),
            }
        }
        words.push(w.replace("$$", "$"));
    }
    words
}

fn flag_values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

/// Values of `flag` in both forms podman's argv has them: `--flag value`
/// (Quadlet's own keys) and `--flag=value` (`PodmanArgs=`).
fn flag_all(argv: &[String], flag: &str) -> Vec<String> {
    let mut v: Vec<String> = flag_values(argv, flag)
        .into_iter()
        .map(str::to_string)
        .collect();
    let prefix = format!("{flag}=");
    v.extend(
        argv.iter()
            .filter_map(|a| a.strip_prefix(&prefix))
            .map(str::to_string),
    );
    v
}

/// One value or a list of them, as text.
fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(s) => s.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// The kernel, security and process settings of a compose service reach
/// podman's argv (each entry the report does not say it dropped).
fn check_settings(name: &str, svc: &Value, skipped: &dyn Fn(&str) -> bool, argv: &[String]) {
    let has = |flag: &str, want: &str| {
        let got = flag_all(argv, flag);
        assert!(
            got.iter().any(|g| g == want),
            "{name}: {flag} {want} missing in {argv:?}"
        );
    };
    let listed = |key: &str| -> Vec<String> {
        svc.get(key)
            .map(|v| match v {
                Value::Sequence(s) => s
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !skipped(&format!("{key}[{i}]")))
                    .filter_map(|(_, x)| text(x))
                    .collect(),
                other if !skipped(key) => texts(other),
                _ => Vec::new(),
            })
            .unwrap_or_default()
    };
    let cap = |c: &str| {
        let up = c.to_ascii_uppercase();
        match up.strip_prefix("CAP_") {
            Some(_) => up,
            None if up == "ALL" => up,
            None => format!("CAP_{up}"),
        }
    };
    for (key, flag) in [("cap_add", "--cap-add"), ("cap_drop", "--cap-drop")] {
        let got: Vec<String> = flag_all(argv, flag).iter().map(|c| cap(c)).collect();
        for c in listed(key) {
            assert!(
                got.contains(&cap(&c)),
                "{name}: {flag} {c} missing in {argv:?}"
            );
        }
    }
    for t in listed("tmpfs") {
        has("--tmpfs", &t);
    }
    for d in listed("dns") {
        has("--dns", &d);
    }
    for d in listed("devices") {
        has("--device", &d);
    }
    for o in listed("security_opt") {
        let podman = match o.split_once(['=', ':']) {
            Some(("no-new-privileges", "true")) => "no-new-privileges".to_string(),
            Some(("no-new-privileges", _)) => continue,
            Some(("systempaths", "unconfined")) => "unmask=ALL".to_string(),
            Some((k, rest)) => format!("{k}={rest}"),
            None => o.clone(),
        };
        let got = flag_all(argv, "--security-opt");
        // A later option of the same kind replaces this one (reported).
        let kind = podman.split([':', '=']).next().unwrap().to_string();
        assert!(
            got.contains(&podman) || got.iter().any(|g| g.starts_with(&kind)),
            "{name}: --security-opt {podman} missing in {argv:?}"
        );
    }
    if let Some(Value::Mapping(m)) = svc.get("ulimits") {
        let got = flag_all(argv, "--ulimit");
        for (k, _) in m {
            let k = text(k).unwrap();
            if !skipped(&format!("ulimits.{k}")) {
                let prefix = format!("{k}=");
                assert!(
                    got.iter().any(|g| g.starts_with(&prefix)),
                    "{name}: --ulimit {k} missing in {argv:?}"
                );
            }
        }
    }
    if let Some(Value::Mapping(m)) = svc.get("sysctls") {
        for (k, v) in m {
            let k = text(k).unwrap();
            if !skipped(&format!("sysctls.{k}")) {
                has("--sysctl", &format!("{k}={}", text(v).unwrap()));
            }
        }
    }
    if let Some(h) = svc.get("hostname").filter(|_| !skipped("hostname")) {
        has("--hostname", h.as_str().unwrap());
    }
    if let Some(sig) = svc.get("stop_signal").filter(|_| !skipped("stop_signal")) {
        let up = sig.as_str().unwrap().to_ascii_uppercase();
        let want = if up.starts_with("SIG") {
            up
        } else {
            format!("SIG{up}")
        };
        has("--stop-signal", &want);
    }
    if let Some(n) = svc.get("pids_limit").filter(|_| !skipped("pids_limit")) {
        let n = text(n).unwrap();
        has("--pids-limit", if n == "0" { "-1" } else { &n });
    }
    if svc.get("shm_size").is_some() && !skipped("shm_size") {
        assert!(
            !flag_all(argv, "--shm-size").is_empty(),
            "{name}: --shm-size missing in {argv:?}"
        );
    }
    for (key, flag) in [("privileged", "--privileged"), ("init", "--init")] {
        if svc.get(key).and_then(Value::as_bool) == Some(true) && !skipped(key) {
            assert!(
                argv.iter().any(|a| a == flag),
                "{name}: {flag} missing in {argv:?}"
            );
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Docker's reference defaults, written out again here on purpose.
fn docker_image(s: &str) -> String {
    let (name, digest) = s.split_once('@').map_or((s, None), |(n, d)| (n, Some(d)));
    let first = name.split('/').next().unwrap();
    let mut full = if name.contains('/') && (first.contains('.') || first.contains(':')) {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    if !full.rsplit('/').next().unwrap().contains(':') && digest.is_none() {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full = format!("{full}@{d}");
    }
    full
}

fn lexical(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            o => out.push(o),
        }
    }
    out.to_string_lossy().into_owned()
}

/// Keys the import report says were not carried as they are.
fn not_carried(report: &serde_json::Value, service: &str) -> BTreeSet<String> {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["service"] == service
                && (e["action"] == "dropped"
                    || e["action"] == "withheld"
                    || e["action"] == "uninterpolated")
        })
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect()
}

fn check_service(
    project: &str,
    compose_dir: &Path,
    top: &Value,
    name: &str,
    svc: &Value,
    skip: &BTreeSet<String>,
    argv: &[String],
) {
    let skipped =
        |k: &str| skip.contains(k) || skip.iter().any(|s| s.starts_with(&format!("{k}:")));
    // Image.
    let image = docker_image(svc["image"].as_str().unwrap());
    let at = argv
        .iter()
        .position(|a| a == &image)
        .unwrap_or_else(|| panic!("{name}: image {image} not in {argv:?}"));
    // Environment.
    let envs: BTreeSet<&str> = flag_values(argv, "--env").into_iter().collect();
    let mut want_env = Vec::new();
    match svc.get("environment") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = text(k).unwrap();
                if let Some(v) = text(v) {
                    want_env.push((format!("environment.{k}"), format!("{k}={v}")));
                }
            }
        }
        Some(Value::Sequence(s)) => {
            for (i, item) in s.iter().enumerate() {
                let item = item.as_str().unwrap();
                if item.contains('=') {
                    want_env.push((format!("environment[{i}]"), item.to_string()));
                }
            }
        }
        _ => {}
    }
    for (key, kv) in want_env {
        if !skipped(&key) {
            assert!(
                envs.contains(kv.as_str()),
                "{name}: --env {kv:?} missing in {argv:?}"
            );
        }
    }
    // Ports.
    let published: BTreeSet<&str> = flag_values(argv, "--publish").into_iter().collect();
    for (i, p) in svc
        .get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = format!("ports[{i}]");
        if skipped(&key) {
            continue;
        }
        let want: Vec<String> = match p {
            Value::Mapping(m) => {
                let ip = m
                    .get("host_ip")
                    .and_then(text)
                    .map(|ip| format!("{ip}:"))
                    .unwrap_or_default();
                let proto = m
                    .get("protocol")
                    .and_then(text)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default();
                let target = text(&m["target"]).unwrap();
                vec![format!(
                    "{ip}{}:{target}{proto}",
                    text(&m["published"]).unwrap()
                )]
            }
            other => {
                let s = text(other).unwrap();
                match s.split_once('-') {
                    // "7000-7002:8000-8002": one publish per pair.
                    Some(_) => {
                        let (h, c) = s.split_once(':').unwrap();
                        let r = |x: &str| {
                            let (a, b) = x.split_once('-').unwrap();
                            (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap())
                        };
                        let ((h0, h1), (c0, _)) = (r(h), r(c));
                        (0..=h1 - h0)
                            .map(|d| format!("{}:{}", h0 + d, c0 + d))
                            .collect()
                    }
                    None => vec![s],
                }
            }
        };
        for w in want {
            assert!(
                published.contains(w.as_str()),
                "{name}: --publish {w} missing in {argv:?}"
            );
        }
    }
    // Volumes.
    let mounts: BTreeSet<&str> = flag_values(argv, "-v").into_iter().collect();
    let volume_name = |key: &str| {
        let def = top.get("volumes").and_then(|v| v.get(key));
        match def.and_then(|d| d.get("name")).and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => format!("{project}_{key}"),
        }
    };
    for (i, v) in svc
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = format!("volumes[{i}]");
        if skipped(&key) {
            continue;
        }
        if v.get("type").and_then(Value::as_str) == Some("tmpfs") {
            // Carried as a tmpfs mount (`--tmpfs TARGET[:size=…]`).
            let target = v["target"].as_str().unwrap();
            assert!(
                flag_all(argv, "--tmpfs")
                    .iter()
                    .any(|t| t.split(':').next() == Some(target)),
                "{name}: --tmpfs {target} missing in {argv:?}"
            );
            continue;
        }
        let (src, dst, ro, relabel, bind) = match v {
            Value::Mapping(m) => (
                m["source"].as_str().unwrap().to_string(),
                m["target"].as_str().unwrap().to_string(),
                m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                m.get("bind")
                    .and_then(|b| b.get("selinux"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                m["type"] == "bind",
            ),
            other => {
                let s = other.as_str().unwrap();
                let parts: Vec<&str> = s.split(':').collect();
                let opts: Vec<&str> = parts
                    .get(2)
                    .map(|o| o.split(',').collect())
                    .unwrap_or_default();
                let ro = opts.contains(&"ro");
                let relabel = opts
                    .iter()
                    .find(|o| **o == "z" || **o == "Z")
                    .map(|o| o.to_string());
                let bind = parts[0].starts_with(['/', '.', '~']);
                (
                    parts[0].to_string(),
                    parts[1].to_string(),
                    ro,
                    relabel,
                    bind,
                )
            }
        };
        let src = if bind {
            lexical(&compose_dir.join(&src))
        } else {
            volume_name(&src)
        };
        let opts: Vec<&str> = ro
            .then_some("ro")
            .into_iter()
            .chain(relabel.as_deref())
            .collect();
        let want = if opts.is_empty() {
            format!("{src}:{dst}")
        } else {
            format!("{src}:{dst}:{}", opts.join(","))
        };
        assert!(
            mounts.contains(want.as_str()),
            "{name}: -v {want} missing in {argv:?}"
        );
    }
    check_settings(name, svc, &skipped, argv);
    // Entrypoint and command.
    let words = |v: &Value| -> Vec<String> {
        match v {
            Value::Sequence(s) => s.iter().map(|x| text(x).unwrap()).collect(),
            other => shlex::split(other.as_str().unwrap()).unwrap(),
        }
    };
    let tail: Vec<String> = argv[at + 1..].to_vec();
    let command = svc
        .get("command")
        .filter(|_| !skipped("command"))
        .map(words);
    match svc
        .get("entrypoint")
        .filter(|_| !skipped("entrypoint"))
        .map(words)
    {
        Some(ep) => {
            // The generator may carry the whole command in the entrypoint
            // JSON (for arguments `Exec=` cannot hold): compare the joint argv.
            let mut got: Vec<String> =
                serde_json::from_str(flag_values(argv, "--entrypoint")[0]).unwrap();
            got.extend(tail);
            let mut want = ep;
            want.extend(command.unwrap_or_default());
            assert_eq!(got, want, "{name}: entrypoint + command changed");
        }
        None => {
            if let Some(c) = command {
                assert_eq!(tail, c, "{name}: command changed");
            }
        }
    }
}

fn oracle_case(case: &str, compose: &Path) {
    let work = tempfile::tempdir().unwrap();
    let fleet = work.path().join("fleet");
    let report_path = work.path().join("report.json");
    let args = [
        "import",
        compose.to_str().unwrap(),
        "-o",
        fleet.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
        "--allow-partial",
    ];
    run(&args);
    run(&["validate", fleet.to_str().unwrap()]);
    let out = work.path().join("out");
    run(&[
        "generate",
        fleet.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--target",
        "quadlet,systemd",
    ]);
    let o = common::oracle(&[(work.path(), "/w")], &["bash", "-c", SCRIPT]);
    assert!(
        o.status.success(),
        "oracle script failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(work.path().join(f)).unwrap();
    let dryrun_err: Vec<String> = read("dryrun.err")
        .lines()
        .filter(|l| !l.contains("Loading source unit file"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        read("dryrun.rc").trim(),
        "0",
        "{case}: quadlet -dryrun failed: {dryrun_err:?}"
    );
    assert!(
        dryrun_err.is_empty(),
        "{case}: quadlet complained: {dryrun_err:?}"
    );
    assert_eq!(
        read("verify.rc").trim(),
        "0",
        "{case}: systemd-analyze verify failed: {}",
        read("verify.err")
    );
    assert!(
        read("verify.err").trim().is_empty(),
        "{case}: systemd-analyze verify warned: {}",
        read("verify.err")
    );

    // Round trip against the compose file itself, interpolated the same way.
    let dump =
        String::from_utf8_lossy(&std::fs::read(work.path().join("dump.txt")).unwrap()).into_owned();
    let exec = exec_lines(&dump);
    let report: serde_json::Value = serde_json::from_str(&read("report.json")).unwrap();
    let compose_dir = std::path::absolute(compose)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut doc: Value =
        serde_norway::from_str(&std::fs::read_to_string(compose).unwrap()).unwrap();
    windlass::import::resolve_merges(&mut doc).unwrap();
    let mut vars = Vars::default();
    if compose_dir.join(".env").is_file() {
        vars.env_file = interpolate::parse_env_file(
            &std::fs::read_to_string(compose_dir.join(".env")).unwrap(),
        )
        .unwrap();
    }
    let rule = SecretRule::default();
    let interp = Interpolator {
        vars: &vars,
        rule: &rule,
    };
    interpolate::interpolate_document(&mut doc, &interp).unwrap();
    let project = report["project"].as_str().unwrap().to_string();
    let mut checked = 0;
    for s in report["services"].as_array().unwrap() {
        let Some(app) = s["app"].as_str() else {
            continue;
        };
        let name = s["service"].as_str().unwrap();
        let argv = exec
            .get(&format!("{app}.service"))
            .unwrap_or_else(|| panic!("{case}: no ExecStart for {app}"));
        let skip = not_carried(&report, name);
        check_service(
            &project,
            &compose_dir,
            &doc,
            name,
            &doc["services"][name],
            &skip,
            argv,
        );
        checked += 1;
    }
    assert!(checked > 0, "{case}: nothing was checked");
    eprintln!("{case}: {checked} services accepted and round-tripped");
}

#[test]
fn every_imported_corpus_fleet_is_accepted_by_quadlet_and_systemd_and_carries_the_compose_values() {
    if !common::oracles_enabled("import corpus") {
        return;
    }
    let cases = corpus();
    assert!(cases.len() >= 10);
    for (case, compose) in &cases {
        oracle_case(case, compose);
    }
}
