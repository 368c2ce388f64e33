//! `known_at` replays: kept, shared, and bounded in what they may cost.
//!
//! A question with `known_at = K` is answered from a replay of the events
//! recorded by K. Events are recorded a block at a time, so the blocks a
//! replay takes are those whose `recorded_at` is at most K, and two values of
//! K between the same two blocks' stamps take the same blocks. A replay is
//! therefore keyed by its [`ReplayKey`]: the latest stamp at or before K and
//! how many events carry such stamps. A client varying K by a nanosecond gets
//! the kept replay; a key stays valid while the log grows, since blocks are
//! never rewritten (a block stamped at or before the key's instant, after a
//! wall clock stepped back, changes the count and so the key).
//!
//! What a replay costs is bounded three ways: replays fold one at a time (a
//! semaphore held by the folding task), at most
//! [`Limits::max_pending_replays`](crate::Limits) distinct replays are queued
//! or folding (more get a 503), and each caller (the operator, or a seller's
//! shop) has at most [`Limits::max_replays_per_caller`](crate::Limits) of them
//! (more get a 429). Questions for a key being folded wait for that fold
//! instead of starting another. Readers of the live projection never wait for
//! any of this.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use penalty_core::UnixNs;
use penalty_store::projection::Projection;
use tokio::sync::watch;

use crate::error::ApiError;

/// Which events a `known_at` replay holds: those recorded at or before
/// `through` (none when `None`), `events` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    /// The latest block stamp at or before `known_at`.
    pub through: Option<UnixNs>,
    /// How many events carry a stamp at or before `through`.
    pub events: u64,
}

impl ReplayKey {
    /// The `known_at` to fold with: the key's own instant, so that the fold
    /// takes exactly the key's blocks.
    pub fn known_at(&self) -> UnixNs {
        self.through.unwrap_or(UnixNs(i64::MIN))
    }
}

/// Where each block stamp falls in the log: the stamps in order, each with
/// the number of events stamped at or before it.
#[derive(Default, Debug)]
pub struct Stamps {
    marks: Vec<(UnixNs, u64)>,
}

impl Stamps {
    /// Notes one more event stamped `recorded_at`.
    pub fn note(&mut self, recorded_at: UnixNs) {
        match self.marks.last_mut() {
            Some((last, count)) if *last == recorded_at => *count += 1,
            Some((last, _)) if *last > recorded_at => {
                // The wall clock stepped back: keep the stamps in order.
                let at = self.marks.partition_point(|(t, _)| *t < recorded_at);
                if !matches!(self.marks.get(at), Some((t, _)) if *t == recorded_at) {
                    let before = at.checked_sub(1).map_or(0, |i| self.marks[i].1);
                    self.marks.insert(at, (recorded_at, before));
                }
                for mark in &mut self.marks[at..] {
                    mark.1 += 1;
                }
            }
            _ => {
                let before = self.marks.last().map_or(0, |m| m.1);
                self.marks.push((recorded_at, before + 1));
            }
        }
    }

    /// The key of a replay of the events recorded by `known_at`.
    pub fn key(&self, known_at: UnixNs) -> ReplayKey {
        let at = self.marks.partition_point(|(t, _)| *t <= known_at);
        match at.checked_sub(1).map(|i| self.marks[i]) {
            Some((through, events)) => ReplayKey {
                through: Some(through),
                events,
            },
            None => ReplayKey {
                through: None,
                events: 0,
            },
        }
    }
}

/// The outcome of a fold, as waiters receive it.
pub type Folded = Option<Result<Arc<Projection>, String>>;

/// What a question about a key should do.
pub enum Lookup {
    /// Answer from this kept replay.
    Kept(Arc<Projection>),
    /// Wait for the fold under way.
    Wait(watch::Receiver<Folded>),
    /// Fold it: send the outcome on this, then call [`Replays::finish`].
    Fold(watch::Sender<Folded>),
}

struct Pending {
    caller: String,
    outcome: watch::Receiver<Folded>,
}

