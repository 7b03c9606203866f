//! Nix output judged by Nix itself (Debian trixie's `nix-instantiate` 2.26,
//! inside the oracle rootfs), by nixpkgs' own module code and by rnix
//! in-process:
//!
//! * every generated `.nix` file (all test fleets, both backends), every
//!   file of `modules/nixos/`, `flake.nix`, `vm-tests/**/*.nix` and every
//!   `nix` snippet of the docs (`README.md`, `docs/*.md`) parses;
//! * every torture value, written as a Nix string literal, evaluates to its
//!   own bytes;
//! * the generated modules (every fleet of `fleets()`, both backends) and
//!   `modules/nixos` (`services.windlass`, alone and applying a generated
//!   fleet) are evaluated by `tests/nix/eval-nixos.nix`: `lib.evalModules`
//!   of nixpkgs' real `lib` over nixpkgs' real oci-containers, podman,
//!   assertions and etc.nix modules and its systemd lib, types and unit
//!   options (all read in place from `../shared/oracles/nixpkgs`, see its
//!   SOURCES.md). Stubbed, because this machine has no nixpkgs: packages
//!   (`tests/nix/fake-pkgs.nix`, fake derivations whose files and build
//!   scripts this file writes and runs in a fake store), and the options of
//!   the NixOS modules that are not in the oracles
//!   (`tests/nix/nixos-stand-ins.nix`, declared with their real types, no
//!   freeform catch-all; systemd.nix's unit assembly copied from it);
//! * from that evaluation, what NixOS would do, run for real in the rootfs:
//!   nixpkgs' build scripts make /etc (etc.nix), /etc/systemd/system
//!   (systemd-lib.nix `generateUnits`, `makeUnit`) and the generator
//!   directories (systemd.nix `hooks`); for oci-containers, each
//!   `podman-<app>` service's ExecStartPre and ExecStart (the scripts
//!   nixpkgs wrote, as systemd reads them from the built unit) run with a
//!   recording `podman`, whose argv must be the manifest's values byte for
//!   byte, and each job's ExecStart, decoded by systemd, must be the job's
//!   command; for the quadlet backend, /etc/containers/systemd holds the
//!   files of `OUT/quadlet` byte for byte, each unit is linked to Quadlet's
//!   output with the hash drop-in of its file, Podman's generator is
//!   linked once, and Podman 5.4's `quadlet -dryrun` makes every linked
//!   unit from exactly the built /etc texts (and the build-time dry run,
//!   a `system.checks` entry, is built and passes);
//! * mutants of the generated text (a misspelt option, a value outside an
//!   enum, an unescaped `${`, a word that splits, a changed value, a
//!   setting NixOS warns about, a duplicate generator) are each rejected,
//!   by the module system, by nixpkgs' build scripts or by the comparison;
//! * every evaluation is checked against `tests/nix/nixpkgs-model.nix`,
//!   fed with each windlass file's own definitions: it adds what nixpkgs'
//!   modules that are not in the oracles define on the same system and
//!   assembles generators, unit files, units, /etc, tmpfiles.d and
//!   accounts the way a NixOS build does: a name windlass and nixpkgs both
//!   give (Podman's generator linked twice, issue 17) fails the
//!   evaluation, naming it, and planted collisions of every kind must be
//!   named;
//! * `services.windlass.fleet` and `.coordinator` make the units nixpkgs
//!   writes, which systemd (`systemd-analyze verify`) reads exactly as the
//!   shipped units of `fleet/systemd/`, every argument reaching the binary
//!   unchanged, and each bad setting is refused, naming it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use windlass::emit::NixosBackend;
use windlass::emit::nixos::app_contract;
use windlass::escape::nix;
use windlass::model::{Fleet, load_fleet};
use windlass_contract::{Platform, SystemGeneration};

fn generate(fleet: &Path, out: &Path, extra: &[&str]) {
    let st = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .arg("generate")
        .arg(fleet)
        .arg("-o")
        .arg(out)
        .args(extra)
        .status()
        .unwrap();
    assert!(st.success(), "windlass generate {} failed", fleet.display());
}

fn fleets() -> Vec<(&'static str, PathBuf)> {
    let root = common::repo_root();
    vec![
        ("examples", root.join("examples")),
        ("torture", root.join("generator/tests/fleets/torture")),
        ("settings", root.join("generator/tests/fleets/settings")),
        ("names", root.join("generator/tests/fleets/names")),
        ("hooks", root.join("generator/tests/fleets/hooks")),
        ("quotes", root.join("generator/tests/fleets/quotes")),
    ]
}

fn load(dir: &Path) -> Fleet {
    load_fleet(dir).unwrap().fleet.expect("fleet is valid")
}

fn files_with_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_with_ext(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

#[test]
fn every_nix_file_parses_with_rnix_and_nix_instantiate() {
    let root = common::repo_root();
    let work = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, dir) in fleets() {
        for backend in ["oci-containers", "quadlet"] {
            let out = work.path().join(format!("{name}-{backend}"));
            generate(
                &dir,
                &out,
                &["--target", "quadlet,nixos", "--nixos-backend", backend],
            );
            files_with_ext(&out.join("nixos"), "nix", &mut files);
        }
    }
    let generated = files.len();
    assert!(generated >= 2 * (7 + 3) + 2 * 3, "too few generated files");
    files_with_ext(&root.join("modules/nixos"), "nix", &mut files);
    files_with_ext(&root.join("vm-tests"), "nix", &mut files);
    files_with_ext(&root.join("nix"), "nix", &mut files);
    files_with_ext(&root.join("generator/tests/nix"), "nix", &mut files);
    files.push(root.join("flake.nix"));
    // Every ```nix snippet of the docs, named after its page.
    let snippets = work.path().join("doc-snippets");
    std::fs::create_dir_all(&snippets).unwrap();
    let mut on_nixos_page = 0;
    for (page, text) in common::user_docs() {
        for (i, b) in common::fenced_blocks(&text, "nix").iter().enumerate() {
            if page == "docs/nixos.md" {
                on_nixos_page += 1;
            }
            let p = snippets.join(format!("{}-{i}.nix", page.replace('/', "_")));
            std::fs::write(&p, b).unwrap();
            files.push(p);
        }
    }
    assert!(
        on_nixos_page >= 2,
        "docs/nixos.md must show the NixOS setup in ```nix blocks"
    );
    assert!(
        files.len() > generated + 2,
        "modules/nixos and flake.nix must exist"
    );

    // rnix, in-process.
    for f in &files {
        let text = std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        if let Err(e) = nix::check(&text) {
            panic!("rnix rejects {}: {e}", f.display());
        }
    }

    // nix-instantiate --parse, on copies under one bind mount.
    if !common::oracles_enabled("every_nix_file_parses_with_rnix_and_nix_instantiate") {
        return;
    }
    let tree = work.path().join("all");
    let mut names = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let dest = tree.join(format!("{i}"));
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::copy(f, dest.join("file.nix")).unwrap();
        names.push((i, f.clone()));
    }
    let script = "rc=0; for d in /w/*/; do nix-instantiate --parse \"$d/file.nix\" >/dev/null 2>\"$d/err\" || { echo \"FAIL $d\"; cat \"$d/err\"; rc=1; }; done; exit $rc";
    let out = common::oracle(&[(&tree, "/w")], &["sh", "-c", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut failures = String::new();
    for line in stdout.lines() {
        if let Some(d) = line.strip_prefix("FAIL /w/") {
            let i: usize = d.trim_end_matches('/').parse().unwrap();
            failures.push_str(&format!("{}\n", names[i].1.display()));
        } else {
            failures.push_str(line);
            failures.push('\n');
        }
    }
    assert!(
        out.status.success(),
        "nix-instantiate --parse rejects:\n{failures}"
    );
    eprintln!(
        "{} Nix files parse with rnix and nix-instantiate",
        files.len()
    );
}

/// Strings worth round-tripping: every torture value plus known traps.
fn torture_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "${x}",
        "$${x}",
        "$",
        "$$",
        "\\${x}",
        "''",
        "'''",
        "''${x}",
        "'$",
        "a'",
        "\\",
        "\\\\n",
        "\"",
        "\n",
        "\r\n",
        "\t",
        "#",
        "/*",
        "ü ☃ \u{1F600}",
        "\u{7f}\u{1}",
        "${\"$\"}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (_, dir) in fleets() {
        let fleet = load(&dir);
        for app in &fleet.apps {
            let c = &app.container;
            v.extend(c.env.iter().map(|(k, val)| format!("{k}={val}")));
            v.extend(c.env.values().cloned());
            v.extend(c.command.iter().flatten().cloned());
            v.extend(c.entrypoint.iter().flatten().cloned());
            v.extend(c.labels.values().cloned());
            for j in &app.jobs {
                v.extend(j.command.iter().cloned());
            }
            if let Some(d) = &app.description {
                v.push(d.clone());
            }
        }
    }
    v
}

#[test]
fn nix_string_literals_evaluate_to_the_original_bytes() {
    let strings = torture_strings();
    let mut expr = String::from("[\n");
    let mut expected = Vec::new();
    for s in &strings {
        expr.push_str(&nix::string(s));
        expr.push('\n');
        expected.push(s.clone());
        // The indented form, for multi-line text that it can carry.
        let text = format!("[Unit]\n{s}\n");
        if let Some(lit) = nix::indented(&text, 1) {
            expr.push_str(&lit);
            expr.push('\n');
            expected.push(text);
        }
        // As an attribute name, too.
        expr.push_str(&format!(
            "(builtins.head (builtins.attrNames {{ {} = 1; }}))\n",
            nix::attr_name(s)
        ));
        expected.push(s.clone());
    }
    expr.push_str("]\n");
    nix::check(&expr).unwrap();
    if !common::oracles_enabled("nix_string_literals_evaluate_to_the_original_bytes") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("strings.nix"), &expr).unwrap();
    let out = common::oracle(
        &[(work.path(), "/w")],
        &[
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "/w/strings.nix",
        ],
    );
    assert!(
        out.status.success(),
        "nix-instantiate --eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "Nix read back a different string");
    }
    eprintln!("{} Nix literals round-trip", expected.len());
}

/// Evaluates `OUT/nixos` with nixpkgs' real modules (eval-nixos.nix),
/// with the apps `disabled` switched off and the module files `extra`
/// (names in the directory `extra_dir`) applied beside it; the result is
/// checked against the model of what nixpkgs' own modules add
/// (`tests/nix/nixpkgs-model.nix`). Ok: the facts, the model's under
/// `model`. Err: Nix's message, which names every collision.
fn try_eval_fleet(
    nixpkgs: &Path,
    out: &Path,
    disabled: &[&str],
    extra_dir: Option<&Path>,
    extra: &[&str],
) -> Result<Value, String> {
    let mut modules: Vec<String> = disabled
        .iter()
        .map(|d| format!("{{ windlass.apps.{}.enable = false; }}", nix::attr_name(d)))
        .collect();
    modules.extend(extra.iter().map(|f| format!("/extra/{f}")));
    eval_fleet_nixpkgs(nixpkgs, out, extra_dir, &modules, &[]).map(|e| e.facts)
}

/// The line the quadlet backend's fleet module carried up to issue 17:
/// Podman's generator linked by windlass, beside the podman package's own.
const OWN_GENERATOR_LINE: &str = "      generators.podman-system-generator = \"${podman}/lib/systemd/system-generators/podman-system-generator\";\n";

/// `text` (a quadlet-backend fleet.nix, or its template) with
/// [`OWN_GENERATOR_LINE`] put back at the top of its `systemd = {`.
fn with_own_generator(text: &str) -> String {
    let open = "    systemd = {\n";
    assert_eq!(text.matches(open).count(), 1, "{text}");
    text.replacen(open, &format!("{open}{OWN_GENERATOR_LINE}"), 1)
}

