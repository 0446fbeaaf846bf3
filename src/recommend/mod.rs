//! Recommendation logic over a catalog's index and behaviour state: what
//! to ask the planner and how to rank. Reads one consistent view of the
//! index (and the user's stored events) and returns ranked hits with the
//! reason each was chosen.
//!
//! Must not: write anything, or know about HTTP.

pub mod blend;
pub mod cross_sell;
pub mod personal;
pub mod preferences;
pub mod profile;
pub mod rerank;
pub mod similar;
pub mod upsell;

// What events imply lives below the catalog (`crate::behaviour`, which
// `catalog` updates in commit order); the ranking code reads it here.
pub use crate::behaviour::{self, copurchase, popularity};

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::index::filter::Filter;
use crate::index::{Hit, IndexState};
use crate::model::{BehaviourSettings, User};
use copurchase::PairStats;
use preferences::Preferences;
use profile::Profile;

/// Why an item was recommended.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Close to the item asked about (similar, upsell).
    Similar,
    /// Close to the user's long-term profile (or stored vector).
    Profile,
    /// Close to what the user did in the current session.
    RecentActivity,
    /// Popular now (cold start, or popularity outweighed similarity).
    Trending,
    /// Bought together with `with` (the strongest of the cart's items).
    BoughtTogether { with: Arc<str>, stats: PairStats },
    /// A neighbour from another category than the cart's items.
    Complementary,
    /// The collaborative model: shoppers who interacted with the user's
    /// (or the cart's) items also interacted with this one. `with` is the
    /// item that says so most strongly, when there is one.
    Collaborative { with: Option<Arc<str>> },
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Similar => "similar",
            Reason::Profile => "profile",
            Reason::RecentActivity => "recent_activity",
            Reason::Trending => "trending",
            Reason::BoughtTogether { .. } => "bought_together",
            Reason::Complementary => "complementary",
            Reason::Collaborative { .. } => "collaborative",
        }
    }
}

/// One recommended item.
#[derive(Debug, Clone)]
pub struct Recommendation {
    pub hit: Hit,
    pub reason: Reason,
}

/// What is known about the user a request is for, at its `now`.
#[derive(Debug, Clone, Default)]
pub struct UserContext {
    pub user: Option<User>,
    pub profile: Profile,
    /// Bought within the exclusion window.
    pub purchased: Vec<Arc<str>>,
    pub preferences: Option<Preferences>,
    /// The share of the user's (long-term, weighted) activity in each
    /// category, largest first: category affinity.
    pub categories: Vec<(String, f64)>,
    /// The behaviour settings the request ranks with: the catalog's, or
    /// an experiment arm's override of them.
    pub settings: BehaviourSettings,
}

impl UserContext {
    /// Reads the user, their newest events and purchases; an unknown user
    /// is simply one without a vector, events or preferences.
    pub fn load(catalog: &Catalog, user_id: &str, now_ms: i64) -> Result<UserContext> {
        UserContext::load_with(catalog, user_id, now_ms, catalog.behaviour_settings())
    }

    /// [`UserContext::load`] ranking with `settings`.
    pub fn load_with(
        catalog: &Catalog,
        user_id: &str,
        now_ms: i64,
        settings: BehaviourSettings,
    ) -> Result<UserContext> {
        let events = catalog.recent_events_n(user_id, settings.profile_events)?;
        let user = catalog.find_user(user_id)?;
        Ok(UserContext::of_events_with(
            catalog, user_id, user, &events, now_ms, settings,
        ))
    }

    /// The context of a user with these events (newest first), as if they
    /// were all they did: what a validation that holds an item back asks
    /// with (`recommend::blend`).
    pub fn of_events(
        catalog: &Catalog,
        user_id: &str,
        user: Option<User>,
        events: &[crate::model::Event],
        now_ms: i64,
    ) -> UserContext {
        let settings = catalog.behaviour_settings();
        UserContext::of_events_with(catalog, user_id, user, events, now_ms, settings)
    }

