//! Upsell: better, pricier items relative to the one being viewed.
//!
//! Candidates are strictly pricier than the anchor and, by default, in its
//! category. The price band is either relative to the anchor's price
//! (`price > anchor * min_price_ratio`, `price <= anchor * max_price_ratio`)
//! or, with `tiers_up = n`, the tiers `anchor.tier + 1 ..= anchor.tier + n`.
//! Candidates are ranked by similarity to the anchor: "the same thing, but
//! better" rather than "anything more expensive".
//!
//! For a known user, purchases within the exclusion window are left out,
//! preferences complete the filter, and when the user has a profile the
//! `n = clamp(3k, 30, 1000)` most similar candidates are re-ranked by
//! `z(similarity to the anchor) + upsell_affinity * z(similarity to the
//! user's profile)` (`z` standardises over the candidates), so of two
//! equally good step-ups the one closer to the user's taste comes first.
//!
//! In a catalog with learned vectors, an anchor without factors yet gets
//! the most popular items of the band (reason `trending`), as in
//! `recommend::similar`.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::filter::{Bound, Condition, Filter, PriceRange, StringCondition};
use crate::index::Hit;
use crate::recommend::similar::popular_instead;
use crate::recommend::{standardise, Reason, Recommendation, UserContext};

/// Upsell parameters, validated.
#[derive(Debug, Clone)]
pub struct UpsellRequest {
    pub k: usize,
    pub same_category: bool,
    /// `>= 1`: upsell items are always pricier than the anchor.
    pub min_price_ratio: f64,
    /// `>= min_price_ratio`.
    pub max_price_ratio: f64,
    /// When set, the band is in tiers instead of price ratios.
    pub tiers_up: Option<u8>,
    pub filter: Filter,
}

impl UpsellRequest {
    /// Checks the ratios; the defaults are 1.0 and 2.0.
    pub fn validate(&self) -> Result<()> {
        if !self.min_price_ratio.is_finite() || self.min_price_ratio < 1.0 {
            return Err(Error::invalid(
                "min_price_ratio",
                "must be a finite number >= 1 (upsell items are always pricier than the anchor)",
            ));
        }
        if !self.max_price_ratio.is_finite() || self.max_price_ratio < self.min_price_ratio {
            return Err(Error::invalid(
                "max_price_ratio",
                "must be a finite number >= min_price_ratio",
            ));
        }
        if self.tiers_up == Some(0) {
            return Err(Error::invalid("tiers_up", "must be at least 1"));
        }
        Ok(())
    }
}

/// Upsell candidates for `item_id`, best first.
pub fn upsell(
    catalog: &Catalog,
    item_id: &str,
    request: &UpsellRequest,
    context: &UserContext,
    now_ms: i64,
) -> Result<Vec<Recommendation>> {
    request.validate()?;
    let affinity = context.settings.upsell_affinity;
    catalog.with_index(|index| {
        let anchor = index.get(item_id).ok_or_else(|| Error::ItemNotFound {
            id: item_id.to_string(),
        })?;
        let price = anchor.meta.price.ok_or_else(|| Error::Unprocessable {
            field: "item_id".into(),
            reason: format!("item {item_id:?} has no price, so nothing can be pricier"),
        })?;
        let mut filter = context.filter(request.filter.clone());
        if request.same_category {
            filter = filter.and(match &anchor.meta.category {
                Some(c) => Condition::Category(StringCondition::In(vec![c.clone()])),
                None => Condition::CategoryUnset,
            });
        }
        let strictly_pricier = Bound {
            value: price * request.min_price_ratio,
            inclusive: false,
        };
        match request.tiers_up {
            None => {
                filter = filter.and(Condition::Price(PriceRange {
                    low: Some(strictly_pricier),
                    high: Some(Bound {
                        value: price * request.max_price_ratio,
                        inclusive: true,
                    }),
                }));
            }
            Some(n) => {
                // Every priced item has a tier, so the anchor has one.
                let tier = anchor.tier.unwrap_or(1);
                filter = filter
                    .and(Condition::Tier {
                        low: tier.saturating_add(1),
                        high: tier.saturating_add(n),
                    })
                    .and(Condition::Price(PriceRange {
                        low: Some(Bound {
                            value: price,
                            inclusive: false,
                        }),
                        high: None,
                    }));
            }
        }
        let mut excluded = context.purchased_slots(index);
        excluded.push(anchor.slot);
        if !index.has_vector(anchor.slot) {
            return Ok(popular_instead(
                catalog, index, now_ms, request.k, &filter, &excluded,
            ));
        }
        let query = index.vector(anchor.slot);
        let taste = context
            .profile
            .blended
            .clone()
            .filter(|_| affinity > 0.0)
            .and_then(|v| index.prepare_query(v));
        let similar = |hits: Vec<Hit>| {
            hits.into_iter()
                .map(|hit| Recommendation {
                    hit,
                    reason: Reason::Similar,
                })
                .collect()
        };
        let Some(taste) = taste else {
            return Ok(similar(
                index.search(&query, request.k, &filter, &excluded).0,
            ));
        };
        let n = (3 * request.k).clamp(30, 1000);
        let hits = index.search(&query, n, &filter, &excluded).0;
        let sims: Vec<f64> = hits.iter().map(|h| f64::from(h.score)).collect();
        let tastes: Vec<f64> = hits
            .iter()
            .map(|h| f64::from(index.score(&taste, h.slot)))
            .collect();
        let (z_sim, z_taste) = (standardise(&sims), standardise(&tastes));
        let mut ranked: Vec<Hit> = hits
            .into_iter()
            .enumerate()
            .map(|(i, mut hit)| {
                hit.score = (z_sim[i] + affinity * z_taste[i]) as f32;
                hit
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.meta.id.cmp(&b.meta.id))
        });
        ranked.truncate(request.k);
        Ok(similar(ranked))
    })
}
