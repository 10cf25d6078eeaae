//! A set of paths kept in 16 bytes a path, whatever their length: the memory of an import
//! that must remember every path it has seen (tar-split's refusal of repeated paths, the
//! AUFS opaque marker's "created by this archive") stays small per entry.
//!
//! Each path is kept as a 128-bit hash (two SipHash-1-3 values, domain-separated), so two
//! different paths are taken for one with a probability of about n²/2¹²⁹ (10⁻²⁷ for a
//! million paths). Equal paths always hash equal: a repeated path is never missed. The keys
//! are fixed (the WebAssembly guests that apply layers have no source of randomness), so a
//! layer could be built with two paths that collide; what that buys its author is nothing
//! they could not have written plainly: tar-split refuses their layer as if a path repeated,
//! or an AUFS opaque marker keeps a lower file that an explicit whiteout of every other
//! file would have kept as well.
//!
//! The hashes live in one sorted sequence (16 bytes each, in chunks of 256 KiB,
//! binary-searched) and a small hash table of the latest ones, merged into the sequence in
//! place when it fills; no per-path allocation, no table whose buckets outnumber the paths,
//! no vector reallocated to twice its size.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};

/// Fewest recent hashes kept before a merge: merges of small vectors are not worth it.
const MIN_RECENT: usize = 1 << 14;
/// The recent table holds up to this fraction of the merged hashes, so that merging (which
/// moves every hash) costs a bounded number of moves per insertion.
const RECENT_FRACTION: usize = 32;

/// A set of byte-string paths, kept as 128-bit keyed hashes (see the module docs).
#[derive(Clone, Default)]
pub struct PathSet {
    /// Hashes merged so far, sorted ascending.
    merged: Chunked,
    /// Hashes inserted since the last merge.
    recent: HashSet<u128, BuildHasherDefault<PreHashed>>,
}

impl std::fmt::Debug for PathSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathSet").field("len", &self.len()).finish()
    }
}

impl PathSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path`; says whether it was new.
    pub fn insert(&mut self, path: &[u8]) -> bool {
        let hash = self.hash(path);
        if self.merged.contains(hash) || !self.recent.insert(hash) {
            return false;
        }
        if self.recent.len() >= MIN_RECENT.max(self.merged.len / RECENT_FRACTION) {
            self.merge();
        }
        true
    }

    /// Whether `path` was added.
    pub fn contains(&self, path: &[u8]) -> bool {
        let hash = self.hash(path);
        self.recent.contains(&hash) || self.merged.contains(hash)
    }

    /// How many distinct paths were added.
    pub fn len(&self) -> usize {
        self.merged.len + self.recent.len()
    }

    /// Whether no path was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, path: &[u8]) -> u128 {
        path_hash(path)
    }

    /// Moves the recent hashes into the sorted sequence, merging from the back so that no
    /// second sequence of the merged size is needed.
    fn merge(&mut self) {
        let mut fresh: Vec<u128> = self.recent.drain().collect();
        fresh.sort_unstable();
        let merged = &mut self.merged;
        let old = merged.len;
        merged.grow(fresh.len());
        let (mut i, mut j, mut k) = (old, fresh.len(), old + fresh.len());
        while j > 0 {
            k -= 1;
            if i > 0 && merged.get(i - 1) > fresh[j - 1] {
                let moved = merged.get(i - 1);
                merged.set(k, moved);
                i -= 1;
            } else {
                merged.set(k, fresh[j - 1]);
                j -= 1;
            }
        }
    }
}

/// The 128-bit hash a [`PathSet`] keeps of `path` (two SipHash-1-3 values, domain-separated):
/// equal within one build of the program, which is all a set that is never stored across
/// builds needs.
pub fn path_hash(path: &[u8]) -> u128 {
    let half = |domain: u8| {
        // `DefaultHasher::new` is SipHash-1-3 of fixed keys within one build of the program.
        let mut h = DefaultHasher::new();
        h.write_u8(domain);
        h.write(path);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// log2 of the hashes in one chunk of the sorted sequence (16 Ki hashes, 256 KiB).
const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;

/// A sorted sequence of hashes in chunks of [`CHUNK`]: growing it adds a chunk instead of
/// moving everything to a vector twice the size, which in a WebAssembly guest (whose memory
/// never shrinks) would leave the old vector's room behind for good.
#[derive(Clone, Default)]
struct Chunked {
    chunks: Vec<Box<[u128]>>,
    /// Hashes in use; the rest of the last chunk is spare.
    len: usize,
}

impl Chunked {
    fn get(&self, i: usize) -> u128 {
        self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    fn set(&mut self, i: usize, value: u128) {
        self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)] = value;
    }

    /// Makes room for `more` hashes at the end.
    fn grow(&mut self, more: usize) {
        self.len += more;
        while self.chunks.len() * CHUNK < self.len {
            self.chunks.push(vec![0u128; CHUNK].into_boxed_slice());
        }
    }

    fn contains(&self, hash: u128) -> bool {
        // The chunk that may hold it: the first whose last hash in use is not below it.
        let last_in_use = |c: usize| self.get(((c + 1) * CHUNK).min(self.len) - 1);
        let used_chunks = self.len.div_ceil(CHUNK);
        let (mut lo, mut hi) = (0, used_chunks);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if last_in_use(mid) < hash {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == used_chunks {
            return false;
        }
        let end = ((lo + 1) * CHUNK).min(self.len) - lo * CHUNK;
        self.chunks[lo][..end].binary_search(&hash).is_ok()
    }
}

/// The hasher of the recent table: its keys are already keyed hashes, so their low bits
/// are used as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed (`write_u128`); anything else is folded in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_was_added_across_merges() {
        let mut set = PathSet::new();
        let count = MIN_RECENT * 5 + 17;
        for i in 0..count {
            assert!(set.insert(format!("d{}/f{i}", i % 7).as_bytes()), "{i}");
        }
        assert_eq!(set.len(), count);
        assert!(set.merged.len >= MIN_RECENT * 4, "merges happened");
        assert!(set.merged.chunks.len() > 1, "more than one chunk");
        assert!(
            (1..set.merged.len).all(|i| set.merged.get(i - 1) < set.merged.get(i)),
            "sorted"
        );
        for i in (0..count).step_by(97) {
            let path = format!("d{}/f{i}", i % 7);
            assert!(set.contains(path.as_bytes()), "{path}");
            assert!(!set.insert(path.as_bytes()), "{path} again");
        }
        assert!(!set.contains(b"d0/f-1"));
        assert!(!set.contains(b""));
        assert!(set.insert(b""));
        assert!(set.contains(b""));
        assert_eq!(set.len(), count + 1);
    }

    #[test]
    fn prefixes_and_extensions_are_different_paths() {
        let mut set = PathSet::new();
        for path in [&b"a"[..], b"ab", b"a/b", b"a\0", b"\x01a", b"b"] {
            assert!(set.insert(path), "{path:?}");
        }
        assert_eq!(set.len(), 6);
        assert!(!set.insert(b"a/b"));
    }
}
