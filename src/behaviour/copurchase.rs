//! Co-purchase statistics: which items are bought together, counted per
//! basket (an order, or a session when an event has no order id) and
//! updated incrementally as purchase events arrive.
//!
//! For items `a` and `b` over `N` baskets, with `n(a)` baskets holding `a`
//! and `n(ab)` holding both: support = n(ab) / N, confidence(a -> b) =
//! n(ab) / n(a), lift = confidence(a -> b) / (n(b) / N). A basket counts an
//! item once however many units or events it has.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// How strongly two items go together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairStats {
    /// Baskets holding both.
    pub together: u32,
    pub support: f64,
    /// Of the baskets with the first item, the share that also hold the second.
    pub confidence: f64,
    pub lift: f64,
}

/// See the module documentation.
///
/// Memory grows with the baskets, that is with every order a shop ever
/// records, so a basket is kept small: its key is a hash of the basket's
/// id, not the id (an order id, or a user id and a time, ~50 bytes with
/// its allocation), and its items are shared with `item_baskets`, which
/// holds each item id once. A one-item basket costs 86 bytes of heap where
/// a string key and a hash set of its own copies cost 313 (a million
/// baskets of time-keyed purchases, glibc's `mallinfo2`). The hash is
/// keyed per process, so two baskets collide by chance only (one pair in
/// 2^64): a collision would merge them, adding one to the count of each
/// pair across the two and counting one basket too few. Everything here
/// is rebuilt from the stored events at start.
#[derive(Debug, Default)]
pub struct CoPurchase {
    baskets: HashMap<u64, Box<[Arc<str>]>>,
    /// Baskets holding each item; its keys are the one copy of each id.
    item_baskets: HashMap<Arc<str>, u32>,
    /// For each item, the items it shares baskets with, and how many.
    partners: HashMap<Arc<str>, HashMap<Arc<str>, u32>>,
    basket_keys: RandomState,
}

impl CoPurchase {
    /// Records that `item` was bought in `basket`; repeats change nothing.
    /// Returns the stored copy of the item's id, for other maps to share.
    pub fn add(&mut self, basket: &str, item: &str) -> Arc<str> {
        let item: Arc<str> = match self.item_baskets.get_key_value(item) {
            Some((stored, _)) => Arc::clone(stored),
            None => Arc::from(item),
        };
        let items = self
            .baskets
            .entry(self.basket_keys.hash_one(basket))
            .or_default();
        if items.contains(&item) {
            return item;
        }
        for other in items.iter() {
            *self
                .partners
                .entry(Arc::clone(&item))
                .or_default()
                .entry(Arc::clone(other))
                .or_insert(0) += 1;
            *self
                .partners
                .entry(Arc::clone(other))
                .or_default()
                .entry(Arc::clone(&item))
                .or_insert(0) += 1;
        }
        // Exactly sized: most baskets hold one or two items, and a Vec
        // would reserve four.
        let mut grown = Vec::with_capacity(items.len() + 1);
        grown.extend(items.iter().cloned());
        grown.push(Arc::clone(&item));
        *items = grown.into_boxed_slice();
        *self.item_baskets.entry(Arc::clone(&item)).or_insert(0) += 1;
        item
    }

    /// Number of baskets.
    pub fn baskets(&self) -> u64 {
        self.baskets.len() as u64
    }

    /// Baskets holding `item`.
    pub fn baskets_with(&self, item: &str) -> u32 {
        self.item_baskets.get(item).copied().unwrap_or(0)
    }

    /// The statistics of `a -> b`, if they were ever bought together.
    pub fn stats(&self, a: &str, b: &str) -> Option<PairStats> {
        let together = *self.partners.get(a)?.get(b)?;
        Some(self.pair(a, b, together))
    }

    fn pair(&self, a: &str, b: &str, together: u32) -> PairStats {
        let n = self.baskets() as f64;
        let na = self.baskets_with(a) as f64;
        let nb = self.baskets_with(b) as f64;
        let confidence = together as f64 / na;
        PairStats {
            together,
            support: together as f64 / n,
            confidence,
            lift: confidence / (nb / n),
        }
    }

    /// Every item bought together with `a`, with the statistics of
    /// `a -> partner`, in no particular order.
    pub fn partners(&self, a: &str) -> Vec<(Arc<str>, PairStats)> {
        match self.partners.get(a) {
            None => Vec::new(),
            Some(map) => map
                .iter()
                .map(|(b, together)| (Arc::clone(b), self.pair(a, b, *together)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn baskets_share_one_copy_of_each_item_id() {
        let mut c = CoPurchase::default();
        for order in 0..1_000 {
            c.add(&format!("order-{order}"), "a");
        }
        let a = c.add("order-0", "a");
        // The caller's copy, item_baskets' key and one per basket.
        assert_eq!(Arc::strong_count(&a), 1 + 1 + 1_000);
        assert_eq!(c.baskets(), 1_000);
        assert_eq!(c.baskets_with("a"), 1_000);
    }

    #[test]
    fn a_small_example_by_hand() {
        let mut c = CoPurchase::default();
        // o1: a b c; o2: a b; o3: b; o4: d. Repeats count once.
        for (basket, item) in [
            ("o1", "a"),
            ("o1", "b"),
            ("o1", "c"),
            ("o1", "a"),
            ("o2", "a"),
            ("o2", "b"),
            ("o3", "b"),
            ("o4", "d"),
        ] {
            c.add(basket, item);
        }
        let ab = c.stats("a", "b").unwrap();
        assert_eq!(ab.together, 2);
        assert!((ab.support - 2.0 / 4.0).abs() < 1e-12);
        assert!((ab.confidence - 1.0).abs() < 1e-12);
        assert!((ab.lift - 1.0 / (3.0 / 4.0)).abs() < 1e-12);
        let ba = c.stats("b", "a").unwrap();
        assert!((ba.confidence - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.stats("a", "d"), None);
        let mut partners: Vec<String> =
            c.partners("a").iter().map(|(b, _)| b.to_string()).collect();
        partners.sort();
        assert_eq!(partners, ["b", "c"]);
    }

    proptest! {
        /// Incremental counts equal counts computed from the final baskets.
        #[test]
        fn incremental_counts_equal_a_recount(
            events in proptest::collection::vec((0u8..8, 0u8..6), 0..80)
        ) {
            let mut c = CoPurchase::default();
            let mut baskets: HashMap<u8, HashSet<u8>> = HashMap::new();
            for (basket, item) in &events {
                c.add(&format!("o{basket}"), &format!("i{item}"));
                baskets.entry(*basket).or_default().insert(*item);
            }
            prop_assert_eq!(c.baskets(), baskets.len() as u64);
            for a in 0u8..6 {
                let na = baskets.values().filter(|b| b.contains(&a)).count() as u32;
                prop_assert_eq!(c.baskets_with(&format!("i{a}")), na);
                for b in 0u8..6 {
                    if a == b {
                        continue;
                    }
                    let nab = baskets.values().filter(|s| s.contains(&a) && s.contains(&b)).count() as u32;
                    let got = c.stats(&format!("i{a}"), &format!("i{b}")).map_or(0, |s| s.together);
                    prop_assert_eq!(got, nab);
                }
            }
        }
    }
}
