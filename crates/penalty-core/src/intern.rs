//! String interning: every id (order, shop, product, tracking number) is
//! stored once in an arena and named by a dense `u32` index.
//!
//! Why: a million orders held as `String` keys in hash maps and B-trees cost
//! hundreds of bytes each and a malloc per copy. An arena costs the id's bytes
//! plus 4 bytes of offset and about 24 bytes of open-addressing table (a
//! 16-byte entry holding a short id whole, half again as many entries as
//! ids), and comparing two interned ids for equality is comparing two
//! integers.
//!
//! The hash is fixed (not keyed), because the core has no source of
//! randomness and must behave identically on every run; ids come from the
//! platform's own systems, and a pathological set would only slow lookups.

use serde::{Deserialize, Serialize};

/// The most bytes the arena holds: offsets are `u32`.
const MAX_ARENA_BYTES: usize = u32::MAX as usize;

/// Interned strings: `intern` gives each distinct string a stable index.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "InternerData")]
pub(crate) struct Interner {
    arena: String,
    /// `ends[i]` is where string `i` ends in `arena`; it starts at `ends[i-1]`.
    ends: Vec<u32>,
    /// Open addressing: 0 is empty, otherwise `(index + 1) | key(string)`
    /// (see [`key`]): the string's length and, for a string of up to
    /// [`INLINE_BYTES`] bytes, the string itself, so that a probe decides
    /// such a string without reading the arena (at a million ids, a read of
    /// `ends` and one of the arena are a cache miss each, twice the probe's
    /// own); a longer one keeps a fragment of its hash and its first bytes,
    /// and is compared in the arena only on a likely match. A string's
    /// probe starts at [`home`]; the table holds at least a third more
    /// entries than strings (half more when built, [`slots_for`]), so that
    /// at twice the bytes of an entry of index and hash alone it takes
    /// about as much memory as a table of those filled to half.
    table: Vec<u128>,
}

/// What a checkpoint stores: the table is rebuilt on load.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct InternerData {
    arena: String,
    ends: Vec<u32>,
}

impl From<InternerData> for Interner {
    fn from(data: InternerData) -> Interner {
        let mut interner = Interner {
            arena: data.arena,
            ends: data.ends,
            table: Vec::new(),
        };
        interner.rebuild(slots_for(interner.ends.len()));
        interner
    }
}

/// Serialised as [`InternerData`] is, field for field, but borrowed: a
/// conversion would copy the arena and the table (tens of megabytes at a
/// million ids) for every snapshot written.
impl Serialize for Interner {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut data = serializer.serialize_struct("InternerData", 2)?;
        data.serialize_field("arena", &self.arena)?;
        data.serialize_field("ends", &self.ends)?;
        data.end()
    }
}

impl PartialEq for Interner {
    fn eq(&self, other: &Interner) -> bool {
        self.arena == other.arena && self.ends == other.ends
    }
}

impl Eq for Interner {}

