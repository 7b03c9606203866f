//! Release discovery against a real OCI registry (Debian's docker-registry,
//! distribution 2.8) on loopback, with tags pushed through its HTTP API,
//! and the bearer-token / pagination / ETag / retry paths against a
//! scripted server (distribution 2.8 neither paginates tags nor sends
//! ETags, and runs no token service without a signing setup).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use windlass_net::registry::{ImageName, RegistryClient, RegistryError, RegistryOptions};
use windlass_net::release::{self, Decision, Policy};

fn client(insecure: &str, attempts: u32) -> RegistryClient {
    let http = windlass_net::client(&windlass_net::ClientOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    RegistryClient::new(
        http,
        RegistryOptions {
            insecure_hosts: vec![insecure.to_string()],
            attempts,
            retry_base: Duration::from_millis(20),
            page_size: None,
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_registry_lists_pushed_tags_and_new_ones() {
    let reg = common::registry();
    let host = format!("127.0.0.1:{}", reg.port);
    common::push_tags(
        reg.port,
        "fleet/web",
        &["1.0.0", "1.1.0", "2.0.0-rc.1", "latest", "nightly"],
    )
    .await;
    let c = client(&host, 3);
    let image = ImageName::parse(&format!("{host}/fleet/web:1.0.0")).unwrap();
    let mut tags = c.list_tags(&image).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest", "nightly"]);
    let canonical = release::parse("1.0.0").unwrap();
    let d = release::decide(
        tags.iter().map(String::as_str),
        &Policy::default(),
        Some(&canonical),
        false,
    );
    assert!(
        matches!(&d, Decision::Upgrade { tag, .. } if tag == "1.1.0"),
        "{d:?}"
    );

    // A new release appears; moving non-release tags changes nothing.
    common::push_tags(reg.port, "fleet/web", &["1.2.0", "latest", "edge"]).await;
    let tags = c.list_tags(&image).await.unwrap();
    let now = release::parse("1.1.0").unwrap();
    let d = release::decide(
        tags.iter().map(String::as_str),
        &Policy::default(),
        Some(&now),
        false,
    );
    assert!(
        matches!(&d, Decision::Upgrade { tag, .. } if tag == "1.2.0"),
        "{d:?}"
    );
    let promoted = release::parse("1.2.0").unwrap();
    let d = release::decide(
        tags.iter().map(String::as_str),
        &Policy::default(),
        Some(&promoted),
        false,
    );
    assert!(matches!(d, Decision::UpToDate { .. }), "{d:?}");

    // An unknown repository is a clear error, not an empty list.
    let missing = ImageName::parse(&format!("{host}/fleet/none:1")).unwrap();
    match c.list_tags(&missing).await {
        Err(RegistryError::Status { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_is_down_fails_after_bounded_retries() {
    let port = common::free_port();
    let host = format!("127.0.0.1:{port}");
    let c = client(&host, 3);
    let image = ImageName::parse(&format!("{host}/a/b:1.0.0")).unwrap();
    let start = Instant::now();
    let err = c.list_tags(&image).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("after 3 tries"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn https_is_required_unless_the_host_is_listed_insecure() {
    let reg = common::registry();
    let host = format!("127.0.0.1:{}", reg.port);
    // Not listed: the client speaks TLS to a plain-HTTP registry and fails.
    let c = client("elsewhere:1", 1);
    let image = ImageName::parse(&format!("{host}/a/b:1.0.0")).unwrap();
    assert!(c.list_tags(&image).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_pages_etags_and_retries() {
    let flaky = Arc::new(AtomicU32::new(1));
    let page2_version = Arc::new(AtomicU32::new(1));
    let (f, v) = (flaky.clone(), page2_version.clone());
    let server = common::scripted(Arc::new(move |req: &common::Seen| {
        let port = req.headers.get("host").cloned().unwrap_or_default();
        if req.path.starts_with("/token?") {
            assert!(req.path.contains("service=test-registry"), "{}", req.path);
            assert!(
                req.path.contains("scope=repository%3Aa%2Fb%3Apull"),
                "{}",
                req.path
            );
            return (
                common::response("200 OK", &[], br#"{"token":"T0KEN"}"#),
                None,
            );
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer T0KEN") {
            let challenge = format!(
                r#"Bearer realm="http://{port}/token",service="test-registry",scope="repository:a/b:pull""#
            );
            return (
                common::response(
                    "401 Unauthorized",
                    &[("WWW-Authenticate", &challenge)],
                    b"{}",
                ),
                None,
            );
        }
        if f.fetch_sub(1, Ordering::SeqCst) == 1 {
            return (
                common::response("503 Service Unavailable", &[], b"busy"),
                None,
            );
        }
        let inm = req.headers.get("if-none-match").cloned();
        if req.path == "/v2/a/b/tags/list?n=2" {
            if inm.as_deref() == Some("\"p1\"") {
                return (
                    common::response("304 Not Modified", &[("ETag", "\"p1\"")], b""),
                    None,
                );
            }
            return (
                common::response(
                    "200 OK",
                    &[
                        ("ETag", "\"p1\""),
                        ("Link", r#"</v2/a/b/tags/list?n=2&last=1.1.0>; rel="next""#),
                    ],
                    br#"{"name":"a/b","tags":["1.0.0","1.1.0"]}"#,
                ),
                None,
            );
        }
        if req.path == "/v2/a/b/tags/list?n=2&last=1.1.0" {
            let ver = v.load(Ordering::SeqCst);
            let etag = format!("\"p2-{ver}\"");
            if inm.as_deref() == Some(etag.as_str()) {
                return (
                    common::response("304 Not Modified", &[("ETag", &etag)], b""),
                    None,
                );
            }
            let body = if ver == 1 {
                br#"{"name":"a/b","tags":["2.0.0","latest"]}"#.to_vec()
            } else {
                br#"{"name":"a/b","tags":["2.0.0","2.1.0","latest"]}"#.to_vec()
            };
            return (common::response("200 OK", &[("ETag", &etag)], &body), None);
        }
        (common::response("404 Not Found", &[], b"{}"), None)
    }));
    let host = format!("127.0.0.1:{}", server.port);
    let http = windlass_net::client(&Default::default()).unwrap();
    let c = RegistryClient::new(
        http,
        RegistryOptions {
            insecure_hosts: vec![host.clone()],
            attempts: 3,
            retry_base: Duration::from_millis(10),
            page_size: Some(2),
            ..Default::default()
        },
    );
    let image = ImageName::parse(&format!("{host}/a/b:1.0.0")).unwrap();
    let (tags, stats) = c.list_tags_with_stats(&image).await.unwrap();
    assert_eq!(tags, ["1.0.0", "1.1.0", "2.0.0", "latest"]);
    assert_eq!(
        (
            stats.pages,
            stats.token_requests,
            stats.retries,
            stats.not_modified
        ),
        (2, 1, 1, 0)
    );

    // Again: the token is reused and both pages revalidate with 304.
    let (tags2, stats) = c.list_tags_with_stats(&image).await.unwrap();
    assert_eq!(tags2, tags);
    assert_eq!(
        (stats.pages, stats.token_requests, stats.not_modified),
        (2, 0, 2)
    );

    // The cache survives a new client (the agent keeps it on disk).
    let cache = c.cache();
    let json = serde_json::to_string(&cache).unwrap();
    page2_version.store(2, Ordering::SeqCst);
    let http = windlass_net::client(&Default::default()).unwrap();
    let c2 = RegistryClient::new(
        http,
        RegistryOptions {
            insecure_hosts: vec![host.clone()],
            page_size: Some(2),
            ..Default::default()
        },
    )
    .with_cache(serde_json::from_str(&json).unwrap());
    let (tags3, stats) = c2.list_tags_with_stats(&image).await.unwrap();
    assert_eq!(tags3, ["1.0.0", "1.1.0", "2.0.0", "2.1.0", "latest"]);
    assert_eq!((stats.not_modified, stats.token_requests), (1, 1));
    let seen = server.seen.lock().unwrap();
    assert!(seen.iter().any(|s| s.headers.contains_key("if-none-match")));
}

/// A registry that answers with more than any tags page holds is refused
/// with a clear error, not buffered (the agent runs sweeps as root on a
/// timer).
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_registry_response_is_refused() {
    let huge = {
        let mut b = br#"{"name":"a/b","tags":["#.to_vec();
        while b.len() < windlass_net::registry::MAX_RESPONSE_BYTES + 1024 {
            b.extend_from_slice(br#""1.0.0-aaaaaaaaaaaaaaaaaaaaaaaa","#);
        }
        b.extend_from_slice(br#""1.0.0"]}"#);
        Arc::new(b)
    };
    let h = huge.clone();
    let server = common::scripted(Arc::new(move |_req: &common::Seen| {
        (common::response("200 OK", &[], &h), None)
    }));
    let host = format!("127.0.0.1:{}", server.port);
    let image = ImageName::parse(&format!("{host}/a/b:1.0.0")).unwrap();
    let err = client(&host, 1).list_tags(&image).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Protocol { message, .. } if message.contains("larger than")),
        "{err}"
    );
}
