//! A hash index over string keys that live elsewhere (in a gene table's text), so that building
//! the HGNC/MGI/orthology lookups allocates a few flat vectors instead of one `String` and one
//! `Vec` per gene. Those per-gene allocations, and hashing them into std maps, were most of a
//! small file's tokenization time (about 0.5 s of CPU on 2026-11-27).

use super::fast_hash::FxHasher;
use std::hash::Hasher;

/// The FxHash of a key's bytes, finalised with MurmurHash3's `fmix64`. FxHash alone left
/// Ensembl ids (a shared `ENSMUSG0` word, then digits whose changes only carry upwards through
/// its multiply) clustered: 2.8 probes per lookup where a uniform hash needs 1.2.
pub(crate) fn key_hash(key: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(key.as_bytes());
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Open addressing with linear probing over entry numbers `0..n`. Several entries may share a
/// key (a multimap); they come back in the order they were inserted, because without deletions
/// a later entry of the same key always lands further along the same probe sequence.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyIndex {
    /// `(entry + 1, high 32 bits of its key's hash)`; entry 0 marks an empty slot.
    slots: Vec<(u32, u32)>,
}

impl KeyIndex {
    /// Indexes entries `0..hashes.len()` whose keys hash to `hashes[e]`.
    pub(crate) fn build(hashes: impl ExactSizeIterator<Item = u64>) -> Self {
        let n = hashes.len();
        // Load factor at most one half keeps probe runs short.
        let cap = (2 * n).next_power_of_two().max(16);
        let mask = cap - 1;
        let mut slots = vec![(0u32, 0u32); cap];
        for (e, h) in hashes.enumerate() {
            let mut s = h as usize & mask;
            while slots[s].0 != 0 {
                s = (s + 1) & mask;
            }
            let entry = u32::try_from(e + 1).expect("fewer than 2^32 entries");
            slots[s] = (entry, (h >> 32) as u32);
        }
        Self { slots }
    }

    /// The entries whose key hashes to `hash` and satisfies `is_key` (the caller compares the
    /// actual key), in insertion order.
    pub(crate) fn find<'a>(
        &'a self,
        hash: u64,
        is_key: impl Fn(u32) -> bool + 'a,
    ) -> impl Iterator<Item = u32> + 'a {
        let mask = self.slots.len().wrapping_sub(1);
        let tag = (hash >> 32) as u32;
        let mut s = (!self.slots.is_empty()).then_some(hash as usize & mask);
        std::iter::from_fn(move || {
            loop {
                let i = s?;
                let (entry, t) = self.slots[i];
                if entry == 0 {
                    s = None;
                    return None;
                }
                s = Some((i + 1) & mask);
                if t == tag && is_key(entry - 1) {
                    return Some(entry - 1);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_entry_of_a_key_in_insertion_order() {
        let keys = ["a", "b", "a", "ccc", "", "a", "b"];
        let idx = KeyIndex::build(keys.iter().map(|k| key_hash(k)));
        let find = |k: &str| -> Vec<u32> {
            idx.find(key_hash(k), |e| keys[e as usize] == k)
                .collect::<Vec<_>>()
        };
        assert_eq!(find("a"), vec![0, 2, 5]);
        assert_eq!(find("b"), vec![1, 6]);
        assert_eq!(find("ccc"), vec![3]);
        assert_eq!(find(""), vec![4]);
        assert!(find("d").is_empty());
        let empty = KeyIndex::default();
        assert_eq!(empty.find(key_hash("a"), |_| true).count(), 0);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_key() {
        // Every key in one bucket with the same tag: only the comparison separates them.
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        let idx = KeyIndex::build(keys.iter().map(|_| 7u64));
        for (i, k) in keys.iter().enumerate() {
            let hits: Vec<u32> = idx.find(7, |e| keys[e as usize] == *k).collect();
            assert_eq!(hits, vec![i as u32]);
        }
    }
}
