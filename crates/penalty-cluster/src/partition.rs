//! Keys to partitions, partitions to nodes.
//!
//! The hash is FNV-1a 64 of the key's UTF-8 bytes, taken mod P
//! (`penalty_core::ledger::partition`): stable across versions, machines
//! and languages (the test vectors below pin it), unlike std's keyed
//! `DefaultHasher`. Event ids are hashed in their canonical lower-case
//! 8-4-4-4-12 form.

// One home for the hash, shared with the store's partitioned snapshot.
pub use penalty_core::ledger::partition::{fnv1a64, partition_of};

/// The partition of an event id, hashed in its canonical form.
pub fn partition_of_event_id(event_id: u128, partitions: u32) -> u32 {
    partition_of(&penalty_core::event::format_event_id(event_id), partitions)
}

/// The owner of `partition` among the live `nodes` by rendezvous (highest
/// random weight) hashing: every node computes the same owner from the same
/// set, with no election, and a node's arrival or departure moves only the
/// partitions it wins or held. `None` when no node is live.
pub fn owner(partition: u32, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .map(|node| (fnv1a64(format!("{partition}/{node}").as_bytes()), node))
        .max()
        .map(|(_, node)| node.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        for key in ["S1", "S2", "O-1", ""] {
            assert!(partition_of(key, 16) < 16);
            assert_eq!(partition_of(key, 1), 0);
        }
        assert_eq!(
            partition_of("foobar", 16),
            (0x8594_4171_f739_67e8_u64 % 16) as u32
        );
    }

    #[test]
    fn rendezvous_moves_only_the_partitions_of_a_departed_node() {
        let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let two: Vec<String> = ["n1", "n3"].map(String::from).to_vec();
        let mut owned = [0; 3];
        for p in 0..64 {
            let before = owner(p, &three).expect("a live node");
            let after = owner(p, &two).expect("a live node");
            if before != "n2" {
                assert_eq!(before, after, "partition {p} moved though its owner stayed");
            }
            owned[three.iter().position(|n| n == before).expect("one of them")] += 1;
        }
        assert!(owned.iter().all(|n| *n > 8), "spread unevenly: {owned:?}");
        assert_eq!(owner(3, &[]), None);
    }
}
