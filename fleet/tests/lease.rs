//! The coordinator lease against a real nats-server (docs/design/fleet.md
//! §3): one winner of a race, takeover with a larger epoch after the
//! holder stops renewing, the old holder fenced, and the buckets surviving
//! a server restart. Lease TTL 2 s.

mod support;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use support::nats::NatsServer;
use windlass_fleet::buckets::{self, LEASE, LEASE_KEY};
use windlass_fleet::kv::Bucket;
use windlass_fleet::lease::{self, Campaign, Lease, LostReason};

const TTL: Duration = Duration::from_secs(2);

macro_rules! server {
    ($name:expr) => {
        match NatsServer::start($name) {
            Some(s) => s,
            None => return,
        }
    };
}

async fn lease_bucket(js: &jetstream::Context) -> Bucket<Lease> {
    let cfg = buckets::Config {
        lease_ttl: TTL,
        ..Default::default()
    };
    buckets::init(js, &cfg).await.unwrap();
    Bucket::open(js, LEASE).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_campaigners_exactly_one_wins() {
    let nats = server!("racing_campaigners_exactly_one_wins");
    let (_c, js) = nats.connect().await;
    let b = lease_bucket(&js).await;
    let cs: Vec<Campaign> = (0..4)
        .map(|i| Campaign::new(b.clone(), format!("c{i}"), TTL))
        .collect();
    let tries = futures_util::future::join_all(cs.iter().map(|c| c.try_acquire())).await;
    let mut won: Vec<_> = tries.into_iter().filter_map(|t| t.unwrap()).collect();
    assert_eq!(won.len(), 1, "exactly one winner");
    let leader = won.pop().unwrap();
    let epoch = leader.guard().check().unwrap();
    assert_eq!(epoch.era, lease::era(&b).await.unwrap());
    assert_eq!(lease::live_epoch(&b).await.unwrap(), Some(epoch));
    // While it renews, nobody else wins, across several TTLs.
    let other = tokio::time::timeout(3 * TTL, cs[0].campaign()).await;
    assert!(other.is_err(), "a second leader: {other:?}");
    let g = leader.guard();
    assert_eq!(g.check(), Ok(epoch), "renewals kept the lease");
    assert!(leader.revision() > epoch.rev);
    assert_eq!(lease::live_epoch(&b).await.unwrap(), Some(epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_loses_to_a_larger_epoch_and_is_fenced() {
    let nats = server!("a_holder_that_stops_renewing_loses_to_a_larger_epoch_and_is_fenced");
    let (_c, js) = nats.connect().await;
    let b = lease_bucket(&js).await;
    let a = Campaign::new(b.clone(), "a", TTL)
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let a_guard = a.guard();
    let a_epoch = a_guard.check().unwrap();
    let a_rev = a.revision();
    // As if SIGSTOPped: no more renewals.
    a.pause_renewals(true);
    let t = Instant::now();
    let bl = tokio::time::timeout(5 * TTL, Campaign::new(b.clone(), "b", TTL).campaign())
        .await
        .expect("b never won")
        .unwrap();
    let b_epoch = bl.guard().check().unwrap();
    assert!(b_epoch > a_epoch, "{b_epoch} after {a_epoch}");
    assert!(t.elapsed() >= TTL / 2, "b won after {:?}", t.elapsed());
    // a's guard ran out before b could win.
    let lost = a_guard.check().unwrap_err();
    assert_eq!((lost.epoch, lost.reason), (a_epoch, LostReason::Expired));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), a_guard.lost())
            .await
            .unwrap(),
        lost
    );
    // a wakes up: its write at its last revision is refused.
    let stale = Lease {
        holder: "a".into(),
        epoch: Some(a_epoch),
        acquired_at: 0,
        renewed_at: 0,
        ttl_ms: 2000,
        version: "test".into(),
    };
    let e = b.update(LEASE_KEY, &stale, a_rev).await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    a.pause_renewals(false);
    tokio::time::sleep(TTL / 2).await;
    assert!(a_guard.check().is_err(), "lost is for good");
    assert_eq!(lease::live_epoch(&b).await.unwrap(), Some(b_epoch));
    assert_eq!(bl.guard().check(), Ok(b_epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_finds_the_lease_taken_loses_at_once() {
    let nats = server!("a_renewal_that_finds_the_lease_taken_loses_at_once");
    let (_c, js) = nats.connect().await;
    let b = lease_bucket(&js).await;
    let a = Campaign::new(b.clone(), "a", TTL)
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let g = a.guard();
    let mut intruder = b.require(LEASE_KEY).await.unwrap().value;
    intruder.holder = "intruder".into();
    b.put(LEASE_KEY, &intruder).await.unwrap();
    let t = Instant::now();
    let lost = tokio::time::timeout(TTL, g.lost()).await.expect("not lost");
    assert_eq!(lost.reason, LostReason::Conflict);
    // Well before the validity would have run out.
    assert!(t.elapsed() < TTL / 2, "{:?}", t.elapsed());
    assert!(g.check().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_or_resigning_ends_the_lease() {
    let nats = server!("dropping_or_resigning_ends_the_lease");
    let (_c, js) = nats.connect().await;
    let b = lease_bucket(&js).await;
    let c = Campaign::new(b.clone(), "a", TTL);
    let a = c.try_acquire().await.unwrap().unwrap();
    let g = a.guard();
    let e1 = g.epoch();
    drop(a);
    assert_eq!(g.check().unwrap_err().reason, LostReason::Stopped);
    // Dropped, the lease stays until it ages out.
    assert!(c.try_acquire().await.unwrap().is_none());
    let a = tokio::time::timeout(5 * TTL, c.campaign())
        .await
        .unwrap()
        .unwrap();
    let e2 = a.epoch();
    assert!(e2 > e1);
    // Resigned, it is free at once.
    a.resign().await.unwrap();
    assert_eq!(lease::live_epoch(&b).await.unwrap(), None);
    let a = c.try_acquire().await.unwrap().expect("free after resign");
    assert!(a.epoch() > e2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_the_buckets_and_revisions() {
    let mut nats = server!("a_restarted_server_keeps_the_buckets_and_revisions");
    let cfg = buckets::Config {
        lease_ttl: TTL,
        ..Default::default()
    };
    let (era, rev) = {
        let (c, js) = nats.connect().await;
        buckets::init(&js, &cfg).await.unwrap();
        let orders: Bucket<String> = Bucket::open(&js, buckets::ORDERS).await.unwrap();
        orders.put("h1", &"one".into()).await.unwrap();
        let rev = orders.put("h2", &"two".into()).await.unwrap();
        let era = lease::era(&Bucket::<Lease>::open(&js, LEASE).await.unwrap())
            .await
            .unwrap();
        c.flush().await.unwrap();
        (era, rev)
    };
    let port = nats.port();
    nats.stop();
    nats.restart();
    assert_eq!(nats.port(), port);
    let (_c, js) = nats.connect().await;
    buckets::verify(&js, &cfg).await.unwrap();
    let orders: Bucket<String> = Bucket::open(&js, buckets::ORDERS).await.unwrap();
    let e = orders.require("h2").await.unwrap();
    assert_eq!((e.value.as_str(), e.revision), ("two", rev));
    assert_eq!(orders.put("h1", &"three".into()).await.unwrap(), rev + 1);
    let lb = Bucket::<Lease>::open(&js, LEASE).await.unwrap();
    assert_eq!(lease::era(&lb).await.unwrap(), era, "the era survives");
}
