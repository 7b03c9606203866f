//! Diagnostics bundles: nothing secret in any file of one (a property
//! test over generated secrets in every place one could come from), the
//! container inspect output with its health log and the health timeline
//! kept, the archive handed over the bus holding every file, and
//! `windlassctl bundle` over a real bus: for a switch that did not commit
//! (the bundle written when it ended), for one that committed (collected
//! on request), refused to unprivileged callers.

mod common;
mod doubles;

use std::io::Read;
use std::path::{Path, PathBuf};

use doubles::Fake;
use proptest::prelude::*;
use windlass_agent::bundle;
use windlass_agent::contract::GenerationId;
use windlass_agent::record::{OpId, Outcome, Record, SwitchOp, SwitchPhase};

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn record(error: String) -> Record<SwitchOp> {
    let mut r = Record::new(
        OpId::new(1_700_000_000, 1),
        SwitchOp {
            phase: SwitchPhase::Finished,
            from_generation: Some(GenerationId(1)),
            to_generation: GenerationId(2),
            taken_over: Vec::new(),
            hooks: Default::default(),
        },
        1_700_000_000,
    );
    r.changed_units = vec![
        "web.service".into(),
        "podman-db.service".into(),
        "web-backup.timer".into(),
    ];
    r.result = Some(Outcome::RolledBack);
    r.error = error;
    r
}

/// Every place a secret could reach a bundle from, holding `s[i]`: the
/// environment (`Config.Env`, and `--env` in each spelling of the create
/// command), URL credentials in a health log, a unit's journal, a hook's
/// output, a probe URL of the timeline and the operation's error.
fn leaky_host(fake: &Fake, ops: &Path, id: &str, s: &[String]) -> Record<SwitchOp> {
    let inspect = |name: &str, k: usize| {
        serde_json::json!([{
            "Name": name,
            "Config": {
                "Env": [format!("PASSWORD={}", s[k]), "PATH=/usr/bin".to_string()],
                "CreateCommand": [
                    "/usr/bin/podman", "run", "--name", name,
                    "--env", format!("DB_PASS={}", s[k + 1]),
                    "-e", format!("X={}", s[k + 2]),
                    format!("--env=Y={}", s[k + 3]),
                    "--secret", "dbpass,type=env,target=DB_SECRET",
                    "localhost/app:1",
                ],
            },
            "State": {
                "Status": "running",
                "Health": {
                    "Status": "unhealthy",
                    "FailingStreak": 3,
                    "Log": [{
                        "ExitCode": 1,
                        "Output": format!("probe failed: http://admin:{}@localhost:8080/", s[k + 4]),
                    }],
                },
            },
        }])
    };
    fake.inspect
        .lock()
        .unwrap()
        .insert("web".into(), inspect("web", 0));
    fake.inspect
        .lock()
        .unwrap()
        .insert("db".into(), inspect("db", 5));
    fake.journals.lock().unwrap().insert(
        "web.service".into(),
        vec![
            format!("connecting to postgres://app:{}@db:5432/app", s[10]),
            "web: listening on :8080".into(),
        ],
    );
    std::fs::create_dir_all(ops).unwrap();
    bundle::keep_hook_output(
        ops,
        id,
        "pre-commit-web",
        &[format!("fetching https://t:{}@registry.example/x", s[11])],
    );
    let mut t = bundle::Timeline::new(ops.parent().unwrap(), id);
    t.saw(
        &format!("http://probe:{}@127.0.0.1:8080/health", s[12]),
        "status 503",
    );
    t.saw("web.service", "activating/start (job)");
    t.saw("web.service", "activating/start (job)");
    t.saw("web.service", "failed/failed: exit-code");
    t.close();
    record(format!(
        "web.service failed; pulled from https://u:{}@registry.example/",
        s[13]
    ))
}

fn write(fake: &Fake, ops: &Path, r: &Record<SwitchOp>) -> PathBuf {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bundle::write(
            fake,
            ops,
            r,
            "switch",
            Some("1".into()),
            Some("2".into()),
        ))
        .unwrap()
}

