//! What a catalog learns from behaviour events, and the per-catalog knobs
//! that say how: event weights, half-lives, exclusion windows and the
//! weights of the ranking blends.
//!
//! [`Behaviour`] is derived state, like the index: it is rebuilt from the
//! stored events when a catalog opens (or its settings change) and updated
//! in commit order as events are recorded. It holds the bought-together
//! counts, time-decayed popularity per item and per category, and when
//! each user last bought each item (for exclusions). Per-user profiles are
//! not kept here: they are computed per request from the user's newest
//! stored events (`recommend::profile`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{BehaviourSettings, Event, EventKind, EventWeights, RepurchaseSettings};
use crate::recommend::copurchase::CoPurchase;
use crate::recommend::popularity::Popularity;

/// The basket a purchase belongs to: its order, else its session, else
/// whatever its user bought in the same millisecond.
pub fn basket_of(event: &Event) -> String {
    match (&event.order_id, &event.session_id) {
        (Some(order), _) => format!("o\u{0}{order}"),
        (None, Some(session)) => format!("s\u{0}{}\u{0}{session}", event.user_id),
        (None, None) => format!("t\u{0}{}\u{0}{}", event.user_id, event.timestamp_ms),
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Behaviour {
    pub copurchase: CoPurchase,
    pub items: Popularity,
    pub categories: Popularity,
    /// user -> item -> what they bought of it when.
    purchases: HashMap<Arc<str>, HashMap<Arc<str>, Bought>>,
    /// How items (and categories) are re-bought.
    repeats: HashMap<Arc<str>, Repeat>,
    category_repeats: HashMap<String, Repeat>,
    /// item -> its category when first bought (the fallback's key).
    category_of: HashMap<Arc<str>, String>,
    repurchase: RepurchaseSettings,
    weights: EventWeights,
    /// Events applied: the collaborative model's watermark counts them.
    pub events: u64,
}

impl Behaviour {
    pub fn new(settings: &BehaviourSettings) -> Behaviour {
        Behaviour {
            copurchase: CoPurchase::default(),
            items: Popularity::new(settings.popularity_half_life_ms),
            categories: Popularity::new(settings.popularity_half_life_ms),
            purchases: HashMap::new(),
            repeats: HashMap::new(),
            category_repeats: HashMap::new(),
            category_of: HashMap::new(),
            repurchase: settings.repurchase,
            weights: settings.weights,
            events: 0,
        }
    }

    /// Applies one event; `category` is its item's category, if known.
    /// Every part is order-independent, so history may arrive in any order.
    pub fn apply(&mut self, event: &Event, category: Option<&str>) {
        self.events += 1;
        let weight = self.weights.of(event.kind);
        if weight > 0.0 {
            self.items.add(&event.item_id, weight, event.timestamp_ms);
            if let Some(category) = category {
                self.categories.add(category, weight, event.timestamp_ms);
            }
        }
        if event.kind == EventKind::Purchase {
            let item = self.copurchase.add(&basket_of(event), &event.item_id);
            let bought = match self.purchases.get_mut(event.user_id.as_str()) {
                Some(bought) => bought,
                None => self
                    .purchases
                    .entry(Arc::from(event.user_id.as_str()))
                    .or_default(),
            };
            let t = event.timestamp_ms;
            let entry = bought.entry(Arc::clone(&item)).or_insert(Bought {
                first: t,
                last: t,
                count: 0,
            });
            let before = *entry;
            entry.first = entry.first.min(t);
            entry.last = entry.last.max(t);
            entry.count += 1;
            let after = *entry;
            if let Some(category) = category {
                self.category_of
                    .entry(Arc::clone(&item))
                    .or_insert_with(|| category.to_string());
            }
            let category = self.category_of.get(&item).cloned();
            let stats = self.repeats.entry(Arc::clone(&item)).or_default();
            stats.replace(before, after);
            if let Some(category) = category {
                self.category_repeats
                    .entry(category)
                    .or_default()
                    .replace(before, after);
            }
        }
    }

    /// Whether `user` ever bought `item` (the purchase rules, not
    /// `exclude_seen`, decide when it comes back).
    pub fn has_bought(&self, user: &str, item: &str) -> bool {
        self.purchases
            .get(user)
            .is_some_and(|bought| bought.contains_key(item))
    }

    /// How often and how soon `item` is re-bought: its own figures when
    /// it has `min_repeaters` repeat buyers, else its category's.
    pub fn repeat_of(&self, item: &str) -> Option<RepeatStats> {
        let own = self.repeats.get(item).copied().unwrap_or_default();
        let min = self.repurchase.min_repeaters;
        if own.repeaters >= min {
            return own.stats();
        }
        let category = self.category_of.get(item)?;
        let c = self.category_repeats.get(category).copied()?;
        (c.repeaters >= min).then(|| c.stats()).flatten()
    }

    /// Items `user` bought that stay out of their recommendations at
    /// `now_ms`, in id order: bought within `window_ms` before `now_ms`
    /// (any time when `None`), unless the item is re-bought (its repeat
    /// rate at least `repurchase.min_rate`) and `repurchase.due_share` of
    /// its typical interval has passed since the user's last purchase.
    pub fn purchased(&self, user: &str, now_ms: i64, window_ms: Option<i64>) -> Vec<Arc<str>> {
        let Some(bought) = self.purchases.get(user) else {
            return Vec::new();
        };
        let r = &self.repurchase;
        let mut out: Vec<Arc<str>> = bought
            .iter()
            .filter(|(_, b)| window_ms.is_none_or(|w| now_ms.saturating_sub(b.last) <= w))
            .filter(|(item, b)| {
                let due = r.enabled
                    && self.repeat_of(item).is_some_and(|s| {
                        s.rate >= r.min_rate
                            && (now_ms.saturating_sub(b.last)) as f64 >= r.due_share * s.interval_ms
                    });
                !due
            })
            .map(|(item, _)| Arc::clone(item))
            .collect();
        out.sort();
        out
    }
}

/// A re-purchase counts when it comes at least this long after the first
/// purchase (lines of one order, or a double click, are not re-buys).
pub const MIN_REPEAT_GAP_MS: i64 = 86_400_000;

/// One user's purchases of one item: order-independent (min, max, count).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bought {
    first: i64,
    last: i64,
    count: u32,
}

impl Bought {
    /// The user's mean interval between purchases, if they re-bought.
    fn interval(&self) -> Option<f64> {
        let span = self.last - self.first;
        (self.count >= 2 && span >= MIN_REPEAT_GAP_MS)
            .then(|| span as f64 / f64::from(self.count - 1))
    }
}

/// Sums over the buyers of an item (or a category): kept up to date by
/// replacing a buyer's old contribution with the new one, so the figures
/// do not depend on the order events arrive in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Repeat {
    buyers: u32,
    repeaters: u32,
    log_interval_sum: f64,
}