#[derive(Default)]
struct Inner {
    /// Most recently used last.
    kept: VecDeque<(ReplayKey, Arc<Projection>)>,
    pending: HashMap<ReplayKey, Pending>,
}

/// The kept replays and the folds under way.
#[derive(Default)]
pub struct Replays {
    inner: Mutex<Inner>,
}

/// How many replays may be kept, queued and asked for.
#[derive(Clone, Copy, Debug)]
pub struct ReplayLimits {
    /// Replays kept for later questions.
    pub kept: usize,
    /// Distinct replays queued or folding at once.
    pub pending: usize,
    /// Of those, started by one caller.
    pub per_caller: usize,
}

impl Replays {
    /// Looks a key up for `caller`: kept, under way, or to be folded by this
    /// caller if its limits allow.
    pub fn lookup(
        &self,
        key: ReplayKey,
        caller: &str,
        limits: ReplayLimits,
    ) -> Result<Lookup, ApiError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        if let Some(at) = inner.kept.iter().position(|(k, _)| *k == key) {
            let entry = inner.kept.remove(at).ok_or_else(poisoned)?;
            let projection = Arc::clone(&entry.1);
            inner.kept.push_back(entry);
            return Ok(Lookup::Kept(projection));
        }
        if let Some(pending) = inner.pending.get(&key) {
            return Ok(Lookup::Wait(pending.outcome.clone()));
        }
        let mine = inner
            .pending
            .values()
            .filter(|p| p.caller == caller)
            .count();
        if mine >= limits.per_caller {
            return Err(ApiError::TooManyRequests(
                "this token already has a known_at replay under way; wait for its answer (known_at \
                 values between the same two uploads share one replay)",
            ));
        }
        if inner.pending.len() >= limits.pending {
            return Err(ApiError::Unavailable(
                "too many known_at replays are under way; retry shortly",
            ));
        }
        let (sender, outcome) = watch::channel(None);
        inner.pending.insert(
            key,
            Pending {
                caller: caller.to_string(),
                outcome,
            },
        );
        Ok(Lookup::Fold(sender))
    }

    /// Ends a fold: keeps its replay (dropping the least recently used past
    /// `kept`) and lets the next one of its caller start.
    pub fn finish(&self, key: ReplayKey, folded: Option<&Arc<Projection>>, kept: usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.pending.remove(&key);
        if let Some(projection) = folded {
            if kept > 0 {
                while inner.kept.len() >= kept {
                    inner.kept.pop_front();
                }
                inner.kept.push_back((key, Arc::clone(projection)));
            }
        }
    }

    /// Replays kept now.
    pub fn kept(&self) -> usize {
        self.inner.lock().map_or(0, |inner| inner.kept.len())
    }
}

fn poisoned() -> ApiError {
    ApiError::internal("the replay cache's lock was poisoned by a panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_stamps() {
        let mut stamps = Stamps::default();
        assert_eq!(stamps.key(UnixNs(5)).events, 0);
        for at in [10, 10, 20, 30, 30, 30] {
            stamps.note(UnixNs(at));
        }
        fn at(stamps: &Stamps, k: i64) -> (Option<i64>, u64) {
            let key = stamps.key(UnixNs(k));
            (key.through.map(|t| t.0), key.events)
        }
        let key = |k| at(&stamps, k);
        assert_eq!(key(9), (None, 0));
        assert_eq!(key(10), (Some(10), 2));
        assert_eq!(key(19), (Some(10), 2));
        assert_eq!(key(25), (Some(20), 3));
        assert_eq!(key(i64::MAX), (Some(30), 6));
        // A clock that stepped back: the stamps stay in order.
        stamps.note(UnixNs(15));
        stamps.note(UnixNs(10));
        let key = |k| at(&stamps, k);
        assert_eq!(key(12), (Some(10), 3));
        assert_eq!(key(15), (Some(15), 4));
        assert_eq!(key(25), (Some(20), 5));
        assert_eq!(key(31), (Some(30), 8));
    }
}
