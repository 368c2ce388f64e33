//! The idempotency index's tables: hash -> sequence number, open addressing
//! with linear probing, each slot holding its key and value side by side.
//!
//! Why not `HashMap`: ingest probes two tables of millions of entries for
//! every line, on the one thread every line waits for, and nearly every
//! probe misses the cache. `hashbrown` keeps its control bytes and its
//! buckets in two arrays, so a new key costs two misses (the control group
//! it reads, then the bucket it writes). Here the slot read by the probe is
//! the slot written, one miss per table per line.
//!
//! Keys are hashes from [`crate::log::IdHasher`], already well mixed, so a
//! key's low bits are its home slot. The table only maps hashes: equal hashes
//! prove nothing, and the index confirms every hit against the stored event.

/// A key no hash is given as: it marks an empty slot. A hash equal to it is
/// stored as [`ZERO_STAND_IN`], which may then share a slot with another
/// id's hash; the index's confirmation tells them apart, as for any two
/// equal hashes.
const EMPTY: u64 = 0;
const ZERO_STAND_IN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The most a table is filled before it doubles: 3/4. Linear probing at
/// this load still finds a key or an empty slot within a cache line or two
/// (16-byte slots, four to a line); with power-of-two sizes a table is
/// usually between 3/8 and 3/4 full.
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;

/// The fewest slots a table has.
const MIN_SLOTS: usize = 16;

/// hash -> sequence number.
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    /// `[key, value]`; a key of [`EMPTY`] marks a free slot. The length is
    /// a power of two.
    slots: Vec<[u64; 2]>,
    len: usize,
}

/// Where a key is, or where it would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The key is held, with this value.
    Held(u64),
    /// The key is not held; [`Slots::fill`] with this position puts it
    /// where the probe stopped.
    Vacant(usize),
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::with_capacity(0)
    }
}

