//! Verified downloads: stream a URL into a temporary file beside the
//! destination, never more than a size cap, hashing as it arrives; keep it
//! (rename into place, fsync) only when the SHA-256 matches. Any failure —
//! plain `http://` when not allowed, an HTTP error, a body longer than the
//! cap or shorter than announced, a broken connection, a wrong digest —
//! removes the temporary file and leaves the destination directory as it
//! was.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use url::Url;

pub struct DownloadOptions<'a> {
    /// Expected SHA-256, lowercase or uppercase hex.
    pub sha256: &'a str,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
    /// Accept `http://` URLs (tests on loopback only).
    pub allow_http: bool,
    /// File mode of the kept file.
    pub mode: u32,
    /// Called as bytes arrive: (received, announced length).
    pub progress: Option<&'a (dyn Fn(u64, Option<u64>) + Send + Sync)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    #[error("refusing plain http ({0}): downloads must use https")]
    InsecureUrl(String),
    #[error("invalid sha256 {0:?}: expected 64 hex digits")]
    InvalidDigest(String),
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than the {max} byte limit{}", announced.map(|a| format!(" (announced {a} bytes)")).unwrap_or_default())]
    TooLarge {
        url: String,
        max: u64,
        announced: Option<u64>,
    },
    #[error("{url}: truncated: received {received} of {expected} bytes")]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
    },
    #[error("{url}: transfer failed after {received} bytes: {message}")]
    Transfer {
        url: String,
        received: u64,
        message: String,
    },
    #[error("{url}: sha256 mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already exists")]
    Exists(PathBuf),
}

/// The longest a whole download may take. It replaces the client's
/// whole-request timeout, which suits API calls, not a 200 MB binary on a
/// slow link; a transfer that stalls fails after the client's
/// `read_timeout` long before this.
pub const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The verified file at `dest` (which must not exist yet).
pub async fn download_verified(
    http: &reqwest::Client,
    url: &str,
    dest: &Path,
    opts: &DownloadOptions<'_>,
) -> Result<PathBuf, DownloadError> {
    let parsed = Url::parse(url).map_err(|e| DownloadError::InvalidUrl(format!("{url}: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if opts.allow_http => {}
        "http" => return Err(DownloadError::InsecureUrl(url.to_string())),
        other => return Err(DownloadError::InvalidUrl(format!("{url}: scheme {other}"))),
    }
    let expected = opts.sha256.to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DownloadError::InvalidDigest(opts.sha256.to_string()));
    }
    if dest.exists() {
        return Err(DownloadError::Exists(dest.to_path_buf()));
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "download".into());
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };

    let resp = http
        .get(parsed.clone())
        .timeout(DOWNLOAD_TIMEOUT)
        .send()
        .await
        .map_err(|e| DownloadError::Transfer {
            url: url.to_string(),
            received: 0,
            message: crate::error_chain(&e),
        })?;
    if !resp.status().is_success() {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let announced = resp.content_length();
    if let Some(a) = announced
        && a > opts.max_bytes
    {
        return Err(DownloadError::TooLarge {
            url: url.to_string(),
            max: opts.max_bytes,
            announced: Some(a),
        });
    }

    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .await
        .map_err(io(&tmp))?;
    let result = async {
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DownloadError::Transfer {
                url: url.to_string(),
                received,
                message: crate::error_chain(&e),
            })?;
            received += chunk.len() as u64;
            if received > opts.max_bytes {
                return Err(DownloadError::TooLarge {
                    url: url.to_string(),
                    max: opts.max_bytes,
                    announced,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(&tmp))?;
            if let Some(p) = opts.progress {
                p(received, announced);
            }
        }
        if let Some(a) = announced
            && received != a
        {
            return Err(DownloadError::Truncated {
                url: url.to_string(),
                received,
                expected: a,
            });
        }
        let actual = hex::encode(hasher.finalize());
        if actual != expected {
            return Err(DownloadError::ChecksumMismatch {
                url: url.to_string(),
                expected: expected.clone(),
                actual,
            });
        }
        file.flush().await.map_err(io(&tmp))?;
        file.sync_all().await.map_err(io(&tmp))?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let finish = || -> Result<(), DownloadError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(opts.mode))
            .map_err(io(&tmp))?;
        // No overwrite: link(2) fails if dest appeared meanwhile.
        std::fs::hard_link(&tmp, dest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                DownloadError::Exists(dest.to_path_buf())
            } else {
                DownloadError::Io {
                    path: dest.to_path_buf(),
                    source: e,
                }
            }
        })?;
        std::fs::remove_file(&tmp).map_err(io(&tmp))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    };
    if let Err(e) = finish() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(dest.to_path_buf())
}
