//! The coordinator lease (docs/design/fleet.md §3): at most one
//! coordinator writes orders and rollout states at a time, and every write
//! carries the [`Epoch`] of its term.
//!
//! - The lease is the key `coordinator` of the bucket `windlass-lease`
//!   (history 1, `max_age` = the lease TTL): it exists only while its
//!   holder renews it.
//! - **Campaign**: `create("coordinator")`. The winner's epoch is
//!   `{era: the lease stream's creation time in ns, rev: the revision of
//!   the winning create}`, written into the lease by an immediate
//!   compare-and-set update (the create cannot carry its own revision;
//!   until then the lease's `epoch` is `null`, which no order matches).
//!   A loser (`AlreadyExists`) sleeps TTL/2 and tries again; it does not
//!   watch (on the 2.10 floor expiry makes no watch event).
//! - **Hold**: renew every TTL/3 with `update(key, lease, last_revision)`.
//!   [`LeaseGuard`] holds `valid_until = (instant before the renewal was
//!   sent) + TTL − TTL/3` on the monotonic clock; the write paths call
//!   [`LeaseGuard::check`] right before each write.
//! - **Lose**: a renewal answered `Conflict` (the key expired and someone
//!   else won, or it was overwritten), or no renewal succeeding before
//!   `valid_until`, ends leadership at once and for good: the guard fails
//!   from then on; a new campaign gets a new, larger epoch.
//!
//! [`may_execute`] is the host side (§3.4): the pure decision whether
//! fleetd runs, parks or ignores an order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::buckets::LEASE_KEY;
use crate::kv::{Bucket, KvError};
use crate::model::Epoch;

/// The value of `windlass-lease/coordinator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (`<hostname>:<pid>`), for operators.
    pub holder: String,
    /// `None` only between the winning create and the update that writes
    /// the epoch.
    pub epoch: Option<Epoch>,
    /// Unix milliseconds, as every `*_at` of the fleet's records.
    pub acquired_at: u64,
    pub renewed_at: u64,
    pub ttl_ms: u64,
    /// The coordinator's version.
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// No renewal succeeded before the guard's validity ran out.
    Expired,
    /// A renewal found the key at another revision: someone else holds it.
    Conflict,
    /// The holder stopped (its `Leadership` was dropped or resigned).
    Stopped,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LostReason::Expired => "no renewal succeeded in time",
            LostReason::Conflict => "a renewal found the lease taken",
            LostReason::Stopped => "the holder stopped",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the coordinator lease of epoch {epoch} is lost: {reason}")]
pub struct Lost {
    pub epoch: Epoch,
    pub reason: LostReason,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    Lost(#[from] Lost),
}

struct State {
    valid_until: Instant,
    revision: u64,
    lost: Option<LostReason>,
    paused: bool,
}

struct Shared {
    epoch: Epoch,
    ttl: Duration,
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lose(&self, reason: LostReason) {
        let mut st = self.state();
        if st.lost.is_none() {
            st.lost = Some(reason);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// How long a renewal sent at `sent` keeps the lease valid for us.
    fn validity(&self) -> Duration {
        self.ttl - self.ttl / 3
    }
}

/// The proof of leadership every write path checks. Cheap to clone.
#[derive(Clone)]
pub struct LeaseGuard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("epoch", &self.shared.epoch)
            .field("check", &self.check())
            .finish()
    }
}

impl LeaseGuard {
    pub fn epoch(&self) -> Epoch {
        self.shared.epoch
    }

    /// `Ok(epoch)` while the lease is ours: no renewal got `Conflict` and
    /// `valid_until` has not passed. Once it fails it always fails.
    pub fn check(&self) -> Result<Epoch, Lost> {
        let mut st = self.shared.state();
        if st.lost.is_none() && Instant::now() >= st.valid_until {
            st.lost = Some(LostReason::Expired);
        }
        match st.lost {
            None => Ok(self.shared.epoch),
            Some(reason) => Err(Lost {
                epoch: self.shared.epoch,
                reason,
            }),
        }
    }

    /// Resolves when the lease is lost (for cancelling the drive task).
    pub async fn lost(&self) -> Lost {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Err(l) = self.check() {
                return l;
            }
            let until = self.shared.state().valid_until;
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }
}

/// A won lease with its renewal task. Dropping it stops renewing and
/// makes its guards fail at once.
pub struct Leadership {
    shared: Arc<Shared>,
    bucket: Bucket<Lease>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("epoch", &self.shared.epoch)
            .finish()
    }
}

impl Leadership {
    pub fn guard(&self) -> LeaseGuard {
        LeaseGuard {
            shared: self.shared.clone(),
        }
    }

    pub fn epoch(&self) -> Epoch {
        self.shared.epoch
    }

    /// The lease key's revision as of our last successful write.
    pub fn revision(&self) -> u64 {
        self.shared.state().revision
    }

    /// Fault injection: while paused the renewal task sends nothing, as if
    /// the process were stopped (the guard still runs out on time).
    pub fn pause_renewals(&self, paused: bool) {
        self.shared.state().paused = paused;
        self.shared.changed.notify_waiters();
    }