impl Slots {
    /// A table that holds `entries` keys without growing.
    pub(crate) fn with_capacity(entries: usize) -> Slots {
        Slots {
            slots: empty_slots(slots_for(entries)),
            len: 0,
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Makes room for `additional` more keys at once, so that a large
    /// ingest does not rehash millions of entries (and hold the old and the
    /// new table at once) while the table fills.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let wanted = slots_for(self.len.saturating_add(additional));
        if wanted > self.slots.len() {
            self.rebuild(wanted);
        }
    }

    /// Finds `key`.
    pub(crate) fn probe(&self, key: u64) -> Probe {
        let key = stored_key(key);
        let mask = self.slots.len() - 1;
        let mut position = home(key, mask);
        // The load bound leaves a free slot, so this ends.
        loop {
            let [held, value] = self.slots[position];
            if held == key {
                return Probe::Held(value);
            }
            if held == EMPTY {
                return Probe::Vacant(position);
            }
            position = (position + 1) & mask;
        }
    }

    /// Reads `key`'s home slot and discards it: a plain load, so that a run
    /// of these over many keys has their cache misses in flight at once
    /// before the probes that need them.
    pub(crate) fn touch(&self, key: u64) -> u64 {
        let mask = self.slots.len() - 1;
        self.slots[home(stored_key(key), mask)][0]
    }

    /// Puts `key` -> `value` at `position`, which [`Slots::probe`] of this
    /// key returned as vacant, with no change to the table since.
    pub(crate) fn fill(&mut self, position: usize, key: u64, value: u64) {
        let key = stored_key(key);
        debug_assert_eq!(self.slots[position][0], EMPTY, "a vacant slot");
        self.slots[position] = [key, value];
        self.len += 1;
        if self.len * MAX_LOAD_DENOMINATOR > self.slots.len() * MAX_LOAD_NUMERATOR {
            self.rebuild(self.slots.len() * 2);
        }
    }

    fn rebuild(&mut self, slot_count: usize) {
        assert!(slot_count.is_power_of_two(), "a power of two");
        let old = std::mem::replace(&mut self.slots, empty_slots(slot_count));
        for [key, value] in old.into_iter().filter(|[key, _]| *key != EMPTY) {
            // The keys held are distinct and already stored keys, so each
            // probe of the new table ends at a free slot.
            let Probe::Vacant(position) = self.probe(key) else {
                unreachable!("a table holds each key once");
            };
            self.slots[position] = [key, value];
        }
    }
}

/// Tables of at least this many slots are written by several threads.
const PARALLEL_MIN_SLOTS: usize = 1 << 16;

/// `count` free slots, written now. (`vec![[0; 2]; count]` alone would map
/// the kernel's zero page, and every page's first write after a probe had
/// read it would then cost a second fault and a TLB flush on every core.)
/// A large table is written by a thread per core at once: writing it is
/// its page faults, which the kernel takes on every core in parallel, and
/// the 96 MB of a million orders' index took about 40 ms on one before
/// ingest could start.
fn empty_slots(count: usize) -> Vec<[u64; 2]> {
    // Zeroed memory is free slots already (`EMPTY` is 0); `black_box`
    // keeps the compiler from dropping the writes below as writing zeros
    // over zeros.
    let mut slots = std::hint::black_box(vec![[EMPTY; 2]; count]);
    let threads = if count >= PARALLEL_MIN_SLOTS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    let part = count.div_ceil(threads).max(1);
    let mut parts = slots.chunks_mut(part);
    let first = parts.next();
    std::thread::scope(|scope| {
        for rest in parts {
            scope.spawn(move || rest.fill([EMPTY; 2]));
        }
        if let Some(first) = first {
            first.fill([EMPTY; 2]);
        }
    });
    slots
}

fn stored_key(key: u64) -> u64 {
    if key == EMPTY {
        ZERO_STAND_IN
    } else {
        key
    }
}

fn home(key: u64, mask: usize) -> usize {
    // The low bits of a well-mixed hash (usize is at least 32 bits wide).
    (key as usize) & mask
}

/// The power of two of slots that holds `entries` within the load bound.
fn slots_for(entries: usize) -> usize {
    entries
        .saturating_mul(MAX_LOAD_DENOMINATOR)
        .div_ceil(MAX_LOAD_NUMERATOR)
        .saturating_add(1)
        .max(MIN_SLOTS)
        .checked_next_power_of_two()
        .expect("an index that fits in memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Probes and fills `key` as the index does: the first value stays.
    fn insert(slots: &mut Slots, key: u64, value: u64) -> Option<u64> {
        match slots.probe(key) {
            Probe::Held(held) => Some(held),
            Probe::Vacant(position) => {
                slots.fill(position, key, value);
                None
            }
        }
    }

    proptest! {
        /// Whatever the keys (clustered, repeated, zero, the stand-in),
        /// the table answers as a map keeping each key's first value does,
        /// across growth and reserve.
        #[test]
        fn slots_answer_as_a_first_value_map_does(
            keys in proptest::collection::vec(
                prop_oneof![
                    0u64..64,
                    Just(0u64),
                    Just(ZERO_STAND_IN),
                    any::<u64>(),
                    (0u64..64).prop_map(|k| k << 40),
                ],
                0..600,
            ),
            reserve_at in 0usize..600,
        ) {
            let mut slots = Slots::with_capacity(0);
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (value, key) in keys.iter().enumerate() {
                if value == reserve_at {
                    slots.reserve(100);
                }
                let value = value as u64 + 1;
                let expected = model.get(&stored_key(*key)).copied();
                prop_assert_eq!(insert(&mut slots, *key, value), expected);
                model.entry(stored_key(*key)).or_insert(value);
                prop_assert_eq!(slots.len(), model.len());
                prop_assert!(slots.len() * 4 <= slots.slots.len() * 3);
            }
            for (key, value) in &model {
                prop_assert_eq!(slots.probe(*key), Probe::Held(*value));
            }
        }
    }

    #[test]
    fn sizes_hold_their_entries_within_the_load_bound() {
        assert_eq!(slots_for(0), MIN_SLOTS);
        assert_eq!(slots_for(12), 32);
        assert_eq!(slots_for(2_083_603), 1 << 22);
        let mut slots = Slots::with_capacity(1000);
        let before = slots.slots.len();
        for key in 1..=1000u64 {
            insert(&mut slots, key.wrapping_mul(0x9e37_79b9_7f4a_7c15), key);
        }
        assert_eq!(
            slots.slots.len(),
            before,
            "no growth within the capacity asked"
        );
    }
}
