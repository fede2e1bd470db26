//! Session expiry, judged without trusting the client's clock. Pure: time comes from an injected [`Clock`].
//!
//! A client owns a `coordination.k8s.io/v1` Lease and renews it; Systems name it in `spec.session`. The
//! controller does what Kubernetes leader election does: per Lease it remembers its *own* time when it last saw
//! the Lease renewed (its `renewTime`, holder or duration changed — or, without a `renewTime`, its
//! `resourceVersion`), and judges the Lease expired at that observed instant plus `leaseDurationSeconds`.
//!
//! - The first sighting (for instance after a controller restart) counts as a renewal, which can only delay a
//!   collection — except when the Lease was last written longer ago than `duration + tolerance` by the
//!   controller's clock: then it has already expired. "Last written" prefers the API server's own clock (the
//!   newest `managedFields[].time`, stamped by the server on every write) over the client's `renewTime`, so a
//!   client clock running behind cannot get a live session collected.
//! - Collection is terminal: once begun (the Lease annotated with [`tycho_model::ANNOTATION_COLLECTED`], or
//!   marked here), later renewals are ignored.
//! - A Lease that was seen and then disappears counts as ended; one never seen is merely missing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;

use tycho_model::ANNOTATION_COLLECTED;

/// Where the controller gets the time from; injected so that tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (for tests and simulations).
#[derive(Debug)]
pub struct ManualClock(Mutex<i64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Mutex::new(start.as_millisecond()))
    }

    /// Move the clock forward (or backward, for a negative amount) by `millis` milliseconds.
    pub fn advance_millis(&self, millis: i64) {
        if let Ok(mut t) = self.0.lock() {
            *t = t.saturating_add(millis);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let ms = self.0.lock().map(|t| *t).unwrap_or(0);
        from_millis(ms)
    }
}

/// Convert milliseconds since the epoch to a timestamp, saturating at the representable range.
pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Identifies a Lease: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey {
    /// Namespace of the Lease (and of the Systems naming it).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
}

impl LeaseKey {
    /// Build a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        LeaseKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the session logic needs to know of a Lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseView {
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `spec.renewTime` (client clock).
    pub renew_time: Option<Timestamp>,
    /// `spec.acquireTime` (client clock).
    pub acquire_time: Option<Timestamp>,
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration_seconds: Option<i32>,
    /// Newest `metadata.managedFields[].time`: when the API server last accepted a write (server clock).
    pub last_write: Option<Timestamp>,
    /// `metadata.creationTimestamp` (server clock).
    pub created: Option<Timestamp>,
    /// Whether the Lease carries the collected annotation.
    pub collected: bool,
}

