//! The NATS facts the fleet design relies on (docs/design/fleet.md §0),
//! held against a real nats-server through our typed layer (`kv`,
//! `buckets`): what a lost compare-and-set, a second create, an aged-out
//! key, revisions and history look like.

mod support;

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use support::nats::NatsServer;
use windlass_fleet::buckets::{self, InitError};
use windlass_fleet::kv::{Bucket, Change, KvError};

macro_rules! server {
    ($name:expr) => {
        match NatsServer::start($name) {
            Some(s) => s,
            None => return,
        }
    };
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    history: i64,
    max_age: Duration,
) -> Bucket<String> {
    let store = js
        .create_key_value(kv::Config {
            bucket: name.to_string(),
            history,
            max_age,
            ..Default::default()
        })
        .await
        .unwrap();
    Bucket::from_store(store)
}

#[tokio::test]
async fn cas_on_a_stale_revision_is_conflict() {
    let nats = server!("cas_on_a_stale_revision_is_conflict");
    let (_c, js) = nats.connect().await;
    let b = bucket(&js, "t", 4, Duration::ZERO).await;
    let r1 = b.put("k", &"one".into()).await.unwrap();
    let r2 = b.update("k", &"two".into(), r1).await.unwrap();
    assert!(r2 > r1);
    let e = b.update("k", &"late".into(), r1).await.unwrap_err();
    assert!(
        matches!(&e, KvError::Conflict { key, expected, .. } if key == "k" && *expected == r1),
        "{e:?}"
    );
    assert!(e.to_string().contains("t/k"), "{e}");
    // The value is the winner's.
    let got = b.require("k").await.unwrap();
    assert_eq!((got.value.as_str(), got.revision), ("two", r2));
    // A key never written has no revision to match either.
    let e = b.update("none", &"x".into(), r2).await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
}

#[tokio::test]
async fn create_on_a_live_key_is_already_exists() {
    let nats = server!("create_on_a_live_key_is_already_exists");
    let (_c, js) = nats.connect().await;
    let b = bucket(&js, "t", 4, Duration::ZERO).await;
    let r1 = b.create("k", &"first".into()).await.unwrap();
    let e = b.create("k", &"second".into()).await.unwrap_err();
    assert!(
        matches!(&e, KvError::AlreadyExists { key, .. } if key == "k"),
        "{e:?}"
    );
    assert_eq!(b.require("k").await.unwrap().value, "first");
    // After a delete the key can be created again.
    b.delete("k").await.unwrap();
    assert!(b.get("k").await.unwrap().is_none());
    assert!(b.require("k").await.unwrap_err().is_not_found());
    let r2 = b.create("k", &"again".into()).await.unwrap();
    assert!(r2 > r1);
}

#[tokio::test]
async fn after_max_age_expiry_create_succeeds_again_and_no_watch_event_came() {
    let nats = server!("after_max_age_expiry_create_succeeds_again_and_no_watch_event_came");
    let (_c, js) = nats.connect().await;
    let b = bucket(&js, "t", 1, Duration::from_secs(1)).await;
    let r1 = b.create("k", &"v".into()).await.unwrap();
    let mut watch = b.watch("k").await.unwrap();
    assert!(
        b.create("k", &"v".into())
            .await
            .unwrap_err()
            .is_already_exists()
    );
    let t = std::time::Instant::now();
    while b.get("k").await.unwrap().is_some() {
        assert!(t.elapsed() < Duration::from_secs(10), "k never aged out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // On the 2.10 floor the expiry is silent: the watcher sees nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), watch.next())
            .await
            .is_err(),
        "a watch event on expiry: the server is newer than the floor?"
    );
    let r2 = b.create("k", &"w".into()).await.unwrap();
    assert!(r2 > r1);
    // The watcher was alive all along: it sees the new value.
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
        Ok(Some(Ok(Change::Put(e)))) => assert_eq!((e.value.as_str(), e.revision), ("w", r2)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn revisions_grow_across_keys_of_a_bucket() {
    let nats = server!("revisions_grow_across_keys_of_a_bucket");
    let (_c, js) = nats.connect().await;
    let b = bucket(&js, "t", 1, Duration::ZERO).await;
    let mut revs = Vec::new();
    for k in ["a", "b", "a", "c", "b"] {
        revs.push(b.put(k, &k.to_string()).await.unwrap());
    }
    // One counter for the bucket (the stream sequence), not one per key.
    assert_eq!(revs, [1, 2, 3, 4, 5]);
    let other = bucket(&js, "u", 1, Duration::ZERO).await;
    assert_eq!(other.put("a", &"x".into()).await.unwrap(), 1);
    let now = SystemTime::now();
    let e = b.require("a").await.unwrap();
    assert_eq!(e.revision, 3);
    let age = now.duration_since(e.created).unwrap_or_default();
    assert!(age < Duration::from_secs(30), "created {:?}", e.created);
    assert_eq!(b.keys().await.unwrap(), ["a", "b", "c"]);
}

#[tokio::test]
async fn history_is_kept_per_key_up_to_the_bucket_history() {
    let nats = server!("history_is_kept_per_key_up_to_the_bucket_history");
    let (_c, js) = nats.connect().await;
    let b = bucket(&js, "t", 3, Duration::ZERO).await;
    for i in 0..5 {
        b.put("k", &format!("k{i}")).await.unwrap();
        if i == 2 {
            b.put("j", &"j".into()).await.unwrap();
        }
    }
    let h: Vec<(String, u64)> = b
        .history("k")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.value, e.revision))
        .collect();
    assert_eq!(
        h,
        [("k2".into(), 3), ("k3".into(), 5), ("k4".into(), 6)],
        "the last 3 of k, with their own revisions"
    );
    assert_eq!(b.history("j").await.unwrap().len(), 1);
    assert!(b.history("never").await.unwrap().is_empty());
}

#[tokio::test]
async fn foreign_values_are_decode_errors_and_bad_keys_are_refused() {
    let nats = server!("foreign_values_are_decode_errors_and_bad_keys_are_refused");
    let (_c, js) = nats.connect().await;
    let b = bucket(&js, "t", 1, Duration::ZERO).await;
    let rev = b.store().put("k", "not json".into()).await.unwrap();
    match b.get("k").await.unwrap_err() {
        KvError::Decode { key, revision, .. } => assert_eq!((key.as_str(), revision), ("k", rev)),
        e => panic!("{e:?}"),
    }
    for bad in ["", "a b", ".a", "a.", "a..b", "a*", ">"] {
        let e = b.put(bad, &"x".into()).await.unwrap_err();
        assert!(matches!(e, KvError::InvalidKey { .. }), "{bad:?}: {e:?}");
    }
    let e = Bucket::<String>::open(&js, "missing").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.to_string(), "bucket missing does not exist");
}