/// A NixOS build assembles what windlass's modules and nixpkgs' own modules
/// define: generators, unit files, units, /etc, tmpfiles.d, accounts. A name
/// both give fails `nixos-rebuild` (Podman's generator linked twice: issue
/// 17) or silently drops or merges one of them. The evaluation models that
/// assembly (`tests/nix/nixpkgs-model.nix`) and fails naming the collision;
/// here each kind of collision is planted and must be named.
#[test]
fn a_name_nixpkgs_also_defines_fails_the_evaluation_naming_it() {
    let test = "a_name_nixpkgs_also_defines_fails_the_evaluation_naming_it";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let examples = common::repo_root().join("examples");
    let quadlet = ["--target", "quadlet,nixos", "--nixos-backend", "quadlet"];
    let out = work.path().join("quadlet");
    generate(&examples, &out, &quadlet);
    try_eval_fleet(&nixpkgs, &out, &[], None, &[]).expect("the generated module evaluates");
    let twice = "/etc/systemd/system-generators/podman-system-generator is linked 2 times \
                 (package podman (systemd.packages in nixpkgs virtualisation/podman/default.nix); \
                 systemd.generators in nixos/fleet.nix)";

    // The generated module, mutated to link Podman's generator itself.
    let fleet_nix = out.join("nixos/fleet.nix");
    let good = std::fs::read_to_string(&fleet_nix).unwrap();
    std::fs::write(&fleet_nix, with_own_generator(&good)).unwrap();
    let Err(err) = try_eval_fleet(&nixpkgs, &out, &[], None, &[]) else {
        panic!("the duplicate generator is caught");
    };
    assert!(err.contains(twice), "{err}");
    assert!(err.contains("\"File exists\""), "{err}");
    std::fs::write(&fleet_nix, &good).unwrap();

    // The template as it was before the fix (through --templates).
    let templates = work.path().join("templates");
    std::fs::create_dir_all(templates.join("nixos")).unwrap();
    let template =
        std::fs::read_to_string(common::repo_root().join("templates/nixos/fleet.nix.j2")).unwrap();
    std::fs::write(
        templates.join("nixos/fleet.nix.j2"),
        with_own_generator(&template),
    )
    .unwrap();
    let old = work.path().join("old-template");
    let mut args = quadlet.to_vec();
    args.extend(["--templates", templates.to_str().unwrap()]);
    generate(&examples, &old, &args);
    let Err(err) = try_eval_fleet(&nixpkgs, &old, &[], None, &[]) else {
        panic!("the old template is caught");
    };
    assert!(err.contains(twice), "{err}");

    // Every other kind, as a module applied beside the fleet.
    let mutants: &[(&str, &str, &[&str])] = &[
        (
            // what the old line would become if "fixed" by listing podman
            // again: systemd.nix links every listed package's generators,
            // repeated packages included
            "podman-listed-again",
            "systemd.packages = [ config.virtualisation.podman.package ];",
            &[
                "/etc/systemd/system-generators/podman-system-generator is linked 2 times",
                "/etc/systemd/user-generators/podman-user-generator is linked 2 times",
            ],
        ),
        (
            "user-generator",
            "systemd.user.generators.podman-user-generator = \"/nix/store/x\";",
            &["/etc/systemd/user-generators/podman-user-generator is linked 2 times"],
        ),
        (
            // an app named `podman`, as the quadlet backend links it
            "unit-file",
            "systemd.packages = [ (pkgs.linkFarm \"mutant\" [ { name = \"etc/systemd/system/podman.service\"; path = \"/run/systemd/generator/podman.service\"; } ]) ];",
            &[
                "the unit file podman.service is provided by package mutant (systemd.packages in extra module unit-file.nix), package podman",
            ],
        ),
        (
            // an app named `rescue`
            "upstream-unit-file",
            "systemd.packages = [ (pkgs.linkFarm \"mutant\" [ { name = \"etc/systemd/system/rescue.service\"; path = \"/run/systemd/generator/rescue.service\"; } ]) ];",
            &[
                "the unit file rescue.service is provided by systemd's upstream units, package mutant",
            ],
        ),
        (
            // app `podman`, job `prune`
            "unit-definition",
            "systemd.services.podman-prune.serviceConfig.ExecStart = \"/bin/true\";",
            &[
                "the unit podman-prune.service is defined by extra module unit-definition.nix, nixpkgs virtualisation/podman/default.nix (current)",
            ],
        ),
        (
            // app `podman`, job `auto-update`
            "drop-in",
            "systemd.timers.podman-auto-update.timerConfig.OnCalendar = \"daily\";",
            &[
                "the unit podman-auto-update.timer defined in extra module drop-in.nix is also provided by package podman",
            ],
        ),
        (
            "etc-key",
            "environment.etc.\"containers/policy.json\".text = \"{}\";",
            &[
                "environment.etc.\"containers/policy.json\" is defined by extra module etc-key.nix, nixpkgs virtualisation/containers.nix",
            ],
        ),
        (
            "etc-target",
            "environment.etc.mutant = { target = \"containers/storage.conf\"; text = \"\"; };",
            &["/etc/containers/storage.conf is the target of"],
        ),
        (
            "etc-inside",
            "environment.etc.\"systemd/system/mutant.service\".text = \"\";",
            &[
                "/etc/systemd/system/mutant.service (extra module etc-inside.nix) lies inside /etc/systemd/system (nixpkgs systemd.nix)",
            ],
        ),
        (
            "tmpfiles-file",
            "systemd.tmpfiles.packages = [ (pkgs.linkFarm \"mutant\" [ { name = \"lib/tmpfiles.d/podman.conf\"; path = \"/dev/null\"; } ]) ];",
            &["tmpfiles.d/podman.conf comes from"],
        ),
        (
            "tmpfiles-path",
            "systemd.tmpfiles.rules = [ \"d /run/lock 0700 root root - -\" ];",
            &["the tmpfiles path /run/lock is configured by"],
        ),
        (
            "group",
            "users.groups.wheel.gid = 10;",
            &[
                "users.groups.wheel.gid is set by both extra module group.nix and nixpkgs users-groups.nix",
            ],
        ),
    ];
    let extra = work.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    let module = |body: &str| {
        format!("{{ config, pkgs, ... }}:\n{{\n  config = {{\n    {body}\n  }};\n}}\n")
    };
    // What merges cleanly is not refused: services.windlass adds its
    // group this way, the podman module its own.
    std::fs::write(
        extra.join("control.nix"),
        module("users.groups.wheel = { }; users.groups.podman = { }; environment.etc.\"windlass/extra\".text = \"\";"),
    )
    .unwrap();
    try_eval_fleet(&nixpkgs, &out, &[], Some(&extra), &["control.nix"])
        .expect("the control evaluates");
    for (name, body, expected) in mutants {
        let file = format!("{name}.nix");
        std::fs::write(extra.join(&file), module(body)).unwrap();
        let Err(err) = try_eval_fleet(&nixpkgs, &out, &[], Some(&extra), &[&file]) else {
            panic!("mutant {name} is not caught");
        };
        for e in *expected {
            assert!(err.contains(e), "mutant {name}: expected {e:?} in:\n{err}");
        }
    }

    // oci-containers: a job unit named like another app's container service
    // (app `podman`, job `lnd`) is merged into it by the module system.
    let oci = work.path().join("oci");
    generate(&examples, &oci, &["--target", "nixos"]);
    std::fs::write(
        extra.join("job.nix"),
        module("systemd.services.podman-lnd.serviceConfig.ExecStart = \"/bin/true\";"),
    )
    .unwrap();
    let Err(err) = try_eval_fleet(&nixpkgs, &oci, &[], Some(&extra), &["job.nix"]) else {
        panic!("the job named like a container service is caught");
    };
    assert!(
        err.contains(
            "the unit podman-lnd.service is defined by nixos/apps/lnd.nix, extra module job.nix"
        ),
        "{err}"
    );
    eprintln!("{} planted collisions named", mutants.len() + 3);
}

/// modules/nixos (services.windlass) with `settings` (a Nix list of
/// modules), evaluated with nixpkgs' real modules (eval-nixos.nix);
/// `generated`: the OUT/nixos that services.windlass.apps generates (the
/// fake `pkgs.runCommand "windlass-fleet"` is that directory).
fn eval_agent_nixpkgs(
    nixpkgs: &Path,
    settings: &str,
    generated: Option<&Path>,
    package: &str,
) -> Result<NixosEval, String> {
    let root = common::repo_root();
    let mut binds: Vec<(&Path, &str)> = vec![(root.as_path(), "/r")];
    let mut args = vec![
        "--arg",
        "sources",
        r#"{ "/r/modules/nixos/" = "modules/nixos/"; }"#,
        "--argstr",
        "windlassPackage",
        package,
    ];
    if let Some(g) = generated {
        binds.push((g, "/gen"));
        args.extend(["--arg", "generatedFleet", "/gen"]);
    }
    let modules = format!("[ /r/modules/nixos/default.nix ] ++ {settings}");
    eval_nixos(nixpkgs, &binds, &modules, &args)
}

