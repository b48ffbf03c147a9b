//! A small, fast, deterministic hasher for the gene-name tables (the FxHash scheme used inside
//! rustc). SipHash, std's default, made building the embedded HGNC/MGI/orthology lookups the
//! largest part of a small file's tokenization; these maps hold our own assets and token
//! dictionaries, so resistance to chosen-key collisions is not needed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash over 8-byte words.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weak, and hashbrown picks buckets by them: rotate
        // the well-mixed high bits down (as rustc-hash 2 does).
        self.hash.rotate_left(26)
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An empty [`FastMap`] with room for `n` entries.
pub fn fast_map<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, BuildHasherDefault::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_hash_apart_and_maps_work() {
        let h = |s: &str| {
            let mut x = FxHasher::default();
            std::hash::Hash::hash(s, &mut x);
            x.finish()
        };
        assert_ne!(h("Actb"), h("ACTB"));
        assert_ne!(h("ENSG00000075624"), h("ENSG00000075625"));
        assert_eq!(h("Gapdh"), h("Gapdh"));
        let mut m: FastMap<String, usize> = fast_map(4);
        for (i, g) in ["a", "bb", "ccccccccc", ""].iter().enumerate() {
            m.insert(g.to_string(), i);
        }
        assert_eq!(m["ccccccccc"], 2);
        assert_eq!(m[""], 3);
        assert_eq!(m.len(), 4);
    }
}
