//! A typed layer over one JetStream key-value bucket: values are JSON of
//! one serde type, and every failure the fleet acts on is a variant of
//! [`KvError`] instead of an async-nats error kind:
//!
//! - [`KvError::Conflict`]: `update` at a revision that is not the key's
//!   last (another writer came first, or the key expired or was deleted);
//! - [`KvError::AlreadyExists`]: `create` of a key that has a live value;
//! - [`KvError::NotFound`]: the bucket does not exist, or `require` of a
//!   key without a live value;
//! - [`KvError::Transport`]: the server could not be asked or did not
//!   answer (timeouts, no responders, I/O), with the operation named;
//! - [`KvError::Decode`] / [`KvError::Encode`]: a value is not our JSON;
//! - [`KvError::InvalidKey`]: a key NATS refuses (key builders in
//!   `buckets` never make one).
//!
//! Revisions are stream sequences: one counter for the whole bucket.

use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("{bucket}/{key}: conflict: the key's last revision is not {expected}")]
    Conflict {
        bucket: String,
        key: String,
        expected: u64,
    },
    #[error("{bucket}/{key}: already exists")]
    AlreadyExists { bucket: String, key: String },
    /// `key` is empty when the bucket itself is missing.
    #[error("{}", not_found(bucket, key))]
    NotFound { bucket: String, key: String },
    #[error("{bucket}: invalid key {key:?}")]
    InvalidKey { bucket: String, key: String },
    #[error("{bucket}: {op} failed: {source}")]
    Transport {
        bucket: String,
        op: &'static str,
        #[source]
        source: Source,
    },
    #[error("{bucket}/{key} at revision {revision}: not a valid value: {source}")]
    Decode {
        bucket: String,
        key: String,
        revision: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("{bucket}/{key}: cannot encode the value: {source}")]
    Encode {
        bucket: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

fn not_found(bucket: &str, key: &str) -> String {
    if key.is_empty() {
        format!("bucket {bucket} does not exist")
    } else {
        format!("{bucket}/{key}: not found")
    }
}

impl KvError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, KvError::Conflict { .. })
    }
    pub fn is_already_exists(&self) -> bool {
        matches!(self, KvError::AlreadyExists { .. })
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, KvError::NotFound { .. })
    }
    pub fn is_transport(&self) -> bool {
        matches!(self, KvError::Transport { .. })
    }
}

/// One live value of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    pub key: String,
    pub value: T,
    /// The stream sequence of the write: what `update` takes.
    pub revision: u64,
    /// The server's time of the write.
    pub created: SystemTime,
}

/// What a watch sees: a new value, or a delete/purge marker. (On the 2.10
/// floor a key removed by `max_age` yields nothing at all.)
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    Put(Entry<T>),
    Deleted { key: String, revision: u64 },
}

pub type Watch<T> = Pin<Box<dyn Stream<Item = Result<Change<T>, KvError>> + Send>>;

/// A bucket whose values are JSON of `T`.
pub struct Bucket<T> {
    store: kv::Store,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Bucket {
            store: self.store.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Bucket<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.store.name)
            .finish()
    }
}

