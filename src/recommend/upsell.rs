//! Upsell: better, pricier items relative to the one being viewed.
//!
//! Candidates are strictly pricier than the anchor and, by default, in its
//! category. The price band is either relative to the anchor's price
//! (`price > anchor * min_price_ratio`, `price <= anchor * max_price_ratio`)
//! or, with `tiers_up = n`, the tiers `anchor.tier + 1 ..= anchor.tier + n`.
//! Candidates are ranked by similarity to the anchor: "the same thing, but
//! better" rather than "anything more expensive".

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::filter::{Bound, Condition, Filter, PriceRange, StringCondition};
use crate::index::Hit;

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
pub fn upsell(catalog: &Catalog, item_id: &str, request: &UpsellRequest) -> Result<Vec<Hit>> {
    request.validate()?;
    catalog.with_index(|index| {
        let anchor = index.get(item_id).ok_or_else(|| Error::ItemNotFound {
            id: item_id.to_string(),
        })?;
        let price = anchor.meta.price.ok_or_else(|| Error::Unprocessable {
            field: "item_id".into(),
            reason: format!("item {item_id:?} has no price, so nothing can be pricier"),
        })?;
        let mut filter = request.filter.clone();
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
        let query = index.vector(anchor.slot);
        Ok(index.search(&query, request.k, &filter, &[anchor.slot]).0)
    })
}
