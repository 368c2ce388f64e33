//! The idempotency index's tables: hash -> sequence number, open addressing
//! with linear probing.
//!
//! Why not `HashMap`: ingest probes two tables of millions of entries for
//! every line, on the one thread every line waits for, and nearly every
//! probe misses the cache. `hashbrown` keeps its control bytes and its
//! buckets in two arrays, so a new key costs two misses (the control group
//! it reads, then the bucket it writes). Here the slot read by the probe is
//! the slot written, one miss per table per line.
//!
//! A slot is 8 bytes: the key's high half (its tag) and the value (a
//! sequence number, below 2^32). A key's home slot is given by its low
//! bits, so a probe tells two keys apart by their tags and their homes,
//! independent bits. With 16-byte slots (the whole key beside a 64-bit
//! value) the probes' random reads spanned 96 MB at a million orders; now
//! 48 MB. The keys themselves are kept, in the order filled (written in
//! sequence, never read by a probe), for laying out a larger table.
//!
//! Keys are hashes from [`crate::log::IdHasher`], already well mixed. The
//! table only maps hashes, and only by their tags on a run: equal hashes
//! or tags prove nothing, and the index confirms every hit against the
//! stored event (a miss there sends the id to the index's exact side map).

use std::collections::HashMap;
use std::mem::MaybeUninit;

/// A free slot. No held slot is 0: values are at least 1.
const EMPTY: u64 = 0;

/// The most a value may be: a slot keeps it in 32 bits.
pub(crate) const MAX_VALUE: u64 = u32::MAX as u64;

/// The most a table is filled before it doubles: 3/4. Linear probing at
/// this load still finds a key or an empty slot within a cache line or two
/// (8-byte slots, eight to a line); with power-of-two sizes a table is
/// usually between 3/8 and 3/4 full.
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;

/// The fewest slots a table has.
const MIN_SLOTS: usize = 16;

/// hash -> sequence number.
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    /// `tag << 32 | value`: the key's high 32 bits and its value (from 1
    /// to [`MAX_VALUE`]); [`EMPTY`] marks a free slot. The length is a
    /// power of two.
    slots: Vec<u64>,
    /// Every key held, in the order filled: what a larger table is laid
    /// out from. Probes never read it.
    keys: Vec<u64>,
    /// Keys that a larger table would put behind an earlier key with the
    /// same tag on their run, where a probe would find the earlier one:
    /// kept exactly, on the side. (A key filled after a probe is never
    /// behind one with its tag; only growth, which moves runs, makes
    /// these, about one key in four billion.)
    shadowed: HashMap<u64, u64>,
}

