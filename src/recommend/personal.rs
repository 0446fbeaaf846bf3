//! Personal picks for a user, and trending items.
//!
//! **Ranking rule.** Candidates are the `n = clamp(3k, 50, 1000)` items
//! nearest to the user's blended profile vector (`recommend::profile`),
//! the `n` items with the highest collaborative score (the learned
//! item-item model's row sum over the user's newest events, see
//! `collaborative`) and the `n / 2` most popular items, all satisfying the filter (the
//! request's, completed by the user's preferences) and none bought within
//! the exclusion window; with category affinity on, also the `n / 2` most
//! popular items of each of the user's three strongest categories (so a
//! shopper of bookcases *and* phones gets candidates from both, not only
//! from what lies between). Each candidate scores
//!
//! `blend.similarity * z(similarity to the profile)
//!  + blend.collaborative * z(collaborative score)
//!  + blend.popularity * z(ln(1 + popularity))
//!  + blend.category * z(category share)`
//!
//! with the weights of `Catalog::blend`: fitted on the catalog's own
//! events at each training (`recommend::blend`), or the settings' `blend`
//! when `collaborative.fit_blend` is off or no fit exists yet; a feature
//! weighted 0 adds no candidates of its own.
//! Here `z` standardises over the candidates, popularity is the item's
//! time-decayed, type-weighted event count, and the category share is the
//! part of the user's weighted activity spent in the candidate's category. Recency enters through the
//! profile: recent events weigh more, and the session vector counts in
//! proportion to how fresh the session is. Pure similarity is not enough:
//! a popularity prior lifts hit rate markedly (BENCHMARKS.md, replay).
//!
//! The reason of a hit is `collaborative` when the collaborative term is
//! the largest of the three (and positive evidence exists); `trending` when
//! the popularity term outweighs the similarity term; `recent_activity` when the session is fresh
//! (within one session half-life) and the item is at least as close to the
//! session vector as to the user's history (older events and stored
//! vector; a user in their first session has none); else `profile`.
//!
//! **Cold start.** A user with no vector, no usable events and no
//! collaborative evidence gets the trending items: the most popular items now that pass the filter.

use std::collections::HashSet;
use std::sync::Arc;

use crate::behaviour::Behaviour;
use crate::catalog::Catalog;
use crate::collaborative::{Model, RowScores};
use crate::error::Result;
use crate::index::filter::{Condition, Filter, StringCondition};
use crate::index::{IndexState, ItemMeta};
use crate::model::Blend;
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
    // A long history excludes hundreds of items, checked for every item
    // the popularity walk passes: a set, not a scan of the list.
    let excluded: HashSet<u32> = excluded.iter().copied().collect();
    trending_among(index, behaviour, now_ms, k, filter, &excluded)
}

/// [`trending_in`] with the exclusions already in a set (personal picks
/// walk the popularity order up to four times per request with one).
fn trending_among(
    index: &IndexState,
    behaviour: &Behaviour,
    now_ms: i64,
    k: usize,
    filter: &Filter,
    excluded: &HashSet<u32>,
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
    recommend_user_with(catalog, request, catalog.behaviour_settings())
}

/// [`recommend_user`] ranking with `settings` (an experiment arm's).
pub fn recommend_user_with(
    catalog: &Catalog,
    request: &UserRequest,
    settings: crate::model::BehaviourSettings,
) -> Result<Vec<Recommendation>> {
    let context = UserContext::load_with(catalog, &request.user_id, request.now_ms, settings)?;
    Ok(rank_for(catalog, &context, request))
}

/// [`recommend_user`] for a context already loaded (the API loads it once
/// for the surface and the rerank stage).
pub fn recommend_user_in(
    catalog: &Catalog,
    context: &UserContext,
    request: &UserRequest,
) -> Vec<Recommendation> {
    rank_for(catalog, context, request)
}

