//! Co-purchase statistics: which items are bought together, counted per
//! basket (an order, or a session when an event has no order id) and
//! updated incrementally as purchase events arrive.
//!
//! For items `a` and `b` over `N` baskets, with `n(a)` baskets holding `a`
//! and `n(ab)` holding both: support = n(ab) / N, confidence(a -> b) =
//! n(ab) / n(a), lift = confidence(a -> b) / (n(b) / N). A basket counts an
//! item once however many units or events it has.

use std::collections::{HashMap, HashSet};
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
#[derive(Debug, Default)]
pub struct CoPurchase {
    baskets: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Baskets holding each item.
    item_baskets: HashMap<Arc<str>, u32>,
    /// For each item, the items it shares baskets with, and how many.
    partners: HashMap<Arc<str>, HashMap<Arc<str>, u32>>,
}

impl CoPurchase {
    /// Records that `item` was bought in `basket`; repeats change nothing.
    pub fn add(&mut self, basket: &str, item: &str) {
        let items = self.baskets.entry(Arc::from(basket)).or_default();
        if items.contains(item) {
            return;
        }
        let item: Arc<str> = Arc::from(item);
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
        items.insert(Arc::clone(&item));
        *self.item_baskets.entry(item).or_insert(0) += 1;
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