/// Where a key's tag is, or where the key would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A key with this key's tag is held on its run, with this value: the
    /// key itself, or (one key in four billion) another that shares its
    /// tag, which the caller tells apart.
    Held(u64),
    /// No key with this tag is held on the key's run; [`Slots::fill`] with
    /// this position puts it where the probe stopped.
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
            keys: Vec::with_capacity(entries),
            shadowed: HashMap::new(),
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Makes room for `additional` more keys at once, so that a large
    /// ingest does not rehash millions of entries (and hold the old and the
    /// new table at once) while the table fills.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let wanted = slots_for(self.len().saturating_add(additional));
        if wanted > self.slots.len() {
            self.rebuild(wanted);
        }
        // The keys too: a vector that doubles as it fills copies itself.
        // And their room is written now, as a new table is (see
        // `empty_slots`): otherwise each of its pages is a page fault as
        // ingest's committing thread fills it, some 6K faults a million
        // orders, on the one thread every line waits for.
        self.keys.reserve(additional);
        write_in_parallel(self.keys.spare_capacity_mut(), MaybeUninit::new(0));
    }

    /// Finds `key`'s tag on its run.
    pub(crate) fn probe(&self, key: u64) -> Probe {
        let tag = tag(key);
        let mask = self.slots.len() - 1;
        let mut position = home(key, mask);
        // The load bound leaves a free slot, so this ends.
        loop {
            let held = self.slots[position];
            if held == EMPTY {
                return Probe::Vacant(position);
            }
            if held >> 32 == tag {
                if !self.shadowed.is_empty() {
                    if let Some(&value) = self.shadowed.get(&key) {
                        return Probe::Held(value);
                    }
                }
                return Probe::Held(held & MAX_VALUE);
            }
            position = (position + 1) & mask;
        }
    }

    /// Reads `key`'s home slot and discards it: a plain load, so that a run
    /// of these over many keys has their cache misses in flight at once
    /// before the probes that need them.
    pub(crate) fn touch(&self, key: u64) -> u64 {
        let mask = self.slots.len() - 1;
        self.slots[home(key, mask)]
    }

    /// Puts `key` -> `value` at `position`, which [`Slots::probe`] of this
    /// key returned as vacant, with no change to the table since. `value`
    /// is from 1 to [`MAX_VALUE`].
    pub(crate) fn fill(&mut self, position: usize, key: u64, value: u64) {
        assert!(
            (1..=MAX_VALUE).contains(&value),
            "a value from 1 to MAX_VALUE"
        );
        debug_assert_eq!(self.slots[position], EMPTY, "a vacant slot");
        self.slots[position] = tag(key) << 32 | value;
        self.keys.push(key);
        if self.len() * MAX_LOAD_DENOMINATOR > self.slots.len() * MAX_LOAD_NUMERATOR {
            self.rebuild(self.slots.len() * 2);
        }
    }

    /// Lays the keys held into a table of `slot_count` slots, in the order
    /// they were filled. A key's value is where its probe finds it in the
    /// table before: every key held there is the first of its tag on its
    /// run, or shadowed.
    fn rebuild(&mut self, slot_count: usize) {
        assert!(slot_count.is_power_of_two(), "a power of two");
        let old = Slots {
            slots: std::mem::replace(&mut self.slots, empty_slots(slot_count)),
            keys: Vec::new(),
            shadowed: std::mem::take(&mut self.shadowed),
        };
        let mask = slot_count - 1;
        for &key in &self.keys {
            let Probe::Held(value) = old.probe(key) else {
                unreachable!("every key held is found");
            };
            let tag = tag(key);
            let mut position = home(key, mask);
            let mut behind = false;
            while self.slots[position] != EMPTY {
                behind |= self.slots[position] >> 32 == tag;
                position = (position + 1) & mask;
            }
            if behind {
                self.shadowed.insert(key, value);
            } else {
                self.slots[position] = tag << 32 | value;
            }
        }
    }
}

/// Memory of at least this many bytes is written by several threads.
const PARALLEL_MIN_BYTES: usize = 512 << 10;

/// `count` free slots, written now. (`vec![EMPTY; count]` alone would map
/// the kernel's zero page, and every page's first write after a probe had
/// read it would then cost a second fault and a TLB flush on every core.)
fn empty_slots(count: usize) -> Vec<u64> {
    // Zeroed memory is free slots already (`EMPTY` is 0); `black_box`
    // keeps the compiler from dropping the writes below as writing zeros
    // over zeros.
    let mut slots = std::hint::black_box(vec![EMPTY; count]);
    write_in_parallel(&mut slots, EMPTY);
    slots
}