impl LeaseView {
    /// Extract the view of a Lease object.
    pub fn from_lease(lease: &Lease) -> Self {
        let meta = &lease.metadata;
        let spec = lease.spec.as_ref();
        LeaseView {
            resource_version: meta.resource_version.clone(),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            acquire_time: spec.and_then(|s| s.acquire_time.as_ref()).map(|t| t.0),
            holder: spec.and_then(|s| s.holder_identity.clone()),
            duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
            last_write: meta
                .managed_fields
                .as_ref()
                .and_then(|mf| mf.iter().filter_map(|m| m.time.as_ref().map(|t| t.0)).max()),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            collected: meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ANNOTATION_COLLECTED)),
        }
    }

    /// What changes on a renewal.
    fn renewal_marker(&self) -> RenewalMarker {
        RenewalMarker {
            renew_time: self.renew_time,
            holder: self.holder.clone(),
            duration_seconds: self.duration_seconds,
            // Without a renewTime, any write counts as a sign of life.
            resource_version: if self.renew_time.is_none() {
                self.resource_version.clone()
            } else {
                None
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RenewalMarker {
    renew_time: Option<Timestamp>,
    holder: Option<String>,
    duration_seconds: Option<i32>,
    resource_version: Option<String>,
}

/// The state of a session as judged by the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Renewed in time; expires at this instant (controller clock) unless renewed again.
    Active {
        /// When the session expires without another renewal.
        expires_at: Timestamp,
    },
    /// Not renewed within its duration: to be collected.
    Expired {
        /// The instant it expired (controller clock).
        expired_at: Timestamp,
    },
    /// Collection has begun; terminal.
    Collected {
        /// When it expired, when known.
        expired_at: Option<Timestamp>,
    },
    /// Was seen, and is gone: the session ended; to be collected.
    Deleted {
        /// When the disappearance was noticed.
        noticed_at: Timestamp,
    },
    /// Never seen: the System must not start.
    Missing,
}

impl SessionState {
    /// Whether Systems of this session must be deleted.
    pub fn must_collect(&self) -> bool {
        matches!(
            self,
            SessionState::Expired { .. }
                | SessionState::Collected { .. }
                | SessionState::Deleted { .. }
        )
    }

    /// The instant the session ended, if it has.
    pub fn ended_at(&self) -> Option<Timestamp> {
        match *self {
            SessionState::Expired { expired_at } => Some(expired_at),
            SessionState::Collected { expired_at } => expired_at,
            SessionState::Deleted { noticed_at } => Some(noticed_at),
            SessionState::Active { .. } | SessionState::Missing => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    marker: RenewalMarker,
    /// Controller time of the last observed renewal (ms).
    observed_at: i64,
    /// Lease duration in ms.
    duration: i64,
    /// Set when the Lease was judged expired at first sighting (ms).
    expired_at_sighting: Option<i64>,
    /// Collection began.
    collected: bool,
    /// The collector recorded this collection (counted once, whoever noticed the mark first).
    recorded: bool,
    /// When it was judged expired, kept once collection began (ms).
    expired_at: Option<i64>,
    /// When a collected Lease was forgotten (ms): it stays as a tombstone for [`TOMBSTONE_MS`].
    forgotten_at: Option<i64>,
}

/// How long a collected session is remembered after its Lease and Systems were deleted, so the
/// reconciles that its own deletions trigger do not collect (and count) it again.
const TOMBSTONE_MS: i64 = 600_000;

impl Entry {
    fn state(&self, now: i64) -> SessionState {
        if self.collected {
            return SessionState::Collected {
                expired_at: self.expired_at.map(from_millis),
            };
        }
        if let Some(at) = self.expired_at_sighting {
            return SessionState::Expired {
                expired_at: from_millis(at),
            };
        }
        let expires = self.observed_at.saturating_add(self.duration);
        if now >= expires {
            SessionState::Expired {
                expired_at: from_millis(expires),
            }
        } else {
            SessionState::Active {
                expires_at: from_millis(expires),
            }
        }
    }
}

/// What a sighting of a Lease was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sighting {
    /// The Lease was not known before.
    First,
    /// A renewal of a known, uncollected Lease: nothing to do before the (moved) expiry instant.
    Renewed,
    /// Nothing the session logic counts changed (another edit, a deletion, or the collected mark).
    Same,
}

/// Remembers, per Lease, when the controller saw it renewed.
#[derive(Debug)]
pub struct SessionTracker {
    entries: HashMap<LeaseKey, Entry>,
    default_duration_ms: i64,
    tolerance_ms: i64,
}

impl SessionTracker {
    /// A tracker using `default_duration` for Leases without `leaseDurationSeconds`, and `tolerance` as the
    /// allowance for clock differences when judging a Lease at first sighting.
    pub fn new(default_duration: Duration, tolerance: Duration) -> Self {
        SessionTracker {
            entries: HashMap::new(),
            default_duration_ms: duration_ms(default_duration).max(1000),
            tolerance_ms: duration_ms(tolerance),
        }
    }

    /// Record a sighting of the Lease at `now` (controller clock) and return the session's state.
    pub fn observe(&mut self, key: &LeaseKey, lease: &LeaseView, now: Timestamp) -> SessionState {
        self.observe_sighting(key, lease, now).0
    }

    /// Like [`SessionTracker::observe`], also telling what kind of sighting it was.
    pub fn observe_sighting(
        &mut self,
        key: &LeaseKey,
        lease: &LeaseView,
        now: Timestamp,
    ) -> (SessionState, Sighting) {
        let now = now.as_millisecond();
        let mut sighting = if self.entries.contains_key(key) {
            Sighting::Same
        } else {
            Sighting::First
        };
        let marker = lease.renewal_marker();
        let duration = match lease.duration_seconds {
            Some(s) if s > 0 => i64::from(s) * 1000,
            _ => self.default_duration_ms,
        };
        let tolerance = self.tolerance_ms;
        let entry = self.entries.entry(key.clone()).or_insert_with(|| {
            // First sighting: counts as a renewal unless the Lease was last written too long ago.
            let last_write = lease
                .last_write
                .or(lease.renew_time)
                .or(lease.acquire_time)
                .or(lease.created)
                .map(|t| t.as_millisecond());
            let stale = last_write
                .is_some_and(|w| w.saturating_add(duration).saturating_add(tolerance) < now);
            Entry {
                marker: marker.clone(),
                observed_at: now,
                duration,
                expired_at_sighting: stale.then_some(now),
                collected: false,
                recorded: false,
                expired_at: None,
                forgotten_at: None,
            }
        });
        if !entry.collected && entry.marker != marker {
            // A renewal: accepted as long as collection has not begun, even if it came late.
            entry.marker = marker;
            entry.observed_at = now;
            entry.duration = duration;
            entry.expired_at_sighting = None;
            if sighting == Sighting::Same {
                sighting = Sighting::Renewed;
            }
        }
        if lease.collected && !entry.collected {
            entry.expired_at = entry
                .state(now)
                .ended_at()
                .map(|t| t.as_millisecond())
                .or(Some(now));
            entry.collected = true;
            sighting = Sighting::Same;
        }
        (entry.state(now), sighting)
    }

    /// The Lease was looked up and does not exist (at `now`).
    pub fn observe_missing(&mut self, key: &LeaseKey, now: Timestamp) -> SessionState {
        match self.entries.get(key) {
            Some(entry) if entry.collected => entry.state(now.as_millisecond()),
            Some(_) => SessionState::Deleted { noticed_at: now },
            None => SessionState::Missing,
        }
    }

    /// The state without a new sighting (`None` when the Lease was never seen).
    pub fn state(&self, key: &LeaseKey, now: Timestamp) -> Option<SessionState> {
        self.entries.get(key).map(|e| e.state(now.as_millisecond()))
    }

    /// Collection of the session began at `now`: from here on it stays collected. Returns true the first
    /// time it is called for the Lease (to count each collection once).
    pub fn mark_collected(&mut self, key: &LeaseKey, now: Timestamp) -> bool {
        let now = now.as_millisecond();
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            marker: RenewalMarker {
                renew_time: None,
                holder: None,
                duration_seconds: None,
                resource_version: None,
            },
            observed_at: now,
            duration: 0,
            expired_at_sighting: Some(now),
            collected: false,
            recorded: false,
            expired_at: None,
            forgotten_at: None,
        });
        if !entry.collected {
            entry.expired_at = entry
                .state(now)
                .ended_at()
                .map(|t| t.as_millisecond())
                .or(Some(now));
            entry.collected = true;
        }
        // A sighting of our own collected mark may have set `collected` first; count the collection once.
        !std::mem::replace(&mut entry.recorded, true)
    }

    /// Drop what is known of a Lease (after it was deleted, or when no System names it any more).
    /// A collected Lease is kept as a tombstone for [`TOMBSTONE_MS`], so that the reconciles set off
    /// by its own deletions see it as collected rather than collect it again; older tombstones go.
    pub fn forget(&mut self, key: &LeaseKey, now: Timestamp) {
        let now = now.as_millisecond();
        match self.entries.get_mut(key) {
            Some(entry) if entry.collected => {
                entry.forgotten_at.get_or_insert(now);
            }
            _ => {
                self.entries.remove(key);
            }
        }
        self.entries.retain(|_, e| {
            e.forgotten_at
                .is_none_or(|at| now.saturating_sub(at) < TOMBSTONE_MS)
        });
    }

    /// Whether the tracker knows this Lease.
    pub fn knows(&self, key: &LeaseKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of Leases tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no Lease is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The instant a System with `lifetime` seconds, created at `created`, expires.
pub fn lifetime_deadline(created: Timestamp, lifetime_seconds: i64) -> Timestamp {
    from_millis(
        created
            .as_millisecond()
            .saturating_add(lifetime_seconds.saturating_mul(1000)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn ts(ms: i64) -> Timestamp {
        from_millis(ms)
    }

    fn tracker() -> SessionTracker {
        SessionTracker::new(Duration::from_secs(30), Duration::from_secs(5))
    }

    fn lease(rv: &str, renew: i64, duration: Option<i32>) -> LeaseView {
        LeaseView {
            resource_version: Some(rv.into()),
            renew_time: Some(ts(renew)),
            holder: Some("client".into()),
            duration_seconds: duration,
            ..Default::default()
        }
    }

    fn key() -> LeaseKey {
        LeaseKey::new("ns", "s1")
    }

    #[test]
    fn first_sighting_counts_as_renewal() {
        let mut t = tracker();
        let s = t.observe(&key(), &lease("1", T0 - 10_000, Some(20)), ts(T0));
        assert_eq!(
            s,
            SessionState::Active {
                expires_at: ts(T0 + 20_000)
            }
        );
    }

    #[test]
    fn default_duration_is_used_when_unset() {
        let mut t = tracker();
        let s = t.observe(&key(), &lease("1", T0, None), ts(T0));
        assert_eq!(
            s,
            SessionState::Active {
                expires_at: ts(T0 + 30_000)
            }
        );
    }

    #[test]
    fn expires_exactly_at_observed_plus_duration() {
        let mut t = tracker();
        let l = lease("1", T0, Some(30));
        t.observe(&key(), &l, ts(T0));
        assert!(matches!(
            t.observe(&key(), &l, ts(T0 + 29_999)),
            SessionState::Active { .. }
        ));
        assert_eq!(
            t.observe(&key(), &l, ts(T0 + 30_000)),
            SessionState::Expired {
                expired_at: ts(T0 + 30_000)
            }
        );
    }

    #[test]
    fn renewal_moves_expiry_to_observation_time() {
        let mut t = tracker();
        t.observe(&key(), &lease("1", T0, Some(30)), ts(T0));
        // Client renews at its T0+10s; the controller sees it at T0+12s.
        let s = t.observe(&key(), &lease("2", T0 + 10_000, Some(30)), ts(T0 + 12_000));
        assert_eq!(
            s,
            SessionState::Active {
                expires_at: ts(T0 + 42_000)
            }
        );
        // Seeing the same lease again (no renewal) changes nothing.
        let s = t.observe(&key(), &lease("2", T0 + 10_000, Some(30)), ts(T0 + 20_000));
        assert_eq!(
            s,
            SessionState::Active {
                expires_at: ts(T0 + 42_000)
            }
        );
    }

    #[test]
    fn client_clock_behind_cannot_expire_early() {
        // The client's clock is 10 minutes behind: its renewTime looks ancient, but the API server stamped the
        // write just now. Only the server's clock counts at first sighting.
        let mut t = tracker();
        let mut l = lease("1", T0 - 600_000, Some(30));
        l.last_write = Some(ts(T0 - 1_000));
        assert_eq!(
            t.observe(&key(), &l, ts(T0)),
            SessionState::Active {
                expires_at: ts(T0 + 30_000)
            }
        );
        // It keeps renewing with its skewed clock; each renewal is judged by when the controller saw it.
        let mut l2 = lease("2", T0 - 590_000, Some(30));
        l2.last_write = Some(ts(T0 + 9_000));
        assert_eq!(
            t.observe(&key(), &l2, ts(T0 + 10_000)),
            SessionState::Active {
                expires_at: ts(T0 + 40_000)
            }
        );
    }

    #[test]
    fn client_clock_ahead_cannot_delay_forever() {
        // The client's clock is an hour ahead; it stops renewing. Expiry still comes duration after the
        // controller last saw a renewal.
        let mut t = tracker();
        let l = lease("1", T0 + 3_600_000, Some(30));
        t.observe(&key(), &l, ts(T0));
        assert_eq!(
            t.observe(&key(), &l, ts(T0 + 30_000)),
            SessionState::Expired {
                expired_at: ts(T0 + 30_000)
            }
        );
    }

    #[test]
    fn restart_gives_a_fresh_duration_to_recent_leases() {
        let mut before = tracker();
        let l = lease("5", T0, Some(30));
        before.observe(&key(), &l, ts(T0));
        // The controller restarts at T0+25s: a new tracker. The lease was renewed 25s ago (< 30 + 5).
        let mut after = tracker();
        assert_eq!(
            after.observe(&key(), &l, ts(T0 + 25_000)),
            SessionState::Active {
                expires_at: ts(T0 + 55_000)
            }
        );
    }

    #[test]
    fn restart_sees_stale_lease_as_already_expired() {
        let mut t = tracker();
        // Last written 36s ago with a 30s duration and 5s tolerance: expired.
        let mut l = lease("1", T0 - 36_000, Some(30));
        l.last_write = Some(ts(T0 - 36_000));
        assert_eq!(
            t.observe(&key(), &l, ts(T0)),
            SessionState::Expired { expired_at: ts(T0) }
        );
        // Within the tolerance it is not.
        let mut t = tracker();
        l.last_write = Some(ts(T0 - 34_000));
        assert!(matches!(
            t.observe(&key(), &l, ts(T0)),
            SessionState::Active { .. }
        ));
    }

    #[test]
    fn late_renewal_after_collection_resurrects_nothing() {
        let mut t = tracker();
        t.observe(&key(), &lease("1", T0, Some(30)), ts(T0));
        let expired = t.observe(&key(), &lease("1", T0, Some(30)), ts(T0 + 30_000));
        assert!(expired.must_collect());
        assert!(t.mark_collected(&key(), ts(T0 + 30_001)));
        assert!(!t.mark_collected(&key(), ts(T0 + 30_002)));
        let s = t.observe(&key(), &lease("2", T0 + 31_000, Some(30)), ts(T0 + 31_000));
        assert_eq!(
            s,
            SessionState::Collected {
                expired_at: Some(ts(T0 + 30_000))
            }
        );
        assert!(s.must_collect());
    }

    #[test]
    fn collected_annotation_is_terminal_even_for_a_new_controller() {
        let mut t = tracker();
        let mut l = lease("9", T0, Some(30));
        l.collected = true;
        let s = t.observe(&key(), &l, ts(T0));
        assert!(matches!(s, SessionState::Collected { .. }));
        // A renewal after that is ignored.
        let mut l2 = lease("10", T0 + 1_000, Some(30));
        l2.collected = true;
        assert!(matches!(
            t.observe(&key(), &l2, ts(T0 + 1_000)),
            SessionState::Collected { .. }
        ));
        // The collector still counts it once, although the sighting marked it first.
        assert!(t.mark_collected(&key(), ts(T0 + 2_000)));
        assert!(!t.mark_collected(&key(), ts(T0 + 3_000)));
    }

    #[test]
    fn late_renewal_before_collection_is_accepted() {
        let mut t = tracker();
        t.observe(&key(), &lease("1", T0, Some(30)), ts(T0));
        // Expired by the controller's clock at T0+30s, but the renewal is seen at T0+31s before collection.
        let s = t.observe(&key(), &lease("2", T0 + 31_000, Some(30)), ts(T0 + 31_000));
        assert_eq!(
            s,
            SessionState::Active {
                expires_at: ts(T0 + 61_000)
            }
        );
    }

    #[test]
    fn sightings_tell_renewals_apart() {
        let mut t = tracker();
        let l1 = lease("1", T0, Some(30));
        assert_eq!(t.observe_sighting(&key(), &l1, ts(T0)).1, Sighting::First);
        assert_eq!(
            t.observe_sighting(&key(), &l1, ts(T0 + 1)).1,
            Sighting::Same
        );
        let l2 = lease("2", T0 + 10_000, Some(30));
        assert_eq!(
            t.observe_sighting(&key(), &l2, ts(T0 + 10_000)).1,
            Sighting::Renewed
        );
        let mut l3 = l2.clone();
        l3.collected = true;
        let (state, sighting) = t.observe_sighting(&key(), &l3, ts(T0 + 11_000));
        assert_eq!(
            sighting,
            Sighting::Same,
            "the collected mark must trigger a reconcile"
        );
        assert!(state.must_collect());
    }

    #[test]
    fn deleted_versus_missing() {
        let mut t = tracker();
        assert_eq!(t.observe_missing(&key(), ts(T0)), SessionState::Missing);
        t.observe(&key(), &lease("1", T0, Some(30)), ts(T0));
        assert_eq!(
            t.observe_missing(&key(), ts(T0 + 5_000)),
            SessionState::Deleted {
                noticed_at: ts(T0 + 5_000)
            }
        );
        t.forget(&key(), ts(T0 + 5_500));
        assert_eq!(
            t.observe_missing(&key(), ts(T0 + 6_000)),
            SessionState::Missing
        );
    }

    /// Collecting a session deletes its Systems and Lease, and each deletion triggers a reconcile:
    /// the forgotten-but-collected session must read as collected and be counted once.
    #[test]
    fn a_forgotten_collected_session_is_not_collected_again() {
        let mut t = tracker();
        t.observe(&key(), &lease("1", T0, Some(30)), ts(T0));
        assert!(t.mark_collected(&key(), ts(T0 + 30_001)));
        t.forget(&key(), ts(T0 + 30_100));
        assert!(matches!(
            t.observe_missing(&key(), ts(T0 + 30_200)),
            SessionState::Collected { .. }
        ));
        assert!(!t.mark_collected(&key(), ts(T0 + 30_300)));
        // The tombstone goes after TOMBSTONE_MS (on the next forget).
        let other = LeaseKey {
            namespace: "ns".into(),
            name: "other".into(),
        };
        t.forget(&other, ts(T0 + 30_100 + TOMBSTONE_MS));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn lease_without_renew_time_renews_on_resource_version() {
        let mut t = tracker();
        let l1 = LeaseView {
            resource_version: Some("1".into()),
            duration_seconds: Some(10),
            ..Default::default()
        };
        t.observe(&key(), &l1, ts(T0));
        let l2 = LeaseView {
            resource_version: Some("2".into()),
            duration_seconds: Some(10),
            ..Default::default()
        };
        assert_eq!(
            t.observe(&key(), &l2, ts(T0 + 8_000)),
            SessionState::Active {
                expires_at: ts(T0 + 18_000)
            }
        );
    }

    #[test]
    fn thousands_of_sessions_are_independent() {
        let mut t = tracker();
        for i in 0..5_000 {
            let k = LeaseKey::new("ns", format!("s{i}"));
            t.observe(&k, &lease("1", T0, Some(30 + (i % 7))), ts(T0));
        }
        assert_eq!(t.len(), 5_000);
        let k = LeaseKey::new("ns", "s3");
        assert_eq!(
            t.state(&k, ts(T0)),
            Some(SessionState::Active {
                expires_at: ts(T0 + 33_000)
            })
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(ts(T0));
        assert_eq!(c.now(), ts(T0));
        c.advance_millis(1_500);
        assert_eq!(c.now(), ts(T0 + 1_500));
    }

    #[test]
    fn lifetime_deadline_adds_seconds() {
        assert_eq!(lifetime_deadline(ts(T0), 60), ts(T0 + 60_000));
    }
}