impl Repeat {
    fn replace(&mut self, before: Bought, after: Bought) {
        if before.count > 0 {
            self.buyers -= 1;
            if let Some(i) = before.interval() {
                self.repeaters -= 1;
                self.log_interval_sum -= i.ln();
            }
        }
        self.buyers += 1;
        if let Some(i) = after.interval() {
            self.repeaters += 1;
            self.log_interval_sum += i.ln();
        }
    }

    fn stats(&self) -> Option<RepeatStats> {
        (self.repeaters > 0 && self.buyers > 0).then(|| RepeatStats {
            buyers: self.buyers,
            rate: f64::from(self.repeaters) / f64::from(self.buyers),
            interval_ms: (self.log_interval_sum / f64::from(self.repeaters)).exp(),
        })
    }
}

/// How an item is re-bought.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepeatStats {
    pub buyers: u32,
    /// Share of buyers who bought it again a day or more later.
    pub rate: f64,
    /// Their typical interval (geometric mean of each one's mean), ms.
    pub interval_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, item: &str, kind: EventKind, at: i64) -> Event {
        Event {
            user_id: user.into(),
            item_id: item.into(),
            kind,
            timestamp_ms: at,
            session_id: None,
            order_id: Some(format!("{user}-{at}")),
            quantity: 1,
            price: None,
            event_id: None,
            recommendation_id: None,
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        BehaviourSettings::default().validate().unwrap();
        let mut s = BehaviourSettings::default();
        s.weights.click = f64::NAN;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with("settings.event_weights.click"), "{e}");
        let s = BehaviourSettings {
            session_half_life_ms: 0,
            ..Default::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with("settings.session_half_life_secs"), "{e}");
        let s = BehaviourSettings {
            profile_events: 0,
            ..Default::default()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn purchases_are_remembered_within_the_window() {
        let settings = BehaviourSettings::default();
        let mut b = Behaviour::new(&settings);
        b.apply(&event("u", "a", EventKind::Purchase, 1_000), Some("c"));
        b.apply(&event("u", "b", EventKind::Purchase, 5_000), Some("c"));
        b.apply(&event("u", "c", EventKind::View, 6_000), Some("c"));
        let ids = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(b.purchased("u", 6_000, None)), ["a", "b"]);
        assert_eq!(ids(b.purchased("u", 6_000, Some(2_000))), ["b"]);
        assert!(b.purchased("other", 6_000, None).is_empty());
        // Views count 1, purchases 8; the category sums its items.
        assert_eq!(b.repeat_of("a"), None);
        assert_eq!(b.items.score("c", 6_000), 1.0);
        assert!((b.categories.score("c", 6_000) - 17.0).abs() < 1e-3);
    }

    #[test]
    fn re_bought_items_come_back_after_their_interval_and_durables_stay_out() {
        const DAY: i64 = 86_400_000;
        let settings = BehaviourSettings::default();
        let mut b = Behaviour::new(&settings);
        // Coffee: three of four buyers re-buy it every ~10 days. The sofa
        // is bought once by everyone. Events arrive out of order.
        for (user, days) in [
            ("u1", vec![20, 0, 10]),
            ("u2", vec![5, 15]),
            ("u3", vec![30, 40]),
            ("u4", vec![1]),
        ] {
            for d in days {
                b.apply(
                    &event(user, "coffee", EventKind::Purchase, d * DAY),
                    Some("food"),
                );
            }
            b.apply(
                &event(user, "sofa", EventKind::Purchase, 3 * DAY),
                Some("home"),
            );
        }
        let coffee = b.repeat_of("coffee").unwrap();
        assert_eq!(coffee.buyers, 4);
        assert!((coffee.rate - 0.75).abs() < 1e-12);
        assert!(
            (coffee.interval_ms - 10.0 * DAY as f64).abs() < 1.0,
            "{coffee:?}"
        );
        assert_eq!(b.repeat_of("sofa"), None);
        // u1 last bought coffee on day 20: out until 0.8 x 10 days later.
        let out = |now: i64| b.purchased("u1", now, None);
        let ids = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(out(27 * DAY)), ["coffee", "sofa"]);
        assert_eq!(ids(out(28 * DAY)), ["sofa"]);
        assert_eq!(ids(out(5_000 * DAY)), ["sofa"]);
        // A new item in a re-bought category borrows the category's rate.
        b.apply(&event("u5", "tea", EventKind::Purchase, 0), Some("food"));
        assert!(b.repeat_of("tea").is_some());
        // Turned off: everything bought stays out.
        let mut off = settings;
        off.repurchase.enabled = false;
        let mut b2 = Behaviour::new(&off);
        for d in [0, 10, 20] {
            b2.apply(
                &event("u1", "coffee", EventKind::Purchase, d * DAY),
                Some("food"),
            );
        }
        b2.apply(&event("u2", "coffee", EventKind::Purchase, 0), Some("food"));
        assert_eq!(ids(b2.purchased("u1", 5_000 * DAY, None)), ["coffee"]);
    }
}
