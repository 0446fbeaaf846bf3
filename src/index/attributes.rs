//! The attribute index: for each filterable value, the set of live slots
//! that carry it (roaring bitmaps), plus a sorted price index. It answers
//! "which slots match this filter" exactly, without touching vectors.

use std::collections::{BTreeSet, HashMap};

use roaring::RoaringBitmap;

use crate::index::filter::{Condition, PriceRange, Scalar, StringCondition, TagCondition};
use crate::index::ItemMeta;

/// A price as a totally ordered key. Prices are validated finite and
/// `>= 0`, and for non-negative floats the bit pattern orders like the value.
fn price_key(price: f64) -> u64 {
    (price + 0.0).to_bits()
}

#[derive(Default, Clone)]
pub struct AttributeIndex {
    by_category: HashMap<String, RoaringBitmap>,
    without_category: RoaringBitmap,
    by_brand: HashMap<String, RoaringBitmap>,
    by_tag: HashMap<String, RoaringBitmap>,
    by_tier: HashMap<u8, RoaringBitmap>,
    out_of_stock: RoaringBitmap,
    by_attribute: HashMap<(String, String), RoaringBitmap>,
    prices: BTreeSet<(u64, u32)>,
    /// The price keys in order, as of the last refresh: counts a price
    /// range in O(log n) for the planner's estimates. Refreshed once the
    /// price index changed by a sixteenth since (amortised O(1) a change),
    /// so an estimate is off by at most that many items.
    price_order: Vec<u64>,
    price_changes: usize,
}

fn add(map: &mut HashMap<String, RoaringBitmap>, key: &str, slot: u32) {
    map.entry(key.to_string()).or_default().insert(slot);
}

fn remove(map: &mut HashMap<String, RoaringBitmap>, key: &str, slot: u32) {
    if let Some(bitmap) = map.get_mut(key) {
        bitmap.remove(slot);
        if bitmap.is_empty() {
            map.remove(key);
        }
    }
}

/// Scalars an attribute value offers to equality filters: itself, or each
/// element of an array.
fn attribute_scalars(value: &serde_json::Value) -> Vec<Scalar> {
    match value {
        serde_json::Value::Array(items) => items.iter().filter_map(Scalar::from_json).collect(),
        other => Scalar::from_json(other).into_iter().collect(),
    }
}

impl AttributeIndex {
    /// Indexes a live slot.
    pub fn insert(&mut self, slot: u32, meta: &ItemMeta, tier: Option<u8>) {
        match &meta.category {
            Some(c) => add(&mut self.by_category, c, slot),
            None => {
                self.without_category.insert(slot);
            }
        }
        if let Some(b) = &meta.brand {
            add(&mut self.by_brand, b, slot);
        }
        for tag in &meta.tags {
            add(&mut self.by_tag, tag, slot);
        }
        if let Some(t) = tier {
            self.by_tier.entry(t).or_default().insert(slot);
        }
        if !meta.in_stock {
            self.out_of_stock.insert(slot);
        }
        for (key, value) in &meta.attributes {
            for scalar in attribute_scalars(value) {
                self.by_attribute
                    .entry((key.clone(), scalar.index_key()))
                    .or_default()
                    .insert(slot);
            }
        }
        if let Some(p) = meta.price {
            self.prices.insert((price_key(p), slot));
            self.price_changed();
        }
    }

    fn price_changed(&mut self) {
        self.price_changes += 1;
        if self.price_changes > (self.prices.len() / 16).max(1024) {
            self.refresh_price_order();
        }
    }

    /// Re-reads the price keys in order (after a bulk build, and by itself
    /// as prices change).
    pub fn refresh_price_order(&mut self) {
        self.price_order.clear();
        self.price_order
            .extend(self.prices.iter().map(|(key, _)| *key));
        self.price_changes = 0;
    }

    /// About how many live slots have a price in `range`: exact right after
    /// a refresh, otherwise off by at most the changes since, scaled to
    /// today's size. For planning only; never for answers.
    pub fn estimate_price_slots(&self, range: &PriceRange) -> u64 {
        if self.price_changes > 0 && self.price_order.len() < 1024 {
            // Small and changed: counting exactly is cheap.
            return self
                .prices
                .iter()
                .filter(|(key, _)| range.contains(f64::from_bits(*key)))
                .count() as u64;
        }
        let order = &self.price_order;
        let from = match range.low {
            None => 0,
            Some(b) if b.inclusive => order.partition_point(|k| f64::from_bits(*k) < b.value),
            Some(b) => order.partition_point(|k| f64::from_bits(*k) <= b.value),
        };
        let to = match range.high {
            None => order.len(),
            Some(b) if b.inclusive => order.partition_point(|k| f64::from_bits(*k) <= b.value),
            Some(b) => order.partition_point(|k| f64::from_bits(*k) < b.value),
        };
        let counted = to.saturating_sub(from) as f64;
        let scale = self.prices.len() as f64 / order.len().max(1) as f64;
        (counted * scale).round() as u64
    }

