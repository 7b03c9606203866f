//! A real `dbus-daemon` and a real `windlassd` for the agent's tests.
//! The bus is private (a socket in a temporary directory) and lets any
//! local user connect, so tests can call as an unprivileged uid; the agent
//! runs with `--systemd none` (no units touched) on the native platform.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Bus {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    // Reachable by an unprivileged uid, as a system bus socket is.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sock = dir.path().join("bus");
    let conf = dir.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"#,
            sock.display()
        ),
    )
    .unwrap();
    // `--print-address` writes the address once the bus accepts
    // connections; the socket file exists earlier (between bind and
    // listen), and a client that connects then is refused.
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .arg("--nofork")
        .arg("--print-address")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dbus-daemon is needed (tools/test installs it)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        line.contains(&sock.display().to_string()),
        "dbus-daemon did not start (it printed {line:?})"
    );
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    Bus {
        address: format!("unix:path={}", sock.display()),
        child,
        _dir: dir,
    }
}

pub struct Agent {
    pub child: Child,
    pub state: PathBuf,
    pub run: PathBuf,
    pub address: String,
    pub log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test: this build's, or `$WINDLASS_TEST_BIN_DIR/NAME`
/// when set (to run the black-box tests against another build, e.g. to
/// show that a test fails on the commit before a fix).
fn binary(name: &str, built: &str) -> PathBuf {
    match std::env::var_os("WINDLASS_TEST_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(built),
    }
}

pub fn windlassd() -> PathBuf {
    binary("windlassd", env!("CARGO_BIN_EXE_windlassd"))
}

pub fn windlassctl_bin() -> PathBuf {
    binary("windlassctl", env!("CARGO_BIN_EXE_windlassctl"))
}

/// Starts windlassd on `bus`; waits until it owns its name.
pub fn agent(bus: &Bus, state: &Path, run: &Path, group: &str, env: &[(&str, &str)]) -> Agent {
    agent_with(bus, state, run, group, env, &[])
}

/// [`agent`] with extra windlassd arguments.
pub fn agent_with(
    bus: &Bus,
    state: &Path,
    run: &Path,
    group: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Agent {
    let log = state.with_extension("log");
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut c = Command::new(windlassd());
    c.args([
        "--bus",
        &bus.address,
        "--systemd",
        "none",
        "--platform",
        "native",
        "--group",
        group,
    ])
    .arg("--state-dir")
    .arg(state)
    .arg("--run-dir")
    .arg(run)
    .args(extra)
    .stdout(Stdio::null())
    .stderr(logf);
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    let mut a = Agent {
        child,
        state: state.to_path_buf(),
        run: run.to_path_buf(),
        address: bus.address.clone(),
        log,
    };
    let start = Instant::now();
    loop {
        if name_owned_by(&bus.address, a.child.id()) {
            break;
        }
        if let Some(st) = a.child.try_wait().unwrap() {
            panic!(
                "windlassd exited early ({st}): {}",
                std::fs::read_to_string(&a.log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "windlassd did not take its name"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a
}

/// Whether process `pid` owns the agent's bus name on the bus at
/// `address`. (Not merely whether the name is owned: a windlassd killed
/// a moment ago may still own it until the bus notices.)
pub fn name_owned_by(address: &str, pid: u32) -> bool {
    let out = Command::new("busctl")
        .args(["--address", address, "status", "io.windlass.Agent1"])
        .output()
        .unwrap();
    out.status.success()
        && String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == format!("PID={pid}"))
}

impl Agent {
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(windlassctl_bin())
            .args(["--bus", &self.address])
            .args(args)
            .output()
            .unwrap()
    }

    /// windlassctl as an unprivileged uid (nobody), in no group.
    pub fn ctl_as_nobody(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(windlassctl_bin())
            .args(["--bus", &self.address])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl")
            .args(["--address", &self.address])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn property(&self, path: &str, iface: &str, name: &str) -> String {
        let out = self.busctl(&["get-property", "io.windlass.Agent1", path, iface, name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Waits until no operation is in flight.
    pub fn wait_idle(&self) {
        let start = Instant::now();
        while self.property("/io/windlass/Agent1", "io.windlass.Agent1", "State") != "s \"idle\"" {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "agent stayed busy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// web's HTTP probe in the basic fleet. Nothing serves it on the test
/// host (no units run with `--systemd none`), so generations meant to be
/// healthy drop it, and unhealthy ones keep it.
pub const WEB_PROBE: &str = "http = \"http://127.0.0.1:8080/\"\n";

/// Generates `fleet` (a windlass fleet directory) into a fresh tree, with
/// `edit` applied to the web app's manifest first (after its HTTP probe is
/// removed; `unhealthy` keeps the probe, which nothing answers).
pub fn generation(fleet: &Path, out: &Path, edit: impl Fn(&str) -> String) {
    generation_with(fleet, out, false, edit)
}

pub fn unhealthy_generation(fleet: &Path, out: &Path, edit: impl Fn(&str) -> String) {
    generation_with(fleet, out, true, edit)
}

fn generation_with(fleet: &Path, out: &Path, keep_probe: bool, edit: impl Fn(&str) -> String) {
    let src = tempfile::tempdir().unwrap();
    copy(fleet, src.path());
    let web = src.path().join("apps/web.toml");
    let mut text = std::fs::read_to_string(&web).unwrap();
    assert!(
        text.contains(WEB_PROBE),
        "the basic fleet's web probe moved"
    );
    if !keep_probe {
        text = text.replace(WEB_PROBE, "");
    }
    std::fs::write(&web, edit(&text)).unwrap();
    generate(src.path(), out);
}

/// The basic fleet without db (web no longer requires it), healthy (or
/// with web's unanswered probe, `unhealthy`): a switch to it removes db.
pub fn generation_without_db(fleet: &Path, out: &Path, unhealthy: bool) {
    let src = tempfile::tempdir().unwrap();
    copy(fleet, src.path());
    std::fs::remove_file(src.path().join("apps/db.toml")).unwrap();
    let web = src.path().join("apps/web.toml");
    let text = std::fs::read_to_string(&web).unwrap();
    let dep = "[depends]\nrequires = [\"db\"]\n";
    assert!(
        text.contains(dep),
        "the basic fleet's web no longer requires db"
    );
    let text = if unhealthy {
        text
    } else {
        text.replace(WEB_PROBE, "")
    };
    std::fs::write(&web, text.replace(dep, "")).unwrap();
    generate(src.path(), out);
}

/// Generates the fleet at `src` (Quadlet and systemd targets: what the
/// native platform runs) into `out`.
pub fn generate(src: &Path, out: &Path) {
    let opts = windlass::pipeline::Options {
        podman_version: None,
        templates: None,
        targets: [
            windlass::emit::Target::Quadlet,
            windlass::emit::Target::Systemd,
        ]
        .into_iter()
        .collect(),
        nixos_backend: Default::default(),
    };
    let built = windlass::pipeline::build(src, &opts).unwrap_or_else(|e| panic!("{e}"));
    windlass::output::write(out, &built.files).unwrap();
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let d = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &d);
        } else {
            std::fs::copy(e.path(), d).unwrap();
        }
    }
}

pub fn basic_fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/fleets/basic")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// db's data in the staged generation at `dir` is purged when db is
/// removed (as the generator writes it for `update.on_remove =
/// "purge-data"`).
pub fn purge_db_data(dir: &Path) {
    let path = dir.join("windlass-generation.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let apps = m["apps"].as_array_mut().unwrap();
    let db = apps.iter_mut().find(|a| a["name"] == "db").unwrap();
    db["purge_on_remove"] = serde_json::json!(["systemd-vmdata"]);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}
