//! Release discovery over the OCI distribution API.
//!
//! `GET /v2/<repo>/tags/list`, following `Link: <…>; rel="next"` pages;
//! on `401` with a `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
//! challenge, the token flow (`GET realm?service=…&scope=…` →
//! `{"token"|"access_token": …}`, sent with the registry's user name and
//! password as Basic credentials when [`crate::auth`] finds some, anonymous
//! otherwise), then the request again with the token; on a
//! `WWW-Authenticate: Basic` challenge, the request again with those
//! credentials (never over plain HTTP to a host not listed insecure);
//! `ETag`s remembered per page and sent back as `If-None-Match`, so an
//! unchanged listing costs a `304`; connection errors, timeouts, `429` and
//! `5xx` retried a bounded number of times with exponential backoff.
//! Registries are spoken to over HTTPS, except hosts listed as insecure
//! (a registry on loopback in tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH, LINK, WWW_AUTHENTICATE};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::auth::Credentials;

/// An image reference as windlass writes them: `host[:port]/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageName {
    pub fn parse(s: &str) -> Result<ImageName, RegistryError> {
        let bad = |why: &str| RegistryError::InvalidImage(format!("{s}: {why}"));
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no registry host"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("no registry host"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (path.to_string(), None),
        };
        if repository.is_empty() {
            return Err(bad("empty repository"));
        }
        Ok(ImageName {
            host: host.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The host serving the registry API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.host == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.host
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Hosts (as written in image names, `host[:port]`) spoken to over
    /// plain HTTP. Empty in production.
    pub insecure_hosts: Vec<String>,
    /// Tries per request (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubled after each failed try.
    pub retry_base: Duration,
    /// Page size asked for (`?n=`); `None` lets the registry choose.
    pub page_size: Option<u32>,
    /// User names and passwords, found as Podman finds them
    /// ([`Credentials::from_env`]); empty: anonymous only.
    pub credentials: Arc<Credentials>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_hosts: Vec::new(),
            attempts: 3,
            retry_base: Duration::from_millis(250),
            page_size: None,
            credentials: Arc::new(Credentials::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {0}")]
    InvalidImage(String),
    #[error("registry unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("registry answered {status} for {url}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("registry authentication failed: {0}")]
    Auth(String),
    #[error("unexpected registry response from {url}: {message}")]
    Protocol { url: String, message: String },
}

/// Remembered pages, for `If-None-Match`. Serializable so a caller can keep
/// it across runs (the agent stores it in its state directory).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagCache {
    pub pages: BTreeMap<String, CachedPage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedPage {
    pub etag: String,
    pub tags: Vec<String>,
    pub next: Option<String>,
}

/// What one listing cost (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListStats {
    pub pages: u32,
    pub not_modified: u32,
    pub token_requests: u32,
    pub retries: u32,
}

pub struct RegistryClient {
    http: reqwest::Client,
    opts: RegistryOptions,
    /// `Authorization` header values (`Bearer …`, `Basic …`) per
    /// (API host, scope), reused for later pages and listings.
    tokens: Mutex<HashMap<(String, String), String>>,
    cache: Mutex<TagCache>,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

const MAX_PAGES: u32 = 10_000;

impl RegistryClient {
    pub fn new(http: reqwest::Client, opts: RegistryOptions) -> RegistryClient {
        RegistryClient {
            http,
            opts,
            tokens: Mutex::new(HashMap::new()),
            cache: Mutex::new(TagCache::default()),
        }
    }

    pub fn with_cache(self, cache: TagCache) -> RegistryClient {
        *self.cache.lock().unwrap() = cache;
        self
    }

    pub fn cache(&self) -> TagCache {
        self.cache.lock().unwrap().clone()
    }

    fn scheme(&self, host: &str) -> &'static str {
        if self.opts.insecure_hosts.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        }
    }

    /// Every tag of `image`'s repository, in the registry's order.
    pub async fn list_tags(&self, image: &ImageName) -> Result<Vec<String>, RegistryError> {
        self.list_tags_with_stats(image).await.map(|(t, _)| t)
    }

    pub async fn list_tags_with_stats(
        &self,
        image: &ImageName,
    ) -> Result<(Vec<String>, ListStats), RegistryError> {
        let scheme = self.scheme(&image.host);
        let base = Url::parse(&format!("{scheme}://{}/", image.api_host()))
            .map_err(|e| RegistryError::InvalidImage(format!("{}: {e}", image.host)))?;
        let mut url = base
            .join(&format!("v2/{}/tags/list", image.repository))
            .map_err(|e| RegistryError::InvalidImage(format!("{}: {e}", image.repository)))?;
        if let Some(n) = self.opts.page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let scope = format!("repository:{}:pull", image.repository);
        let mut stats = ListStats::default();
        let mut tags = Vec::new();
        let mut next = Some(url);
        while let Some(page_url) = next.take() {
            stats.pages += 1;
            if stats.pages > MAX_PAGES {
                return Err(RegistryError::Protocol {
                    url: page_url.to_string(),
                    message: format!("more than {MAX_PAGES} pages"),
                });
            }
            let page = self.page(&page_url, image, &scope, &mut stats).await?;
            tags.extend(page.tags);
            next = match page.next {
                Some(link) => {
                    let u = page_url.join(&link).map_err(|e| RegistryError::Protocol {
                        url: page_url.to_string(),
                        message: format!("bad Link target {link:?}: {e}"),
                    })?;
                    if u.scheme() != page_url.scheme() || u.host_str() != page_url.host_str() {
                        return Err(RegistryError::Protocol {
                            url: page_url.to_string(),
                            message: format!("Link leaves the registry: {u}"),
                        });
                    }
                    Some(u)
                }
                None => None,
            };
        }
        Ok((tags, stats))
    }

    async fn page(
        &self,
        url: &Url,
        image: &ImageName,
        scope: &str,
        stats: &mut ListStats,
    ) -> Result<CachedPage, RegistryError> {
        let key = url.to_string();
        let cached = self.cache.lock().unwrap().pages.get(&key).cloned();
        let mut authed_once = false;
        // Where the credentials sent came from, for a refusal's message.
        let mut sent_from: Option<String> = None;
        loop {
            let token = self
                .tokens
                .lock()
                .unwrap()
                .get(&(image.api_host().to_string(), scope.to_string()))
                .cloned();
            let resp = self
                .send(stats, || {
                    let mut r = self.http.get(url.clone());
                    if let Some(t) = &token {
                        r = r.header(AUTHORIZATION, t.clone());
                    }
                    if let Some(c) = &cached {
                        r = r.header(IF_NONE_MATCH, c.etag.clone());
                    }
                    r
                })
                .await?;
            match resp.status() {
                StatusCode::NOT_MODIFIED => {
                    stats.not_modified += 1;
                    return cached.ok_or_else(|| RegistryError::Protocol {
                        url: key,
                        message: "304 without a conditional request".into(),
                    });
                }
                StatusCode::UNAUTHORIZED if !authed_once => {
                    authed_once = true;
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| {
                            RegistryError::Auth(format!("{key}: 401 without a challenge"))
                        })?
                        .to_string();
                    let (t, from) = self.authorize(&challenge, scope, image, stats).await?;
                    sent_from = from;
                    self.tokens
                        .lock()
                        .unwrap()
                        .insert((image.api_host().to_string(), scope.to_string()), t);
                    continue;
                }
                s if s.is_success() => {
                    let etag = resp
                        .headers()
                        .get(ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let next = resp
                        .headers()
                        .get_all(LINK)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(next_link);
                    let body =
                        capped_body(resp, MAX_RESPONSE_BYTES)
                            .await
                            .map_err(|e| match e {
                                BodyError::Read(message) => RegistryError::Unreachable {
                                    url: key.clone(),
                                    message,
                                },
                                BodyError::TooLarge => RegistryError::Protocol {
                                    url: key.clone(),
                                    message: format!(
                                        "tags list larger than {MAX_RESPONSE_BYTES} bytes"
                                    ),
                                },
                            })?;
                    let parsed: TagsPage =
                        serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                            url: key.clone(),
                            message: format!("tags list is not JSON: {e}"),
                        })?;
                    let page = CachedPage {
                        etag: etag.clone().unwrap_or_default(),
                        tags: parsed.tags.unwrap_or_default(),
                        next,
                    };
                    let mut cache = self.cache.lock().unwrap();
                    if etag.is_some() {
                        cache.pages.insert(key, page.clone());
                    } else {
                        cache.pages.remove(&key);
                    }
                    return Ok(page);
                }
                s => {
                    let body = capped_body(resp, 64 << 10).await.unwrap_or_default();
                    let message = String::from_utf8_lossy(&body);
                    let message: String = message.chars().take(300).collect();
                    return Err(
                        if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN {
                            let used = match &sent_from {
                                Some(from) => format!(" (with the credentials of {from})"),
                                None => String::new(),
                            };
                            RegistryError::Auth(format!("{key}: {s}{used}: {}", message.trim()))
                        } else {
                            RegistryError::Status {
                                url: key,
                                status: s.as_u16(),
                                message: message.trim().to_string(),
                            }
                        },
                    );
                }
            }
        }
    }

    /// Sends with retries on transport errors, 429 and 5xx.
    async fn send(
        &self,
        stats: &mut ListStats,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let attempts = self.opts.attempts.max(1);
        let mut delay = self.opts.retry_base;
        let mut last_err = String::new();
        let mut last_url = String::new();
        for i in 0..attempts {
            if i > 0 {
                stats.retries += 1;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            match build().send().await {
                Ok(r) => {
                    let s = r.status();
                    let retryable = s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error();
                    if retryable && i + 1 < attempts {
                        last_url = r.url().to_string();
                        last_err = s.to_string();
                        continue;
                    }
                    return Ok(r);
                }
                Err(e) => {
                    last_url = e.url().map(|u| u.to_string()).unwrap_or_default();
                    last_err = crate::error_chain(&e);
                }
            }
        }
        Err(RegistryError::Unreachable {
            url: last_url,
            message: format!("{last_err} (after {attempts} tries)"),
        })
    }

    /// The `Authorization` value answering `challenge`, and where the
    /// credentials in it came from (`None`: anonymous).
    async fn authorize(
        &self,
        challenge: &str,
        scope: &str,
        image: &ImageName,
        stats: &mut ListStats,
    ) -> Result<(String, Option<String>), RegistryError> {
        let found = self.opts.credentials.lookup(image);
        let scheme = challenge.trim().split([' ', '\t']).next().unwrap_or("");
        if scheme.eq_ignore_ascii_case("basic") {
            return match found {
                Ok(Some(c)) => Ok((c.basic_header(), Some(c.source.clone()))),
                Ok(None) => Err(RegistryError::Auth(format!(
                    "{} asks for a user name and password and none is known for {}/{} ({}; `podman login` writes one)",
                    image.host,
                    image.host,
                    image.repository,
                    self.opts.credentials.describe_search()
                ))),
                Err(why) => Err(RegistryError::Auth(format!(
                    "{} asks for a user name and password: {why}",
                    image.host
                ))),
            };
        }
        // A bearer token: with the credentials when there are usable ones
        // (a private repository), anonymous otherwise (a public one).
        let cred = found.ok().flatten();
        let token = self
            .fetch_token(
                challenge,
                scope,
                image,
                cred.map(|c| c.basic_header()),
                stats,
            )
            .await
            .map_err(|e| match (e, cred) {
                (RegistryError::Auth(m), Some(c)) => {
                    RegistryError::Auth(format!("{m} (with the credentials of {})", c.source))
                }
                (e, _) => e,
            })?;
        Ok((format!("Bearer {token}"), cred.map(|c| c.source.clone())))
    }

    async fn fetch_token(
        &self,
        challenge: &str,
        scope: &str,
        image: &ImageName,
        basic: Option<String>,
        stats: &mut ListStats,
    ) -> Result<String, RegistryError> {
        let params = parse_bearer_challenge(challenge)
            .ok_or_else(|| RegistryError::Auth(format!("unsupported challenge {challenge:?}")))?;
        let realm = params.get("realm").ok_or_else(|| {
            RegistryError::Auth(format!("challenge without realm: {challenge:?}"))
        })?;
        let mut url = Url::parse(realm)
            .map_err(|e| RegistryError::Auth(format!("bad realm {realm:?}: {e}")))?;
        if url.scheme() != "https" && self.scheme(&image.host) == "https" {
            return Err(RegistryError::Auth(format!(
                "refusing a token realm over plain http: {realm}"
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair(
                "scope",
                params.get("scope").map(String::as_str).unwrap_or(scope),
            );
        }
        stats.token_requests += 1;
        let resp = self
            .send(stats, || {
                let r = self.http.get(url.clone());
                match &basic {
                    Some(b) => r.header(AUTHORIZATION, b.clone()),
                    None => r,
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(RegistryError::Auth(format!(
                "token endpoint {url} answered {}",
                resp.status()
            )));
        }
        let body = capped_body(resp, MAX_RESPONSE_BYTES).await.map_err(|e| {
            RegistryError::Auth(format!(
                "token response from {url}: {}",
                match e {
                    BodyError::Read(m) => m,
                    BodyError::TooLarge => format!("larger than {MAX_RESPONSE_BYTES} bytes"),
                }
            ))
        })?;
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Auth(format!("token response from {url}: {e}")))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Auth(format!("token response from {url} has no token")))
    }
}

/// No tags page or token response is this large (a page of 10,000 tags
/// is about 300 kB): a registry sending more is refused, not buffered.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

enum BodyError {
    Read(String),
    TooLarge,
}

/// A response body, read chunk by chunk and refused past `cap` bytes.
async fn capped_body(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.to_string()))?
    {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Bearer k="v",k2="v2"` → map; `None` for another scheme.
pub fn parse_bearer_challenge(h: &str) -> Option<BTreeMap<String, String>> {
    let rest = h
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| h.trim().strip_prefix("bearer "))?;
    let mut out = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() {
            break;
        }
        chars.next()?; // '='
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next()? {
                    '\\' => v.push(chars.next()?),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>()
        };
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(out)
}

/// The target of a `rel="next"` link in one `Link` header value.
pub fn next_link(h: &str) -> Option<String> {
    for part in h.split(',') {
        let part = part.trim();
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let i = ImageName::parse("docker.io/library/caddy:2.8.4").unwrap();
        assert_eq!(
            (i.host.as_str(), i.repository.as_str(), i.tag.as_deref()),
            ("docker.io", "library/caddy", Some("2.8.4"))
        );
        assert_eq!(i.api_host(), "registry-1.docker.io");
        let i = ImageName::parse("localhost:5000/a/b").unwrap();
        assert_eq!((i.repository.as_str(), i.tag), ("a/b", None));
        let i = ImageName::parse("ghcr.io/x/y:1@sha256:abc").unwrap();
        assert_eq!(i.digest.as_deref(), Some("sha256:abc"));
        assert!(ImageName::parse("caddy:2").is_err());
    }

    #[test]
    fn challenges_and_links() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c["realm"], "https://auth.example/token");
        assert_eq!(c["scope"], "repository:a/b:pull,push");
        assert!(parse_bearer_challenge("Basic realm=x").is_none());
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
