//! Personal picks for a user, and trending items.
//!
//! **Ranking rule.** Candidates are the `n = clamp(3k, 50, 1000)` items
//! nearest to the user's blended profile vector (`recommend::profile`)
//! and the `n / 2` most popular items, all satisfying the filter (the
//! request's, completed by the user's preferences) and none bought within
//! the exclusion window; with category affinity on, also the `n / 2` most
//! popular items of each of the user's three strongest categories (so a
//! shopper of bookcases *and* phones gets candidates from both, not only
//! from what lies between). Each candidate scores
//!
//! `z(similarity to the profile) + blend.popularity * z(ln(1 + popularity))
//!  + blend.category * z(category share)`
//!
//! where `z` standardises over the candidates, popularity is the item's
//! time-decayed, type-weighted event count, and the category share is the
//! part of the user's weighted activity spent in the candidate's category. Recency enters through the
//! profile: recent events weigh more, and the session vector counts in
//! proportion to how fresh the session is. Pure similarity is not enough:
//! a popularity prior lifts hit rate markedly (BENCHMARKS.md, replay).
//!
//! The reason of a hit is `trending` when the popularity term outweighs
//! the similarity term; `recent_activity` when the session is fresh
//! (within one session half-life) and the item is at least as close to the
//! session vector as to the user's history (older events and stored
//! vector; a user in their first session has none); else `profile`.
//!
//! **Cold start.** A user with no vector and no usable events gets the
//! trending items: the most popular items now that pass the filter.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::index::filter::{Condition, Filter, StringCondition};
use crate::index::{IndexState, ItemMeta};
use crate::recommend::behaviour::Behaviour;
use crate::recommend::{standardise, Reason, Recommendation, UserContext};

/// A personal-picks request, validated.
#[derive(Debug, Clone)]
pub struct UserRequest {
    pub user_id: String,
    pub k: usize,
    pub filter: Filter,
    /// The moment to rank at (tests and replays inject it).
    pub now_ms: i64,
}

/// The `k` most popular live items at `now_ms` that pass `filter` and are
/// not in `excluded`, with their decayed popularity as the score.
pub fn trending_in(
    index: &IndexState,
    behaviour: &Behaviour,
    now_ms: i64,
    k: usize,
    filter: &Filter,
    excluded: &[u32],
) -> Vec<Recommendation> {
    let keep = |id: &str| {
        index
            .slot_of(id)
            .is_some_and(|slot| !excluded.contains(&slot) && index.satisfies(slot, filter))
    };
    behaviour
        .items
        .top(now_ms, k, keep)
        .into_iter()
        .filter(|(_, score)| *score > 0.0)
        .filter_map(|(id, score)| {
            let view = index.get(&id)?;
            Some(Recommendation {
                hit: index.hit(view.slot, score as f32),
                reason: Reason::Trending,
            })
        })
        .collect()
}

/// Trending items for an optional user (their purchases excluded, their
/// preferences applied).
pub fn trending(
    catalog: &Catalog,
    context: &UserContext,
    k: usize,
    filter: Filter,
    now_ms: i64,
) -> Vec<Recommendation> {
    let filter = context.filter(filter);
    catalog.with_index(|index| {
        let excluded = context.purchased_slots(index);
        catalog.with_behaviour(|b| trending_in(index, b, now_ms, k, &filter, &excluded))
    })
}

/// Personal picks, best first (see the module documentation).
pub fn recommend_user(catalog: &Catalog, request: &UserRequest) -> Result<Vec<Recommendation>> {
    let context = UserContext::load(catalog, &request.user_id, request.now_ms)?;
    Ok(rank_for(catalog, &context, request))
}

/// The ranking for a loaded context.
fn rank_for(
    catalog: &Catalog,
    context: &UserContext,
    request: &UserRequest,
) -> Vec<Recommendation> {
    let settings = catalog.behaviour_settings();
    let filter = context.filter(request.filter.clone());
    let k = request.k;
    let now = request.now_ms;
    catalog.with_index(|index| {
        let excluded = context.purchased_slots(index);
        let query = context
            .profile
            .blended
            .clone()
            .and_then(|v| index.prepare_query(v));
        let Some(query) = query else {
            return catalog.with_behaviour(|b| trending_in(index, b, now, k, &filter, &excluded));
        };
        let n = (3 * k).clamp(50, 1000);
        let affinity = |slot: u32| index.score(&query, slot);
        let mut candidates: HashMap<u32, f32> = HashMap::new();
        let mut add = |slot: u32| {
            candidates.entry(slot).or_insert_with(|| affinity(slot));
        };
        for hit in index.search(&query, n, &filter, &excluded).0 {
            add(hit.slot);
        }
        let popular =
            catalog.with_behaviour(|b| trending_in(index, b, now, n / 2, &filter, &excluded));
        for rec in popular {
            add(rec.hit.slot);
        }
        // With category affinity on: what is popular in the user's top
        // categories.
        if settings.blend.category > 0.0 {
            for (category, _) in context.categories.iter().take(3) {
                let within = filter
                    .clone()
                    .and(Condition::Category(StringCondition::In(vec![
                        category.clone()
                    ])));
                let popular = catalog
                    .with_behaviour(|b| trending_in(index, b, now, n / 2, &within, &excluded));
                for rec in popular {
                    add(rec.hit.slot);
                }
            }
        }
        let mut slots: Vec<(u32, f32)> = candidates.into_iter().collect();
        slots.sort_unstable_by_key(|(slot, _)| *slot);
        let sims: Vec<f64> = slots.iter().map(|(_, s)| f64::from(*s)).collect();
        let metas: Vec<Arc<ItemMeta>> = slots
            .iter()
            .map(|(slot, _)| index.hit(*slot, 0.0).meta)
            .collect();
        let pops: Vec<f64> = catalog.with_behaviour(|b| {
            metas
                .iter()
                .map(|m| b.items.score(&m.id, now).max(0.0).ln_1p())
                .collect()
        });
        let shares: Vec<f64> = metas
            .iter()
            .map(|m| {
                m.category.as_ref().map_or(0.0, |c| {
                    context
                        .categories
                        .iter()
                        .find(|(x, _)| x == c)
                        .map_or(0.0, |(_, s)| *s)
                })
            })
            .collect();
        let z_sim = standardise(&sims);
        let z_pop = standardise(&pops);
        let z_cat = standardise(&shares);
        let w = settings.blend.popularity;
        let w_cat = settings.blend.category;
        let session = context
            .profile
            .session
            .clone()
            .filter(|_| context.profile.session_freshness >= 0.5)
            .and_then(|v| index.prepare_query(v));
        let history = context
            .profile
            .history
            .clone()
            .and_then(|v| index.prepare_query(v));
        let mut ranked: Vec<Recommendation> = slots
            .iter()
            .enumerate()
            .map(|(i, (slot, _))| {
                let score = z_sim[i] + w * z_pop[i] + w_cat * z_cat[i];
                let reason = if w * z_pop[i] > z_sim[i] && pops[i] > 0.0 {
                    Reason::Trending
                } else if session.as_ref().is_some_and(|s| {
                    history
                        .as_ref()
                        .is_none_or(|h| index.score(s, *slot) >= index.score(h, *slot))
                }) {
                    Reason::RecentActivity
                } else {
                    Reason::Profile
                };
                Recommendation {
                    hit: index.hit(*slot, score as f32),
                    reason,
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.hit
                .score
                .total_cmp(&a.hit.score)
                .then_with(|| a.hit.meta.id.cmp(&b.hit.meta.id))
        });
        ranked.truncate(k);
        ranked
    })
}
