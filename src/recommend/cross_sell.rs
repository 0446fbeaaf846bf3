//! Cross-sell: complements of a cart (or one item), not substitutes.
//!
//! **Ranking rule.** Three sources, in this order:
//! 1. **bought together**: every item that shares at least
//!    `cross_sell.min_together` baskets with a cart item, with a lift of at
//!    least `cross_sell.min_lift`, scored by the sum over the cart of
//!    `confidence(cart item -> candidate)` (an item that goes with several
//!    cart items ranks higher), ties by lift, then id. The reason carries
//!    the statistics of the cart item it goes with most confidently;
//! 2. **collaborative**: the collaborative model's neighbours of the cart
//!    (`collaborative`: shoppers who interacted with a cart item also
//!    interacted with these, across baskets and sessions), scored by the
//!    sum of the cart items' learned weights; the reason names the cart
//!    item weighing most;
//! 3. **complementary**: the nearest neighbours of the cart's centroid in
//!    *other* categories than the cart's items, scored by similarity; they
//!    fill the places the evidence leaves.
//!
//! Both honour the filter (completed by the user's preferences). The cart's
//! items, the user's purchases within the exclusion window and the user's
//! current cart are never recommended.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::behaviour::copurchase::PairStats;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::filter::{Condition, Filter, StringCondition};
use crate::index::ItemView;
use crate::recommend::{context_with, Reason, Recommendation};

/// Most items a cross-sell cart may hold.
pub const MAX_CART_ITEMS: usize = 100;

/// A cross-sell request, validated.
#[derive(Debug, Clone)]
pub struct CrossSellRequest {
    pub item_ids: Vec<String>,
    pub user_id: Option<String>,
    pub k: usize,
    pub filter: Filter,
    pub now_ms: i64,
}

/// Cross-sell picks, best first (see the module documentation).
pub fn cross_sell(catalog: &Catalog, request: &CrossSellRequest) -> Result<Vec<Recommendation>> {
    cross_sell_with(catalog, request, catalog.behaviour_settings())
}

/// [`cross_sell`] ranking with `settings` (an experiment arm's).
pub fn cross_sell_with(
    catalog: &Catalog,
    request: &CrossSellRequest,
    settings: crate::model::BehaviourSettings,
) -> Result<Vec<Recommendation>> {
    let context = context_with(
        catalog,
        request.user_id.as_deref(),
        request.now_ms,
        settings,
    )?;
    cross_sell_in(catalog, request, &context)
}

