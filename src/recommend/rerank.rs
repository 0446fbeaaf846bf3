//! The last stage of every recommendation surface, after its own ranking:
//! demotions, the engagement score, and the optional order by it.
//!
//! In order:
//! 1. **Demotions.** A hit is demoted when its item's return rate is
//!    above `feedback.return_max_rate` (with at least
//!    `return_min_purchases` purchases), or when it is among the
//!    `feedback.dislike_neighbours` nearest neighbours of an item the user
//!    disliked (their newest [`MAX_DISLIKES`] dislikes). A demoted hit goes
//!    below every hit that is not, keeping the order within each group, and
//!    says why (`demoted`). Scores are a similarity, a blend of z-scores or
//!    a bought-together count depending on the surface, so a demotion
//!    moves hits by rank, not by a factor on a score that means different
//!    things. The surfaces are asked for twice `k` candidates when a
//!    demotion or the engagement order may reach below `k`, so a demoted
//!    hit is replaced rather than kept last. (Disliked items themselves
//!    never get here: they are excluded like purchases.)
//! 2. **Engagement.** Each candidate's features (`engagement::Features`)
//!    are computed from the index, the behaviour state and the user's
//!    context; the catalog's scorer gives the item part of the logit.
//! 3. **Order.** `rank_by: score` keeps the surface's order; `rank_by:
//!    engagement` orders by the item logit, best first (ties keep the
//!    surface's order), within the demotion groups.
//! 4. The first `k` are kept and each gets its score at the slot it is
//!    served in.

use std::collections::HashSet;
use std::sync::Arc;

use crate::behaviour::Behaviour;
use crate::catalog::Catalog;
use crate::engagement::{Features, Scorer, Source, FEATURE_COUNT};
use crate::index::filter::Filter;
use crate::index::IndexState;
use crate::model::{RankBy, Surface};
use crate::recommend::{Recommendation, UserContext};

/// Newest dislikes whose neighbours are demoted: each costs one search.
pub const MAX_DISLIKES: usize = 16;

/// Hours counted for an item without events (`recency`): a week.
const NO_EVENT_HOURS: f64 = 168.0;

/// Why a hit was moved down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demotion {
    HighReturnRate,
    LikeDisliked,
}

impl Demotion {
    pub fn as_str(self) -> &'static str {
        match self {
            Demotion::HighReturnRate => "high_return_rate",
            Demotion::LikeDisliked => "like_disliked",
        }
    }
}

/// What the stage adds to one hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Extra {
    pub engagement: f64,
    pub demoted: Vec<Demotion>,
    /// The item's return rate, when it has enough purchases to count.
    pub return_rate: Option<f64>,
}

/// The finished answer.
#[derive(Debug, Clone)]
pub struct Finished {
    pub picks: Vec<Recommendation>,
    pub extras: Vec<Extra>,
    pub source: Source,
    /// Each pick's features, row-major ([`FEATURE_COUNT`] per pick).
    pub features: Vec<f32>,
}

/// What a request asks of the stage.
pub struct Ask<'a> {
    pub surface: Surface,
    pub anchor: &'a [String],
    pub context: &'a UserContext,
    pub user_id: Option<&'a str>,
    pub rank_by: RankBy,
    pub k: usize,
    pub now_ms: i64,
}

/// How many candidates to ask the surface for: `2k` when the stage may
/// reorder beyond `k` (engagement order, a user with dislikes, items
/// demoted for returns), else `k`.
pub fn fetch(catalog: &Catalog, ask: &Ask) -> usize {
    let reorders = ask.rank_by == RankBy::Engagement
        || catalog.with_behaviour(|b| {
            b.demoted_items() > 0 || ask.user_id.is_some_and(|u| b.has_disliked(u))
        });
    if reorders {
        ask.k.saturating_mul(2)
    } else {
        ask.k
    }
}

/// Runs the stage over the surface's `candidates`, best first.
pub fn finish(
    catalog: &Catalog,
    scorer: &Scorer,
    ask: &Ask,
    candidates: Vec<Recommendation>,
) -> Finished {
    let settings = &ask.context.settings;
    let disliked: Vec<Arc<str>> = match ask.user_id {
        Some(u) if settings.feedback.dislike_neighbours > 0 => {
            catalog.with_behaviour(|b| b.disliked(u, MAX_DISLIKES))
        }
        _ => Vec::new(),
    };
    catalog.with_index(|index| {
        let near_disliked = neighbours_of(
            index,
            &disliked,
            settings.feedback.dislike_neighbours as usize,
        );
        let reference = Reference::of(index, ask);
        catalog.with_behaviour(|b| {
            let mut rows: Vec<Row> = candidates
                .into_iter()
                .enumerate()
                .map(|(rank, pick)| {
                    let mut demoted = Vec::new();
                    let id = &*pick.hit.meta.id;
                    let returns = b.returns_of(id);
                    let counted = returns.purchases >= settings.feedback.return_min_purchases;
                    if b.returned_too_often(id) {
                        demoted.push(Demotion::HighReturnRate);
                    }
                    let like_disliked = near_disliked.contains(&pick.hit.slot);
                    if like_disliked {
                        demoted.push(Demotion::LikeDisliked);
                    }
                    let mut f = features(index, b, ask, &reference, &pick);
                    f.item_engagement = scorer.item_features(id);
                    f.like_disliked = like_disliked;
                    f.return_rate = if counted { returns.rate() } else { 0.0 };
                    let x = f.to_vec();
                    Row {
                        rank,
                        logit: scorer.item_logit(&x),
                        x,
                        pick,
                        extra: Extra {
                            engagement: 0.0,
                            demoted,
                            return_rate: counted.then(|| returns.rate()),
                        },
                    }
                })
                .collect();
            rows.sort_by(|a, b| {
                let group = |r: &Row| !r.extra.demoted.is_empty();
                group(a).cmp(&group(b)).then_with(|| match ask.rank_by {
                    RankBy::Score => a.rank.cmp(&b.rank),
                    RankBy::Engagement => b.logit.total_cmp(&a.logit).then(a.rank.cmp(&b.rank)),
                })
            });
            rows.truncate(ask.k);
            let mut out = Finished {
                picks: Vec::with_capacity(rows.len()),
                extras: Vec::with_capacity(rows.len()),
                source: scorer.source(),
                features: Vec::with_capacity(rows.len() * FEATURE_COUNT),
            };
            for (position, mut row) in rows.into_iter().enumerate() {
                row.extra.engagement = scorer.probability(row.logit, ask.surface, position);
                out.features.extend_from_slice(&row.x);
                out.picks.push(row.pick);
                out.extras.push(row.extra);
            }
            out
        })
    })
}

