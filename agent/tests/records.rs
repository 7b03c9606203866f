//! Records written by the agent before its operations were typed (commit
//! c5888f6: every phase of every kind that its test suite reached, saved
//! as that version wrote them) load unchanged: same kind, phase, result
//! and generations, and written back they are the same JSON.

use std::path::Path;

use windlass_agent::record::{Kind, Op, Record};
use windlass_agent::store::Store;

fn fixtures() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records-c5888f6");
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn records_written_by_the_first_agent_load_unchanged() {
    let all = fixtures();
    assert!(all.len() >= 30, "{} fixtures", all.len());
    for (name, json) in &all {
        let r: Record = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
        assert_eq!(r.kind().as_str(), json["kind"], "{name}");
        assert_eq!(r.phase_str(), json["phase"], "{name}");
        assert_eq!(
            r.result.map(|o| o.as_str()),
            json["result"].as_str(),
            "{name}"
        );
        if r.kind() != Kind::Cutover {
            assert_eq!(
                r.from_generation().map(|g| g.to_string()),
                json["from_generation"].as_str().map(str::to_string),
                "{name}"
            );
        }
        if let Op::Cutover(c) = &r.op {
            assert_eq!(c.to_version, json["to_generation"], "{name}");
            match json.get("cutover") {
                Some(state) => assert_eq!(c.cutover.version, state["version"], "{name}"),
                // The first agent saved `recorded` before the state.
                None => assert!(c.cutover.unset() && r.phase_str() == "recorded", "{name}"),
            }
        }
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            *json,
            "{name} is written back differently"
        );
    }
    // Every phase of every kind the first agent persisted is among them
    // (the hook phases and `purging-data` came later: the first agent had
    // none).
    let later = |p: &str| p.starts_with("hook:") || p == "purging-data";
    for k in [Kind::Switch, Kind::Rollback, Kind::Cutover, Kind::Sweep] {
        // Those later phases load and are written back unchanged too: a
        // first-agent record of that kind, moved to each of them.
        let (name, base) = all
            .iter()
            .find(|(_, j)| j["kind"] == k.as_str() && j["result"].is_null())
            .unwrap_or_else(|| panic!("no unfinished fixture of {}", k.as_str()));
        for phase in k.phases().into_iter().filter(|p| later(p)) {
            let mut json = base.clone();
            json["phase"] = serde_json::Value::from(phase);
            let r: Record = serde_json::from_value(json.clone())
                .unwrap_or_else(|e| panic!("{name} in {phase} does not load: {e}"));
            assert_eq!(r.phase_str(), phase, "{name}");
            assert_eq!(serde_json::to_value(&r).unwrap(), json, "{name} in {phase}");
        }
        for phase in k.phases().into_iter().filter(|p| !later(p)) {
            assert!(
                all.iter()
                    .any(|(_, j)| j["kind"] == k.as_str() && j["phase"] == phase),
                "no fixture of {} in {phase}",
                k.as_str()
            );
        }
    }
}

#[test]
fn the_store_reads_them_under_their_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("operations");
    std::fs::create_dir_all(&ops).unwrap();
    let all = fixtures();
    let mut ids = std::collections::BTreeSet::new();
    for (_, json) in &all {
        let id = json["id"].as_str().unwrap().to_string();
        if ids.insert(id.clone()) {
            std::fs::write(ops.join(format!("{id}.json")), json.to_string()).unwrap();
        }
    }
    let scan = Store::new(tmp.path()).scan();
    assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
    assert_eq!(scan.records.len(), ids.len());
}

/// Generation manifests written by the first agent's generator (commit
/// c5888f6, `windlass generate examples`, all targets, and Quadlet and
/// systemd for Podman 4.4) load through the contract the agent reads
/// now, with the same files, units and health contracts, and write back
/// the same JSON.
#[test]
fn generation_manifests_written_by_the_first_generator_load_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/generation-c5888f6");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let m = windlass_agent::contract::Manifest::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(m.files.len(), json["files"].as_array().unwrap().len());
        assert_eq!(m.apps.len(), json["apps"].as_array().unwrap().len());
        assert!(
            m.units().contains_key("bitcoind.service"),
            "{:?}",
            m.units()
        );
        let caddy = m.app("caddy").unwrap();
        assert_eq!(
            caddy.health.as_ref().and_then(|h| h.http.as_deref()),
            json["apps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == "caddy")
                .unwrap()["health"]["http"]
                .as_str()
        );
        assert!(m.deadline_for(&["bitcoind.service".to_string()]) >= 900);
        let back: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, json, "{} is written back differently", p.display());
        seen += 1;
    }
    assert_eq!(seen, 2);
}

/// The request id (added for the fleet layer) is optional: a record
/// without one (every record written before it) loads with none and is
/// written back without the key; one with it keeps it.
#[test]
fn records_without_a_request_load_and_keep_their_bytes() {
    let all = fixtures();
    for (name, json) in &all {
        assert!(json.get("request").is_none(), "{name}");
        let r: Record = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(r.request, None, "{name}");
        let back = serde_json::to_value(&r).unwrap();
        assert!(back.get("request").is_none(), "{name}: {back}");
    }
    // Through the store as well: the bytes a record is saved with are
    // those of a record that never had a request.
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path());
    let (_, json) = &all[0];
    let r: Record = serde_json::from_value(json.clone()).unwrap();
    store.save_any(&r).unwrap();
    let saved = std::fs::read(store.path(&r.id)).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&saved).unwrap(),
        *json
    );
    assert!(!String::from_utf8_lossy(&saved).contains("request"));
    let mut with = json.clone();
    with["request"] = serde_json::Value::from("rollout-1/7");
    let r: Record = serde_json::from_value(with.clone()).unwrap();
    assert_eq!(r.request.as_deref(), Some("rollout-1/7"));
    assert_eq!(serde_json::to_value(&r).unwrap(), with);
}