/// The bundle of [`leaky_host`] with fixed secrets: (its temporary
/// directory, `operations/`, the operation id, the bundle).
fn fixed_bundle() -> (tempfile::TempDir, PathBuf, OpId, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("operations");
    let fake = Fake::default();
    let id = OpId::new(1_700_000_000, 1);
    let s: Vec<String> = (0..14).map(|i| format!("secret-value-{i:02}")).collect();
    let r = leaky_host(&fake, &ops, id.as_str(), &s);
    let dir = write(&fake, &ops, &r);
    (tmp, ops, id, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Generated secrets never appear in any file of a bundle.
    /// Environment values are any printable text; a URL's credentials
    /// any text its user information may hold unencoded (RFC 3986:
    /// unreserved, sub-delims, `:` and percent-encodings).
    #[test]
    fn no_generated_secret_reaches_any_file_of_a_bundle(
        env in proptest::collection::vec("[!-~]{10,40}", 10),
        url in proptest::collection::vec("[A-Za-z0-9._~!$&'()*+,;=:%-]{10,40}", 4)
    ) {
        // Which places hold a URL's credentials: the health logs (4, 9),
        // the journal, the hook, the probe and the error (10 to 13).
        let mut s = env.clone();
        s[4] = url[0].clone();
        s[9] = url[1].clone();
        s.extend(url.iter().cloned());
        let tmp = tempfile::tempdir().unwrap();
        let ops = tmp.path().join("operations");
        let fake = Fake::default();
        let id = OpId::new(1_700_000_000, 1);
        let r = leaky_host(&fake, &ops, id.as_str(), &s);
        let dir = write(&fake, &ops, &r);
        for f in walk(&dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, secret) in s.iter().enumerate() {
                prop_assert!(
                    !text.contains(secret.as_str()),
                    "secret {i} {secret:?} in {}:\n{text}",
                    f.display()
                );
            }
        }
    }
}

/// What a bundle keeps of the containers and the gates: each changed
/// container's inspect output with its health log (names and the
/// environment's keys kept, values masked), the health timeline's changes
/// (a repeated state once), and the list of files.
#[test]
fn a_bundle_keeps_the_health_log_and_the_timeline() {
    let (_tmp, ops, id, dir) = fixed_bundle();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    let files: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for want in [
        "containers/web.json",
        "containers/db.json",
        "health.json",
        "hooks/pre-commit-web.log",
        "journal/web.service.log",
    ] {
        assert!(files.contains(&want), "{want} not in {files:?}");
        assert!(dir.join(want).is_file(), "{want}");
    }
    let web: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("containers/web.json")).unwrap()).unwrap();
    assert_eq!(web["State"]["Health"]["Status"], "unhealthy");
    let log = web["State"]["Health"]["Log"][0]["Output"].as_str().unwrap();
    assert!(log.starts_with("probe failed: http://"), "{log}");
    assert_eq!(
        web["Config"]["Env"],
        serde_json::json!(["PASSWORD=***", "PATH=***"])
    );
    let cmd: Vec<&str> = web["Config"]["CreateCommand"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        cmd.contains(&"DB_PASS=***") && cmd.contains(&"--env=Y=***"),
        "{cmd:?}"
    );
    assert!(cmd.contains(&"dbpass,type=env,target=DB_SECRET"), "{cmd:?}");
    let timeline: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("health.json")).unwrap()).unwrap();
    let states: Vec<(&str, &str)> = timeline
        .iter()
        .map(|e| (e["target"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 3, "a repeated state is kept once: {states:?}");
    assert_eq!(states[1], ("web.service", "activating/start (job)"));
    assert_eq!(states[2], ("web.service", "failed/failed: exit-code"));
    assert!(timeline.iter().all(|e| e["t_ms"].as_u64().unwrap() > 0));
    // The timers have no container; the scratch files are gone.
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("containers/") && f.contains("backup")),
        "{files:?}"
    );
    assert!(!bundle::health_timeline_path(&ops, id.as_str()).exists());
}