/// The features of one candidate of personal picks, standardised over
/// the candidates (`z`): what the blend weighs.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub slot: u32,
    /// Similarity to the blended profile vector.
    pub similarity: f64,
    /// The collaborative score (row sum over the user's newest events).
    pub collaborative: f64,
    /// `ln(1 + popularity)`.
    pub popularity: f64,
    /// The user's share of activity in the candidate's category.
    pub category: f64,
    /// Whether the raw collaborative score and popularity are positive
    /// (the reason needs evidence, not only a z-score).
    pub has_collaborative: bool,
    pub has_popularity: bool,
}

impl Features {
    /// The blend: `Σ weight · z(feature)`.
    pub fn score(&self, blend: &Blend) -> f64 {
        blend.similarity * self.similarity
            + blend.collaborative * self.collaborative
            + blend.popularity * self.popularity
            + blend.category * self.category
    }
}

/// The candidates of personal picks with their features, in slot order
/// (`None`: no profile vector and no collaborative evidence, a cold
/// start), with the catalog's model and blend. Replays fit the blend's
/// weights on these (`tools/replay`).
pub fn features(
    catalog: &Catalog,
    index: &IndexState,
    context: &UserContext,
    request: &UserRequest,
) -> Option<Vec<Features>> {
    let model = catalog.collaborative();
    features_with(
        catalog,
        index,
        context,
        request,
        model.as_deref(),
        &catalog.blend(),
    )
}

/// [`features`] with a given model, and the candidates `blend` needs: a
/// feature weighted 0 adds no candidates of its own (the validation of
/// `recommend::blend` passes every weight positive, to score them all).
pub fn features_with(
    catalog: &Catalog,
    index: &IndexState,
    context: &UserContext,
    request: &UserRequest,
    model: Option<&Model>,
    blend: &Blend,
) -> Option<Vec<Features>> {
    let settings = &context.settings;
    let filter = context.filter(request.filter.clone());
    let k = request.k;
    let now = request.now_ms;
    // The user's collaborative scores, by model position: the row sum over
    // the items of their newest events (see `collaborative`).
    let collab: RowScores = match model {
        Some(m) if blend.collaborative > 0.0 => m.scores(&context.profile.collaborative),
        _ => RowScores::none(),
    };
    let mut excluded = context.purchased_slots(index);
    if settings.exclude_seen {
        // Seen and not bought: what was bought comes back (or not) by the
        // purchase rules.
        catalog.with_behaviour(|b| {
            excluded.extend(
                context
                    .profile
                    .collaborative
                    .iter()
                    .filter(|(id, _)| !b.has_bought(&request.user_id, id))
                    .filter_map(|(id, _)| index.slot_of(id)),
            )
        });
        // Rated low or sent back: seen, and not wanted again.
        excluded.extend(
            context
                .profile
                .pushed
                .iter()
                .filter_map(|id| index.slot_of(id)),
        );
    }
    let query = context
        .profile
        .blended
        .clone()
        .and_then(|v| index.prepare_query(v));
    if query.is_none() && collab.is_empty() {
        return None;
    }
    let n = (3 * k).clamp(50, 1000);
    let mut candidates: HashSet<u32> = HashSet::new();
    let excluded_set: HashSet<u32> = excluded.iter().copied().collect();
    if let Some(query) = &query {
        // The planner fetches `n + |excluded|` neighbours to make up for
        // the exclusions: with the hundreds of a long history that is an
        // exact scan of the catalogue (19 % of a 600-event user's request
        // at 100k items). Past `n` exclusions, fetch `2n` and drop the
        // excluded here: fewer neighbours may be left, and the other
        // sources fill in.
        let hits = if excluded.len() <= n {
            index.search(query, n, &filter, &excluded).0
        } else {
            index.search(query, 2 * n, &filter, &[]).0
        };
        candidates.extend(
            hits.into_iter()
                .map(|hit| hit.slot)
                .filter(|slot| !excluded_set.contains(slot)),
        );
    }
    // The strongest collaborative items that pass the filter.
    if let Some(m) = model {
        let excluded = &excluded_set;
        let mut strongest: Vec<(u32, f64)> = collab.iter().filter(|(_, s)| *s > 0.0).collect();
        // Only the best few matter: select them before sorting (a long
        // history reaches tens of thousands of items; sorting them all
        // took 14 % of a request).
        let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let head = (4 * n).max(n + excluded.len());
        if strongest.len() > head {
            strongest.select_nth_unstable_by(head - 1, order);
            strongest.truncate(head);
        }
        strongest.sort_unstable_by(order);
        let mut added = 0;
        for (position, _) in strongest {
            let Some(slot) = index.slot_of(m.id(position)) else {
                continue;
            };
            if excluded.contains(&slot) || !index.satisfies(slot, &filter) {
                continue;
            }
            candidates.insert(slot);
            added += 1;
            if added == n {
                break;
            }
        }
    }
    let popular =
        catalog.with_behaviour(|b| trending_among(index, b, now, n / 2, &filter, &excluded_set));
    candidates.extend(popular.iter().map(|r| r.hit.slot));
    // With category affinity on: what is popular in the user's top
    // categories.
    if blend.category > 0.0 {
        for (category, _) in context.categories.iter().take(3) {
            let within = filter
                .clone()
                .and(Condition::Category(StringCondition::In(vec![
                    category.clone()
                ])));
            let popular = catalog
                .with_behaviour(|b| trending_among(index, b, now, n / 2, &within, &excluded_set));
            candidates.extend(popular.iter().map(|r| r.hit.slot));
        }
    }
    let mut slots: Vec<u32> = candidates.into_iter().collect();
    slots.sort_unstable();
    let metas: Vec<Arc<ItemMeta>> = slots
        .iter()
        .map(|slot| index.hit(*slot, 0.0).meta)
        .collect();
    let sims: Vec<f64> = slots
        .iter()
        .map(|slot| {
            query
                .as_ref()
                .map_or(0.0, |q| f64::from(index.score(q, *slot)))
        })
        .collect();
    let collabs: Vec<f64> = metas
        .iter()
        .map(|meta| {
            model
                .and_then(|m| m.position(&meta.id))
                .and_then(|p| collab.get(p))
                .unwrap_or(0.0)
        })
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
    let z_col = standardise(&collabs);
    let z_pop = standardise(&pops);
    let z_cat = standardise(&shares);
    Some(
        slots
            .iter()
            .enumerate()
            .map(|(i, &slot)| Features {
                slot,
                similarity: z_sim[i],
                collaborative: z_col[i],
                popularity: z_pop[i],
                category: z_cat[i],
                has_collaborative: collabs[i] > 0.0,
                has_popularity: pops[i] > 0.0,
            })
            .collect(),
    )
}

