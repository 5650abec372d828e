//! A hash map that grows a part at a time.
//!
//! A `HashMap` that outgrows its table moves every entry into one twice the size, all
//! inside a single insert. For a hot product's lines that is tens of milliseconds at half
//! a million pending orders, during which its actor answers no one: under a long Buy Now
//! run the p99 of one-second slices jumped to 227 ms and 330 ms at ~229K and ~459K lines,
//! the points where its maps doubled. Past [`SPLIT_AT`] entries this map spreads its
//! entries over [`PARTS`] maps chosen by a hash of the key, each growing on its own, so an
//! insert moves at most about a 256th of the entries. The parts fill evenly and double at
//! about the same count, but on different inserts, so the work of one doubling is spread
//! over the inserts that cause it.
//!
//! Most products never have more than a few lines: below the threshold this is one
//! `HashMap` and costs nothing more (256 empty maps would be 12 KB per product).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::ops::Index;

/// How many parts a split map has.
pub const PARTS: usize = 256;

/// The size at which a map splits into parts.
pub const SPLIT_AT: usize = if cfg!(test) { 64 } else { 8 * 1024 };

#[derive(Clone, Debug)]
pub struct SplitMap<K, V> {
    parts: Parts<K, V>,
}

#[derive(Clone, Debug)]
enum Parts<K, V> {
    One(HashMap<K, V>),
    /// Exactly `PARTS` maps; a key lives in the one [`part_of`] names.
    Split(Box<[HashMap<K, V>]>),
}

impl<K, V> Default for SplitMap<K, V> {
    fn default() -> Self {
        Self {
            parts: Parts::One(HashMap::new()),
        }
    }
}

/// Which part holds `key`. A hasher with fixed keys, separate from the parts' own (random)
/// hashers, so the keys of one part are not crowded into a corner of its table.
fn part_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
    // The top byte: PARTS is 2^8.
    (hash >> (u64::BITS - PARTS.trailing_zeros())) as usize
}

impl<K: Hash + Eq, V> SplitMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.parts {
            Parts::One(map) => map.len(),
            Parts::Split(parts) => parts.iter().map(HashMap::len).sum(),
        }
    }

    /// Whether the entries are spread over parts.
    #[cfg(test)]
    fn is_split(&self) -> bool {
        matches!(self.parts, Parts::Split(_))
    }

    fn part<Q>(&self, key: &Q) -> &HashMap<K, V>
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        match &self.parts {
            Parts::One(map) => map,
            Parts::Split(parts) => &parts[part_of(key)],
        }
    }

    fn part_mut<Q>(&mut self, key: &Q) -> &mut HashMap<K, V>
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        match &mut self.parts {
            Parts::One(map) => map,
            Parts::Split(parts) => &mut parts[part_of(key)],
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.part(key).get(key)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.part_mut(key).get_mut(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.part(key).contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.split_when_due();
        self.part_mut(&key).insert(key, value)
    }

    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        self.split_when_due();
        self.part_mut(&key).entry(key)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.part_mut(key).remove(key)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        match &mut self.parts {
            Parts::One(map) => map.retain(keep),
            Parts::Split(parts) => {
                for part in parts.iter_mut() {
                    part.retain(&mut keep);
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let parts: &[HashMap<K, V>] = match &self.parts {
            Parts::One(map) => std::slice::from_ref(map),
            Parts::Split(parts) => parts,
        };
        parts.iter().flat_map(HashMap::iter)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }

    /// Spreads a map that reached [`SPLIT_AT`] over its parts, once. It stays split when
    /// it shrinks again: a product that was hot once is likely to be again, and splitting
    /// back and forth around the threshold would move entries for nothing.
    fn split_when_due(&mut self) {
        let Parts::One(map) = &mut self.parts else {
            return;
        };
        if map.len() < SPLIT_AT {
            return;
        }
        let room = 2 * SPLIT_AT / PARTS;
        let mut parts: Box<[HashMap<K, V>]> =
            (0..PARTS).map(|_| HashMap::with_capacity(room)).collect();
        for (key, value) in map.drain() {
            parts[part_of(&key)].insert(key, value);
        }
        self.parts = Parts::Split(parts);
    }
}

/// Like `HashMap`'s: panics if the key is absent, for callers that hold an invariant.
impl<K: Hash + Eq, V> Index<&K> for SplitMap<K, V> {
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.get(key).expect("a key that SplitMap holds")
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for SplitMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u32),
        Add(u16, u32),
        Remove(u16),
        RetainEven,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a range several times SPLIT_AT, so runs cross the split both ways.
        let key = 0..(SPLIT_AT as u16 * 4);
        prop_oneof![
            8 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (key.clone(), 0..10u32).prop_map(|(k, v)| Op::Add(k, v)),
            4 => key.prop_map(Op::Remove),
            1 => Just(Op::RetainEven),
        ]
    }

    proptest! {
        /// Whatever happens to it, a split map holds what a `HashMap` would.
        #[test]
        fn it_holds_what_a_hash_map_holds(ops in prop::collection::vec(op(), 0..600)) {
            let mut split = SplitMap::new();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(split.insert(k, v), model.insert(k, v)),
                    Op::Add(k, v) => {
                        *split.entry(k).or_insert(0) += v;
                        *model.entry(k).or_insert(0) += v;
                    }
                    Op::Remove(k) => prop_assert_eq!(split.remove(&k), model.remove(&k)),
                    Op::RetainEven => {
                        split.retain(|_, v| *v % 2 == 0);
                        model.retain(|_, v| *v % 2 == 0);
                    }
                }
                prop_assert_eq!(split.len(), model.len());
            }
            let mut held: Vec<_> = split.iter().map(|(k, v)| (*k, *v)).collect();
            held.sort_unstable();
            let mut expected: Vec<_> = model.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(held, expected);
            for k in 0..(SPLIT_AT as u16 * 4) {
                prop_assert_eq!(split.get(&k).is_some(), split.contains_key(&k));
            }
        }
    }

    /// Past the threshold the entries are spread, every one still found, and no part
    /// holds much more than its share.
    #[test]
    fn a_big_map_is_spread_evenly_over_its_parts() {
        let entries = SPLIT_AT * PARTS;
        let map: SplitMap<u64, u64> = (0..entries as u64).map(|k| (k, k * 3)).collect();
        assert!(map.is_split());
        assert_eq!(map.len(), entries);
        assert!((0..entries as u64).all(|k| map.get(&k) == Some(&(k * 3))));
        let Parts::Split(parts) = &map.parts else {
            unreachable!("checked above");
        };
        assert_eq!(parts.len(), PARTS);
        let share = entries / PARTS;
        let largest = parts.iter().map(HashMap::len).max().unwrap_or(0);
        assert!(largest < share * 2, "largest part {largest}, share {share}");
    }

    #[test]
    fn a_small_map_stays_one_map() {
        let map: SplitMap<u64, u64> = (0..SPLIT_AT as u64 - 1).map(|k| (k, k)).collect();
        assert!(!map.is_split());
    }
}
