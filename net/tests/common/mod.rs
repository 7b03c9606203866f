//! Real servers on loopback for the network tests: Debian's
//! `docker-registry` (an OCI registry) and nginx with a test CA, plus a
//! scripted HTTP/1.1 server for protocol paths a real server will not
//! produce on demand (token challenges, pagination, ETags, truncation).
//! A missing server binary fails the test (tools/test installs them).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{what} exited early: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn require(bin: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("{bin} is missing: install Debian's {package} (tools/test does)");
}

/// A server process killed on drop.
pub struct Server {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
    _extra: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's docker-registry (distribution 2.8) on a free loopback port.
pub fn registry() -> Server {
    registry_with("", "")
}

/// Debian's docker-registry asking for a user name and password from the
/// htpasswd lines `htpasswd` (bcrypt), serving HTTPS with `tls` (cert,
/// key) when given, plain HTTP otherwise.
pub fn registry_htpasswd(htpasswd: &str, tls: Option<(&Path, &Path)>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, htpasswd).unwrap();
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: windlass-test\n    path: {}\n",
        file.display()
    );
    let tls = match tls {
        Some((cert, key)) => format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    let mut s = registry_with(&auth, &tls);
    s._extra = Some(dir);
    s
}

fn registry_with(top: &str, http: &str) -> Server {
    let bin = require("docker-registry", "docker-registry");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{top}http:\n  addr: 127.0.0.1:{port}\n{http}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "docker-registry");
    Server {
        port,
        child,
        _dir: dir,
        _extra: None,
    }
}

/// Pushes a minimal OCI image under each of `tags` through the registry's
/// HTTP API (blob upload, then manifest PUT per tag).
pub async fn push_tags(port: u16, repo: &str, tags: &[&str]) {
    let base = format!("http://127.0.0.1:{port}");
    push_tags_to(&reqwest::Client::new(), &base, None, repo, tags).await
}

/// [`push_tags`] to the registry at `base` (`scheme://host:port`), with an
/// `Authorization` header on every request when `auth` is given.
pub async fn push_tags_to(
    client: &reqwest::Client,
    base: &str,
    auth: Option<&str>,
    repo: &str,
    tags: &[&str],
) {
    use sha2::{Digest, Sha256};
    let http = Authed(client, auth);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(config)));
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "start upload");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(config.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "finish upload");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    for tag in tags {
        let r = http
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "push {repo}:{tag}");
    }
}

/// A client whose requests all carry one `Authorization` value.
struct Authed<'a>(&'a reqwest::Client, Option<&'a str>);

impl Authed<'_> {
    fn with(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.1 {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }
    fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.with(self.0.post(url))
    }
    fn put(&self, url: String) -> reqwest::RequestBuilder {
        self.with(self.0.put(url))
    }
}

/// A test CA and a server certificate for 127.0.0.1 / localhost, made with
/// the openssl CLI. Returns (ca.pem, cert.pem, key.pem) paths.
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=windlass test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// nginx serving `root` over HTTPS on a free loopback port.
pub fn nginx_https(root: &Path, cert: &Path, key: &Path) -> Server {
    let bin = require("nginx", "nginx-light");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    root {};\n  }}\n}}\n",
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
    wait_for_port(port, &mut child, "nginx");
    Server {
        port,
        child,
        _dir: dir,
        _extra: None,
    }
}

/// One request as the scripted server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

/// What the scripted server answers: raw response bytes (status line,
/// headers, body), or a response cut off after `cut` bytes.
pub type Handler = Arc<dyn Fn(&Seen) -> (Vec<u8>, Option<usize>) + Send + Sync>;

/// A plain HTTP/1.1 server on loopback, one connection per request,
/// answering with `handler`. Records every request.
pub struct Scripted {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub fn scripted(handler: Handler) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let handler = handler.clone();
            let seen = seen2.clone();
            std::thread::spawn(move || {
                use std::io::Read as _;
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => buf.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let mut lines = text.split("\r\n");
                let request_line = lines.next().unwrap_or_default();
                let path = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let s = Seen { path, headers };
                seen.lock().unwrap().push(s.clone());
                let (resp, cut) = handler(&s);
                let n = cut.unwrap_or(resp.len()).min(resp.len());
                let _ = stream.write_all(&resp[..n]);
                let _ = stream.flush();
            });
        }
    });
    Scripted { port, seen }
}

/// A complete response with a body and Content-Length.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}
