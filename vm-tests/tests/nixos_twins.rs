//! The NixOS VM tests (`nixos/*.nix`) cannot run here (no Nix binary
//! cache); CI evaluates them and compiles their Python
//! (generator/tests/oracle_nix.rs). This keeps each one tied to its Debian
//! twin: a NixOS scenario names the Debian test whose assertions it
//! mirrors, and that test exists; and both forms switch between the same
//! generations.

use std::fs;
use std::process::Command;

use windlass_vm_tests::{repo_root, web_toml};

#[test]
fn every_nixos_scenario_names_an_existing_debian_twin() {
    let dir = repo_root().join("vm-tests/nixos");
    let debian = fs::read_to_string(repo_root().join("vm-tests/tests/debian.rs")).unwrap();
    let mut twins = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.extension().is_none_or(|x| x != "nix") || stem == "default" || stem == "common" {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        let Some(at) = text.find("Debian twin:") else {
            // Only a scenario with no Debian form yet may lack a twin, and
            // it says so.
            assert!(
                text.contains("no Debian twin"),
                "{stem}.nix names neither its Debian twin nor its absence"
            );
            continue;
        };
        let rest = &text[at..];
        let name = rest
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("{stem}.nix: `Debian twin: `test_name`` expected"));
        assert!(
            debian.contains(&format!("fn {name}()")),
            "{stem}.nix names Debian twin {name}, which is not a test in debian.rs"
        );
        twins += 1;
    }
    assert!(twins >= 8, "{twins} NixOS scenarios with a Debian twin");
}

#[test]
fn nixos_generations_are_the_debian_ones() {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if !ci && std::env::var("WINDLASS_SKIP_ORACLES").as_deref() == Ok("1") {
        eprintln!("WARNING: nix-instantiate oracle disabled by WINDLASS_SKIP_ORACLES=1");
        return;
    }
    let root = repo_root();
    let out = Command::new(root.join("tools/oracle"))
        .arg("--bind")
        .arg(format!("{}:/r", root.display()))
        .args([
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "--expr",
            // Packages are never forced on the way to webTomls.
            "(import /r/vm-tests/nixos/common.nix { pkgs = { }; self = { }; }).webTomls",
        ])
        .output()
        .expect("cannot start tools/oracle");
    assert!(
        out.status.success(),
        "evaluating nixos/common.nix failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nix: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = fs::read_to_string(root.join("vm-tests/fleets/basic/apps/web.toml")).unwrap();
    for g in ['b', 'c', 'd'] {
        assert_eq!(
            nix[g.to_string()].as_str(),
            Some(web_toml(g, &a).as_str()),
            "generation {g}: NixOS and Debian differ"
        );
    }
}
