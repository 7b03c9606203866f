//! windlass's network clients, shared by the agent's sweeps and cutovers:
//!
//! * [`registry`]: release discovery over the OCI distribution API
//!   (`GET /v2/<repo>/tags/list` with `Link` pagination, the anonymous
//!   bearer-token flow registries use, `ETag` revalidation, timeouts and
//!   bounded retries);
//! * [`auth`]: registry credentials, found where Podman finds them;
//! * [`release`]: which tag is a release and which release is newer, by
//!   semver, with prerelease and constraint rules;
//! * [`download`]: streaming HTTPS downloads with a size cap, verified
//!   against a SHA-256 before anything is kept.
//!
//! One HTTP stack (reqwest with rustls) for both; [`client`] builds it.

/// The HTTP client crate, for users of [`client`].
pub use reqwest;
/// The version crate releases are parsed with.
pub use semver;

pub mod auth;
pub mod download;
pub mod registry;
pub mod release;

use std::time::Duration;

/// An error and its sources, joined with `: ` (reqwest hides the cause,
/// such as a certificate problem, in the source chain).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How to build the HTTP client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Extra trusted root certificates (PEM), e.g. a test CA.
    pub extra_roots_pem: Vec<Vec<u8>>,
    pub connect_timeout: Duration,
    /// Whole-request timeout (headers and body) of registry calls.
    /// Artifact downloads ([`download::download_verified`]) are bounded by
    /// [`download::DOWNLOAD_TIMEOUT`] instead: a large file on a slow link
    /// may take longer, and a stalled one is caught by `read_timeout`.
    pub timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            extra_roots_pem: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid root certificate: {0}")]
    Certificate(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// The HTTP client: rustls, the platform's roots plus `extra_roots_pem`,
/// no redirects to plain HTTP from HTTPS, the given timeouts.
pub fn client(opts: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.timeout)
        .read_timeout(opts.read_timeout)
        .user_agent(concat!("windlass/", env!("CARGO_PKG_VERSION")))
        .https_only(false)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            // Never follow a redirect from https to http.
            let downgrade = attempt.previous().iter().any(|u| u.scheme() == "https")
                && attempt.url().scheme() != "https";
            if downgrade {
                attempt.error("refusing a redirect from https to plain http")
            } else if attempt.previous().len() > 5 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }));
    for pem in &opts.extra_roots_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::Certificate(e.to_string()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| ClientError::Build(e.to_string()))
}