    /// [`UserContext::of_events`] ranking with `settings`.
    pub fn of_events_with(
        catalog: &Catalog,
        user_id: &str,
        user: Option<User>,
        events: &[crate::model::Event],
        now_ms: i64,
        settings: BehaviourSettings,
    ) -> UserContext {
        let (profile, categories) = catalog.with_index(|index| {
            let profile = profile::profile(
                events,
                user.as_ref().and_then(|u| u.vector.as_deref()),
                now_ms,
                &settings,
                // An item without a learned vector yet says nothing of taste.
                |item| {
                    index
                        .get(item)
                        .filter(|view| index.has_vector(view.slot))
                        .map(|view| index.vector(view.slot))
                },
            );
            let mut shares: Vec<(String, f64)> = Vec::new();
            let total: f64 = profile.item_weights.iter().map(|(_, w)| w).sum();
            for (item, w) in &profile.item_weights {
                let Some(category) = index.get(item).and_then(|v| v.meta.category.clone()) else {
                    continue;
                };
                match shares.iter_mut().find(|(c, _)| *c == category) {
                    Some((_, s)) => *s += w / total,
                    None => shares.push((category, w / total)),
                }
            }
            shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (profile, shares)
        });
        let purchased = catalog
            .with_behaviour(|b| b.purchased(user_id, now_ms, settings.purchase_exclusion_ms));
        // Stored preferences were checked on write; a bad one (written by
        // an older version) is ignored rather than failing every request.
        let preferences = user
            .as_ref()
            .and_then(|u| Preferences::from_attributes("attributes", &u.attributes).ok())
            .flatten();
        UserContext {
            user,
            profile,
            purchased,
            preferences,
            categories,
            settings,
        }
    }

    /// The context of no user (anonymous requests), ranking with `settings`.
    pub fn anonymous(settings: BehaviourSettings) -> UserContext {
        UserContext {
            user: None,
            profile: Profile::default(),
            purchased: Vec::new(),
            preferences: None,
            categories: Vec::new(),
            settings,
        }
    }

    /// `filter` with the user's preferences on the fields it leaves open.
    pub fn filter(&self, filter: Filter) -> Filter {
        match &self.preferences {
            Some(p) => p.apply(filter),
            None => filter,
        }
    }

    /// The live slots of the purchased items (to exclude from searches).
    pub fn purchased_slots(&self, index: &IndexState) -> Vec<u32> {
        self.purchased
            .iter()
            .filter_map(|id| index.get(id).map(|v| v.slot))
            .collect()
    }
}

/// Loads the context of an optional user.
pub fn context_of(catalog: &Catalog, user_id: Option<&str>, now_ms: i64) -> Result<UserContext> {
    context_with(catalog, user_id, now_ms, catalog.behaviour_settings())
}

/// [`context_of`] ranking with `settings`.
pub fn context_with(
    catalog: &Catalog,
    user_id: Option<&str>,
    now_ms: i64,
    settings: BehaviourSettings,
) -> Result<UserContext> {
    match user_id {
        Some(id) => UserContext::load_with(catalog, id, now_ms, settings),
        None => Ok(UserContext::anonymous(settings)),
    }
}

/// `(x - mean) / sd` for each value; all zeros when they do not vary.
/// "Vary" is relative to their magnitude, so popularity decayed to tiny
/// values still ranks, while rounding noise among equal values does not.
pub fn standardise(values: &[f64]) -> Vec<f64> {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !sd.is_finite() || sd <= 1e-9 * scale || scale == 0.0 {
        return vec![0.0; values.len()];
    }
    values.iter().map(|v| (v - mean) / sd).collect()
}

#[cfg(test)]
mod tests {
    use super::standardise;

    #[test]
    fn standardise_is_scale_free_and_ignores_rounding_noise() {
        let z = standardise(&[1.0, 2.0, 3.0]);
        assert!((z[0] + 1.2247).abs() < 1e-3 && z[1].abs() < 1e-12);
        assert_eq!(standardise(&[1e-90, 2e-90, 3e-90]).len(), 3);
        assert!((standardise(&[1e-90, 2e-90, 3e-90])[2] - z[2]).abs() < 1e-9);
        assert_eq!(standardise(&[0.1 + 0.2, 0.3, 0.3]), vec![0.0; 3]);
        assert_eq!(standardise(&[0.0, 0.0]), vec![0.0; 2]);
        assert!(standardise(&[]).is_empty());
    }
}