/// A fast, fixed 64-bit hash of a string (FxHash-style, with a final mix).
fn hash(text: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = text.len() as u64;
    let mut chunks = text.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl Interner {
    /// How many strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The string of an index. Indices come from `intern`, so they are in range.
    pub fn get(&self, index: u32) -> &str {
        let i = index as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.arena[start..self.ends[i] as usize]
    }

    /// The index of a string, if it was interned.
    pub fn find(&self, text: &str) -> Option<u32> {
        self.find_hashed(text, hash(text))
    }

    fn find_hashed(&self, text: &str, hash: u64) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let key = key(text, hash);
        let inline = text.len() <= INLINE_BYTES;
        let mut slot = home(hash, self.table.len());
        loop {
            let entry = self.table[slot];
            let index = entry as u32;
            if index == 0 {
                return None;
            }
            let index = index - 1;
            if entry & !INDEX_BITS == key && (inline || self.get(index) == text) {
                return Some(index);
            }
            slot = next(slot, self.table.len());
        }
    }

    /// The index of a string, interning it first if needed. `None` only when
    /// the arena is full (4 GiB of ids).
    pub fn intern(&mut self, text: &str) -> Option<u32> {
        self.intern_hashed(text, hash(text))
    }

    /// [`Interner::intern`] of each of `texts` in turn, the indices appended
    /// to `out`. Why: at a million ids each lookup is a cache miss on the
    /// table, and one after another they wait for each other. A batch's
    /// entries are read first, all at once (independent loads, whose misses
    /// the core overlaps), then looked up as usual, from the cache.
    pub fn intern_all(&mut self, texts: &[&str], out: &mut Vec<Option<u32>>) {
        for batch in texts.chunks(INTERN_BATCH) {
            let mut hashes = [0u64; INTERN_BATCH];
            for (hash_of, text) in hashes.iter_mut().zip(batch) {
                *hash_of = hash(text);
            }
            let hashes = &hashes[..batch.len()];
            let slots = self.table.len();
            if slots > 0 {
                let touched = hashes
                    .iter()
                    .fold(0u128, |sum, h| sum ^ self.table[home(*h, slots)]);
                // Kept, or the reads would be optimised away.
                std::hint::black_box(touched);
            }
            for (text, hash) in batch.iter().zip(hashes) {
                out.push(self.intern_hashed(text, *hash));
            }
        }
    }

    fn intern_hashed(&mut self, text: &str, hash: u64) -> Option<u32> {
        if let Some(index) = self.find_hashed(text, hash) {
            return Some(index);
        }
        if (self.ends.len() + 1) * 4 > self.table.len() * 3 {
            self.rebuild((self.table.len() * 2).max(16));
        }
        let index = self.push_distinct(text)?;
        place(&mut self.table, key(text, hash), hash, index);
        Some(index)
    }

    /// Appends a string the caller knows is not interned yet, without
    /// touching the table: for bulk copies of ids already distinct
    /// ([`crate::Ledger::split`]), where a probe per id into one of a
    /// thousand tables is a cache miss each. The table is stale until
    /// [`Interner::reindex`], which must come before any lookup. `None`
    /// only when the arena is full.
    pub fn push_distinct(&mut self, text: &str) -> Option<u32> {
        if self.arena.len() + text.len() > MAX_ARENA_BYTES
            || self.ends.len() >= u32::MAX as usize - 1
        {
            return None;
        }
        self.arena.push_str(text);
        self.ends.push(self.arena.len() as u32);
        Some((self.ends.len() - 1) as u32)
    }

    /// The length in bytes of the string of an index (in range).
    pub fn len_of(&self, index: u32) -> usize {
        let i = index as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.ends[i] as usize - start
    }

    /// Room for `additional` more strings of `bytes` bytes in all, without
    /// a table for them: for strings pushed by [`Interner::push_distinct`],
    /// then indexed once by [`Interner::reindex`].
    pub fn reserve_distinct(&mut self, additional: usize, bytes: usize) {
        self.ends.reserve_exact(additional);
        self.arena.reserve_exact(bytes);
    }

    /// Builds the table afresh from the strings, as loading does.
    pub fn reindex(&mut self) {
        self.rebuild(slots_for(self.ends.len()));
    }

    fn rebuild(&mut self, capacity: usize) {
        let mut table = vec![0; capacity];
        for index in 0..self.ends.len() as u32 {
            let text = self.get(index);
            let hash = hash(text);
            place(&mut table, key(text, hash), hash, index);
        }
        self.table = table;
    }

    /// Makes room for `additional` more strings of about `bytes_each` bytes,
    /// so that a bulk fold does not rebuild the table at every doubling.
    pub fn reserve(&mut self, additional: usize, bytes_each: usize) {
        let wanted = slots_for(self.ends.len() + additional);
        if wanted > self.table.len() {
            self.rebuild(wanted);
        }
        self.ends.reserve(additional);
        self.arena.reserve(additional.saturating_mul(bytes_each));
    }
}

/// Strings appended without deduplication, each named by a dense `u32`
/// index: for values that are only ever compared within a small group (an
/// order's tracking numbers), where the group itself can find an equal string
/// faster than a global table could, and without the table's memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Arena {
    arena: String,
    /// `ends[i]` is where string `i` ends in `arena`; it starts at `ends[i-1]`.
    ends: Vec<u32>,
}

impl Arena {
    /// The string of an index. Indices come from `push`, so they are in range.
    pub fn get(&self, index: u32) -> &str {
        let i = index as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.arena[start..self.ends[i] as usize]
    }

