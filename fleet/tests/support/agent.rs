//! A private `dbus-daemon` and a real `windlassd` (`--systemd none
//! --platform native`), the minimal part of agent/tests/common copied
//! (that module needs the agent crate's own binaries and the generator).
//!
//! windlassd is this build's `target/<profile>/windlassd` (beside the
//! test's `deps/`), or `$WINDLASS_TEST_BIN_DIR/windlassd`: build it first
//! (`cargo build -p windlass-agent --bin windlassd`). Without it, or
//! without dbus-daemon, a test is skipped loudly (fails under `CI=true`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn skip(test: &str, why: &str) -> Option<std::convert::Infallible> {
    let msg = format!("{test}: {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}. Under CI=true the fleet tests never skip.");
    }
    eprintln!("SKIPPED {msg}. Under CI=true this test fails instead.");
    None
}

/// The windlassd binary, or `None` after saying why the test is skipped.
pub fn windlassd(test: &str) -> Option<PathBuf> {
    let p = match std::env::var_os("WINDLASS_TEST_BIN_DIR") {
        Some(d) => PathBuf::from(d).join("windlassd"),
        None => std::env::current_exe()
            .ok()?
            .parent()?
            .parent()?
            .join("windlassd"),
    };
    if p.is_file() {
        return Some(p);
    }
    skip(
        test,
        &format!(
            "no windlassd at {} (cargo build -p windlass-agent --bin windlassd)",
            p.display()
        ),
    )?;
    None
}

pub struct Bus {
    pub address: String,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private system-type bus anyone local may use.
pub fn bus(test: &str) -> Option<Bus> {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bus_in(test, dir.path())?;
    b._dir = Some(dir);
    Some(b)
}

/// The address [`bus_in`] will listen on in `dir` (known before the bus
/// runs: a client may be pointed at a bus that is not there yet).
pub fn bus_address_in(dir: &Path) -> String {
    format!("unix:path={}", dir.join("bus").display())
}

/// [`bus`], its socket and config in `dir` (which outlives it).
pub fn bus_in(test: &str, dir: &Path) -> Option<Bus> {
    let sock = dir.join("bus");
    let conf = dir.join("bus.conf");
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
    let mut child = match Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .arg("--nofork")
        .arg("--print-address")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            skip(test, &format!("no dbus-daemon: {e}"))?;
            return None;
        }
    };
    // The address is printed once the bus accepts connections.
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
    Some(Bus {
        address: line.trim().to_string(),
        child,
        _dir: None,
    })
}

pub struct Windlassd {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Windlassd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts windlassd on `bus` with its state and run dirs under `dir`;
/// waits until it owns its name.
pub fn start(bin: &Path, bus: &Bus, dir: &Path) -> Windlassd {
    let log = dir.join("windlassd.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .args([
            "--bus",
            &bus.address,
            "--systemd",
            "none",
            "--platform",
            "native",
            "--group",
            "nogroup-x",
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap();
    let mut a = Windlassd { child, log };
    let t = Instant::now();
    loop {
        let out = Command::new("busctl")
            .args(["--address", &bus.address, "status", "io.windlass.Agent1"])
            .output()
            .unwrap();
        let pid = format!("PID={}", a.child.id());
        if out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == pid)
        {
            return a;
        }
        if let Some(st) = a.child.try_wait().unwrap() {
            panic!(
                "windlassd exited early ({st}): {}",
                std::fs::read_to_string(&a.log).unwrap_or_default()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "windlassd did not take its name"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An empty generator tree (no apps: nothing to start, the gate passes),
/// made distinct by `marker`.
pub fn empty_tree(dir: &Path, marker: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let m = serde_json::json!({
        "apps": [],
        "files": [],
        "format": 1,
        "inputs": [{"path": format!("{marker}.toml"), "sha256": "0".repeat(64)}],
        "targets": ["quadlet", "systemd"],
    });
    std::fs::write(
        dir.join("windlass-generation.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}
