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
//! A slot is 8 bytes: the key's high half (its tag) and the number of its
//! entry (the whole key and its value), kept in a second array in the
//! order filled. A key's home slot is given by its low bits. A probe of a
//! new key, nearly every line's, reads only the slots: a tag that matches
//! (a hit, or a key in four billion that shares the tag) is confirmed
//! against the entry. With 16-byte slots (the key beside its value) the
//! probes' random reads spanned 96 MB at a million orders; now 48 MB, and
//! the entries, written in sequence, are read at random only on hits.
//!
//! Keys are hashes from [`crate::log::IdHasher`], already well mixed. The
//! table only maps hashes: equal hashes (or tags) prove nothing, and the
//! index confirms every hit against the stored event.

/// A free slot. No held slot is 0: its entry is numbered from 1.
const EMPTY: u64 = 0;

/// The most keys a table holds: a slot numbers its entry in 32 bits.
pub(crate) const MAX_KEYS: usize = u32::MAX as usize - 1;

/// The most a value may be: an entry keeps it in 32 bits.
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
    /// `tag << 32 | number`: the key's high 32 bits, and the number, from
    /// one, of its entry in `keys` and `values`; [`EMPTY`] marks a free
    /// slot. The length is a power of two.
    slots: Vec<u64>,
    /// Every key held, in the order filled, and beside it its value (at
    /// most [`MAX_VALUE`]): the entries. A probe reads an entry only when a
    /// slot's tag is the key's (a hit, or one key in four billion that
    /// shares the tag); a table that grows reads them all.
    keys: Vec<u64>,
    values: Vec<u32>,
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
            keys: Vec::with_capacity(entries),
            values: Vec::with_capacity(entries),
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
        // Room for the entries too: a vector that doubles as it fills
        // copies itself each time.
        self.keys.reserve(additional);
        self.values.reserve(additional);
    }

    /// Finds `key`.
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
                let entry = entry_index(held);
                if self.keys[entry] == key {
                    return Probe::Held(u64::from(self.values[entry]));
                }
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
    /// key returned as vacant, with no change to the table since. At most
    /// [`MAX_KEYS`] keys, and `value` at most [`MAX_VALUE`].
    pub(crate) fn fill(&mut self, position: usize, key: u64, value: u64) {
        assert!(self.len() < MAX_KEYS, "at most MAX_KEYS keys");
        debug_assert!(value <= MAX_VALUE, "a value of at most MAX_VALUE");
        let value = u32::try_from(value).expect("a value of at most MAX_VALUE");
        debug_assert_eq!(self.slots[position], EMPTY, "a vacant slot");
        self.keys.push(key);
        self.values.push(value);
        self.slots[position] = slot(key, self.keys.len());
        if self.len() * MAX_LOAD_DENOMINATOR > self.slots.len() * MAX_LOAD_NUMERATOR {
            self.rebuild(self.slots.len() * 2);
        }
    }

    fn rebuild(&mut self, slot_count: usize) {
        assert!(slot_count.is_power_of_two(), "a power of two");
        self.slots = empty_slots(slot_count);
        let mask = slot_count - 1;
        // The keys held are distinct, so each goes to the first free slot
        // of its run.
        for (number, &key) in self.keys.iter().enumerate() {
            let mut position = home(key, mask);
            while self.slots[position] != EMPTY {
                position = (position + 1) & mask;
            }
            self.slots[position] = slot(key, number + 1);
        }
    }
}

/// The slot of the key whose entry is number `number` (from 1).
fn slot(key: u64, number: usize) -> u64 {
    let number = u64::try_from(number).expect("an entry number fits in 64 bits");
    debug_assert!((1..=u64::from(u32::MAX)).contains(&number));
    tag(key) << 32 | number
}

/// Where a held slot's entry is in `entries`.
fn entry_index(held: u64) -> usize {
    (held & u64::from(u32::MAX)) as usize - 1
}

/// Tables of at least this many slots are written by several threads.
const PARALLEL_MIN_SLOTS: usize = 1 << 16;

/// `count` free slots, written now. (`vec![[0; 2]; count]` alone would map
/// the kernel's zero page, and every page's first write after a probe had
/// read it would then cost a second fault and a TLB flush on every core.)
/// A large table is written by a thread per core at once: writing it is
/// its page faults, which the kernel takes on every core in parallel, and
/// the 96 MB of a million orders' index (16-byte slots then) took about
/// 40 ms on one before
/// ingest could start.
fn empty_slots(count: usize) -> Vec<u64> {
    // Zeroed memory is free slots already (`EMPTY` is 0); `black_box`
    // keeps the compiler from dropping the writes below as writing zeros
    // over zeros.
    let mut slots = std::hint::black_box(vec![EMPTY; count]);
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
            scope.spawn(move || rest.fill(EMPTY));
        }
        if let Some(first) = first {
            first.fill(EMPTY);
        }
    });
    slots
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

    proptest! {
        /// Whatever the keys (clustered homes, shared tags, repeated keys,
        /// zero), the table answers as a map keeping each key's first value
        /// does, across growth and reserve.
        #[test]
        fn slots_answer_as_a_first_value_map_does(
            keys in proptest::collection::vec(
                prop_oneof![
                    0u64..64,
                    Just(0u64),
                    any::<u64>(),
                    (0u64..64).prop_map(|k| k << 40),
                    // One tag, homes close together.
                    (0u64..64).prop_map(|k| 0xdead_beef_0000_0000 | k),
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
                let expected = model.get(key).copied();
                prop_assert_eq!(insert(&mut slots, *key, value), expected);
                model.entry(*key).or_insert(value);
                prop_assert_eq!(slots.len(), model.len());
                prop_assert!(slots.len() * 4 <= slots.slots.len() * 3);
            }
            for (key, value) in &model {
                prop_assert_eq!(slots.probe(*key), Probe::Held(*value));
            }
        }
    }

    /// Keys that share their tag and their home are told apart by their
    /// entries, before and after the table grows.
    #[test]
    fn keys_sharing_a_tag_and_a_home_are_told_apart() {
        let mut slots = Slots::with_capacity(100);
        let mask = slots.slots.len() as u64 - 1;
        let first = 7u64 << 32 | 5;
        let second = 7u64 << 32 | (5 + mask + 1);
        assert_eq!(insert(&mut slots, first, 1), None);
        assert!(matches!(slots.probe(second), Probe::Vacant(_)));
        assert_eq!(insert(&mut slots, second, 2), None);
        assert_eq!(slots.probe(first), Probe::Held(1));
        assert_eq!(slots.probe(second), Probe::Held(2));
        slots.reserve(10_000);
        assert_eq!(slots.probe(first), Probe::Held(1));
        assert_eq!(slots.probe(second), Probe::Held(2));
        assert_eq!(slots.len(), 2);
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