    /// Appends a string and returns its index. `None` only when the arena is
    /// full (4 GiB).
    pub fn push(&mut self, text: &str) -> Option<u32> {
        if self.arena.len() + text.len() > MAX_ARENA_BYTES
            || self.ends.len() >= u32::MAX as usize - 1
        {
            return None;
        }
        self.arena.push_str(text);
        self.ends.push(self.arena.len() as u32);
        Some((self.ends.len() - 1) as u32)
    }

    /// Makes room for `additional` more strings of about `bytes_each` bytes.
    pub fn reserve(&mut self, additional: usize, bytes_each: usize) {
        self.ends.reserve(additional);
        self.arena.reserve(additional.saturating_mul(bytes_each));
    }
}

/// How many ids [`Interner::intern_all`] reads the entries of at once: about
/// as many misses as a core keeps in flight.
const INTERN_BATCH: usize = 16;

/// The longest string a table entry holds whole (see [`Interner::table`]).
const INLINE_BYTES: usize = 11;

/// The bits of a table entry that hold `index + 1`.
const INDEX_BITS: u128 = u32::MAX as u128;

/// What a table entry holds of a string besides its index, in the bits
/// above [`INDEX_BITS`]: its length (255 for any longer), then for a
/// string of at most [`INLINE_BYTES`] bytes those bytes (zero after them:
/// the length tells a zero byte of the string from padding), so that equal
/// keys are equal strings; for a longer string the high half of its hash
/// and its first 7 bytes, so that equal keys make a likely match, which the
/// arena confirms. (The low half: [`home`] reads mostly the high one.)
fn key(text: &str, hash: u64) -> u128 {
    let bytes = text.as_bytes();
    let length = bytes.len().min(255) as u128;
    let mut rest = [0u8; 16];
    if bytes.len() <= INLINE_BYTES {
        rest[..bytes.len()].copy_from_slice(bytes);
    } else {
        rest[..4].copy_from_slice(&(hash as u32).to_le_bytes());
        rest[4..INLINE_BYTES].copy_from_slice(&bytes[..INLINE_BYTES - 4]);
    }
    length << 32 | u128::from_le_bytes(rest) << 40
}

/// How many table entries to build for `strings` strings: half more, so
/// that a probe rarely walks past the cache line it starts in (the table
/// grows when it would pass three quarters full).
fn slots_for(strings: usize) -> usize {
    (strings + strings / 2).max(16)
}

/// Where the probe for a string of `hash` starts in a table of `slots`
/// entries: the hash scaled to the table (any length, not only powers of
/// two).
fn home(hash: u64, slots: usize) -> usize {
    ((u128::from(hash) * slots as u128) >> 64) as usize
}

/// The entry after `slot`, wrapping at the end of the table.
fn next(slot: usize, slots: usize) -> usize {
    if slot + 1 == slots {
        0
    } else {
        slot + 1
    }
}

