//! Verified downloads against a real HTTPS server (nginx with a test CA)
//! on loopback, and against a scripted server for truncated and unbounded
//! bodies. Every refusal leaves the destination directory exactly as it
//! was: no file, no temporary file.

mod common;

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use windlass_net::download::{DownloadError, DownloadOptions, download_verified};

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn opts(sha: &str, max: u64) -> DownloadOptions<'_> {
    DownloadOptions {
        sha256: sha,
        max_bytes: max,
        allow_http: false,
        mode: 0o755,
        progress: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_downloads_are_verified_before_they_are_kept() {
    let tls = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::test_ca(tls.path());
    let www = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(www.path().join("agent-1.2.0"), &payload).unwrap();
    let sha = hex::encode(Sha256::digest(&payload));
    let nginx = common::nginx_https(www.path(), &cert, &key);
    let url = format!("https://127.0.0.1:{}/agent-1.2.0", nginx.port);
    let http = windlass_net::client(&windlass_net::ClientOptions {
        extra_roots_pem: vec![std::fs::read(&ca).unwrap()],
        ..Default::default()
    })
    .unwrap();
    let dest_dir = tempfile::tempdir().unwrap();
    std::fs::write(dest_dir.path().join("keep-me"), b"previous version").unwrap();
    let before = listing(dest_dir.path());

    // Refusals first: each leaves the directory as it was.
    let refusals: Vec<(&str, Result<_, DownloadError>)> = vec![
        (
            "wrong sha256",
            download_verified(
                &http,
                &url,
                &dest_dir.path().join("a"),
                &opts(&"0".repeat(64), 10 << 20),
            )
            .await,
        ),
        (
            "over the size cap",
            download_verified(&http, &url, &dest_dir.path().join("a"), &opts(&sha, 1000)).await,
        ),
        (
            "plain http",
            download_verified(
                &http,
                &format!("http://127.0.0.1:{}/agent-1.2.0", nginx.port),
                &dest_dir.path().join("a"),
                &opts(&sha, 10 << 20),
            )
            .await,
        ),
        (
            "missing file",
            download_verified(
                &http,
                &format!("https://127.0.0.1:{}/nope", nginx.port),
                &dest_dir.path().join("a"),
                &opts(&sha, 10 << 20),
            )
            .await,
        ),
        (
            "untrusted certificate",
            download_verified(
                &windlass_net::client(&Default::default()).unwrap(),
                &url,
                &dest_dir.path().join("a"),
                &opts(&sha, 10 << 20),
            )
            .await,
        ),
        (
            "destination exists",
            download_verified(
                &http,
                &url,
                &dest_dir.path().join("keep-me"),
                &opts(&sha, 10 << 20),
            )
            .await,
        ),
    ];
    for (what, r) in refusals {
        let e = r.expect_err(what);
        match (what, &e) {
            ("wrong sha256", DownloadError::ChecksumMismatch { actual, .. }) => {
                assert_eq!(actual, &sha)
            }
            (
                "over the size cap",
                DownloadError::TooLarge {
                    announced: Some(n), ..
                },
            ) => {
                assert_eq!(*n, payload.len() as u64)
            }
            ("plain http", DownloadError::InsecureUrl(_)) => {}
            ("missing file", DownloadError::Status { status: 404, .. }) => {}
            ("untrusted certificate", DownloadError::Transfer { message, .. }) => {
                assert!(message.to_lowercase().contains("certificate"), "{message}")
            }
            ("destination exists", DownloadError::Exists(_)) => {}
            _ => panic!("{what}: unexpected error {e}"),
        }
        assert_eq!(
            listing(dest_dir.path()),
            before,
            "{what} changed the directory"
        );
        assert_eq!(
            std::fs::read(dest_dir.path().join("keep-me")).unwrap(),
            b"previous version"
        );
    }

    // Then the real thing, with progress reported.
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |got: u64, total: Option<u64>| seen.lock().unwrap().push((got, total));
    let mut o = opts(&sha, 10 << 20);
    o.progress = Some(&progress);
    let dest = dest_dir.path().join("agent-1.2.0");
    download_verified(&http, &url, &dest, &o).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(listing(dest_dir.path()), ["agent-1.2.0", "keep-me"]);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.last(),
        Some(&(payload.len() as u64, Some(payload.len() as u64)))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_and_unbounded_bodies_are_refused() {
    let body = vec![7u8; 5000];
    let sha = hex::encode(Sha256::digest(&body));
    let b = body.clone();
    let server = common::scripted(Arc::new(move |req: &common::Seen| {
        if req.path == "/truncated" {
            let full = common::response("200 OK", &[], &b);
            let cut = full.len() - 2000;
            (full, Some(cut))
        } else {
            // No Content-Length: the body ends when the connection closes.
            let mut r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            r.extend_from_slice(&b);
            (r, None)
        }
    }));
    let http = windlass_net::client(&Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(&sha, 1 << 20);
    o.allow_http = true;
    let e = download_verified(
        &http,
        &format!("http://127.0.0.1:{}/truncated", server.port),
        &dir.path().join("x"),
        &o,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            DownloadError::Truncated { .. } | DownloadError::Transfer { .. }
        ),
        "{e}"
    );
    assert!(listing(dir.path()).is_empty(), "{e}");
    // Unannounced length, over the cap while streaming.
    let mut o = opts(&sha, 4096);
    o.allow_http = true;
    let e = download_verified(
        &http,
        &format!("http://127.0.0.1:{}/unbounded", server.port),
        &dir.path().join("x"),
        &o,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            DownloadError::TooLarge {
                announced: None,
                ..
            }
        ),
        "{e}"
    );
    assert!(listing(dir.path()).is_empty());
    // The same body within the cap verifies.
    let o2 = DownloadOptions {
        max_bytes: 1 << 20,
        ..o
    };
    download_verified(
        &http,
        &format!("http://127.0.0.1:{}/unbounded", server.port),
        &dir.path().join("x"),
        &o2,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), body);
}

