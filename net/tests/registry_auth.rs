//! Registries that need credentials: Debian's docker-registry over TLS
//! (a test CA) with htpasswd (Basic) authentication, and a scripted token
//! service for the bearer flow with credentials. Credentials come from
//! auth files written as `podman login` writes them
//! (containers-auth.json(5)).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use windlass_net::auth::Credentials;
use windlass_net::registry::{ImageName, RegistryClient, RegistryError, RegistryOptions};

/// The test user's password: a space, a colon and non-ASCII, so a wrong
/// split of `user:password` or a lossy encoding shows.
const PASSWORD: &str = "s3cret pass:wörd";
/// `PASSWORD` hashed with bcrypt (docker-registry's htpasswd reads only
/// bcrypt), cost 4 to keep the test fast, made once with Python's crypt module (METHOD_BLOWFISH, 16 rounds).
const HTPASSWD: &str = "fleet:$2b$04$91xXcbjA/iUCLZ2WQVlB/OTAXE3f95pk4R8gysbFJH3YIoNWSHTn6\n";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn auth_file(dir: &Path, name: &str, entries: &[(&str, &str)]) -> PathBuf {
    let body: Vec<String> = entries
        .iter()
        .map(|(k, up)| format!(r#""{k}": {{"auth": "{}"}}"#, b64(up)))
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, format!(r#"{{"auths": {{{}}}}}"#, body.join(", "))).unwrap();
    p
}

fn tls_client(ca: &Path, credentials: Credentials) -> RegistryClient {
    let http = windlass_net::client(&windlass_net::ClientOptions {
        extra_roots_pem: vec![std::fs::read(ca).unwrap()],
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    RegistryClient::new(
        http,
        RegistryOptions {
            attempts: 1,
            credentials: Arc::new(credentials),
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_registry_over_tls_takes_podmans_credentials() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::test_ca(pki.path());
    let reg = common::registry_htpasswd(HTPASSWD, Some((&cert, &key)));
    let host = format!("127.0.0.1:{}", reg.port);

    // Push through the registry's API as the test user.
    let push = windlass_net::client(&windlass_net::ClientOptions {
        extra_roots_pem: vec![std::fs::read(&ca).unwrap()],
        ..Default::default()
    })
    .unwrap();
    let basic = format!("Basic {}", b64(&format!("fleet:{PASSWORD}")));
    common::push_tags_to(
        &push,
        &format!("https://{host}"),
        Some(&basic),
        "team/web",
        &["1.0.0", "1.1.0"],
    )
    .await;
    let image = ImageName::parse(&format!("{host}/team/web:1.0.0")).unwrap();
    let files = tempfile::tempdir().unwrap();

    // No credentials: a clear error naming where they were looked for.
    let absent = files.path().join("absent.json");
    let c = tls_client(&ca, Credentials::from_files(std::slice::from_ref(&absent)));
    let e = c.list_tags(&image).await.unwrap_err();
    assert!(matches!(e, RegistryError::Auth(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("asks for a user name and password")
            && msg.contains("absent.json")
            && msg.contains("podman login"),
        "{msg}"
    );

    // The primary file has a host-wide entry with a wrong password and a
    // namespace entry with the right one: the namespace wins. A later
    // file's entry for the same repository does not count.
    let primary = auth_file(
        files.path(),
        "auth.json",
        &[
            (&host, "fleet:wrong"),
            (&format!("{host}/team"), &format!("fleet:{PASSWORD}")),
        ],
    );
    let later = auth_file(
        files.path(),
        "config.json",
        &[(&format!("{host}/team/web"), "fleet:also-wrong")],
    );
    let c = tls_client(&ca, Credentials::from_files(&[primary.clone(), later]));
    let mut tags = c.list_tags(&image).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0"]);

    // Outside the namespace the host-wide (wrong) entry is used: refused,
    // naming the file and entry, never the password.
    let other = ImageName::parse(&format!("{host}/other/web:1.0.0")).unwrap();
    let e = c.list_tags(&other).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Auth(_)), "{msg}");
    assert!(msg.contains("401") && msg.contains("auth.json"), "{msg}");
    assert!(!msg.contains("wrong") && !msg.contains(PASSWORD), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_credentials_never_go_over_plain_http_unasked() {
    // A registry listed nowhere is spoken to over HTTPS only; a plain-HTTP
    // registry asking for Basic is reached only when listed insecure
    // (as with `podman --tls-verify=false`): covered by the scripted
    // server below.
    let server = common::scripted(Arc::new(|req: &common::Seen| {
        match req.headers.get("authorization") {
            Some(a) if a.starts_with("Basic ") => (
                common::response("200 OK", &[], br#"{"name":"a/b","tags":["1.0.0"]}"#),
                None,
            ),
            _ => (
                common::response(
                    "401 Unauthorized",
                    &[("WWW-Authenticate", r#"Basic realm="r""#)],
                    b"{}",
                ),
                None,
            ),
        }
    }));
    let host = format!("127.0.0.1:{}", server.port);
    let files = tempfile::tempdir().unwrap();
    let f = auth_file(files.path(), "auth.json", &[(&host, "u:p")]);
    let mk = |insecure: Vec<String>| {
        RegistryClient::new(
            // The scripted server never answers a TLS hello: a short timeout.
            windlass_net::client(&windlass_net::ClientOptions {
                timeout: Duration::from_secs(1),
                ..Default::default()
            })
            .unwrap(),
            RegistryOptions {
                insecure_hosts: insecure,
                attempts: 1,
                credentials: Arc::new(Credentials::from_files(std::slice::from_ref(&f))),
                ..Default::default()
            },
        )
    };
    let image = ImageName::parse(&format!("{host}/a/b:1.0.0")).unwrap();
    // Not listed: TLS to a plain server fails before any header is sent.
    assert!(mk(vec![]).list_tags(&image).await.is_err());
    assert!(server.seen.lock().unwrap().is_empty());
    assert_eq!(
        mk(vec![host.clone()]).list_tags(&image).await.unwrap(),
        ["1.0.0"]
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[1].headers["authorization"],
        format!("Basic {}", b64("u:p"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_service_gets_the_credentials_and_public_images_stay_anonymous() {
    let server = common::scripted(Arc::new(|req: &common::Seen| {
        let port = req.headers.get("host").cloned().unwrap_or_default();
        if req.path.starts_with("/token?") {
            let who = req.headers.get("authorization").cloned();
            let private = req.path.contains("private");
            return match (private, who) {
                (true, Some(a)) if a == format!("Basic {}", b64("robot:pw")) => (
                    common::response("200 OK", &[], br#"{"token":"PRIVATE"}"#),
                    None,
                ),
                (true, _) => (common::response("401 Unauthorized", &[], b"{}"), None),
                (false, _) => (
                    common::response("200 OK", &[], br#"{"access_token":"PUBLIC"}"#),
                    None,
                ),
            };
        }
        let private = req.path.contains("/private/");
        let want = if private {
            "Bearer PRIVATE"
        } else {
            "Bearer PUBLIC"
        };
        if req.headers.get("authorization").map(String::as_str) != Some(want) {
            let repo = if private { "private/app" } else { "public/app" };
            let challenge = format!(
                r#"Bearer realm="http://{port}/token",service="s",scope="repository:{repo}:pull""#
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
        (
            common::response("200 OK", &[], br#"{"name":"x","tags":["2.0.0"]}"#),
            None,
        )
    }));
    let host = format!("127.0.0.1:{}", server.port);
    let files = tempfile::tempdir().unwrap();
    let f = auth_file(
        files.path(),
        "auth.json",
        &[(&format!("{host}/private"), "robot:pw")],
    );
    let c = RegistryClient::new(
        windlass_net::client(&Default::default()).unwrap(),
        RegistryOptions {
            insecure_hosts: vec![host.clone()],
            attempts: 1,
            credentials: Arc::new(Credentials::from_files(std::slice::from_ref(&f))),
            ..Default::default()
        },
    );
    let private = ImageName::parse(&format!("{host}/private/app:1")).unwrap();
    let public = ImageName::parse(&format!("{host}/public/app:1")).unwrap();
    assert_eq!(c.list_tags(&private).await.unwrap(), ["2.0.0"]);
    assert_eq!(c.list_tags(&public).await.unwrap(), ["2.0.0"]);
    let tokens: Vec<_> = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.starts_with("/token?"))
        .map(|s| {
            (
                s.path.contains("private"),
                s.headers.contains_key("authorization"),
            )
        })
        .collect();
    // The public image's token request carries no credentials.
    assert_eq!(tokens, [(true, true), (false, false)]);

    // Without the file: the private token is refused, and the error says so.
    let c = RegistryClient::new(
        windlass_net::client(&Default::default()).unwrap(),
        RegistryOptions {
            insecure_hosts: vec![host],
            attempts: 1,
            ..Default::default()
        },
    );
    let e = c.list_tags(&private).await.unwrap_err().to_string();
    assert!(e.contains("token endpoint") && e.contains("401"), "{e}");
}
