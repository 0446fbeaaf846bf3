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

use crate::model::{
    BehaviourSettings, Event, EventKind, EventWeights, FeedbackSettings, RepurchaseSettings,
};
pub mod copurchase;
pub mod popularity;

use copurchase::CoPurchase;
use popularity::Popularity;

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
    /// user -> what they said of items: disliked (for good) and owned
    /// (when they last said so).
    marks: HashMap<Arc<str>, Marks>,
    /// item -> units bought and returned, for its return rate.
    returns: HashMap<Arc<str>, Returns>,
    /// Items whose return rate is above the setting (see [`Returns`]).
    demoted: usize,
    feedback: FeedbackSettings,
    /// Events applied: the collaborative model's watermark counts them.
    pub events: u64,
}

/// What one user said of items.
#[derive(Debug, Default)]
struct Marks {
    disliked: HashMap<Arc<str>, i64>,
    owned: HashMap<Arc<str>, i64>,
}

/// Purchase and return events of one item (events, not units: a line
/// of 3 sent back is one return of one purchase).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Returns {
    pub purchases: u32,
    pub returns: u32,
}

impl Returns {
    /// returns / purchases, capped at 1 (a return may be recorded
    /// without its purchase).
    pub fn rate(&self) -> f64 {
        if self.returns == 0 {
            return 0.0;
        }
        (f64::from(self.returns) / f64::from(self.purchases.max(1))).min(1.0)
    }