/// A server that sends `body` in eight pieces `gap` apart, after a header
/// announcing all of it; with `stall`, it stops after the first piece.
fn trickle(body: Vec<u8>, gap: std::time::Duration, stall: bool) -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut b = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
                    req.push(b[0]);
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                for (i, piece) in body.chunks(body.len().div_ceil(8)).enumerate() {
                    if i == 1 && stall {
                        std::thread::sleep(std::time::Duration::from_secs(30));
                        return;
                    }
                    let _ = s.write_all(piece);
                    let _ = s.flush();
                    std::thread::sleep(gap);
                }
            });
        }
    });
    port
}

/// A download that keeps coming may outlast the client's whole-request
/// timeout (meant for API calls); one that stalls fails after the read
/// timeout and leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn slow_downloads_finish_and_stalled_ones_fail() {
    use std::time::{Duration, Instant};
    let body: Vec<u8> = (0..80_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&body));
    let http = windlass_net::client(&windlass_net::ClientOptions {
        timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let mut o = opts(&sha, 1 << 20);
    o.allow_http = true;
    let dir = tempfile::tempdir().unwrap();

    let slow = trickle(body.clone(), Duration::from_millis(350), false);
    let t = Instant::now();
    download_verified(
        &http,
        &format!("http://127.0.0.1:{slow}/slow"),
        &dir.path().join("slow"),
        &o,
    )
    .await
    .unwrap();
    assert!(
        t.elapsed() > Duration::from_secs(2),
        "the transfer took {:?}, not longer than the client's timeout",
        t.elapsed()
    );
    assert_eq!(std::fs::read(dir.path().join("slow")).unwrap(), body);

    let stalled = trickle(body, Duration::from_millis(10), true);
    let t = Instant::now();
    let e = download_verified(
        &http,
        &format!("http://127.0.0.1:{stalled}/stalled"),
        &dir.path().join("stalled"),
        &o,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DownloadError::Transfer { .. }), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "gave up after {:?}",
        t.elapsed()
    );
    assert_eq!(listing(dir.path()), ["slow"], "{e}");
}