/// The archive the bus hands over: every file of the bundle, under the
/// operation's id, zstd-compressed.
#[test]
fn the_archive_holds_every_file_of_the_bundle_under_the_operation_id() {
    let (_tmp, _ops, id, dir) = fixed_bundle();
    let fd = bundle::archive(&dir).unwrap();
    let mut packed = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut packed).unwrap();
    assert_eq!(&packed[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    let tar = zstd::decode_all(&packed[..]).unwrap();
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(&tar[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        if e.header().entry_type().is_file() {
            let rel = name.strip_prefix(&format!("{id}/")).unwrap().to_string();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            assert_eq!(body, std::fs::read(dir.join(&rel)).unwrap(), "{rel}");
            names.push(rel);
        }
    }
    names.sort();
    let mut want: Vec<String> = walk(&dir)
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().to_string())
        .collect();
    want.sort();
    assert_eq!(names, want);
}

/// Over a real bus: the bundle of a switch that did not commit (its
/// gate's probe never answered) comes out of `windlassctl bundle` with
/// the probe's timeline; a committed switch's is collected on request;
/// callers outside the agent's group are refused.
#[test]
fn windlassctl_bundle_saves_an_operations_bundle_over_the_bus() {
    use common::*;
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
    generation(&basic_fleet(), &g1, |t| t.to_string());
    unhealthy_generation(&basic_fleet(), &g2, |t| t.replace("\"8080\"", "\"8081\""));
    let a = agent(&bus, &state, &run, "nogroup-x", &[]);
    for g in [&g1, &g2] {
        assert!(a.ctl(&["stage", g.to_str().unwrap()]).status.success());
    }
    assert!(a.ctl(&["switch", "1"]).status.success());
    let red = a.ctl(&["switch", "2", "--deadline", "2"]);
    assert_eq!(red.status.code(), Some(3), "{}", stderr(&red));
    let records = windlass_agent::store::Store::new(&state).all();
    let (committed, rolled_back) = (&records[0].id, &records[1].id);
    assert_eq!(records[1].result, Some(Outcome::RolledBack));

    let unpack = |id: &OpId| -> PathBuf {
        let out = tmp.path().join(format!("{id}.tar.zst"));
        let o = a.ctl(&["bundle", id.as_str(), "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "bundle {id}: {}", stderr(&o));
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        let tar = zstd::decode_all(std::fs::File::open(&out).unwrap()).unwrap();
        let dest = tmp.path().join(format!("unpacked-{id}"));
        tar::Archive::new(&tar[..]).unpack(&dest).unwrap();
        dest.join(id.as_str())
    };
    let red_dir = unpack(rolled_back);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(red_dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(summary["result"], "rolled-back");
    let timeline = std::fs::read_to_string(red_dir.join("health.json")).unwrap();
    assert!(
        timeline.contains("http://127.0.0.1:8080/")
            && timeline.contains("connection refused or unreachable"),
        "{timeline}"
    );
    // Committed: no bundle until asked for, then one.
    let ops = state.join("operations");
    assert!(!ops.join(format!("{committed}.d")).exists());
    let ok_dir = unpack(committed);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ok_dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(summary["result"], "committed");
    assert!(ops.join(format!("{committed}.d")).is_dir());
    // To standard output, byte for byte what the file holds.
    let out = a.ctl(&["bundle", rolled_back.as_str(), "-o", "-"]);
    assert!(out.status.success());
    let tar = zstd::decode_all(&out.stdout[..]).unwrap();
    assert!(!tar.is_empty());
    // Unprivileged callers are refused; an unknown operation is named.
    let out = a.ctl_as_nobody(&["bundle", rolled_back.as_str(), "-o", "/dev/null"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("AccessDenied"), "{}", stderr(&out));
    let out = a.ctl(&["bundle", "999999999999x999", "-o", "/dev/null"]);
    assert!(!out.status.success());
}