    /// Above the catalog's limit, with enough purchases to say so.
    pub fn too_high(&self, f: &FeedbackSettings) -> bool {
        self.purchases >= f.return_min_purchases && self.rate() > f.return_max_rate
    }
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
            marks: HashMap::new(),
            returns: HashMap::new(),
            demoted: 0,
            feedback: settings.feedback,
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
        match event.kind {
            EventKind::Purchase | EventKind::Return => {
                let f = self.feedback;
                let r = match self.returns.get_mut(event.item_id.as_str()) {
                    Some(r) => r,
                    None => self
                        .returns
                        .entry(Arc::from(event.item_id.as_str()))
                        .or_default(),
                };
                let before = r.too_high(&f);
                if event.kind == EventKind::Purchase {
                    r.purchases += 1;
                } else {
                    r.returns += 1;
                }
                match (before, r.too_high(&f)) {
                    (false, true) => self.demoted += 1,
                    (true, false) => self.demoted -= 1,
                    _ => {}
                }
            }
            EventKind::Dislike | EventKind::Own => {
                let marks = match self.marks.get_mut(event.user_id.as_str()) {
                    Some(m) => m,
                    None => self
                        .marks
                        .entry(Arc::from(event.user_id.as_str()))
                        .or_default(),
                };
                let map = if event.kind == EventKind::Dislike {
                    &mut marks.disliked
                } else {
                    &mut marks.owned
                };
                let t = map
                    .entry(Arc::from(event.item_id.as_str()))
                    .or_insert(event.timestamp_ms);
                *t = (*t).max(event.timestamp_ms);
            }
            _ => {}
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
    ///
    /// An item the user said they own counts as bought when they said
    /// so; an item they disliked is left out for good.
    pub fn purchased(&self, user: &str, now_ms: i64, window_ms: Option<i64>) -> Vec<Arc<str>> {
        let marks = self.marks.get(user);
        let bought = self.purchases.get(user);
        if marks.is_none() && bought.is_none() {
            return Vec::new();
        }
        let r = &self.repurchase;
        let last_of = bought
            .into_iter()
            .flatten()
            .map(|(item, b)| (item, b.last))
            .chain(
                marks
                    .into_iter()
                    .flat_map(|m| m.owned.iter().map(|(i, t)| (i, *t))),
            );
        let mut out: Vec<Arc<str>> = last_of
            .filter(|(_, last)| window_ms.is_none_or(|w| now_ms.saturating_sub(*last) <= w))
            .filter(|(item, last)| {
                let due = r.enabled
                    && self.repeat_of(item).is_some_and(|s| {
                        s.rate >= r.min_rate
                            && (now_ms.saturating_sub(*last)) as f64 >= r.due_share * s.interval_ms
                    });
                !due
            })
            .map(|(item, _)| Arc::clone(item))
            .chain(
                marks
                    .into_iter()
                    .flat_map(|m| m.disliked.keys().map(Arc::clone)),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether `user` disliked anything (the rerank stage's cheap check).
    pub fn has_disliked(&self, user: &str) -> bool {
        self.marks.get(user).is_some_and(|m| !m.disliked.is_empty())
    }

    /// The items `user` disliked, newest first, at most `n`.
    pub fn disliked(&self, user: &str, n: usize) -> Vec<Arc<str>> {
        let Some(marks) = self.marks.get(user) else {
            return Vec::new();
        };
        let mut all: Vec<(&Arc<str>, i64)> = marks.disliked.iter().map(|(i, t)| (i, *t)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all.into_iter()
            .take(n)
            .map(|(i, _)| Arc::clone(i))
            .collect()
    }

    /// The purchase and return counts of `item`.
    pub fn returns_of(&self, item: &str) -> Returns {
        self.returns.get(item).copied().unwrap_or_default()
    }

    /// Whether `item`'s return rate demotes it.
    pub fn returned_too_often(&self, item: &str) -> bool {
        self.demoted > 0
            && self
                .returns
                .get(item)
                .is_some_and(|r| r.too_high(&self.feedback))
    }

    /// How many items the return rate demotes now.
    pub fn demoted_items(&self) -> usize {
        self.demoted
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
    fn dislikes_owned_items_and_returns() {
        let settings = BehaviourSettings::default();
        let mut b = Behaviour::new(&settings);
        let ids = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        b.apply(&event("u", "gone", EventKind::Dislike, 1_000), None);
        b.apply(&event("u", "mine", EventKind::Own, 2_000), None);
        b.apply(&event("u", "later", EventKind::Dislike, 3_000), None);
        // Disliked: out for good; owned: like a purchase (within a window).
        assert_eq!(
            ids(b.purchased("u", 10_000, None)),
            ["gone", "later", "mine"]
        );
        assert_eq!(ids(b.purchased("u", 10_000, Some(1))), ["gone", "later"]);
        assert_eq!(ids(b.disliked("u", 1)), ["later"]);
        assert!(b.has_disliked("u") && !b.has_disliked("v"));
        assert!(!b.has_bought("u", "mine"), "owning is not buying");
        assert!(b.purchased("v", 10_000, None).is_empty());
        // Negative events add no popularity.
        assert_eq!(b.items.score("gone", 10_000), 0.0);
        // Returns: 4 of 10 purchases (> 0.33 with 10 purchases) demote.
        for n in 0..10 {
            b.apply(
                &event(&format!("b{n}"), "shirt", EventKind::Purchase, n),
                None,
            );
        }
        for n in 0..3 {
            b.apply(
                &event(&format!("b{n}"), "shirt", EventKind::Return, 100 + n),
                None,
            );
        }
        assert!(!b.returned_too_often("shirt"));
        assert_eq!(b.demoted_items(), 0);
        b.apply(&event("b3", "shirt", EventKind::Return, 200), None);
        assert_eq!(
            b.returns_of("shirt"),
            Returns {
                purchases: 10,
                returns: 4
            }
        );
        assert!(b.returned_too_often("shirt"));
        assert_eq!(b.demoted_items(), 1);
        // More sales bring the rate back under the limit.
        for n in 10..14 {
            b.apply(
                &event(&format!("b{n}"), "shirt", EventKind::Purchase, n),
                None,
            );
        }
        assert!(!b.returned_too_often("shirt"));
        assert_eq!(b.demoted_items(), 0);
        // Too few purchases to judge: never demoted, whatever the rate.
        b.apply(&event("x", "rare", EventKind::Purchase, 1), None);
        b.apply(&event("x", "rare", EventKind::Return, 2), None);
        assert!((b.returns_of("rare").rate() - 1.0).abs() < 1e-12);
        assert!(!b.returned_too_often("rare"));
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
