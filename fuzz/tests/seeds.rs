//! The committed seed corpus (`fuzz/corpus/TARGET/`) replayed through each
//! fuzz target without libFuzzer, so every seed (and every regression
//! input added there) runs in the ordinary test suite.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![here.join("corpus").join(target)];
    // The shared real-world compose files, where this checkout has them.
    let shared = here.join("../../shared/corpus/compose");
    if target == "compose" && shared.is_dir() {
        dirs.push(shared);
    }
    dirs
}

fn replay(name: &str) {
    let (_, target) = windlass_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let (count, slowest) = windlass_fuzz::replay(*target, &corpus(name));
    assert!(count > 0, "no seeds for {name}");
    if let Some((path, secs)) = slowest {
        eprintln!(
            "{name}: {count} seeds; slowest {secs:.3} s: {}",
            path.display()
        );
    }
}

#[test]
fn manifest_seeds() {
    replay("manifest");
}

#[test]
fn compose_seeds() {
    replay("compose");
}

#[test]
fn generation_seeds() {
    replay("generation");
}

#[test]
fn record_seeds() {
    replay("record");
}

#[test]
fn every_target_has_seeds_and_a_binary() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(here.join("Cargo.toml")).unwrap();
    for (name, _) in windlass_fuzz::TARGETS {
        assert!(here.join("corpus").join(name).is_dir(), "{name}: no seeds");
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name}: no [[bin]]"
        );
    }
}

#[test]
fn bundles_split_at_marker_lines() {
    let b = b"a = 1\n#> windlass.toml\n[host]\n#> apps/web.toml\nx\n#> ../etc\ny";
    let files = windlass_fuzz::split_bundle(b, "app.toml");
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["app.toml", "windlass.toml", "apps/web.toml", "file3"]
    );
    assert_eq!(files[0].1, b"a = 1\n");
    assert_eq!(files[2].1, b"x\n");
    assert_eq!(files[3].1, b"y");
    // A bundle that starts with a marker has no unnamed first file.
    let files = windlass_fuzz::split_bundle(b"#> .env\nA=1\n", "compose.yaml");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, ".env");
    assert_eq!(windlass_fuzz::split_bundle(b"", "app.toml").len(), 1);
}