fn place(table: &mut [u128], key: u128, hash: u64, index: u32) {
    let mut slot = home(hash, table.len());
    while table[slot] != 0 {
        slot = next(slot, table.len());
    }
    table[slot] = u128::from(index + 1) | key;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_together_gives_the_indices_of_one_by_one() {
        // Repeats inside a batch and across batches, short and long ids, and
        // enough new ones that the table grows in the middle of a batch.
        let texts: Vec<String> = (0..500)
            .map(|i| match i % 3 {
                0 => format!("O{}", i / 2),
                1 => format!("a-much-longer-order-id-{}", i % 37),
                _ => format!("O{}", i % 11),
            })
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut one_by_one = Interner::default();
        let expected: Vec<Option<u32>> = texts.iter().map(|t| one_by_one.intern(t)).collect();
        let mut together = Interner::default();
        let mut got = Vec::new();
        for chunk in texts.chunks(70) {
            together.intern_all(chunk, &mut got);
        }
        assert_eq!(got, expected);
        assert_eq!(together, one_by_one);
    }

    #[test]
    fn an_arena_keeps_every_push_apart() {
        let mut arena = Arena::default();
        let a = arena.push("SF1").unwrap();
        let b = arena.push("").unwrap();
        let c = arena.push("SF1").unwrap();
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(
            (arena.get(a), arena.get(b), arena.get(c)),
            ("SF1", "", "SF1")
        );
        let json = serde_json::to_string(&arena).unwrap();
        let back: Arena = serde_json::from_str(&json).unwrap();
        assert_eq!(back, arena);
    }

    #[test]
    fn interns_each_string_once_and_survives_serialisation() {
        let mut interner = Interner::default();
        let ids: Vec<u32> = (0..1000)
            .map(|i| interner.intern(&format!("O{i}")).unwrap())
            .collect();
        assert_eq!(interner.intern("O7"), Some(ids[7]));
        assert_eq!(interner.find("O999"), Some(ids[999]));
        assert_eq!(interner.find("nope"), None);
        assert_eq!(interner.get(ids[42]), "O42");
        assert_eq!(interner.intern(""), Some(1000));
        let json = serde_json::to_string(&interner).unwrap();
        let back: Interner = serde_json::from_str(&json).unwrap();
        assert_eq!(back.find("O500"), Some(ids[500]));
        assert_eq!(back, interner);
    }

    #[test]
    fn distinct_pushes_then_a_reindex_intern_as_one_by_one() {
        let ids: Vec<String> = (0..3000).map(|i| format!("O{i}")).collect();
        let mut interned = Interner::default();
        let mut pushed = Interner::default();
        for id in &ids {
            assert_eq!(interned.intern(id), pushed.push_distinct(id));
        }
        pushed.reindex();
        assert_eq!(pushed, interned);
        for (index, id) in ids.iter().enumerate() {
            assert_eq!(pushed.find(id), Some(index as u32));
        }
        assert_eq!(pushed.find("nope"), None);
        assert_eq!(pushed.intern("O17"), Some(17));
        assert_eq!(pushed.intern("new"), Some(3000));
    }

    /// Short strings are decided in the table alone and long ones in the
    /// arena: strings that differ only in a zero byte, in their length
    /// around [`INLINE_BYTES`], or after a long shared prefix (with equal
    /// hash fragments or not) each get their own index, and every one is
    /// found again, also after a reindex, as a plain map finds it.
    #[test]
    fn strings_alike_but_for_a_byte_or_their_length_stay_apart() {
        let mut texts: Vec<String> = Vec::new();
        for len in 0..=INLINE_BYTES + 3 {
            texts.push("a".repeat(len));
            texts.push("\0".repeat(len));
            texts.push(format!("{}\0", "b".repeat(len)));
        }
        for i in 0..2000 {
            texts.push(format!("ORDER-2026-01-{i:06}"));
            texts.push(format!("O{i:09}"));
            texts.push(format!("{i}"));
            texts.push(format!("\u{e9}{i}"));
        }
        let mut interner = Interner::default();
        let mut model = std::collections::HashMap::new();
        for text in texts.iter().chain(&texts) {
            let next = model.len() as u32;
            let expected = *model.entry(text.clone()).or_insert(next);
            assert_eq!(interner.intern(text), Some(expected), "{text:?}");
        }
        assert_eq!(interner.len(), model.len());
        let mut pushed = Interner::default();
        let mut distinct: Vec<(&String, &u32)> = model.iter().collect();
        distinct.sort_by_key(|(_, index)| **index);
        for (text, _) in &distinct {
            pushed.push_distinct(text);
        }
        pushed.reindex();
        for (text, index) in &distinct {
            assert_eq!(interner.find(text), Some(**index));
            assert_eq!(pushed.find(text), Some(**index));
            assert_eq!(interner.get(**index), text.as_str());
        }
        for absent in [
            "aaaaaaaaaaaaaaaaaaaa",
            "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            "ORDER-2026-01-999999",
            "O",
        ] {
            assert_eq!(interner.find(absent), None, "{absent:?}");
        }
    }

    #[test]
    fn serialises_as_its_data_does() {
        let mut interner = Interner::default();
        for id in ["O1", "", "S000042", "P000042-07"] {
            interner.intern(id);
        }
        let data = InternerData {
            arena: interner.arena.clone(),
            ends: interner.ends.clone(),
        };
        assert_eq!(
            serde_json::to_string(&interner).unwrap(),
            serde_json::to_string(&data).unwrap()
        );
    }
}
