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

use crate::catalog::model::{BehaviourSettings, Event, EventKind, EventWeights};
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
    /// user -> item -> time of the newest purchase.
    purchases: HashMap<Arc<str>, HashMap<Arc<str>, i64>>,
    weights: EventWeights,
}

impl Behaviour {
    pub fn new(settings: &BehaviourSettings) -> Behaviour {
        Behaviour {
            copurchase: CoPurchase::default(),
            items: Popularity::new(settings.popularity_half_life_ms),
            categories: Popularity::new(settings.popularity_half_life_ms),
            purchases: HashMap::new(),
            weights: settings.weights,
        }
    }

    /// Applies one event; `category` is its item's category, if known.
    /// Every part is order-independent, so history may arrive in any order.
    pub fn apply(&mut self, event: &Event, category: Option<&str>) {
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
            let at = bought.entry(item).or_insert(event.timestamp_ms);
            *at = (*at).max(event.timestamp_ms);
        }
    }

    /// Items `user` bought within `window_ms` before `now_ms` (any time
    /// when `None`), in id order.
    pub fn purchased(&self, user: &str, now_ms: i64, window_ms: Option<i64>) -> Vec<Arc<str>> {
        let Some(bought) = self.purchases.get(user) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<str>> = bought
            .iter()
            .filter(|(_, &at)| window_ms.is_none_or(|w| now_ms.saturating_sub(at) <= w))
            .map(|(item, _)| Arc::clone(item))
            .collect();
        out.sort();
        out
    }
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
        assert_eq!(b.items.score("c", 6_000), 1.0);
        assert!((b.categories.score("c", 6_000) - 17.0).abs() < 1e-3);
    }
}