/// services.windlass, evaluated by nixpkgs' module system with nixpkgs'
/// real modules: windlassd's unit as systemd reads it from the units
/// nixpkgs builds, its settings, policy and timers; and with a generated
/// fleet (services.windlass.apps; examples and torture, both backends)
/// the same checks as the fleet modules alone: podman argv byte-exact,
/// jobs, /etc, links and Quadlet.
#[test]
fn services_windlass_module_evaluates_and_applies_a_fleet() {
    let test = "services_windlass_module_evaluates_and_applies_a_fleet";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let sys = work.path().join("sys");
    // windlassd's package, where the rootfs finds it (/w/pkg).
    let bin = sys.join("pkg/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for exe in ["windlassd", "windlassctl"] {
        std::fs::write(bin.join(exe), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            bin.join(exe),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let agent = |extra: &str| {
        format!(
            r#"[ {{ services.windlass = {{ enable = true; group = "ops";
              cutover.targets.fleet-agent = {{ link = "/usr/local/bin/fleet-agent"; unit = "fleet-agent.service"; maxBytes = 1048576; }};
              cutover.extraCertificates = [ "/etc/ssl/fleet-ca.pem" ]; {extra} }}; }} ]"#
        )
    };
    let eval = |settings: &str| {
        eval_agent_nixpkgs(&nixpkgs, settings, None, "/w/pkg").unwrap_or_else(|e| panic!("{e}"))
    };
    // The agent alone.
    let alone = eval(&agent(""));
    let c = &alone.facts;
    let d = &c["services"]["windlassd"];
    assert_eq!(d["restartIfChanged"], false, "never killed mid-switch");
    assert_eq!(d["serviceConfig"]["Type"], "dbus");
    assert_eq!(d["serviceConfig"]["BusName"], "io.windlass.Agent1");
    assert_eq!(d["serviceConfig"]["StateDirectory"], "windlass");
    assert!(
        c["units"]["windlassd.service"]["text"]
            .as_str()
            .unwrap()
            .contains("\nX-RestartIfChanged=false\n")
    );
    assert!(c["groups"].as_array().unwrap().contains(&"ops".into()));
    // Cutover targets become /etc/windlass/targets/<name>.toml, in the
    // keys windlassd reads.
    assert_eq!(
        c["etc"]["windlass/targets/fleet-agent.toml"]["text"],
        "agent = false\ndeadline = 60\nkeep = 3\nlink = \"/usr/local/bin/fleet-agent\"\nmax_bytes = 1048576\nself_test_timeout = 30\nunit = \"fleet-agent.service\"\n"
    );
    let policy = c["dbusPackages"][0]["text"].as_str().unwrap();
    assert!(policy.contains("<policy group=\"ops\">"), "{policy}");
    assert_eq!(
        c["timers"]["windlass-sweep"]["timerConfig"]["OnCalendar"],
        "weekly"
    );
    assert_eq!(
        c["timers"]["windlass-drift-scan"]["timerConfig"]["OnUnitActiveSec"],
        "6h"
    );
    let scan = c["services"]["windlass-drift-scan"]["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap();
    assert_eq!(scan, "/w/pkg/bin/windlassctl --bus system drift scan");
    assert_eq!(
        c["containers"],
        serde_json::json!({}),
        "no fleet, no containers"
    );
    assert_eq!(c["warnings"], serde_json::json!([]));
    let c = eval(&agent("sweep.enable = false;")).facts;
    assert!(c["timers"].get("windlass-sweep").is_none());
    let c = eval(&agent("driftScan.enable = false;")).facts;
    assert!(c["timers"].get("windlass-drift-scan").is_none());

    // services.windlass.apps: the generated fleet module is applied, and
    // runs as it does imported directly.
    let mut cases = Vec::new();
    for (name, dir) in [
        ("examples", common::repo_root().join("examples")),
        (
            "torture",
            common::repo_root().join("generator/tests/fleets/torture"),
        ),
    ] {
        for (backend, args) in [
            ("oci-containers", vec!["--target", "nixos"]),
            (
                "quadlet",
                vec!["--target", "quadlet,nixos", "--nixos-backend", "quadlet"],
            ),
        ] {
            let out = work.path().join(format!("{name}-{backend}"));
            generate(&dir, &out, &args);
            // The quadlet backend with the group every NixOS has:
            // services.windlass's definitions merge with nixpkgs'.
            let group = if backend == "quadlet" { "wheel" } else { "ops" };
            let settings = format!(
                r#"[ {{ services.windlass = {{ enable = true; group = "{group}"; apps = "/fleet"; backend = "{backend}"; }}; }} ]"#
            );
            let eval = eval_agent_nixpkgs(&nixpkgs, &settings, Some(&out.join("nixos")), "/w/pkg")
                .unwrap_or_else(|e| panic!("{name}/{backend}: {e}"));
            cases.push((format!("{name}-{backend}"), backend, load(&dir), eval, out));
        }
    }
    let mut plans = vec![Plan {
        label: "alone".into(),
        eval: &alone,
        verify: vec!["windlassd.service".into()],
        run: vec![],
        quadlet: false,
    }];
    for (label, backend, fleet, eval, _) in &cases {
        let mut plan = oci_plan(label, eval, fleet);
        if *backend == "quadlet" {
            plan.run.clear();
            plan.verify.clear();
            plan.quadlet = true;
        }
        plan.verify.push("windlassd.service".into());
        plans.push(plan);
    }
    run_plans(&sys, &plans).unwrap_or_else(|e| panic!("{e}"));
    // systemd reads windlassd's command line as the options say.
    let want: Vec<String> = [
        "/w/pkg/bin/windlassd",
        "--bus",
        "system",
        "--state-dir",
        "/var/lib/windlass",
        "--run-dir",
        "/run/windlass",
        "--group",
        "ops",
        "--platform",
        "nixos",
        "--targets",
        "/etc/windlass/targets",
        "--extra-ca",
        "/etc/ssl/fleet-ca.pem",
    ]
    .map(str::to_string)
    .to_vec();
    assert_eq!(
        systemd_commands(&sys, "alone", "windlassd.service", "ExecStart").unwrap(),
        [want]
    );
    let mut problems = Vec::new();
    for ((label, backend, fleet, eval, out), plan) in cases.iter().zip(&plans[1..]) {
        let f = &eval.facts;
        if !f["services"]["windlassd"].is_object() {
            problems.push(format!("{label}: no windlassd"));
        }
        if let Err(e) = systemd_commands(&sys, label, "windlassd.service", "ExecStart") {
            problems.push(e);
        }
        if *backend == "quadlet" {
            problems.extend(quadlet_problems(&sys, plan, fleet, out));
            problems.extend(generation_problems(label, f, fleet, NixosBackend::Quadlet));
            if !f["groups"].as_array().unwrap().contains(&"wheel".into()) {
                problems.push(format!("{label}: no wheel"));
            }
        } else {
            problems.extend(oci_problems(&sys, plan, fleet));
            problems.extend(generation_problems(
                label,
                f,
                fleet,
                NixosBackend::OciContainers,
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The nixpkgs files `tests/nix/eval-nixos.nix` reads.
const NIXPKGS_FILES: &[&str] = &[
    "lib/default.nix",
    "nixos/modules/virtualisation/oci-containers.nix",
    "nixos/modules/virtualisation/podman/default.nix",
    "nixos/modules/misc/assertions.nix",
    "nixos/modules/system/etc/etc.nix",
    "nixos/lib/systemd-lib.nix",
    "nixos/lib/systemd-types.nix",
    "nixos/lib/systemd-unit-options.nix",
];

/// nixpkgs' own `lib` and the NixOS modules of [`NIXPKGS_FILES`], read in
/// place from the shared oracles (`../shared/oracles/nixpkgs`, see its
/// SOURCES.md). None (saying so) when they are absent outside CI; under
/// `CI=true` their absence fails the test.
fn nixpkgs_oracle(test: &str) -> Option<PathBuf> {
    let dir = common::repo_root().join("../shared/oracles/nixpkgs");
    let missing: Vec<&str> = NIXPKGS_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        return Some(dir.canonicalize().unwrap());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: nixpkgs' files {missing:?} are missing at {} (CI=true)",
        dir.display()
    );
    eprintln!(
        "SKIPPED {test}: nixpkgs' files {missing:?} are not at {} (under CI=true this test fails instead)",
        dir.display()
    );
    None
}

/// modules/nixos evaluated by nixpkgs' own module system and real modules
/// (`eval_agent_nixpkgs`) with `settings`, a Nix list of modules, and
/// `pkgs.windlass` at `package`: its services, units (as nixpkgs writes
/// them) and `services.windlass.fleet` / `.coordinator`. Err: Nix's
/// message (a false assertion, a value of the wrong type, a collision).
fn eval_with_nixpkgs_lib(nixpkgs: &Path, settings: &str, package: &str) -> Result<Value, String> {
    let f = eval_agent_nixpkgs(nixpkgs, settings, None, package)?.facts;
    Ok(serde_json::json!({
        "systemd": { "services": f["services"] },
        "units": f["units"],
        "windlass": f["windlass"],
    }))
}

/// `KEY=value` lines of a section of a unit file, in order.
fn unit_settings(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').unwrap();
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

const UNIT_CHECK: &str = r#"
set -u
cd /w
for d in nixos shipped; do
  SYSTEMD_UNIT_PATH=/w/$d: systemd-analyze verify --recursive-errors=no /w/$d/*.service >/w/$d.out 2>/w/$d.err
  echo $? >/w/$d.rc
  SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug SYSTEMD_UNIT_PATH=/w/$d: systemd-analyze verify --recursive-errors=no /w/$d/*.service >/w/$d.dump 2>/dev/null
done
true
"#;

/// services.windlass.fleet and .coordinator, evaluated by nixpkgs' own
/// module system, make `windlass-fleetd.service` and
/// `windlass-coordinator.service`. systemd (`systemd-analyze verify`)
/// accepts the units nixpkgs would write from them, without a warning, and
/// reads them exactly as it reads the shipped units of fleet/systemd/
/// (every property of its dump: user, sandbox, limits, state directory,
/// restart), except the settings that the options replace: the
/// `EnvironmentFile=` is gone and each setting is an argument, every
/// value reaching the binary unchanged (systemd's own parse of
/// `ExecStart=`), the NATS secrets by `LoadCredential=`.
#[test]
fn fleet_and_coordinator_options_make_the_shipped_units() {
    let test = "fleet_and_coordinator_options_make_the_shipped_units";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let root = common::repo_root();
    // Every character systemd or Nix could take for syntax.
    let note = "a \"b\" 'c' $HOME ${X} $$ %n %% \\ \\n\ttab\nline é ✓ ; #";
    let settings = format!(
        r#"[ {{
          networking.hostName = "Kiosk-01";
          services.windlass = {{
            enable = true;
            fleet = {{
              enable = true;
              natsUrl = "tls://nats.example:4222";
              credentialsFile = "/etc/windlass/fleetd.creds";
              labels = {{ site = "north"; note = {note}; }};
              heartbeatInterval = 45;
              extraArgs = [ "--label" {extra} ];
            }};
            coordinator = {{
              enable = true;
              natsUrl = "tls://nats.example:4222";
              credentialsFile = "/etc/windlass/coordinator.creds";
              leaseTtl = "30s";
              extraArgs = [ "--holder" "ops-1" ];
            }};
          }};
        }} ]"#,
        note = nix::string(note),
        extra = nix::string("from-extra=50% $USER"),
    );
    let c = eval_with_nixpkgs_lib(&nixpkgs, &settings, "/w/pkg").unwrap_or_else(|e| panic!("{e}"));
    // Both default to the agent's package.
    assert_eq!(c["windlass"]["fleet"]["package"], "/w/pkg");
    assert_eq!(c["windlass"]["coordinator"]["package"], "/w/pkg");
    // The host id defaults to the host name, lower-cased as fleetd does.
    assert_eq!(c["windlass"]["fleet"]["host"], "kiosk-01");
    let services = &c["systemd"]["services"];
    let fleetd = &services["windlass-fleetd"];
    let coordinator = &services["windlass-coordinator"];
    assert_eq!(
        fleetd["serviceConfig"]["LoadCredential"],
        serde_json::json!(["nats.creds:/etc/windlass/fleetd.creds"])
    );
    assert_eq!(
        coordinator["serviceConfig"]["LoadCredential"],
        serde_json::json!(["nats.creds:/etc/windlass/coordinator.creds"])
    );

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for d in ["nixos", "shipped", "pkg/bin"] {
        std::fs::create_dir_all(w.join(d)).unwrap();
    }
    for unit in ["windlass-fleetd", "windlass-coordinator"] {
        let exe = w.join("pkg/bin").join(unit);
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let shipped =
            std::fs::read_to_string(root.join(format!("fleet/systemd/{unit}.service"))).unwrap();
        std::fs::write(
            w.join(format!("shipped/{unit}.service")),
            shipped.replace("ExecStart=/usr/bin/", "ExecStart=/w/pkg/bin/"),
        )
        .unwrap();
        let svc = &services[unit];
        // The unit file nixpkgs writes (systemd-lib.nix serviceToUnit).
        std::fs::write(
            w.join(format!("nixos/{unit}.service")),
            c["units"][format!("{unit}.service")]["text"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        // The dependencies: the shipped unit's, and on NixOS the fleet
        // member also wants windlassd (an assertion makes sure it is there).
        let list = |section: &str, key: &str| -> Vec<String> {
            unit_settings(&shipped, section)
                .into_iter()
                .filter(|(k, _)| k == key)
                .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect()
        };
        let nix_list = |k: &str| -> Vec<String> {
            svc[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        let mut wants = list("Unit", "Wants");
        if unit == "windlass-fleetd" {
            wants.push("windlassd.service".into());
        }
        assert_eq!(nix_list("wants"), wants, "{unit}");
        assert_eq!(nix_list("after"), list("Unit", "After"), "{unit}");
        assert_eq!(nix_list("wantedBy"), list("Install", "WantedBy"), "{unit}");
    }
    let o = common::oracle(&[(w, "/w")], &["bash", "-c", UNIT_CHECK]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |f: &str| std::fs::read_to_string(w.join(f)).unwrap();
    for d in ["nixos", "shipped"] {
        assert_eq!(
            read(&format!("{d}.rc")).trim(),
            "0",
            "{d}: systemd-analyze verify failed: {}",
            read(&format!("{d}.err"))
        );
        assert!(
            read(&format!("{d}.err")).trim().is_empty(),
            "{d}: systemd-analyze verify warned: {}",
            read(&format!("{d}.err"))
        );
    }
    let nixos = common::systemd_dump_units(&read("nixos.dump"));
    let shipped = common::systemd_dump_units(&read("shipped.dump"));
    // NixOS sets each service's PATH (Environment=) from `path`.
    let replaced = [
        "Fragment Path:",
        "EnvironmentFile:",
        "Environment:",
        "Command Line:",
    ];
    for unit in ["windlass-fleetd.service", "windlass-coordinator.service"] {
        let props = |lines: &[String]| {
            let mut v: Vec<String> = lines
                .iter()
                .filter(|l| !replaced.iter().any(|r| l.starts_with(r)))
                .cloned()
                .collect();
            v.sort();
            v
        };
        let (n, s) = (&nixos[unit], &shipped[unit]);
        assert!(s.len() > 100, "{unit}: the dump has its properties: {s:?}");
        assert_eq!(
            props(n),
            props(s),
            "{unit}: systemd reads the two differently"
        );
        assert!(
            s.iter().any(|l| l.starts_with("EnvironmentFile:")),
            "{unit}: the shipped unit reads an environment file"
        );
    }
    assert_eq!(
        common::systemd_exec_start(&nixos["windlass-fleetd.service"]),
        [
            "/w/pkg/bin/windlass-fleetd",
            "--bus",
            "system",
            "--state",
            "/var/lib/windlass-fleet",
            "--nats",
            "tls://nats.example:4222",
            "--heartbeat-interval",
            "45",
            "--host",
            "kiosk-01",
            "--label",
            &format!("note={note}"),
            "--label",
            "site=north",
            "--creds",
            "/run/credentials/windlass-fleetd.service/nats.creds",
            "--label",
            "from-extra=50% $USER",
        ]
    );
    assert_eq!(
        common::systemd_exec_start(&nixos["windlass-coordinator.service"]),
        [
            "/w/pkg/bin/windlass-coordinator",
            "--nats",
            "tls://nats.example:4222",
            "--lease-ttl",
            "30s",
            "--creds",
            "/run/credentials/windlass-coordinator.service/nats.creds",
            "--holder",
            "ops-1",
        ]
    );

    // A NATS user instead of a credentials file, and no host name: fleetd
    // takes the kernel's at start.
    let c = eval_with_nixpkgs_lib(
        &nixpkgs,
        r#"[ {
          networking.hostName = "";
          services.windlass = {
            enable = true;
            fleet = {
              enable = true;
              user = "kiosk-01";
              passwordFile = "/etc/windlass/fleetd.password";
            };
          };
        } ]"#,
        "/w/pkg",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sc = &c["systemd"]["services"]["windlass-fleetd"]["serviceConfig"];
    let exec = sc["ExecStart"].as_str().unwrap();
    assert!(
        exec.ends_with(r#""--user" "kiosk-01" "--password-file" %d/nats.password"#),
        "{exec}"
    );
    assert!(
        !exec.contains("--host") && !exec.contains("--creds"),
        "{exec}"
    );
    assert_eq!(
        sc["LoadCredential"],
        serde_json::json!(["nats.password:/etc/windlass/fleetd.password"])
    );
    assert!(
        c["systemd"]["services"]
            .get("windlass-coordinator")
            .is_none()
    );

    // A coordinator alone needs no agent.
    let c = eval_with_nixpkgs_lib(
        &nixpkgs,
        "[ { services.windlass.coordinator.enable = true; } ]",
        "/w/pkg",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&String> = c["systemd"]["services"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, ["windlass-coordinator"]);
}

/// Each bad setting of services.windlass.fleet or .coordinator fails the
/// evaluation (nixpkgs' own module system and assertions module), naming
/// the option and what is wrong; the control, the same settings without
/// the mutation, evaluates.
#[test]
fn a_bad_fleet_or_coordinator_setting_is_refused_naming_it() {
    let test = "a_bad_fleet_or_coordinator_setting_is_refused_naming_it";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let control = r#"{
      networking.hostName = "kiosk-01";
      services.windlass = {
        enable = true;
        fleet = {
          enable = true;
          credentialsFile = "/etc/windlass/fleetd.creds";
          labels.site = "north";
        };
        coordinator = {
          enable = true;
          credentialsFile = "/etc/windlass/coordinator.creds";
        };
      };
    }"#;
    let eval = |mutant: &str| {
        eval_with_nixpkgs_lib(
            &nixpkgs,
            &format!("[ {control} ({{ lib, ... }}: {{ {mutant} }}) ]"),
            "/nix/store/stub-windlass",
        )
    };
    eval("").unwrap_or_else(|e| panic!("the control does not evaluate: {e}"));
    let mutants: &[(&str, &str)] = &[
        (
            "services.windlass.enable = lib.mkForce false;",
            "services.windlass.fleet.enable needs services.windlass.enable",
        ),
        (
            "services.windlass.fleet.host = \"Kiosk_01\";",
            "services.windlass.fleet.host \"Kiosk_01\": a fleet host id is 1 to 63 of a-z",
        ),
        (
            // the default, from a host name that is not an id
            "networking.hostName = lib.mkForce \"build_01\";",
            "services.windlass.fleet.host \"build_01\"",
        ),
        (
            "services.windlass.fleet.heartbeatInterval = 0;",
            "services.windlass.fleet.heartbeatInterval' is not of type `positive integer",
        ),
        (
            // a Nix path would copy the secret into the store
            "services.windlass.fleet.credentialsFile = lib.mkForce /etc/windlass/fleetd.creds;",
            "services.windlass.fleet.credentialsFile' is not of type `null or string'",
        ),
        (
            "services.windlass.fleet.credentialsFile = lib.mkForce \"/nix/store/0000-fleetd.creds\";",
            "services.windlass.fleet.credentialsFile must be an absolute path outside the Nix store",
        ),
        (
            "services.windlass.fleet.credentialsFile = lib.mkForce \"fleetd.creds\";",
            "services.windlass.fleet.credentialsFile must be an absolute path",
        ),
        (
            "services.windlass.fleet.credentialsFile = lib.mkForce \"/etc/windlass/%H.creds\";",
            "services.windlass.fleet.credentialsFile must be an absolute path outside the Nix store (without `%`)",
        ),
        (
            "services.windlass.fleet = { user = \"kiosk-01\"; passwordFile = \"/etc/windlass/fleetd.password\"; };",
            "services.windlass.fleet: give credentialsFile or user and passwordFile, not both",
        ),
        (
            "services.windlass.fleet = { credentialsFile = lib.mkForce null; user = \"kiosk-01\"; };",
            "services.windlass.fleet: user and passwordFile go together",
        ),
        (
            "services.windlass.fleet = { credentialsFile = lib.mkForce null; user = \"kiosk-01\"; passwordFile = \"/nix/store/0000-password\"; };",
            "services.windlass.fleet.passwordFile must be an absolute path outside the Nix store",
        ),
        (
            "services.windlass.fleet.natsUrl = \"nats://kiosk:secret@nats.example:4222\";",
            "services.windlass.fleet.natsUrl must not carry credentials",
        ),
        (
            "services.windlass.fleet.labels.\"a=b\" = \"c\";",
            "services.windlass.fleet.labels: the key \"a=b\" must be non-empty and hold no `=`",
        ),
        (
            "services.windlass.fleet.labels.\"\" = \"c\";",
            "services.windlass.fleet.labels: the key \"\" must be non-empty",
        ),
        (
            "services.windlass.fleet.labels.site = lib.mkForce 5;",
            "services.windlass.fleet.labels.site' is not of type `string'",
        ),
        (
            "services.windlass.coordinator.leaseTtl = \"0s\";",
            "services.windlass.coordinator.leaseTtl \"0s\": expected a duration",
        ),
        (
            "services.windlass.coordinator.leaseTtl = \"10 s\";",
            "services.windlass.coordinator.leaseTtl \"10 s\": expected a duration",
        ),
        (
            "services.windlass.coordinator.natsUrl = \"nats://s3cr3t@nats.example:4222\";",
            "services.windlass.coordinator.natsUrl must not carry credentials",
        ),
        (
            "services.windlass.coordinator.credentialsFile = lib.mkForce \"/nix/store/0000-coordinator.creds\";",
            "services.windlass.coordinator.credentialsFile must be an absolute path outside the Nix store",
        ),
    ];
    for (mutant, expected) in mutants {
        let Err(err) = eval(mutant) else {
            panic!("not refused: {mutant}");
        };
        assert!(
            err.contains(expected),
            "{mutant}: expected {expected:?} in:\n{err}"
        );
        // An assertion is reported as NixOS reports it, and alone.
        if !expected.contains("is not of type") {
            assert!(err.contains("Failed assertions:"), "{mutant}: {err}");
            let failed = err
                .lines()
                .filter(|l| l.trim_start().starts_with("- "))
                .count();
            assert_eq!(failed, 1, "{mutant}: one assertion fails: {err}");
        }
    }
    eprintln!("{} bad settings refused", mutants.len());
}

#[test]
fn nixos_vm_test_scripts_evaluate_and_compile_as_python() {
    if !common::oracles_enabled("nixos_vm_test_scripts_evaluate_and_compile_as_python") {
        return;
    }
    let root = common::repo_root();
    let res = common::oracle(
        &[(root.as_path(), "/r")],
        &[
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "/r/generator/tests/nix/eval-vm-tests.nix",
            "--arg",
            "dir",
            "/r/vm-tests/nixos",
        ],
    );
    assert!(
        res.status.success(),
        "evaluating vm-tests/nixos failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let tests: Vec<Value> = serde_json::from_slice(&res.stdout).unwrap();
    // Every scenario file is wired into default.nix (so into the flake's
    // checks), and the agent scenarios of the issue are all there.
    let mut files = Vec::new();
    files_with_ext(&root.join("vm-tests/nixos"), "nix", &mut files);
    let checks: Vec<&str> = tests.iter().map(|t| t["check"].as_str().unwrap()).collect();
    for f in &files {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        if stem == "default" || stem == "common" {
            continue;
        }
        assert!(
            checks.iter().any(|c| c.starts_with(&format!("vm-{stem}-"))),
            "vm-tests/nixos/{stem}.nix is not among the checks {checks:?}"
        );
    }
    for scenario in [
        "generate-run",
        "argv-roundtrip",
        "switch-healthy",
        "switch-unhealthy",
        "agent-killed",
        "manual-confirm",
        "explicit-rollback",
        "unauthorised",
        "reboot-before-commit",
    ] {
        assert!(
            checks.contains(&format!("vm-{scenario}-quadlet").as_str()),
            "no NixOS check for {scenario}: {checks:?}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    for t in &tests {
        let name = t["name"].as_str().unwrap();
        assert_eq!(t["nodes"], serde_json::json!(["machine"]), "{name}");
        let script = t["testScript"].as_str().unwrap();
        assert!(script.contains("assert"), "{name}: the script asserts");
        let file = work.path().join(format!("{name}.py"));
        std::fs::write(&file, script).unwrap();
        let out = Command::new("python3")
            .args(["-m", "py_compile"])
            .arg(&file)
            .output()
            .expect("python3 is needed to check the NixOS test scripts (tools/test installs it)");
        assert!(
            out.status.success(),
            "{name}: testScript is not valid Python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The generator refuses, as an app name, every service the modelled NixOS
/// system already has a unit file for (systemd's upstream units, Podman's
/// units): the same name would fail the NixOS build (two unit files) and
/// shadow the host's unit elsewhere. The list the generator keeps
/// (`RESERVED_UNITS`) is held to the model here.
#[test]
fn every_service_the_host_already_has_is_refused_as_an_app_name() {
    let test = "every_service_the_host_already_has_is_refused_as_an_app_name";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    generate(
        &common::repo_root().join("examples"),
        &out,
        &["--target", "quadlet,nixos", "--nixos-backend", "quadlet"],
    );
    let config = try_eval_fleet(&nixpkgs, &out, &[], None, &[]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = config["model"]["unitFiles"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, from)| !from.to_string().contains("windlass"))
        .filter_map(|(unit, _)| unit.strip_suffix(".service"))
        .filter(|n| windlass::model::values::is_name(n))
        .map(str::to_string)
        .collect();
    assert!(names.len() > 30, "{names:?}");
    let fleet = work.path().join("fleet");
    std::fs::create_dir_all(fleet.join("apps")).unwrap();
    for n in &names {
        std::fs::write(
            fleet.join(format!("apps/{n}.toml")),
            "[container]\nimage = \"docker.io/library/busybox:1.36\"\n",
        )
        .unwrap();
    }
    let res = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .arg("validate")
        .arg(&fleet)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    for n in &names {
        assert!(
            stderr.contains(&format!(
                "app `{n}` would be the systemd unit `{n}.service`"
            )),
            "app `{n}` is not refused:\n{stderr}"
        );
    }
}

// ---- nixpkgs' real module code (issue 17) ---------------------------------

/// What `tests/nix/eval-nixos.nix` returns (`facts`), with the fake
/// derivations the evaluation forced (store path -> what it holds, see
/// `tests/nix/fake-pkgs.nix`).
struct NixosEval {
    facts: Value,
    drvs: BTreeMap<String, Value>,
}

const FAKE_DRV: &str = "trace: windlass-fake-drv ";

/// nixpkgs' module system and real modules over `modules` (a Nix list
/// expression, paths as mounted by `binds`), by `tests/nix/eval-nixos.nix`.
/// `args` are further `--arg`s. Err: Nix's message (a missing option, a
/// value of the wrong type, a failed assertion, a collision).
fn eval_nixos(
    nixpkgs: &Path,
    binds: &[(&Path, &str)],
    modules: &str,
    args: &[&str],
) -> Result<NixosEval, String> {
    let tests_nix = common::repo_root().join("generator/tests/nix");
    let mut all: Vec<(&Path, &str)> = vec![(&tests_nix, "/t"), (nixpkgs, "/n")];
    all.extend_from_slice(binds);
    let mut cmd = vec![
        "nix-instantiate",
        "--eval",
        "--strict",
        "--json",
        "/t/eval-nixos.nix",
        "--arg",
        "nixpkgs",
        "/n",
        "--arg",
        "modules",
        modules,
    ];
    cmd.extend_from_slice(args);
    let res = common::oracle(&all, &cmd);
    let stderr = String::from_utf8_lossy(&res.stderr);
    if !res.status.success() {
        return Err(stderr
            .lines()
            .filter(|l| !l.starts_with(FAKE_DRV))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    let mut drvs = BTreeMap::new();
    for l in stderr.lines() {
        if let Some(j) = l.strip_prefix(FAKE_DRV) {
            let v: Value = serde_json::from_str(j).unwrap();
            drvs.insert(v["path"].as_str().unwrap().to_string(), v["spec"].clone());
        }
    }
    Ok(NixosEval {
        facts: serde_json::from_slice(&res.stdout).unwrap(),
        drvs,
    })
}

/// A generated `OUT/nixos` (its default.nix, as users import it) with the
/// modules `extra` beside it (Nix expressions; files of `extra_dir` as
/// `/extra/NAME`), evaluated with nixpkgs' real modules.
fn eval_fleet_nixpkgs(
    nixpkgs: &Path,
    out: &Path,
    extra_dir: Option<&Path>,
    extra: &[String],
    args: &[&str],
) -> Result<NixosEval, String> {
    let mut binds: Vec<(&Path, &str)> = vec![(out, "/out")];
    if let Some(d) = extra_dir {
        binds.push((d, "/extra"));
    }
    let modules = format!("[ /out/nixos/default.nix {} ]", extra.join(" "));
    let mut all = vec![
        "--arg",
        "sources",
        r#"{ "/out/nixos/" = "nixos/"; "/extra/" = "extra module "; }"#,
    ];
    all.extend_from_slice(args);
    eval_nixos(nixpkgs, &binds, &modules, &all)
}

/// `/nix/store/…` of the fake store written under `store`.
fn in_store(store: &Path, p: &str) -> PathBuf {
    store.join(p.strip_prefix("/nix/store/").expect("a store path"))
}

/// Reads `p` (an absolute path in the fake store) following symlinks within
/// the store, as the rootfs would.
fn read_store(store: &Path, p: &str) -> Result<Vec<u8>, String> {
    let mut path = p.to_string();
    for _ in 0..40 {
        // Resolve the first symlink along the path, component by component.
        let rest = path
            .strip_prefix("/nix/store/")
            .ok_or_else(|| format!("{path} is outside the store"))?;
        let mut host = store.to_path_buf();
        let comps: Vec<&str> = rest.split('/').collect();
        let mut resolved = None;
        for (i, c) in comps.iter().enumerate() {
            host.push(c);
            if let Ok(t) = std::fs::read_link(&host) {
                let t = t.to_string_lossy().into_owned();
                let dir = format!("/nix/store/{}", comps[..i].join("/"));
                let target = if t.starts_with('/') {
                    t
                } else {
                    format!("{}/{t}", dir.trim_end_matches('/'))
                };
                let tail = comps[i + 1..].join("/");
                resolved = Some(if tail.is_empty() {
                    target
                } else {
                    format!("{target}/{tail}")
                });
                break;
            }
        }
        match resolved {
            Some(next) => path = normalize(&next),
            None => return std::fs::read(&host).map_err(|e| format!("{p}: {e}")),
        }
    }
    Err(format!("{p}: too many links"))
}

fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// Writes the files of every fake derivation of `drvs` under `work/store`
/// and returns a bash script that builds the others (runCommand: the
/// script nixpkgs' code wrote, with its env, `passAsFile` as nix-build
/// passes it, and stdenv's `set -eu -o pipefail` and `nullglob`) in
/// dependency order, each into its `$out`, failing with its log.
fn write_store(work: &Path, drvs: &BTreeMap<String, Value>) -> String {
    use std::os::unix::fs::PermissionsExt;
    let store = work.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mut builds: Vec<&String> = Vec::new();
    for (path, spec) in drvs {
        if let Some(files) = spec.get("files").and_then(|f| f.as_object()) {
            let root = in_store(&store, path);
            std::fs::create_dir_all(root.parent().unwrap()).unwrap();
            if files.is_empty() {
                std::fs::create_dir_all(&root).unwrap();
            }
            for (rel, f) in files {
                let p = if rel.is_empty() {
                    root.clone()
                } else {
                    root.join(rel)
                };
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                if f["dir"] == true {
                    std::fs::create_dir_all(&p).unwrap();
                } else if let Some(t) = f.get("symlink") {
                    std::os::unix::fs::symlink(t.as_str().unwrap(), &p).unwrap();
                } else {
                    std::fs::write(&p, f["text"].as_str().unwrap()).unwrap();
                    if f["executable"] == true {
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                            .unwrap();
                    }
                }
            }
        } else {
            assert!(spec.get("build").is_some(), "{path}: {spec}");
            builds.push(path);
        }
    }
    fn visit<'a>(
        p: &'a String,
        drvs: &BTreeMap<String, Value>,
        builds: &[&'a String],
        seen: &mut std::collections::BTreeSet<&'a String>,
        order: &mut Vec<&'a String>,
    ) {
        if !seen.insert(p) {
            return;
        }
        let text = drvs[p]["build"].to_string();
        for q in builds {
            if *q != p && text.contains(q.as_str()) {
                visit(q, drvs, builds, seen, order);
            }
        }
        order.push(p);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut order = Vec::new();
    for p in &builds {
        visit(p, drvs, &builds, &mut seen, &mut order);
    }
    let mut script = String::from("set -u\n");
    for (i, p) in order.iter().enumerate() {
        let b = &drvs[*p]["build"];
        let dir = work.join(format!("b/{i}"));
        std::fs::create_dir_all(dir.join("env")).unwrap();
        std::fs::write(dir.join("script"), b["script"].as_str().unwrap()).unwrap();
        let env = b["env"].as_object().unwrap();
        let as_file: Vec<&str> = env
            .get("passAsFile")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let mut exports = String::new();
        for (j, (k, v)) in env.iter().enumerate() {
            assert!(
                k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{p}: env {k}"
            );
            std::fs::write(dir.join(format!("env/{j}")), v.as_str().unwrap()).unwrap();
            if as_file.contains(&k.as_str()) {
                exports.push_str(&format!("  export {k}Path=/w/b/{i}/env/{j}\n"));
            } else {
                exports.push_str(&format!(
                    "  v=\"$(cat /w/b/{i}/env/{j}; printf x)\"; export {k}=\"${{v%x}}\"\n"
                ));
            }
        }
        script.push_str(&format!(
            "(\n  set -e\n  cd \"$(mktemp -d)\"\n  export out='{p}' HOME=/homeless-shelter TMPDIR=/tmp PATH=/usr/bin:/bin\n{exports}  for p in ${{nativeBuildInputs:-}} ${{buildInputs:-}}; do PATH=$p/bin:$PATH; done\n  exec bash -c 'set -eu -o pipefail; shopt -s nullglob; source \"$0\"' /w/b/{i}/script\n) >/w/b/{i}/log 2>&1 || {{ echo 'the build of {p} failed:'; cat /w/b/{i}/log; exit 1; }}\n"
        ));
    }
    script
}

/// Builds the fake store of `drvs` under `work` and then runs `then` (bash),
/// in the oracle rootfs with the store at /nix/store and `work` at /w.
fn build_and_run(work: &Path, drvs: &BTreeMap<String, Value>, then: &str) -> std::process::Output {
    let mut script = write_store(work, drvs);
    script.push_str(then);
    std::fs::write(work.join("run.sh"), script).unwrap();
    common::oracle(
        &[(work, "/w"), (&work.join("store"), "/nix/store")],
        &["bash", "/w/run.sh"],
    )
}

/// A JSON-array argument (`--entrypoint=`, `--health-cmd=`) in one
/// canonical form, so that what Podman decodes is compared, not how the
/// generator spelled it. Unchanged when it is not a JSON array of strings.
fn canonical_json_flag(arg: &str) -> String {
    for flag in ["--entrypoint=", "--health-cmd="] {
        if let Some(v) = arg.strip_prefix(flag)
            && let Ok(words) = serde_json::from_str::<Vec<String>>(v)
        {
            return format!("{flag}{}", serde_json::to_string(&words).unwrap());
        }
    }
    arg.to_string()
}

/// The `podman` argv of `podman-<app>.service` as nixpkgs' oci-containers
/// module writes its script (oci-containers.nix `mkService`), from the
/// manifest: every value as the manifest gives it.
fn oci_run_argv(app: &windlass::model::App) -> Vec<String> {
    use windlass::emit::podman as p;
    let c = &app.container;
    let s = |x: &str| x.to_string();
    let mut a = vec![
        s("run"),
        format!("--name={}", app.name),
        s("--log-driver=journald"),
    ];
    if let Some(ep) = &c.entrypoint {
        a.push(format!(
            "--entrypoint={}",
            serde_json::to_string(ep).unwrap()
        ));
    }
    let healthy = app.health.as_ref().is_some_and(|h| h.cmd.is_some());
    a.extend([
        format!("--cidfile=/run/{}/ctr-id", app.name),
        s("--cgroups=enabled"),
        format!("--sdnotify={}", if healthy { "healthy" } else { "conmon" }),
        s("-d"),
        s("--replace"),
    ]);
    for (k, v) in &c.env {
        a.extend([s("-e"), format!("{k}={v}")]);
    }
    for f in &c.env_files {
        a.extend([s("--env-file"), f.clone()]);
    }
    for port in &c.ports {
        a.extend([s("-p"), port.to_string()]);
    }
    if let Some(u) = &c.user {
        a.extend([
            s("-u"),
            match &c.group {
                Some(g) => format!("{u}:{g}"),
                None => u.clone(),
            },
        ]);
    }
    for m in &c.volumes {
        let src = match &m.source {
            windlass::model::VolumeSource::Named(n) | windlass::model::VolumeSource::Host(n) => n,
        };
        a.extend([s("-v"), format!("{src}:{}{}", m.target, m.options())]);
    }
    for v in p::secret_volumes(c) {
        a.extend([s("-v"), v]);
    }
    for (k, v) in p::labels(app, true) {
        a.extend([s("-l"), format!("{k}={v}")]);
    }
    a.push(s("--rm"));
    let mut nets: Vec<String> = Vec::new();
    for n in &c.networks {
        let arg = c.network_arg(n, n);
        if !nets.contains(&arg) {
            nets.push(arg);
        }
    }
    a.extend(nets.iter().map(|n| format!("--network={n}")));
    a.extend([s("--pull"), s("missing")]);
    // extraOptions: what the module has no option for, in the
    // generator's order.
    a.extend(
        c.secrets
            .iter()
            .filter_map(p::secret_spec)
            .map(|spec| format!("--secret={spec}")),
    );
    if let Some(cn) = &c.container_name {
        a.push(format!("--name={cn}"));
    }
    for (host, ip) in &c.add_hosts {
        a.push(format!("--add-host={host}:{ip}"));
    }
    if c.read_only {
        a.push(s("--read-only"));
    }
    if let Some(h) = &app.health {
        let mut flags = p::health_flags(h);
        if let (Some(cmd), Some(first)) = (&h.cmd, flags.first_mut()) {
            *first = format!("--health-cmd={}", serde_json::to_string(cmd).unwrap());
        }
        a.extend(flags);
    }
    a.extend(p::resource_flags(c));
    a.extend(p::setting_flags(c));
    a.push(c.image.full.clone());
    a.extend(c.command.clone().unwrap_or_default());
    a
}

/// One evaluated system, to be built and run in the rootfs (see
/// [`system_script`]).
struct Plan<'a> {
    label: String,
    eval: &'a NixosEval,
    /// Units systemd reads (`systemd-analyze verify`) from the built
    /// /etc/systemd/system.
    verify: Vec<String>,
    /// Services whose ExecStartPre and ExecStart (as nixpkgs wrote them)
    /// are run, in that order, with a recording `podman`.
    run: Vec<String>,
    /// Run the rootfs' Quadlet on the built /etc/containers/systemd.
    quadlet: bool,
}

fn service_commands(facts: &Value, unit: &str) -> Vec<Vec<String>> {
    let sc = &facts["services"][unit]["serviceConfig"];
    let mut out: Vec<Vec<String>> = Vec::new();
    for v in sc["ExecStartPre"].as_array().into_iter().flatten() {
        out.push(
            v.as_str()
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        );
    }
    out.push(
        sc["ExecStart"]
            .as_str()
            .unwrap_or_else(|| panic!("{unit}: no ExecStart"))
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    );
    out
}

/// The part of the rootfs script for `plan` (after the store is built):
/// results under /w/r/LABEL.
fn system_script(work: &Path, plan: &Plan) -> String {
    let f = &plan.eval.facts;
    let l = &plan.label;
    let dir = work.join("r").join(l);
    std::fs::create_dir_all(&dir).unwrap();
    let su = f["etc"]["systemd/system"]["source"].as_str().unwrap();
    let mut s = format!("mkdir -p /w/r/{l}\nSU='{su}'\n");
    if !plan.verify.is_empty() {
        let units: Vec<String> = plan.verify.iter().map(|u| format!("\"$SU/{u}\"")).collect();
        let units = units.join(" ");
        s.push_str(&format!(
            "SYSTEMD_UNIT_PATH=$SU: systemd-analyze verify --man=no --recursive-errors=no {units} >/w/r/{l}/verify.out 2>/w/r/{l}/verify.err; echo $? >/w/r/{l}/verify.rc\n\
             SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug SYSTEMD_UNIT_PATH=$SU: systemd-analyze verify --recursive-errors=no {units} >/w/r/{l}/dump 2>/dev/null\n"
        ));
    }
    for (k, unit) in plan.run.iter().enumerate() {
        let path = f["services"][unit]["environment"]["PATH"]
            .as_str()
            .unwrap_or_else(|| panic!("{unit}: no PATH"));
        assert!(!path.contains('\''));
        s.push_str(&format!("mkdir -p /w/r/{l}/rec/{k}\n"));
        for (j, cmd) in service_commands(f, unit).iter().enumerate() {
            let mut bytes = Vec::new();
            for w in cmd {
                bytes.extend_from_slice(w.as_bytes());
                bytes.push(0);
            }
            std::fs::write(dir.join(format!("cmd-{k}-{j}")), bytes).unwrap();
            s.push_str(&format!(
                "(cd / && mapfile -d '' a </w/r/{l}/cmd-{k}-{j} && exec env -i PATH='{path}' PODMAN_SYSTEMD_UNIT='{unit}.service' WINDLASS_PODMAN_RECORD=/w/r/{l}/rec/{k} \"${{a[@]}}\") >/w/r/{l}/run-{k}-{j}.out 2>&1; echo $? >/w/r/{l}/run-{k}-{j}.rc\n"
            ));
        }
    }
    if plan.quadlet {
        let etc = f["etcDrv"].as_str().unwrap();
        s.push_str(&format!(
            "QUADLET_UNIT_DIRS='{etc}/etc/containers/systemd' /usr/libexec/podman/quadlet -dryrun >/w/r/{l}/quadlet.out 2>/w/r/{l}/quadlet.err; echo $? >/w/r/{l}/quadlet.rc\n"
        ));
    }
    s
}

/// Builds the store of every plan's evaluation and runs the plans, in one
/// rootfs call. Err: the build's output (a build script failed).
fn run_plans(work: &Path, plans: &[Plan]) -> Result<(), String> {
    let mut drvs = BTreeMap::new();
    for p in plans {
        drvs.extend(p.eval.drvs.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut then = String::new();
    for p in plans {
        then.push_str(&system_script(work, p));
    }
    let out = build_and_run(work, &drvs, &then);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn read_result(work: &Path, label: &str, file: &str) -> String {
    std::fs::read_to_string(work.join("r").join(label).join(file))
        .unwrap_or_else(|e| panic!("{label}/{file}: {e}"))
}

/// The argv of every `podman` call the run of service number `k` made.
fn podman_calls(work: &Path, label: &str, k: usize) -> Vec<Vec<String>> {
    let dir = work.join("r").join(label).join(format!("rec/{k}"));
    let mut calls = Vec::new();
    for i in 0.. {
        let Ok(bytes) = std::fs::read(dir.join(i.to_string())) else {
            break;
        };
        let mut words: Vec<String> = bytes
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        assert_eq!(words.pop().as_deref(), Some(""), "NUL-terminated");
        calls.push(words);
    }
    calls
}

/// What systemd makes of `unit`'s `key` command lines (its dump).
fn systemd_commands(
    work: &Path,
    label: &str,
    unit: &str,
    key: &str,
) -> Result<Vec<Vec<String>>, String> {
    let dump = common::systemd_dump_units(&read_result(work, label, "dump"));
    let lines = dump
        .get(unit)
        .ok_or_else(|| format!("{label}: systemd did not load {unit}"))?;
    common::systemd_command_lines(lines, key)
        .iter()
        .map(|l| common::systemd_command_line(l))
        .collect()
}

/// Problems of an oci-containers system: each app's service as nixpkgs
/// built it, run with a recording podman, must call `podman run` with the
/// manifest's values, byte for byte; each job's ExecStart, as systemd
/// reads it from the unit nixpkgs wrote, must be the job's command.
fn oci_problems(work: &Path, plan: &Plan, fleet: &Fleet) -> Vec<String> {
    let mut problems = Vec::new();
    let l = &plan.label;
    let f = &plan.eval.facts;
    problems.extend(installed_generation_problems(work, plan));
    if f["backend"] != "podman" {
        problems.push(format!("{l}: backend {}", f["backend"]));
    }
    if f["warnings"] != serde_json::json!([]) {
        problems.push(format!("{l}: NixOS warns: {}", f["warnings"]));
    }
    if !plan.verify.is_empty() {
        let (rc, err) = (
            read_result(work, l, "verify.rc"),
            read_result(work, l, "verify.err"),
        );
        if rc.trim() != "0" || !err.trim().is_empty() {
            problems.push(format!(
                "{l}: systemd-analyze verify ({}): {err}",
                rc.trim()
            ));
        }
    }
    for (k, unit) in plan.run.iter().enumerate() {
        // Every command ran and succeeded.
        for j in 0..service_commands(f, unit).len() {
            let rc = read_result(work, l, &format!("run-{k}-{j}.rc"));
            if rc.trim() != "0" {
                problems.push(format!(
                    "{l}: {unit} command {j} failed ({}): {}",
                    rc.trim(),
                    read_result(work, l, &format!("run-{k}-{j}.out"))
                ));
            }
        }
        // systemd reads the commands nixpkgs wrote as the ones run here.
        let svc = format!("{unit}.service");
        let mut read = Vec::new();
        for key in ["ExecStartPre", "ExecStart"] {
            match systemd_commands(work, l, &svc, key) {
                Ok(c) => read.extend(c),
                Err(e) => problems.push(e),
            }
        }
        if read != service_commands(f, unit) {
            problems.push(format!(
                "{l}: systemd reads {svc}'s commands as {read:?}, not {:?}",
                service_commands(f, unit)
            ));
        }
        let calls = podman_calls(work, l, k);
        let app = fleet
            .apps
            .iter()
            .find(|a| format!("podman-{}", a.name) == *unit);
        if let Some(app) = app {
            let want = vec![
                vec!["rm".to_string(), "-f".into(), app.name.clone()],
                oci_run_argv(app),
            ];
            let got: Vec<Vec<String>> = calls
                .iter()
                .map(|c| c.iter().map(|a| canonical_json_flag(a)).collect())
                .collect();
            if got != want {
                problems.push(format!(
                    "{l}/{}: podman was called with\n{got:#?}\nnot, as the manifest says,\n{want:#?}",
                    app.name
                ));
            }
        } else if let Some(name) = unit
            .strip_prefix("windlass-network-")
            .or(unit.strip_prefix("windlass-volume-"))
        {
            let kind = if unit.starts_with("windlass-network-") {
                "network"
            } else {
                "volume"
            };
            // `podman network create` / `volume create` with the fleet's
            // settings of it (windlass.toml).
            let mut create = vec![kind.to_string(), "create".into()];
            if kind == "network" {
                let n = fleet.networks.get(name).cloned().unwrap_or_default();
                create.extend(n.driver.map(|d| format!("--driver={d}")));
                create.extend(n.subnet.map(|x| format!("--subnet={x}")));
                create.extend(n.gateway.map(|x| format!("--gateway={x}")));
                if n.internal {
                    create.push("--internal".into());
                }
                if n.ipv6 {
                    create.push("--ipv6".into());
                }
                create.extend(n.labels.iter().map(|(k, v)| format!("--label={k}={v}")));
            } else {
                let v = fleet.volumes.get(name).cloned().unwrap_or_default();
                create.extend(v.driver.map(|d| format!("--driver={d}")));
                create.extend(v.labels.iter().map(|(k, v)| format!("--label={k}={v}")));
            }
            create.push(name.to_string());
            let ok = calls.len() == 2 && calls[0] == [kind, "exists", name] && calls[1] == create;
            if !ok {
                problems.push(format!("{l}/{unit}: podman calls {calls:?}"));
            }
        }
    }
    // Every network and volume the fleet names is created.
    let mut named: Vec<String> = fleet
        .networks
        .keys()
        .map(|n| format!("windlass-network-{n}"))
        .chain(fleet.volumes.keys().map(|v| format!("windlass-volume-{v}")))
        .collect();
    for app in &fleet.apps {
        for m in &app.container.volumes {
            if let windlass::model::VolumeSource::Named(v) = &m.source {
                named.push(format!("windlass-volume-{v}"));
            }
        }
    }
    for n in named {
        if !plan.run.contains(&n) {
            problems.push(format!("{l}: no service {n}"));
        }
    }
    for app in &fleet.apps {
        for job in &app.jobs {
            let unit = format!("{}-{}", app.name, job.name);
            match systemd_commands(work, l, &format!("{unit}.service"), "ExecStart") {
                Ok(c) if c == [job.command.clone()] => {}
                Ok(c) => problems.push(format!(
                    "{l}/{unit}: systemd runs {c:?}, the manifest says {:?}",
                    job.command
                )),
                Err(e) => problems.push(format!("{l}/{unit}: {e}")),
            }
            if f["timers"][&unit]["timerConfig"]["OnCalendar"] != job.schedule.as_str() {
                problems.push(format!("{l}/{unit}: timer {}", f["timers"][&unit]));
            }
        }
    }
    problems
}

/// The plan for an oci-containers system of `fleet`.
fn oci_plan<'a>(label: &str, eval: &'a NixosEval, fleet: &Fleet) -> Plan<'a> {
    let mut run: Vec<String> = fleet
        .apps
        .iter()
        .map(|a| format!("podman-{}", a.name))
        .collect();
    let services = eval.facts["services"].as_object().unwrap();
    run.extend(
        services
            .keys()
            .filter(|k| k.starts_with("windlass-network-") || k.starts_with("windlass-volume-"))
            .cloned(),
    );
    let mut verify: Vec<String> = run.iter().map(|u| format!("{u}.service")).collect();
    for app in &fleet.apps {
        for job in &app.jobs {
            verify.push(format!("{}-{}.service", app.name, job.name));
        }
    }
    Plan {
        label: label.to_string(),
        eval,
        verify,
        run,
        quadlet: false,
    }
}

/// Problems of a quadlet-backend system: /etc/containers/systemd holds
/// exactly the Quadlet files, byte for byte, in the /etc nixpkgs' etc.nix
/// builds; /etc/systemd/system (systemd-lib.nix's generateUnits) links each
/// unit to Quadlet's output with the hash drop-in of its file; Podman's
/// generator is linked once; Quadlet itself makes every linked unit from
/// the /etc texts, and the build-time dry run (system.checks) passed.
fn quadlet_problems(work: &Path, plan: &Plan, fleet: &Fleet, out: &Path) -> Vec<String> {
    use sha2::Digest;
    let mut problems = Vec::new();
    let l = &plan.label;
    let f = &plan.eval.facts;
    problems.extend(installed_generation_problems(work, plan));
    if f["warnings"] != serde_json::json!([]) {
        problems.push(format!("{l}: NixOS warns: {}", f["warnings"]));
    }
    let store = work.join("store");
    let etc = format!("{}/etc", f["etcDrv"].as_str().unwrap());
    let mut on_disk = BTreeMap::new();
    for e in std::fs::read_dir(out.join("quadlet")).unwrap() {
        let p = e.unwrap().path();
        on_disk.insert(
            p.file_name().unwrap().to_string_lossy().to_string(),
            std::fs::read(&p).unwrap(),
        );
    }
    let installed: Vec<String> =
        std::fs::read_dir(in_store(&store, &format!("{etc}/containers/systemd")))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        !n.ends_with(".mode") && !n.ends_with(".uid") && !n.ends_with(".gid")
                    })
                    .collect()
            })
            .unwrap_or_default();
    let mut installed = installed;
    installed.sort();
    if installed != on_disk.keys().cloned().collect::<Vec<_>>() {
        problems.push(format!(
            "{l}: /etc/containers/systemd holds {installed:?}, not {:?}",
            on_disk.keys()
        ));
    }
    for (name, bytes) in &on_disk {
        let at = format!("{etc}/containers/systemd/{name}");
        match read_store(&store, &at) {
            Ok(b) if &b == bytes => {}
            Ok(_) => problems.push(format!("{l}: /etc/containers/systemd/{name} differs")),
            Err(e) => problems.push(format!("{l}: {e}")),
        }
        // etc.nix copies it with its mode (mode != symlink).
        if read_store(&store, &format!("{at}.mode")).ok().as_deref() != Some(b"0644\n") {
            problems.push(format!(
                "{l}: /etc/containers/systemd/{name} is not copied 0644"
            ));
        }
    }
    // The units: a link to Quadlet's output and the hash drop-in.
    let su = f["etc"]["systemd/system"]["source"].as_str().unwrap();
    let units = f["windlass"]["quadletUnits"].as_object().unwrap();
    let mut linked = Vec::new();
    for (file, u) in units {
        let svc = u["service"].as_str().unwrap();
        linked.push(svc.to_string());
        let link = std::fs::read_link(in_store(&store, &format!("{su}/{svc}")))
            .map(|t| t.to_string_lossy().into_owned());
        // generateUnits links the package's file, which links to Quadlet's.
        let target = link.as_ref().ok().and_then(|t| {
            std::fs::read_link(in_store(&store, t))
                .ok()
                .map(|x| x.to_string_lossy().into_owned())
        });
        if target.as_deref() != Some(&format!("/run/systemd/generator/{svc}")) {
            problems.push(format!(
                "{l}: /etc/systemd/system/{svc} -> {link:?} -> {target:?}"
            ));
        }
        let text = u["text"].as_str().unwrap();
        if on_disk.get(file).map(|b| b.as_slice()) != Some(text.as_bytes()) {
            problems.push(format!(
                "{l}: quadletUnits.{file} is not OUT/quadlet/{file}"
            ));
        }
        let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        let want = format!("[Unit]\nX-WindlassQuadletHash={hash}\n");
        match read_store(&store, &format!("{su}/{svc}.d/overrides.conf")) {
            Ok(b) if b == want.as_bytes() => {}
            other => problems.push(format!(
                "{l}: /etc/systemd/system/{svc}.d/overrides.conf is {:?}, not {want:?}",
                other.map(|b| String::from_utf8_lossy(&b).into_owned())
            )),
        }
    }
    // Podman's generator, once, from the podman package.
    let gens = f["etc"]["systemd/system-generators"]["source"]
        .as_str()
        .unwrap();
    let entries: Vec<String> = std::fs::read_dir(in_store(&store, gens))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if entries != ["podman-system-generator"] {
        problems.push(format!(
            "{l}: /etc/systemd/system-generators holds {entries:?}"
        ));
    }
    // Quadlet on the /etc texts makes every linked unit.
    let rc = read_result(work, l, "quadlet.rc");
    let q = read_result(work, l, "quadlet.out");
    if rc.trim() != "0" {
        problems.push(format!(
            "{l}: quadlet -dryrun failed: {}",
            read_result(work, l, "quadlet.err")
        ));
    }
    let made: Vec<String> = q
        .lines()
        .filter_map(|x| x.strip_prefix("---").and_then(|x| x.strip_suffix("---")))
        .map(str::to_string)
        .collect();
    let mut want = linked.clone();
    want.sort();
    let mut got = made.clone();
    got.sort();
    if got != want {
        problems.push(format!("{l}: Quadlet made {got:?}, the links are {want:?}"));
    }
    // The build-time dry run is a system check, and it passed (built).
    let checks = f["checks"].as_array().unwrap();
    if checks.len() != 1 {
        problems.push(format!("{l}: system.checks {checks:?}"));
    } else {
        match read_store(&store, checks[0].as_str().unwrap()) {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b);
                for u in &linked {
                    if !text.contains(&format!("---{u}---")) {
                        problems.push(format!("{l}: the dry run check lacks {u}"));
                    }
                }
            }
            Err(e) => problems.push(format!("{l}: the dry run check: {e}")),
        }
    }
    if f["podman"]["enable"] != true {
        problems.push(format!("{l}: podman is not enabled"));
    }
    if f["generators"] != serde_json::json!({}) {
        problems.push(format!("{l}: systemd.generators {}", f["generators"]));
    }
    let _ = fleet;
    problems
}

/// /etc/windlass/generation.json in the /etc that nixpkgs' etc.nix built
/// is the text the evaluation gave it (what windlassd reads).
fn installed_generation_problems(work: &Path, plan: &Plan) -> Vec<String> {
    let f = &plan.eval.facts;
    let at = format!(
        "{}/etc/windlass/generation.json",
        f["etcDrv"].as_str().unwrap()
    );
    let want = f["etc"]["windlass/generation.json"]["text"]
        .as_str()
        .unwrap_or("");
    match read_store(&work.join("store"), &at) {
        Ok(b) if b == want.as_bytes() => vec![],
        Ok(b) => vec![format!(
            "{}: /etc/windlass/generation.json is {}",
            plan.label,
            String::from_utf8_lossy(&b)
        )],
        Err(e) => vec![format!("{}: {e}", plan.label)],
    }
}

/// The generation document the system installs: the contract of each app
/// exactly as the model builds it.
fn generation_problems(
    label: &str,
    facts: &Value,
    fleet: &Fleet,
    backend: NixosBackend,
) -> Vec<String> {
    let text = facts["etc"]["windlass/generation.json"]["text"]
        .as_str()
        .unwrap_or("");
    match SystemGeneration::from_slice(text.as_bytes()) {
        Ok(doc) => {
            let want: Vec<_> = fleet
                .apps
                .iter()
                .map(|a| app_contract(a, backend, fleet.podman))
                .collect();
            if doc.apps != want || doc.backend != Some(backend) || doc.platform != Platform::Nixos {
                vec![format!("{label}: generation.json is {text}")]
            } else {
                vec![]
            }
        }
        Err(e) => vec![format!("{label}: generation.json: {e}")],
    }
}

/// The fleets evaluated against nixpkgs' real modules.
fn nixpkgs_fleets() -> Vec<(&'static str, PathBuf)> {
    fleets()
}

/// Every fleet's oci-containers module, evaluated by nixpkgs' module
/// system with nixpkgs' oci-containers, podman, assertions and etc
/// modules: the `podman-<app>` service those build, its pre-start and
/// start scripts run as nixpkgs wrote them with a recording `podman`,
/// calls `podman run` with exactly the manifest's values (env, labels,
/// ports, volumes, entrypoint, command, health, secrets, user, ...); the
/// network and volume services create what they name; each job's
/// ExecStart, read by systemd from the unit nixpkgs wrote, is the job's
/// command; generation.json carries each app's contract; disabling an app
/// removes it and names the apps that need it.
#[test]
fn nixpkgs_oci_containers_run_podman_as_the_manifests_say() {
    let test = "nixpkgs_oci_containers_run_podman_as_the_manifests_say";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut evals = Vec::new();
    for (name, dir) in nixpkgs_fleets() {
        let out = work.path().join(format!("gen-{name}"));
        generate(&dir, &out, &["--target", "nixos"]);
        let eval = eval_fleet_nixpkgs(&nixpkgs, &out, None, &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        evals.push((name, load(&dir), eval));
    }
    let plans: Vec<Plan> = evals
        .iter()
        .map(|(name, fleet, eval)| oci_plan(name, eval, fleet))
        .collect();
    let sys = work.path().join("sys");
    run_plans(&sys, &plans).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for ((name, fleet, eval), plan) in evals.iter().zip(&plans) {
        problems.extend(oci_problems(&sys, plan, fleet));
        problems.extend(generation_problems(
            name,
            &eval.facts,
            fleet,
            NixosBackend::OciContainers,
        ));
        let containers = eval.facts["containers"].as_object().unwrap();
        assert_eq!(containers.len(), fleet.apps.len(), "{name}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Disabling an app removes it (and its jobs) and says who needs it.
    let fleet = load(&common::repo_root().join("examples"));
    let out = work.path().join("gen-examples");
    let victim = fleet
        .apps
        .iter()
        .find(|a| fleet.apps.iter().any(|b| b.requires.contains(&a.name)))
        .unwrap();
    let off = format!(
        "{{ windlass.apps.{}.enable = false; }}",
        nix::attr_name(&victim.name)
    );
    let dependents: Vec<&str> = fleet
        .apps
        .iter()
        .filter(|b| b.requires.contains(&victim.name))
        .map(|b| b.name.as_str())
        .collect();
    let Err(err) = eval_fleet_nixpkgs(&nixpkgs, &out, None, std::slice::from_ref(&off), &[]) else {
        panic!(
            "disabling {} is refused while {dependents:?} need it",
            victim.name
        );
    };
    assert!(err.contains("Failed assertions:"), "{err}");
    for d in &dependents {
        assert!(
            err.contains(&format!(
                "windlass app `{d}` requires app `{}`",
                victim.name
            )),
            "{err}"
        );
    }
    // With its dependents off as well, the rest runs without it.
    let mut off_all = vec![off];
    off_all.extend(
        dependents
            .iter()
            .map(|d| format!("{{ windlass.apps.{}.enable = false; }}", nix::attr_name(d))),
    );
    let eval =
        eval_fleet_nixpkgs(&nixpkgs, &out, None, &off_all, &[]).unwrap_or_else(|e| panic!("{e}"));
    let f = &eval.facts;
    let containers = f["containers"].as_object().unwrap();
    assert!(!containers.contains_key(&victim.name));
    assert_eq!(containers.len(), fleet.apps.len() - 1 - dependents.len());
    assert!(
        f["services"]
            .get(format!("podman-{}", victim.name))
            .is_none()
    );
    for job in &victim.jobs {
        assert!(
            f["timers"]
                .get(format!("{}-{}", victim.name, job.name))
                .is_none()
        );
    }
    let doc = SystemGeneration::from_slice(
        f["etc"]["windlass/generation.json"]["text"]
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert!(!doc.apps.iter().any(|a| a.name == victim.name));
}

/// Every fleet's quadlet-backend module, evaluated by nixpkgs' module
/// system with nixpkgs' real modules, and /etc built as nixpkgs builds it:
/// see [`quadlet_problems`].
#[test]
fn nixpkgs_quadlet_backend_installs_the_files_quadlet_turns_into_every_unit() {
    let test = "nixpkgs_quadlet_backend_installs_the_files_quadlet_turns_into_every_unit";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut evals = Vec::new();
    for (name, dir) in nixpkgs_fleets() {
        let out = work.path().join(format!("gen-{name}"));
        generate(
            &dir,
            &out,
            &["--target", "quadlet,nixos", "--nixos-backend", "quadlet"],
        );
        let eval = eval_fleet_nixpkgs(&nixpkgs, &out, None, &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        evals.push((name, load(&dir), eval, out));
    }
    let plans: Vec<Plan> = evals
        .iter()
        .map(|(name, _, eval, _)| Plan {
            label: name.to_string(),
            eval,
            verify: vec![],
            run: vec![],
            quadlet: true,
        })
        .collect();
    let sys = work.path().join("sys");
    run_plans(&sys, &plans).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for ((name, fleet, eval, out), plan) in evals.iter().zip(&plans) {
        problems.extend(quadlet_problems(&sys, plan, fleet, out));
        problems.extend(generation_problems(
            name,
            &eval.facts,
            fleet,
            NixosBackend::Quadlet,
        ));
        // The collision model, fed with the real evaluation: Podman's
        // generator from the podman package alone, each unit file from
        // windlass's package alone.
        let model = &eval.facts["model"];
        let podman_pkg =
            "package podman (systemd.packages in nixpkgs virtualisation/podman/default.nix)";
        if model["systemGenerators"]
            != serde_json::json!({ "podman-system-generator": [podman_pkg] })
        {
            problems.push(format!("{name}: generators {}", model["systemGenerators"]));
        }
        // Quadlet reads /etc/containers/systemd: each file is there under
        // its own name, put there by windlass alone.
        for file in eval.facts["windlass"]["quadletUnits"]
            .as_object()
            .unwrap()
            .keys()
        {
            let at = format!("containers/systemd/{file}");
            if model["etc"][&at] != serde_json::json!(["nixos/fleet.nix"]) {
                problems.push(format!("{name}: /etc/{at} from {}", model["etc"][&at]));
            }
        }
        for u in eval.facts["windlass"]["quadletUnits"]
            .as_object()
            .unwrap()
            .values()
        {
            let svc = u["service"].as_str().unwrap();
            if model["unitFiles"][svc]
                != serde_json::json!([
                    "package windlass-quadlet-services (systemd.packages in nixos/fleet.nix)"
                ])
            {
                problems.push(format!("{name}: {svc} from {}", model["unitFiles"][svc]));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// How a mutant must be rejected.
enum Rejected {
    /// The evaluation fails, saying this.
    Eval(&'static str),
    /// The evaluation passes but the system's build fails, saying this.
    Build(&'static str),
    /// The system builds but a check finds this.
    Check(&'static str),
}

/// The harness has teeth: each mutation of the generated .nix text is
/// rejected by nixpkgs' module system, by nixpkgs' build scripts or by
/// the argv comparison, naming what is wrong. The unmutated modules pass
/// (the two tests above).
#[test]
fn nixpkgs_evaluation_rejects_each_mutant() {
    let test = "nixpkgs_evaluation_rejects_each_mutant";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let root = common::repo_root();
    let work = tempfile::tempdir().unwrap();
    let examples = work.path().join("examples");
    let torture = work.path().join("torture");
    let quadlet = work.path().join("quadlet");
    generate(&root.join("examples"), &examples, &["--target", "nixos"]);
    generate(
        &root.join("generator/tests/fleets/torture"),
        &torture,
        &["--target", "nixos"],
    );
    generate(
        &root.join("examples"),
        &quadlet,
        &["--target", "quadlet,nixos", "--nixos-backend", "quadlet"],
    );
    let fleets = BTreeMap::from([
        ("examples", load(&root.join("examples"))),
        (
            "torture",
            load(&root.join("generator/tests/fleets/torture")),
        ),
        ("quadlet", load(&root.join("examples"))),
    ]);
    let own_generator = |t: &str| with_own_generator(t);
    type Edit<'a> = &'a dyn Fn(&str) -> String;
    let replace = |from: &'static str, to: &'static str| {
        move |t: &str| {
            assert!(t.contains(from), "{from:?} is not in the generated text");
            t.replacen(from, to, 1)
        }
    };
    let misspelt = replace(
        "        environmentFiles = [",
        "        environmentFile = [",
    );
    let misspelt_unit = replace(
        "serviceConfig.TimeoutStartSec = lib.mkForce",
        "serviceConfg.TimeoutStartSec = lib.mkForce",
    );
    let outside_enum = replace(
        "podman.sdnotify = \"healthy\";",
        "podman.sdnotify = \"health\";",
    );
    let interpolation = replace("BRACE = \"\\${HOME}\";", "BRACE = \"${HOME}\";");
    let split = replace("\\\"  spaced  \\\"", "  spaced  ");
    let warned = replace(
        "serviceConfig.Type = \"oneshot\";\n        serviceConfig.ExecSearchPath",
        "serviceConfig.Type = \"oneshot\";\n        serviceConfig.Restart = \"always\";\n        serviceConfig.ExecSearchPath",
    );
    let changed_value = replace("PHP_MEMORY_LIMIT = \"1G\";", "PHP_MEMORY_LIMIT = \"2G\";");
    let changed_file = replace(
        "Environment=\"PHP_MEMORY_LIMIT=1G\"",
        "Environment=\"PHP_MEMORY_LIMIT=2G\"",
    );
    // (what, fleet, file, edit, further --args, how it is rejected)
    type Mutant<'a> = (&'a str, &'a str, &'a str, Edit<'a>, &'a [&'a str], Rejected);
    let mutants: Vec<Mutant> = vec![
        (
            "a misspelt container option",
            "examples",
            "apps/nextcloud.nix",
            &misspelt,
            &[],
            Rejected::Eval(
                "The option `virtualisation.oci-containers.containers.nextcloud.environmentFile' does not exist",
            ),
        ),
        (
            "a misspelt unit option",
            "examples",
            "apps/nextcloud.nix",
            &misspelt_unit,
            &[],
            Rejected::Eval(
                "The option `systemd.services.podman-nextcloud.serviceConfg' does not exist",
            ),
        ),
        (
            "a value outside an enum",
            "examples",
            "apps/nextcloud.nix",
            &outside_enum,
            &[],
            Rejected::Eval(
                "virtualisation.oci-containers.containers.nextcloud.podman.sdnotify' is not of type `one of \"conmon\", \"healthy\", \"container\"'",
            ),
        ),
        (
            "an unescaped ${",
            "torture",
            "apps/torture.nix",
            &interpolation,
            &[],
            Rejected::Eval("undefined variable 'HOME'"),
        ),
        (
            "a word that splits",
            "torture",
            "apps/torture.nix",
            &split,
            &[],
            Rejected::Check("torture/torture-echo: systemd runs"),
        ),
        (
            "a value the manifest does not have",
            "examples",
            "apps/nextcloud.nix",
            &changed_value,
            &[],
            Rejected::Check("examples/nextcloud: podman was called with"),
        ),
        (
            "a setting NixOS warns about",
            "examples",
            "apps/nextcloud.nix",
            &warned,
            &[],
            Rejected::Check(
                "examples: NixOS warns: [\"Service 'nextcloud-cron.service' with 'Type=oneshot' cannot have 'Restart=always'",
            ),
        ),
        (
            "a Quadlet file the manifest does not make",
            "quadlet",
            "apps/nextcloud.nix",
            &changed_file,
            &[],
            Rejected::Check("quadlet: /etc/containers/systemd/nextcloud.container differs"),
        ),
        (
            "a duplicate generator (the model)",
            "quadlet",
            "fleet.nix",
            &own_generator,
            &[],
            Rejected::Eval(
                "/etc/systemd/system-generators/podman-system-generator is linked 2 times (package podman (systemd.packages in nixpkgs virtualisation/podman/default.nix); systemd.generators in nixos/fleet.nix)",
            ),
        ),
        (
            "a duplicate generator (the build)",
            "quadlet",
            "fleet.nix",
            &own_generator,
            &["--arg", "checkModel", "false"],
            Rejected::Build("/podman-system-generator': File exists"),
        ),
    ];
    for (i, (what, fleet_name, file, edit, args, rejected)) in mutants.iter().enumerate() {
        let out = work.path().join(format!("m{i}"));
        let from = work.path().join(fleet_name);
        std::fs::create_dir_all(out.join("nixos/apps")).unwrap();
        for (rel, bytes) in common::read_tree(&from.join("nixos")) {
            std::fs::write(out.join("nixos").join(&rel), bytes).unwrap();
        }
        let target = out.join("nixos").join(file);
        let text = std::fs::read_to_string(&target).unwrap();
        std::fs::write(&target, edit(&text)).unwrap();
        if *fleet_name == "quadlet" {
            copy_tree(&from.join("quadlet"), &out.join("quadlet"));
        }
        let eval = eval_fleet_nixpkgs(&nixpkgs, &out, None, &[], args);
        let fleet = &fleets[fleet_name];
        match (rejected, eval) {
            (Rejected::Eval(msg), Err(e)) => {
                assert!(e.contains(msg), "{what}: expected {msg:?} in:\n{e}")
            }
            (Rejected::Eval(_), Ok(_)) => panic!("{what}: the evaluation passes"),
            (_, Err(e)) => panic!("{what}: the evaluation fails: {e}"),
            (Rejected::Build(msg), Ok(eval)) => {
                let plan = Plan {
                    label: fleet_name.to_string(),
                    eval: &eval,
                    verify: vec![],
                    run: vec![],
                    quadlet: true,
                };
                let Err(e) = run_plans(&work.path().join(format!("sys{i}")), &[plan]) else {
                    panic!("{what}: the system builds");
                };
                assert!(e.contains(msg), "{what}: expected {msg:?} in:\n{e}");
            }
            (Rejected::Check(msg), Ok(eval)) => {
                let mut plan = oci_plan(fleet_name, &eval, fleet);
                plan.quadlet = *fleet_name == "quadlet";
                if plan.quadlet {
                    plan.run.clear();
                    plan.verify.clear();
                }
                let sys = work.path().join(format!("sys{i}"));
                run_plans(&sys, std::slice::from_ref(&plan)).unwrap_or_else(|e| panic!("{e}"));
                let problems = if plan.quadlet {
                    quadlet_problems(&sys, &plan, fleet, &out)
                } else {
                    oci_problems(&sys, &plan, fleet)
                };
                assert!(
                    problems.iter().any(|p| p.contains(msg)),
                    "{what}: expected {msg:?} among {problems:#?}"
                );
            }
        }
    }
    // The same generated text applied through services.windlass.apps.
    let through_agent: Vec<(&str, &str, Edit, &str)> = vec![
        (
            "examples",
            "apps/nextcloud.nix",
            &misspelt,
            "The option `virtualisation.oci-containers.containers.nextcloud.environmentFile' does not exist",
        ),
        (
            "examples",
            "apps/nextcloud.nix",
            &outside_enum,
            "podman.sdnotify' is not of type `one of \"conmon\", \"healthy\", \"container\"'",
        ),
        (
            "torture",
            "apps/torture.nix",
            &interpolation,
            "undefined variable 'HOME'",
        ),
    ];
    for (i, (fleet_name, file, edit, msg)) in through_agent.iter().enumerate() {
        let nixos = work.path().join(format!("agent{i}/nixos"));
        copy_tree(&work.path().join(fleet_name).join("nixos"), &nixos);
        let target = nixos.join(file);
        let text = std::fs::read_to_string(&target).unwrap();
        std::fs::write(&target, edit(&text)).unwrap();
        let settings = r#"[ { services.windlass = { enable = true; apps = "/fleet"; }; } ]"#;
        let Err(e) = eval_agent_nixpkgs(&nixpkgs, settings, Some(&nixos), "/w/pkg") else {
            panic!("{fleet_name}/{file} through services.windlass: the evaluation passes");
        };
        assert!(e.contains(msg), "expected {msg:?} in:\n{e}");
    }
    eprintln!("{} mutants rejected", mutants.len() + through_agent.len());
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in common::read_tree(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// The fleet module asserts that the system's Podman
/// (`config.virtualisation.podman.package.version`; 5.4.2 in
/// fake-pkgs.nix, Debian's Quadlet) is at least the one the fleet was
/// generated for, with nixpkgs' own assertions module: the default (5.4)
/// and older targets evaluate, a fleet generated for Podman 6.0 fails the
/// evaluation saying what to do, and evaluates again once the system's
/// Podman is 6.1.3 (nixpkgs' current); with both backends.
#[test]
fn the_fleet_module_asserts_the_systems_podman_is_new_enough() {
    let test = "the_fleet_module_asserts_the_systems_podman_is_new_enough";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(nixpkgs) = nixpkgs_oracle(test) else {
        return;
    };
    let examples = common::repo_root().join("examples");
    let work = tempfile::tempdir().unwrap();
    let extra = work.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("podman-6.nix"),
        "{ lib, pkgs, ... }: { virtualisation.podman.package = lib.mkForce (pkgs.podman // { version = \"6.1.3\"; }); }\n",
    )
    .unwrap();
    for backend in ["oci-containers", "quadlet"] {
        for version in [None, Some("4.4"), Some("6.0")] {
            let out = work
                .path()
                .join(format!("{backend}-{}", version.unwrap_or("default")));
            let mut args = vec!["--target", "quadlet,nixos", "--nixos-backend", backend];
            if let Some(v) = version {
                args.extend(["--podman-version", v]);
            }
            generate(&examples, &out, &args);
            let res = try_eval_fleet(&nixpkgs, &out, &[], None, &[]);
            if version == Some("6.0") {
                let err = res.expect_err("a fleet for Podman 6.0 on Podman 5.4.2 is refused");
                assert!(
                    err.contains("Failed assertions:")
                        && err.contains(
                            "windlass: this fleet was generated for Podman 6.0 or newer, but virtualisation.podman.package is Podman 5.4.2"
                        ),
                    "{backend}: {err}"
                );
                try_eval_fleet(&nixpkgs, &out, &[], Some(&extra), &["podman-6.nix"])
                    .unwrap_or_else(|e| panic!("{backend}: 6.0 on Podman 6.1.3: {e}"));
            } else {
                res.unwrap_or_else(|e| panic!("{backend} {version:?}: {e}"));
            }
        }
    }
}
