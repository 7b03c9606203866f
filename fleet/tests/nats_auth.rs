//! The NATS login and TLS options every fleet program takes
//! (`windlass_fleet::auth::NatsAuth`: --creds, --nkey, --user with
//! --password-file, --ca, --tls-cert/--tls-key), against a real
//! nats-server: one that requires TLS with a certificate from a test CA,
//! and one that knows its user only by an nkey. Each login that should
//! fail does (an untrusted server, the wrong nkey), and an unreadable or
//! malformed secret file is named without its contents.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::nats::NatsServer;
use windlass_fleet::auth::NatsAuth;

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, as
/// PEM files in `dir`: (ca, cert, key).
fn test_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("windlass test CA {name}"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// Connects with `auth` and makes one round trip (a flush), within 5 s.
async fn login(auth: &NatsAuth, url: &str) -> Result<(), String> {
    let opts = auth.options().await?;
    let client = opts
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), client.flush())
        .await
        .map_err(|_| "flush timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tls_with_the_fleet_ca_connects_and_an_untrusted_server_is_refused() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(pki.path(), "fleet");
    let (other_ca, _, _) = test_pki(pki.path(), "other");
    let Some(server) = NatsServer::start_with(
        "tls_with_the_fleet_ca_connects_and_an_untrusted_server_is_refused",
        &format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            cert.display(),
            key.display()
        ),
    ) else {
        return;
    };
    let url = server.url();
    let with_ca = NatsAuth {
        ca: Some(ca.clone()),
        ..Default::default()
    };
    login(&with_ca, &url)
        .await
        .unwrap_or_else(|e| panic!("TLS with the fleet's CA: {e}\n{}", server.log()));
    // The system's roots do not know the test CA, nor does another CA.
    let err = login(&NatsAuth::default(), &url).await.unwrap_err();
    assert!(!err.is_empty());
    let other = NatsAuth {
        ca: Some(other_ca),
        ..Default::default()
    };
    let err = login(&other, &url).await.unwrap_err();
    assert!(!err.is_empty());
    // A CA file that is not there is named before connecting.
    let missing = NatsAuth {
        ca: Some(pki.path().join("nope.pem")),
        ..Default::default()
    };
    let err = missing.options().await.map(|_| ()).unwrap_err();
    assert!(err.contains("CA file") && err.contains("nope.pem"), "{err}");
}

#[tokio::test]
async fn an_nkey_seed_file_logs_in_and_another_key_is_refused() {
    let user = nkeys::KeyPair::new_user();
    let Some(server) = NatsServer::start_with(
        "an_nkey_seed_file_logs_in_and_another_key_is_refused",
        &format!(
            "authorization {{\n  users = [ {{ nkey: \"{}\" }} ]\n}}\n",
            user.public_key()
        ),
    ) else {
        return;
    };
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("fleetd.nk");
    std::fs::write(&seed_file, format!("{}\n", user.seed().unwrap())).unwrap();
    let auth = NatsAuth {
        nkey: Some(seed_file),
        ..Default::default()
    };
    login(&auth, &url)
        .await
        .unwrap_or_else(|e| panic!("nkey login: {e}\n{}", server.log()));
    // No login, and another user's key, are refused by the server.
    let err = login(&NatsAuth::default(), &url).await.unwrap_err();
    assert!(err.to_lowercase().contains("authoriz"), "{err}");
    let stranger = nkeys::KeyPair::new_user();
    let other_file = dir.path().join("other.nk");
    std::fs::write(&other_file, stranger.seed().unwrap()).unwrap();
    let other = NatsAuth {
        nkey: Some(other_file),
        ..Default::default()
    };
    let err = login(&other, &url).await.unwrap_err();
    assert!(err.to_lowercase().contains("authoriz"), "{err}");
    // A file that holds no seed is named, its contents are not printed.
    let bad = dir.path().join("bad.nk");
    std::fs::write(&bad, "SUPERSECRET-not-a-seed\n").unwrap();
    let err = NatsAuth {
        nkey: Some(bad),
        ..Default::default()
    }
    .options()
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(
        err.contains("bad.nk") && err.contains("not an nkey seed"),
        "{err}"
    );
    assert!(!err.contains("SUPERSECRET"), "{err}");
}

#[tokio::test]
async fn one_login_at_a_time_and_a_user_needs_its_password_file() {
    let f = PathBuf::from("/nonexistent/creds");
    let two = NatsAuth {
        creds: Some(f.clone()),
        nkey: Some(f.clone()),
        ..Default::default()
    };
    let err = two.options().await.map(|_| ()).unwrap_err();
    assert!(err.contains("give one NATS login"), "{err}");
    let half = NatsAuth {
        user: Some("h1".into()),
        ..Default::default()
    };
    let err = half.options().await.map(|_| ()).unwrap_err();
    assert!(err.contains("needs a password file"), "{err}");
    let cert_only = NatsAuth {
        tls_cert: Some(f),
        ..Default::default()
    };
    let err = cert_only.options().await.map(|_| ()).unwrap_err();
    assert!(err.contains("needs its key"), "{err}");
}