/// Nanoseconds since the Unix epoch as a `SystemTime` (async-nats gives
/// server times as the `time` crate's `OffsetDateTime`).
fn system_time(unix_ns: i128) -> SystemTime {
    let ns = u64::try_from(unix_ns.max(0)).unwrap_or(u64::MAX);
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

impl<T: Serialize + DeserializeOwned> Bucket<T> {
    /// Opens an existing bucket (one `STREAM.INFO`); a missing one is
    /// `NotFound` with an empty key.
    pub async fn open(js: &jetstream::Context, name: &str) -> Result<Self, KvError> {
        match js.get_stream(format!("KV_{name}")).await {
            Ok(_) => {}
            Err(e) => return Err(stream_error(name, "open", e)),
        }
        let store = js
            .get_key_value(name)
            .await
            .map_err(|e| transport(name, "open", e))?;
        Ok(Bucket::from_store(store))
    }

    pub fn from_store(store: kv::Store) -> Self {
        Bucket {
            store,
            _t: PhantomData,
        }
    }

    pub fn name(&self) -> &str {
        &self.store.name
    }

    /// The async-nats store, for what this layer does not cover.
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    fn encode(&self, key: &str, value: &T) -> Result<Vec<u8>, KvError> {
        serde_json::to_vec(value).map_err(|source| KvError::Encode {
            bucket: self.name().to_string(),
            key: key.to_string(),
            source,
        })
    }

    fn decode(&self, e: kv::Entry) -> Result<Entry<T>, KvError> {
        let value = serde_json::from_slice(&e.value).map_err(|source| KvError::Decode {
            bucket: self.name().to_string(),
            key: e.key.clone(),
            revision: e.revision,
            source,
        })?;
        Ok(Entry {
            key: e.key,
            value,
            revision: e.revision,
            created: system_time(e.created.unix_timestamp_nanos()),
        })
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        let ok = !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && !key.contains("..")
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-/_=.".contains(&c));
        if ok {
            Ok(())
        } else {
            Err(KvError::InvalidKey {
                bucket: self.name().to_string(),
                key: key.to_string(),
            })
        }
    }

    /// The key's live value; `None` when it has none (never written,
    /// deleted, purged, or aged out).
    pub async fn get(&self, key: &str) -> Result<Option<Entry<T>>, KvError> {
        self.check_key(key)?;
        let e = self
            .store
            .entry(key)
            .await
            .map_err(|e| transport(self.name(), "get", e))?;
        match e {
            Some(e) if e.operation == kv::Operation::Put => self.decode(e).map(Some),
            _ => Ok(None),
        }
    }

    /// Like `get`, but a missing value is `NotFound`.
    pub async fn require(&self, key: &str) -> Result<Entry<T>, KvError> {
        self.get(key).await?.ok_or_else(|| KvError::NotFound {
            bucket: self.name().to_string(),
            key: key.to_string(),
        })
    }

    /// Writes `value` only if the key has no live value; the revision of
    /// the write. `AlreadyExists` otherwise.
    pub async fn create(&self, key: &str, value: &T) -> Result<u64, KvError> {
        self.check_key(key)?;
        let bytes = self.encode(key, value)?;
        self.store
            .create(key, bytes.into())
            .await
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => KvError::AlreadyExists {
                    bucket: self.name().to_string(),
                    key: key.to_string(),
                },
                kv::CreateErrorKind::InvalidKey => KvError::InvalidKey {
                    bucket: self.name().to_string(),
                    key: key.to_string(),
                },
                _ => transport(self.name(), "create", e),
            })
    }

    /// Writes `value` only if `revision` is the key's last revision
    /// (compare-and-set); the revision of the write. `Conflict` otherwise.
    pub async fn update(&self, key: &str, value: &T, revision: u64) -> Result<u64, KvError> {
        self.check_key(key)?;
        let bytes = self.encode(key, value)?;
        self.store
            .update(key, bytes.into(), revision)
            .await
            .map_err(|e| update_error(self.name(), key, revision, "update", e))
    }

    /// Writes `value` unconditionally; the revision of the write.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, KvError> {
        self.check_key(key)?;
        let bytes = self.encode(key, value)?;
        self.store
            .put(key, bytes.into())
            .await
            .map_err(|e| match e.kind() {
                kv::PutErrorKind::InvalidKey => KvError::InvalidKey {
                    bucket: self.name().to_string(),
                    key: key.to_string(),
                },
                _ => transport(self.name(), "put", e),
            })
    }

    /// Puts a delete marker (the key's history is kept).
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.check_key(key)?;
        self.store
            .delete(key)
            .await
            .map_err(|e| update_error(self.name(), key, 0, "delete", e))
    }

    /// Puts a delete marker only if `revision` is the key's last.
    pub async fn delete_at(&self, key: &str, revision: u64) -> Result<(), KvError> {
        self.check_key(key)?;
        self.store
            .delete_expect_revision(key, Some(revision))
            .await
            .map_err(|e| update_error(self.name(), key, revision, "delete", e))
    }

    /// Every key with a live value, sorted.
    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|e| transport(self.name(), "keys", e))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            out.push(k.map_err(|e| transport(self.name(), "keys", e))?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The values the bucket still keeps for `key` (up to its history),
    /// oldest first; delete and purge markers are left out.
    pub async fn history(&self, key: &str) -> Result<Vec<Entry<T>>, KvError> {
        self.check_key(key)?;
        // async-nats' history stream never ends for a key without any
        // message, so look first.
        if self
            .store
            .entry(key)
            .await
            .map_err(|e| transport(self.name(), "history", e))?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let mut h = self
            .store
            .history(key)
            .await
            .map_err(|e| transport(self.name(), "history", e))?;
        let mut out = Vec::new();
        while let Some(e) = h.next().await {
            let e = e.map_err(|e| transport(self.name(), "history", e))?;
            if e.operation == kv::Operation::Put {
                out.push(self.decode(e)?);
            }
        }
        Ok(out)
    }

    /// Changes of `pattern` (one key, or `prefix.>` / `*` wildcards) from
    /// now on. An ordered push consumer: it wakes every 5 s when idle
    /// (async-nats' fixed idle heartbeat), so fleetd does not use it.
    pub async fn watch(&self, pattern: &str) -> Result<Watch<T>, KvError>
    where
        T: Send + 'static,
    {
        let w = self
            .store
            .watch(pattern)
            .await
            .map_err(|e| transport(self.name(), "watch", e))?;
        let me = self.clone();
        Ok(Box::pin(w.map(move |e| {
            let e = e.map_err(|e| transport(me.name(), "watch", e))?;
            match e.operation {
                kv::Operation::Put => me.decode(e).map(Change::Put),
                _ => Ok(Change::Deleted {
                    key: e.key,
                    revision: e.revision,
                }),
            }
        })))
    }
}

fn transport(
    bucket: &str,
    op: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> KvError {
    KvError::Transport {
        bucket: bucket.to_string(),
        op,
        source: Box::new(e),
    }
}

fn update_error(
    bucket: &str,
    key: &str,
    expected: u64,
    op: &'static str,
    e: kv::UpdateError,
) -> KvError {
    match e.kind() {
        kv::UpdateErrorKind::WrongLastRevision => KvError::Conflict {
            bucket: bucket.to_string(),
            key: key.to_string(),
            expected,
        },
        kv::UpdateErrorKind::InvalidKey => KvError::InvalidKey {
            bucket: bucket.to_string(),
            key: key.to_string(),
        },
        _ => transport(bucket, op, e),
    }
}

/// A stream lookup's error: "stream not found" is the bucket missing.
pub(crate) fn stream_error(
    bucket: &str,
    op: &'static str,
    e: jetstream::context::GetStreamError,
) -> KvError {
    if let jetstream::context::GetStreamErrorKind::JetStream(j) = e.kind()
        && j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    {
        return KvError::NotFound {
            bucket: bucket.to_string(),
            key: String::new(),
        };
    }
    transport(bucket, op, e)
}