struct Row {
    rank: usize,
    logit: f64,
    x: [f32; FEATURE_COUNT],
    pick: Recommendation,
    extra: Extra,
}

/// The slots among the `n` nearest neighbours of each of `items`.
fn neighbours_of(index: &IndexState, items: &[Arc<str>], n: usize) -> HashSet<u32> {
    let mut out = HashSet::new();
    if n == 0 {
        return out;
    }
    for id in items {
        // A disliked item that left the catalog still has no vector here.
        let Some(view) = index.get(id) else { continue };
        if !index.has_vector(view.slot) {
            continue;
        }
        let query = index.vector(view.slot);
        let (hits, _) = index.search(&query, n, &Filter::default(), &[view.slot]);
        out.extend(hits.into_iter().map(|h| h.slot));
    }
    out
}

/// What every candidate of one answer is compared with, computed once.
struct Reference {
    /// The anchors' vectors (similar, upsell: one; cross-sell: the cart).
    anchors: Vec<Vec<f32>>,
    /// The user's blended profile vector, prepared as a query.
    profile: Option<Vec<f32>>,
    /// Mean price of the priced anchors.
    anchor_price: Option<f64>,
    /// The user's usual price: the mean over their profile's items,
    /// weighted like the profile.
    usual_price: Option<f64>,
}

impl Reference {
    fn of(index: &IndexState, ask: &Ask) -> Reference {
        let views: Vec<crate::index::ItemView> =
            ask.anchor.iter().filter_map(|a| index.get(a)).collect();
        let anchors = views
            .iter()
            .filter(|v| index.has_vector(v.slot))
            .map(|v| index.vector(v.slot))
            .collect();
        let prices: Vec<f64> = views
            .iter()
            .filter_map(|v| v.meta.price.filter(|p| *p > 0.0))
            .collect();
        let (mut sum, mut weight) = (0.0, 0.0);
        for (item, w) in &ask.context.profile.item_weights {
            if let Some(q) = index
                .get(item)
                .and_then(|v| v.meta.price)
                .filter(|q| *q > 0.0)
            {
                sum += w * q;
                weight += w;
            }
        }
        Reference {
            anchors,
            profile: ask
                .context
                .profile
                .blended
                .clone()
                .and_then(|v| index.prepare_query(v)),
            anchor_price: (!prices.is_empty())
                .then(|| prices.iter().sum::<f64>() / prices.len() as f64),
            usual_price: (weight > 0.0).then(|| sum / weight),
        }
    }
}

/// The features of one candidate (see `engagement::FEATURES`).
fn features(
    index: &IndexState,
    b: &Behaviour,
    ask: &Ask,
    reference: &Reference,
    pick: &Recommendation,
) -> Features {
    let id = &*pick.hit.meta.id;
    let slot = pick.hit.slot;
    let context = ask.context;
    // Similarity: to the closest anchor, else to the profile vector; and
    // to the profile on its own.
    let has_vector = index.has_vector(slot);
    let profile_similarity = reference
        .profile
        .as_ref()
        .filter(|_| has_vector)
        .map(|q| f64::from(index.score(q, slot)));
    let similarity = if !has_vector {
        None
    } else if !reference.anchors.is_empty() {
        reference
            .anchors
            .iter()
            .map(|a| f64::from(index.score(a, slot)))
            .reduce(f64::max)
    } else {
        profile_similarity
    };
    let category_affinity = pick
        .hit
        .meta
        .category
        .as_ref()
        .and_then(|c| context.categories.iter().find(|(k, _)| k == c))
        .map_or(0.0, |(_, share)| *share);
    let (mut confidence, mut log_lift) = (0.0f64, 0.0f64);
    for a in ask.anchor {
        if let Some(stats) = b.copurchase.stats(a, id) {
            if stats.confidence > confidence {
                confidence = stats.confidence;
                log_lift = stats.lift.max(1e-9).ln();
            }
        }
    }
    let price = pick.hit.meta.price.filter(|p| *p > 0.0);
    let ratio = |to: Option<f64>| price.zip(to).map(|(p, q)| (p / q).ln());
    let recency = b.items.last_at(id).map_or(NO_EVENT_HOURS, |t| {
        ((ask.now_ms - t).max(0) as f64 / 3_600_000.0).min(24.0 * 365.0)
    });
    Features {
        similarity,
        profile_similarity,
        popularity: b.items.score(id, ask.now_ms).max(0.0).ln_1p(),
        category_affinity,
        copurchase_confidence: confidence,
        copurchase_log_lift: log_lift,
        price_vs_anchor: ratio(reference.anchor_price),
        price_vs_usual: ratio(reference.usual_price),
        recency: recency.ln_1p(),
        return_rate: 0.0,
        like_disliked: false,
        surface: Some(ask.surface),
        item_engagement: 0.0,
    }
}