    /// Removes a slot indexed with `meta` and `tier`.
    pub fn remove(&mut self, slot: u32, meta: &ItemMeta, tier: Option<u8>) {
        match &meta.category {
            Some(c) => remove(&mut self.by_category, c, slot),
            None => {
                self.without_category.remove(slot);
            }
        }
        if let Some(b) = &meta.brand {
            remove(&mut self.by_brand, b, slot);
        }
        for tag in &meta.tags {
            remove(&mut self.by_tag, tag, slot);
        }
        if let Some(t) = tier {
            self.set_tier(slot, Some(t), None);
        }
        self.out_of_stock.remove(slot);
        for (key, value) in &meta.attributes {
            for scalar in attribute_scalars(value) {
                let k = (key.clone(), scalar.index_key());
                if let Some(bitmap) = self.by_attribute.get_mut(&k) {
                    bitmap.remove(slot);
                    if bitmap.is_empty() {
                        self.by_attribute.remove(&k);
                    }
                }
            }
        }
        if let Some(p) = meta.price {
            if self.prices.remove(&(price_key(p), slot)) {
                self.price_changed();
            }
        }
    }

    /// Moves a slot from tier `old` to tier `new`.
    pub fn set_tier(&mut self, slot: u32, old: Option<u8>, new: Option<u8>) {
        if old == new {
            return;
        }
        if let Some(t) = old {
            if let Some(bitmap) = self.by_tier.get_mut(&t) {
                bitmap.remove(slot);
                if bitmap.is_empty() {
                    self.by_tier.remove(&t);
                }
            }
        }
        if let Some(t) = new {
            self.by_tier.entry(t).or_default().insert(slot);
        }
    }

    /// Live slots of a category (`None`: items without a category).
    pub fn category_slots(&self, category: Option<&str>) -> RoaringBitmap {
        match category {
            Some(c) => self.by_category.get(c).cloned().unwrap_or_default(),
            None => self.without_category.clone(),
        }
    }

    fn union_of(map: &HashMap<String, RoaringBitmap>, keys: &[String]) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for k in keys {
            if let Some(b) = map.get(k) {
                out |= b;
            }
        }
        out
    }

    /// Live slots whose price lies in `range`.
    pub fn price_slots(&self, range: &PriceRange) -> RoaringBitmap {
        use std::ops::Bound as B;
        let low = match range.low {
            None => B::Unbounded,
            Some(b) if b.inclusive => B::Included((price_key(b.value.max(0.0)), 0)),
            Some(b) => B::Excluded((price_key(b.value.max(0.0)), u32::MAX)),
        };
        let high = match range.high {
            None => B::Unbounded,
            Some(b) if b.value < 0.0 || (b.value == 0.0 && !b.inclusive) => {
                return RoaringBitmap::new()
            }
            Some(b) if b.inclusive => B::Included((price_key(b.value), u32::MAX)),
            Some(b) => B::Excluded((price_key(b.value), 0)),
        };
        if let (B::Included(l) | B::Excluded(l), B::Included(h) | B::Excluded(h)) = (low, high) {
            if l > h {
                return RoaringBitmap::new();
            }
        }
        // The tuple bounds are exact for the key; re-check the value so
        // inclusive/exclusive edges are honoured at equal keys too.
        let mut slots: Vec<u32> = self
            .prices
            .range((low, high))
            .filter(|(key, _)| range.contains(f64::from_bits(*key)))
            .map(|&(_, slot)| slot)
            .collect();
        // Slots come in price order, i.e. scattered: one sort and a sorted
        // build instead of inserting them one by one (each insert searching
        // its container).
        slots.sort_unstable();
        slots.dedup();
        RoaringBitmap::from_sorted_iter(slots).expect("sorted and unique")
    }

    /// The exact set of live slots matching `condition`, given the set of
    /// all live slots. `ExcludeIds` is resolved by the caller.
    pub fn condition_slots(
        &self,
        condition: &Condition,
        live: &RoaringBitmap,
    ) -> Option<RoaringBitmap> {
        Some(match condition {
            Condition::Category(StringCondition::In(keys)) => {
                Self::union_of(&self.by_category, keys)
            }
            Condition::Category(StringCondition::NotIn(keys)) => {
                live - Self::union_of(&self.by_category, keys)
            }
            Condition::CategoryUnset => self.without_category.clone(),
            Condition::Brand(StringCondition::In(keys)) => Self::union_of(&self.by_brand, keys),
            Condition::Brand(StringCondition::NotIn(keys)) => {
                live - Self::union_of(&self.by_brand, keys)
            }
            Condition::Price(range) => self.price_slots(range),
            Condition::Tier { low, high } => {
                let mut out = RoaringBitmap::new();
                for (tier, bitmap) in &self.by_tier {
                    if (*low..=*high).contains(tier) {
                        out |= bitmap;
                    }
                }
                out
            }
            Condition::InStock(true) => live - &self.out_of_stock,
            Condition::InStock(false) => self.out_of_stock.clone(),
            Condition::Tags(TagCondition::Any(tags)) => Self::union_of(&self.by_tag, tags),
            Condition::Tags(TagCondition::All(tags)) => {
                let mut out = live.clone();
                for t in tags {
                    match self.by_tag.get(t) {
                        Some(b) => out &= b,
                        None => return Some(RoaringBitmap::new()),
                    }
                }
                out
            }
            Condition::Attribute { key, value } => self
                .by_attribute
                .get(&(key.clone(), value.index_key()))
                .cloned()
                .unwrap_or_default(),
            Condition::ExcludeIds(_) => return None,
        })
    }
}