#[tokio::test]
async fn init_creates_the_buckets_and_refuses_other_configs() {
    let nats = server!("init_creates_the_buckets_and_refuses_other_configs");
    let (_c, js) = nats.connect().await;
    let cfg = buckets::Config {
        lease_ttl: Duration::from_secs(2),
        ..Default::default()
    };
    let e = buckets::verify(&js, &cfg).await.unwrap_err();
    assert!(matches!(&e, InitError::Kv(k) if k.is_not_found()), "{e:?}");
    buckets::init(&js, &cfg).await.unwrap();
    // Again: nothing to do.
    buckets::init(&js, &cfg).await.unwrap();
    buckets::verify(&js, &cfg).await.unwrap();
    for name in [
        buckets::LEASE,
        buckets::HOSTS,
        buckets::ROLLOUTS,
        buckets::ORDERS,
        buckets::RESULTS,
    ] {
        Bucket::<serde_json::Value>::open(&js, name).await.unwrap();
    }
    // A coordinator with another TTL must not use this lease bucket.
    let other = buckets::Config {
        lease_ttl: Duration::from_secs(10),
        ..cfg.clone()
    };
    for e in [
        buckets::init(&js, &other).await.unwrap_err(),
        buckets::verify(&js, &other).await.unwrap_err(),
    ] {
        let text = e.to_string();
        assert!(
            matches!(&e, InitError::Mismatch { bucket, .. } if bucket == buckets::LEASE),
            "{e:?}"
        );
        assert!(text.contains("max_age 2s, expected 10s"), "{text}");
    }
    // A bucket made by hand with another history is refused too.
    js.delete_key_value(buckets::ORDERS).await.unwrap();
    bucket(&js, buckets::ORDERS, 2, Duration::ZERO).await;
    let text = buckets::init(&js, &cfg).await.unwrap_err().to_string();
    assert!(
        text.contains("windlass-orders") && text.contains("history 2, expected 8"),
        "{text}"
    );
}

#[tokio::test]
async fn the_test_server_takes_an_auth_config() {
    let Some(nats) = NatsServer::start_with(
        "the_test_server_takes_an_auth_config",
        r#"authorization { users = [ { user: "admin", password: "s3cret" } ] }"#,
    ) else {
        return;
    };
    let refused =
        tokio::time::timeout(Duration::from_secs(5), async_nats::connect(nats.url())).await;
    assert!(matches!(refused, Ok(Err(_))), "no user: {refused:?}");
    let client =
        async_nats::ConnectOptions::with_user_and_password("admin".into(), "s3cret".into())
            .connect(nats.url())
            .await
            .unwrap();
    let js = jetstream::new(client);
    let b = bucket(&js, "t", 1, Duration::ZERO).await;
    assert_eq!(b.put("k", &"v".into()).await.unwrap(), 1);
}