/// Writes `value` all over `memory`, by a thread per core (up to four) when
/// it is large. Writing fresh memory is its page faults, which the kernel
/// takes on every core in parallel: the 96 MB of a million orders' index
/// (16-byte slots then) took about 40 ms on one thread before ingest could
/// start.
fn write_in_parallel<T: Copy + Send>(memory: &mut [T], value: T) {
    let threads = if std::mem::size_of_val(memory) >= PARALLEL_MIN_BYTES {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    let part = memory.len().div_ceil(threads).max(1);
    let mut parts = memory.chunks_mut(part);
    let first = parts.next();
    std::thread::scope(|scope| {
        for rest in parts {
            scope.spawn(move || rest.fill(value));
        }
        if let Some(first) = first {
            first.fill(value);
        }
    });
}

/// The high half of a key, kept in its slot.
fn tag(key: u64) -> u64 {
    key >> 32
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

    /// A key whose tag (high half) is a bijection of its low half: distinct
    /// keys have distinct tags, whatever their homes.
    fn key_of(low: u32) -> u64 {
        let tag = low.wrapping_mul(0x9e37_79b1) ^ 0x5bd1_e995;
        u64::from(tag) << 32 | u64::from(low)
    }

    proptest! {
        /// Keys with distinct tags (clustered homes, repeated keys): the
        /// table answers as a map keeping each key's first value does,
        /// across growth and reserve.
        #[test]
        fn slots_answer_as_a_first_value_map_does(
            lows in proptest::collection::vec(
                prop_oneof![0u32..64, any::<u32>(), (0u32..64).prop_map(|k| k << 20)],
                0..600,
            ),
            reserve_at in 0usize..600,
        ) {
            let mut slots = Slots::with_capacity(0);
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (value, low) in lows.iter().enumerate() {
                if value == reserve_at {
                    slots.reserve(100);
                }
                let key = key_of(*low);
                let value = value as u64 + 1;
                let expected = model.get(&key).copied();
                prop_assert_eq!(insert(&mut slots, key, value), expected);
                model.entry(key).or_insert(value);
                prop_assert_eq!(slots.len(), model.len());
                prop_assert!(slots.len() * 4 <= slots.slots.len() * 3);
            }
            for (key, value) in &model {
                prop_assert_eq!(slots.probe(*key), Probe::Held(*value));
            }
        }

        /// Keys sharing tags: a probe may find another key of the same tag
        /// (the caller tells them apart), but every key filled is found
        /// with its own value, before and after the table grows.
        #[test]
        fn a_filled_key_is_always_found_with_its_own_value(
            keys in proptest::collection::vec((0u64..4, 0u64..256), 0..400),
        ) {
            let mut slots = Slots::with_capacity(0);
            let mut filled: HashMap<u64, u64> = HashMap::new();
            for (value, (tag, low)) in keys.iter().enumerate() {
                let key = tag << 32 | low;
                let value = value as u64 + 1;
                match slots.probe(key) {
                    Probe::Held(held) => {
                        // Its own value, or that of a key with its tag.
                        prop_assert!(filled.iter().any(|(k, v)| *v == held && k >> 32 == *tag));
                        if let Some(own) = filled.get(&key) {
                            prop_assert_eq!(held, *own);
                        }
                    }
                    Probe::Vacant(position) => {
                        prop_assert!(!filled.contains_key(&key));
                        slots.fill(position, key, value);
                        filled.insert(key, value);
                    }
                }
                for (key, value) in &filled {
                    prop_assert_eq!(slots.probe(*key), Probe::Held(*value));
                }
            }
        }
    }

    /// Were a larger table to put a key behind an earlier key with its tag
    /// on its run, the key would be kept on the side and still found with
    /// its own value. Probes and fills do not seem to make such a layout
    /// (linear probing keeps a run's keys ahead of later keys of that run
    /// as the table doubles); this one is built by hand, in 16 slots: A
    /// (tag 7) at its home 2, D (tag 1, home 2) at 3, B (tag 7) at 4 past
    /// its home 3. In 32 slots, D (home 18) goes first, so A (home 18)
    /// lands on 19, B's home.
    #[test]
    fn a_key_a_larger_table_would_shadow_is_kept_on_the_side() {
        let (a, b, d) = (7u64 << 32 | 0x12, 7u64 << 32 | 0x13, 1u64 << 32 | 0x12);
        let mut slots = Slots::with_capacity(0);
        assert_eq!(slots.slots.len(), 16);
        slots.slots[2] = tag(a) << 32 | 2;
        slots.slots[3] = tag(d) << 32 | 1;
        slots.slots[4] = tag(b) << 32 | 3;
        slots.keys = vec![d, a, b];
        for (key, value) in [(d, 1), (a, 2), (b, 3)] {
            assert_eq!(slots.probe(key), Probe::Held(value));
        }
        slots.rebuild(32);
        assert_eq!(slots.shadowed, HashMap::from([(b, 3)]));
        for (key, value) in [(d, 1), (a, 2), (b, 3)] {
            assert_eq!(slots.probe(key), Probe::Held(value));
        }
        // And laid out again from there.
        slots.reserve(1000);
        for (key, value) in [(d, 1), (a, 2), (b, 3)] {
            assert_eq!(slots.probe(key), Probe::Held(value));
        }
    }

    /// A value must fit the slot's 32 bits.
    #[test]
    #[should_panic(expected = "a value from 1 to MAX_VALUE")]
    fn a_value_past_the_limit_is_refused() {
        let mut slots = Slots::with_capacity(4);
        let Probe::Vacant(position) = slots.probe(1) else {
            unreachable!("an empty table");
        };
        slots.fill(position, 1, MAX_VALUE + 1);
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
