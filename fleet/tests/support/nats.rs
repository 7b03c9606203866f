//! A real `nats-server` with JetStream per test, as nats.rs's own harness
//! runs it: `nats-server -js --store_dir D -a 127.0.0.1 -p -1 -l LOG -P PID
//! -c CFG` in a temporary directory. The port is read from the log, so
//! tests run in parallel; `stop`/`start` restart it on the same port and
//! store directory; dropping it kills it.
//!
//! The binary is `$WINDLASS_NATS_SERVER` (tools/test sets it from
//! tools/nats-server.sh). Without it a test fails under `CI=true` and is
//! skipped loudly otherwise: [`NatsServer::start`] returns `None`.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary, or `None` after printing why the test is
/// skipped. Panics under `CI=true` instead of skipping.
pub fn binary(test: &str) -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let why = match std::env::var_os("WINDLASS_NATS_SERVER") {
        None => "WINDLASS_NATS_SERVER is not set".to_string(),
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Some(p);
            }
            format!("WINDLASS_NATS_SERVER={} does not exist", p.display())
        }
    };
    let msg = format!(
        "{test}: {why}; tools/nats-server.sh prints a nats-server (tools/test sets the variable)"
    );
    if ci {
        panic!("{msg}. Under CI=true the fleet tests never skip.");
    }
    eprintln!("SKIPPED {msg}. Under CI=true this test fails instead.");
    None
}

pub struct NatsServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: Option<u16>,
    child: Option<Child>,
    /// How many times it has started: which log file is current.
    starts: u32,
}

impl NatsServer {
    /// A JetStream server on a free loopback port with an empty store.
    pub fn start(test: &str) -> Option<NatsServer> {
        Self::start_with(test, "")
    }

    /// Like `start`, with `config` appended to the server's config file
    /// (e.g. `accounts`/`authorization` blocks for permission tests).
    pub fn start_with(test: &str, config: &str) -> Option<NatsServer> {
        let bin = binary(test)?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("server.conf"),
            format!("# windlass fleet test server\nserver_name: windlass-test\n{config}\n"),
        )
        .unwrap();
        let mut s = NatsServer {
            bin,
            dir,
            port: None,
            child: None,
            starts: 0,
        };
        s.run();
        Some(s)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port.expect("started once")
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    /// The current run's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts it again after `stop`, on the same port and store.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running nats-server");
        self.run();
    }

    fn run(&mut self) {
        self.starts += 1;
        let d = self.dir.path().to_path_buf();
        let port = self.port.map_or("-1".to_string(), |p| p.to_string());
        let log = self.log_path();
        let stderr = std::fs::File::create(d.join(format!("stderr-{}.log", self.starts))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let child = Command::new(&self.bin)
                .arg("-js")
                .arg("--store_dir")
                .arg(d.join("store"))
                .args(["-a", "127.0.0.1", "-p", &port])
                .arg("-l")
                .arg(&log)
                .arg("-P")
                .arg(d.join("server.pid"))
                .arg("-c")
                .arg(d.join("server.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr.try_clone().unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
            self.child = Some(child);
            match self.wait_ready(deadline) {
                Ok(p) => {
                    self.port = Some(p);
                    return;
                }
                // The old port may linger briefly after a stop.
                Err(_) if self.port.is_some() && Instant::now() < deadline => {
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    self.kill();
                    let mut err = String::new();
                    let _ = std::fs::File::open(d.join(format!("stderr-{}.log", self.starts)))
                        .and_then(|mut f| f.read_to_string(&mut err));
                    panic!(
                        "nats-server did not start: {e}\nlog:\n{}\nstderr:\n{err}",
                        self.log()
                    );
                }
            }
        }
    }

    /// The client port once the log says "Server is ready".
    fn wait_ready(&mut self, deadline: Instant) -> Result<u16, String> {
        loop {
            let log = self.log();
            if log.contains("Server is ready") {
                let port = log
                    .lines()
                    .filter_map(|l| l.split("Listening for client connections on ").nth(1))
                    .filter_map(|a| a.trim().rsplit(':').next()?.parse().ok())
                    .next_back()
                    .ok_or("no client port in the log")?;
                return Ok(port);
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("it exited with {st}"));
            }
            if Instant::now() > deadline {
                return Err("not ready within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops it cleanly (SIGTERM: JetStream flushes) and waits.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new(&self.bin)
            .arg("--signal")
            .arg(format!("term={}", child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A client connection and its JetStream context.
    pub async fn connect(&self) -> (async_nats::Client, async_nats::jetstream::Context) {
        let client = async_nats::connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()));
        let js = async_nats::jetstream::new(client.clone());
        (client, js)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