/// [`cross_sell`] for a context already loaded.
pub fn cross_sell_in(
    catalog: &Catalog,
    request: &CrossSellRequest,
    context: &crate::recommend::UserContext,
) -> Result<Vec<Recommendation>> {
    let settings_all = context.settings;
    let settings = settings_all.cross_sell;
    let filter = context.filter(request.filter.clone());
    let k = request.k;
    catalog.with_index(|index| {
        let mut cart: Vec<ItemView> = Vec::with_capacity(request.item_ids.len());
        for id in &request.item_ids {
            let view = index
                .get(id)
                .ok_or_else(|| Error::ItemNotFound { id: id.clone() })?;
            // A repeated id is one cart item (its confidence counts once).
            if !cart.iter().any(|c| c.slot == view.slot) {
                cart.push(view);
            }
        }
        let mut excluded: HashSet<u32> = cart.iter().map(|v| v.slot).collect();
        excluded.extend(context.purchased_slots(index));
        excluded.extend(
            context
                .profile
                .cart
                .iter()
                .filter_map(|id| index.get(id).map(|v| v.slot)),
        );
        // 1. Bought together.
        struct Candidate {
            score: f64,
            best: (Arc<str>, PairStats),
        }
        let mut together: HashMap<u32, Candidate> = HashMap::new();
        catalog.with_behaviour(|b| {
            for anchor in &cart {
                for (partner, stats) in b.copurchase.partners(&anchor.meta.id) {
                    if stats.together < settings.min_together || stats.lift < settings.min_lift {
                        continue;
                    }
                    let Some(view) = index.get(&partner) else {
                        continue;
                    };
                    if excluded.contains(&view.slot) || !index.satisfies(view.slot, &filter) {
                        continue;
                    }
                    let c = together.entry(view.slot).or_insert(Candidate {
                        score: 0.0,
                        best: (Arc::clone(&anchor.meta.id), stats),
                    });
                    c.score += stats.confidence;
                    let better = stats.confidence > c.best.1.confidence
                        || (stats.confidence == c.best.1.confidence && anchor.meta.id < c.best.0);
                    if better {
                        c.best = (Arc::clone(&anchor.meta.id), stats);
                    }
                }
            }
        });
        let mut picks: Vec<Recommendation> = together
            .into_iter()
            .map(|(slot, c)| Recommendation {
                hit: index.hit(slot, c.score as f32),
                reason: Reason::BoughtTogether {
                    with: c.best.0,
                    stats: c.best.1,
                },
            })
            .collect();
        let lift = |r: &Recommendation| match &r.reason {
            Reason::BoughtTogether { stats, .. } => stats.lift,
            _ => 0.0,
        };
        picks.sort_by(|a, b| {
            b.hit
                .score
                .total_cmp(&a.hit.score)
                .then_with(|| lift(b).total_cmp(&lift(a)))
                .then_with(|| a.hit.meta.id.cmp(&b.hit.meta.id))
        });
        picks.truncate(k);
        // 2. The collaborative model's neighbours of the cart.
        if picks.len() < k {
            if let Some(model) = catalog
                .collaborative()
                .filter(|_| settings_all.blend.collaborative > 0.0)
            {
                let mut taken: HashSet<u32> = picks.iter().map(|p| p.hit.slot).collect();
                /// A target: its summed weight, and the cart item weighing most.
                struct Target {
                    score: f64,
                    with: Arc<str>,
                    strongest: f32,
                }
                let mut scores: HashMap<u32, Target> = HashMap::new();
                for anchor in &cart {
                    let Some(from) = model.position(&anchor.meta.id) else {
                        continue;
                    };
                    for (to, w) in model.row(from) {
                        let t = scores.entry(to).or_insert(Target {
                            score: 0.0,
                            with: Arc::clone(&anchor.meta.id),
                            strongest: w,
                        });
                        t.score += f64::from(w);
                        if w > t.strongest || (w == t.strongest && anchor.meta.id < t.with) {
                            t.with = Arc::clone(&anchor.meta.id);
                            t.strongest = w;
                        }
                    }
                }
                let mut ranked: Vec<(u32, Target)> = scores.into_iter().collect();
                ranked.sort_by(|a, b| {
                    b.1.score
                        .total_cmp(&a.1.score)
                        .then_with(|| model.id(a.0).cmp(model.id(b.0)))
                });
                for (to, Target { score, with, .. }) in ranked {
                    // Sorted: from here on the model advises against.
                    if picks.len() >= k || score <= 0.0 {
                        break;
                    }
                    let Some(view) = index.get(model.id(to)) else {
                        continue;
                    };
                    if excluded.contains(&view.slot)
                        || taken.contains(&view.slot)
                        || !index.satisfies(view.slot, &filter)
                    {
                        continue;
                    }
                    taken.insert(view.slot);
                    picks.push(Recommendation {
                        hit: index.hit(view.slot, score as f32),
                        reason: Reason::Collaborative { with: Some(with) },
                    });
                }
            }
        }
        // 3. Complementary neighbours from other categories.
        if picks.len() < k {
            let dim = index.config().dimension;
            let mut centroid = vec![0.0f32; dim];
            for view in &cart {
                for (c, x) in centroid.iter_mut().zip(index.vector(view.slot)) {
                    *c += x / cart.len() as f32;
                }
            }
            if let Some(query) = index.prepare_query(centroid) {
                let categories: Vec<String> = cart
                    .iter()
                    .filter_map(|v| v.meta.category.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let mut other = filter.clone();
                if !categories.is_empty() {
                    other = other.and(Condition::Category(StringCondition::NotIn(categories)));
                }
                excluded.extend(picks.iter().map(|p| p.hit.slot));
                let excluded: Vec<u32> = excluded.into_iter().collect();
                let hits = index.search(&query, k - picks.len(), &other, &excluded).0;
                picks.extend(hits.into_iter().map(|hit| Recommendation {
                    hit,
                    reason: Reason::Complementary,
                }));
            }
        }
        Ok(picks)
    })
}