    /// Stops renewing and deletes the lease (at our revision), so that the
    /// next campaigner wins at once instead of after the TTL.
    pub async fn resign(self) -> Result<(), LeaseError> {
        self.task.abort();
        let rev = self.revision();
        let was_ours = self.guard().check().is_ok();
        self.shared.lose(LostReason::Stopped);
        if was_ours {
            self.bucket.delete_at(LEASE_KEY, rev).await?;
        }
        Ok(())
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.lose(LostReason::Stopped);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The lease stream's creation time in ns: the `era` of every epoch won
/// on this bucket (fresh `STREAM.INFO`, not a cached one).
pub async fn era(bucket: &Bucket<Lease>) -> Result<u64, KvError> {
    let info = bucket
        .store()
        .stream
        .get_info()
        .await
        .map_err(|e| KvError::Transport {
            bucket: bucket.name().to_string(),
            op: "stream info",
            source: Box::new(e),
        })?;
    Ok(u64::try_from(info.created.unix_timestamp_nanos().max(0)).unwrap_or(u64::MAX))
}

/// The epoch of the live lease, read fresh: `None` when nobody holds it
/// (or the holder has not written its epoch yet). What fleetd compares
/// an order's epoch with.
pub async fn live_epoch(bucket: &Bucket<Lease>) -> Result<Option<Epoch>, KvError> {
    Ok(bucket.get(LEASE_KEY).await?.and_then(|e| e.value.epoch))
}

/// One coordinator's candidacy.
#[derive(Debug, Clone)]
pub struct Campaign {
    bucket: Bucket<Lease>,
    holder: String,
    ttl: Duration,
}

impl Campaign {
    /// `ttl` must be the lease bucket's `max_age` (`buckets::init` makes
    /// it so, and refuses a bucket with another).
    pub fn new(bucket: Bucket<Lease>, holder: impl Into<String>, ttl: Duration) -> Self {
        Campaign {
            bucket,
            holder: holder.into(),
            ttl,
        }
    }

    /// One attempt: `Some` when we won.
    pub async fn try_acquire(&self) -> Result<Option<Leadership>, LeaseError> {
        let era = era(&self.bucket).await?;
        let now = unix_now();
        let mut lease = Lease {
            holder: self.holder.clone(),
            epoch: None,
            acquired_at: now,
            renewed_at: now,
            ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let rev0 = match self.bucket.create(LEASE_KEY, &lease).await {
            Ok(r) => r,
            Err(e) if e.is_already_exists() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let epoch = Epoch { era, rev: rev0 };
        let shared = Arc::new(Shared {
            epoch,
            ttl: self.ttl,
            state: Mutex::new(State {
                valid_until: Instant::now(),
                revision: rev0,
                lost: None,
                paused: false,
            }),
            changed: Notify::new(),
        });
        lease.epoch = Some(epoch);
        let sent = Instant::now();
        let rev1 = match self.bucket.update(LEASE_KEY, &lease, rev0).await {
            Ok(r) => r,
            Err(e) if e.is_conflict() => {
                return Err(Lost {
                    epoch,
                    reason: LostReason::Conflict,
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        {
            let mut st = shared.state();
            st.revision = rev1;
            st.valid_until = sent + shared.validity();
        }
        let task = tokio::spawn(renew(self.bucket.clone(), shared.clone(), lease, sent));
        Ok(Some(Leadership {
            shared,
            bucket: self.bucket.clone(),
            task,
        }))
    }

    /// Tries until it wins: every TTL/2 while the lease is held, and
    /// after a transport error.
    pub async fn campaign(&self) -> Result<Leadership, LeaseError> {
        loop {
            match self.try_acquire().await {
                Ok(Some(l)) => return Ok(l),
                Ok(None) => {}
                Err(LeaseError::Kv(e)) if e.is_transport() => {
                    tracing::warn!("lease campaign: {e}");
                }
                Err(LeaseError::Lost(l)) => {
                    tracing::warn!("lease campaign: {l}");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.ttl / 2).await;
        }
    }
}

/// The renewal task: an update by revision every TTL/3 (counted from the
/// previous send) until the lease is lost.
async fn renew(bucket: Bucket<Lease>, shared: Arc<Shared>, mut lease: Lease, mut sent: Instant) {
    let period = shared.ttl / 3;
    loop {
        tokio::time::sleep_until((sent + period).into()).await;
        let (rev, valid_until, paused, lost) = {
            let st = shared.state();
            (st.revision, st.valid_until, st.paused, st.lost)
        };
        if lost.is_some() {
            return;
        }
        if paused {
            sent += period;
            continue;
        }
        let now = Instant::now();
        if now >= valid_until {
            shared.lose(LostReason::Expired);
            return;
        }
        sent = now;
        lease.renewed_at = unix_now();
        match bucket.update(LEASE_KEY, &lease, rev).await {
            Ok(r) => {
                let mut st = shared.state();
                st.revision = r;
                let until = sent + shared.validity();
                if until > st.valid_until {
                    st.valid_until = until;
                }
            }
            Err(e) if e.is_conflict() => {
                shared.lose(LostReason::Conflict);
                return;
            }
            // The guard runs out on its own if this goes on.
            Err(e) => tracing::warn!("lease renewal: {e}"),
        }
    }
}

/// What fleetd does with an order (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run it now.
    Execute,
    /// Neither run nor acknowledge it: its epoch is not the live lease's
    /// (or no lease is live). A takeover rewrites it with the live epoch,
    /// which arrives as a new message and is judged again.
    Park,
    /// Never run it: its epoch is older than one already obeyed, or it is
    /// a replay of an order already done.
    Ignore,
}

/// The parts of an order the fence looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderStamp {
    pub epoch: Epoch,
    pub seq: u64,
    /// It is the order fleetd persisted as in progress (a restart resumes
    /// it; windlassd's request id keeps that from switching twice).
    pub in_progress: bool,
}

/// The host-side fence: `state_max_epoch` and `last_seq` are fleetd's
/// persisted state, `live_lease` the epoch of a fresh read of the lease
/// (`None`: no live lease). Execute only if the order's epoch is not
/// older than any obeyed, it is new (or the one in progress), and it is
/// the live lease's epoch.
pub fn may_execute(
    state_max_epoch: Option<Epoch>,
    last_seq: u64,
    order: OrderStamp,
    live_lease: Option<Epoch>,
) -> Verdict {
    if state_max_epoch.is_some_and(|max| order.epoch < max) {
        return Verdict::Ignore;
    }
    if order.seq <= last_seq && !order.in_progress {
        return Verdict::Ignore;
    }
    if live_lease != Some(order.epoch) {
        return Verdict::Park;
    }
    Verdict::Execute
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: Epoch = Epoch { era: 5, rev: 10 };
    const E2: Epoch = Epoch { era: 5, rev: 20 };
    const E3: Epoch = Epoch { era: 6, rev: 1 };

    fn order(epoch: Epoch, seq: u64) -> OrderStamp {
        OrderStamp {
            epoch,
            seq,
            in_progress: false,
        }
    }

    #[test]
    fn a_new_order_of_the_live_epoch_executes() {
        assert_eq!(
            may_execute(None, 0, order(E1, 1), Some(E1)),
            Verdict::Execute
        );
        assert_eq!(
            may_execute(Some(E1), 3, order(E1, 4), Some(E1)),
            Verdict::Execute
        );
        // A newer epoch than any seen, once it is the live one.
        assert_eq!(
            may_execute(Some(E1), 3, order(E2, 4), Some(E2)),
            Verdict::Execute
        );
    }

    #[test]
    fn an_order_of_an_older_epoch_than_obeyed_is_ignored_for_good() {
        for live in [None, Some(E1), Some(E2)] {
            assert_eq!(
                may_execute(Some(E2), 3, order(E1, 9), live),
                Verdict::Ignore,
                "{live:?}"
            );
        }
        // Era dominates: a bucket re-created later has larger epochs.
        assert_eq!(
            may_execute(Some(E3), 0, order(E2, 1), Some(E2)),
            Verdict::Ignore
        );
    }

    #[test]
    fn an_order_whose_epoch_is_not_the_live_lease_is_parked() {
        // No lease, or the lease holder has not written its epoch.
        assert_eq!(may_execute(None, 0, order(E1, 1), None), Verdict::Park);
        // A newer coordinator holds the lease: the old one's order waits
        // for the takeover to rewrite it.
        assert_eq!(
            may_execute(Some(E1), 0, order(E1, 1), Some(E2)),
            Verdict::Park
        );
        // An order newer than the lease we read (it is lagging): park too.
        assert_eq!(
            may_execute(Some(E1), 0, order(E2, 1), Some(E1)),
            Verdict::Park
        );
    }

    #[test]
    fn replays_are_ignored_unless_in_progress() {
        assert_eq!(
            may_execute(Some(E1), 4, order(E1, 4), Some(E1)),
            Verdict::Ignore
        );
        assert_eq!(
            may_execute(Some(E1), 4, order(E1, 2), Some(E1)),
            Verdict::Ignore
        );
        let resumed = OrderStamp {
            in_progress: true,
            ..order(E1, 4)
        };
        assert_eq!(
            may_execute(Some(E1), 3, resumed, Some(E1)),
            Verdict::Execute
        );
        // In progress under an epoch that is no longer live: park.
        assert_eq!(may_execute(Some(E1), 3, resumed, Some(E2)), Verdict::Park);
    }

    #[test]
    fn lease_json_matches_the_design() {
        let l = Lease {
            holder: "ops1:4242".into(),
            epoch: Some(Epoch {
                era: 1750400000123456789,
                rev: 812,
            }),
            acquired_at: 1750412300000,
            renewed_at: 1750412345000,
            ttl_ms: 10000,
            version: "0.2.0".into(),
        };
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(
            j,
            r#"{"holder":"ops1:4242","epoch":{"era":1750400000123456789,"rev":812},"acquired_at":1750412300000,"renewed_at":1750412345000,"ttl_ms":10000,"version":"0.2.0"}"#
        );
        assert_eq!(serde_json::from_str::<Lease>(&j).unwrap(), l);
    }
}