/// The ranking for a loaded context.
fn rank_for(
    catalog: &Catalog,
    context: &UserContext,
    request: &UserRequest,
) -> Vec<Recommendation> {
    let blend = catalog.blend_for(&context.settings);
    let model = catalog.collaborative();
    let k = request.k;
    catalog.with_index(|index| {
        let Some(candidates) =
            features_with(catalog, index, context, request, model.as_deref(), &blend)
        else {
            let filter = context.filter(request.filter.clone());
            // No profile, so no seen items to add.
            let excluded = context.purchased_slots(index);
            return catalog
                .with_behaviour(|b| trending_in(index, b, request.now_ms, k, &filter, &excluded));
        };
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
        let mut ranked: Vec<Recommendation> = candidates
            .iter()
            .map(|f| {
                let (sim, col, pop) = (
                    blend.similarity * f.similarity,
                    blend.collaborative * f.collaborative,
                    blend.popularity * f.popularity,
                );
                let reason = if col > sim && col >= pop && f.has_collaborative {
                    Reason::Collaborative { with: None }
                } else if pop > sim && f.has_popularity {
                    Reason::Trending
                } else if session.as_ref().is_some_and(|s| {
                    history
                        .as_ref()
                        .is_none_or(|h| index.score(s, f.slot) >= index.score(h, f.slot))
                }) {
                    Reason::RecentActivity
                } else {
                    Reason::Profile
                };
                Recommendation {
                    hit: index.hit(f.slot, f.score(&blend) as f32),
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
