//! What the cutover tests need beyond `common`: a test CA and nginx
//! serving versions over HTTPS on loopback (nginx also proxies one path to
//! a server that cuts its body short, so a truncated download is a real
//! HTTPS one), target files, and windlassd started with `--targets` and
//! `--extra-ca`. A missing nginx or openssl fails the test (tools/test
//! installs them).
#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The CA and port helpers of the network tests, shared.
#[path = "../../../net/tests/common/mod.rs"]
mod net;
pub use net::{free_port, test_ca};

use sha2::{Digest, Sha256};

fn require(bin: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("{bin} is missing: install Debian's {package} (tools/test does)");
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A small executable version: prints `name`, passes `--self-test`
/// (or fails it, or hangs in it).
pub fn script(name: &str, self_test: &str) -> Vec<u8> {
    format!("#!/bin/sh\ncase \"$1\" in --self-test) {self_test};; esac\necho {name}\n").into_bytes()
}

pub const PASSES: &str = "exit 0";
pub const FAILS: &str = "echo broken >&2; exit 3";
/// (A distinctive duration, so the test can look for the process.)
pub const HANGS: &str = "exec sleep 6061";

pub struct Server {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers every request with `Content-Length: 100000` and half of it,
/// then closes: a truncated body.
fn truncating_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                use std::io::Read as _;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
                );
                let _ = s.write_all(&[b'x'; 50_000]);
                let _ = s.flush();
            });
        }
    });
    port
}

/// nginx serving `root` over HTTPS on loopback; `/truncated` is proxied
/// to a server that cuts its body short.
pub fn nginx_https(root: &Path, cert: &Path, key: &Path) -> Server {
    let bin = require("nginx", "nginx-light");
    let upstream = truncating_server();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    root {};\n    location /truncated {{ proxy_pass http://127.0.0.1:{upstream}; proxy_buffering off; }}\n  }}\n}}\n",
        cert.display(),
        key.display(),
        root.display()
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("nginx exited early: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nginx did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        port,
        child,
        _dir: dir,
    }
}

/// Everything a cutover test looks at, to compare before and after: the
/// link (kind, target, content digest) and every file under the
/// artifacts directory with its digest.
pub fn snapshot(link: &Path, artifacts: &Path) -> Vec<String> {
    let mut out = Vec::new();
    match std::fs::symlink_metadata(link) {
        Err(_) => out.push("link: absent".into()),
        Ok(m) if m.file_type().is_symlink() => out.push(format!(
            "link: -> {} ({})",
            std::fs::read_link(link).unwrap().display(),
            sha256(&std::fs::read(link).unwrap())
        )),
        Ok(_) => out.push(format!(
            "link: plain file ({})",
            sha256(&std::fs::read(link).unwrap())
        )),
    }
    fn walk(d: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        let mut es: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
        es.sort();
        for p in es {
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(&p, base, out);
            } else {
                out.push(format!("{rel} {}", sha256(&std::fs::read(&p).unwrap())));
            }
        }
    }
    walk(artifacts, artifacts, &mut out);
    out
}

/// Writes `<dir>/<name>.toml`.
pub fn target(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), body).unwrap();
}

/// windlassd started with `--targets` and `--extra-ca`.
pub fn windlassd_for_cutover(
    bus: &crate::common::Bus,
    state: &Path,
    run: &Path,
    targets: &Path,
    ca: &Path,
    env: &[(&str, &str)],
) -> crate::common::Agent {
    windlassd_at(
        &crate::common::windlassd(),
        bus,
        state,
        run,
        targets,
        ca,
        env,
    )
}

/// The same, from the binary at `bin` (a link, for self-upgrades).
pub fn windlassd_at(
    bin: &Path,
    bus: &crate::common::Bus,
    state: &Path,
    run: &Path,
    targets: &Path,
    ca: &Path,
    env: &[(&str, &str)],
) -> crate::common::Agent {
    let log = state.with_extension("log");
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut c = std::process::Command::new(bin);
    c.args([
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
    .arg(state)
    .arg("--run-dir")
    .arg(run)
    .arg("--targets")
    .arg(targets)
    .arg("--extra-ca")
    .arg(ca)
    .stdout(std::process::Stdio::null())
    .stderr(logf);
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    let mut a = crate::common::Agent {
        child,
        state: state.to_path_buf(),
        run: run.to_path_buf(),
        address: bus.address.clone(),
        log,
    };
    let start = Instant::now();
    loop {
        if crate::common::name_owned_by(&bus.address, a.child.id()) {
            return a;
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
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub bus: crate::common::Bus,
    pub nginx: Server,
    pub ca: PathBuf,
    pub www: PathBuf,
    pub targets: PathBuf,
    pub link: PathBuf,
}

pub fn fixture(target_extra: &str) -> Fixture {
    let bus = crate::common::bus();
    let tmp = tempfile::tempdir().unwrap();
    let tls = tmp.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (ca, cert, key) = test_ca(&tls);
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("healthz"), b"ok").unwrap();
    let nginx = nginx_https(&www, &cert, &key);
    let targets = tmp.path().join("targets");
    let link = tmp.path().join("bin/tool");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    target(
        &targets,
        "tool",
        &format!(
            "link = \"{}\"\nunit = \"tool.service\"\nhealth_http = \"https://127.0.0.1:{}/healthz\"\nkeep = 2\n{target_extra}",
            link.display(),
            nginx.port
        ),
    );
    Fixture {
        tmp,
        bus,
        nginx,
        ca,
        www,
        targets,
        link,
    }
}
