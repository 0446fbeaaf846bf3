//! Similar items: the nearest neighbours of an item's own vector, never
//! the item itself. For a known user, their purchases (within the
//! exclusion window) are left out and their preferences complete the
//! filter.
//!
//! In a catalog with learned vectors, an item the model has no factors for
//! yet (no events when it was trained) has no neighbours: it is answered
//! with the most popular items of its category that pass the filter
//! (reason `trending`), and with the catalog's most popular ones when it
//! has no category.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::filter::{Condition, Filter, StringCondition};
use crate::index::{IndexState, ItemView};
use crate::recommend::personal::trending_in;
use crate::recommend::{Reason, Recommendation, UserContext};

/// The `k` items most similar to `item_id` that satisfy `filter`.
pub fn similar(
    catalog: &Catalog,
    item_id: &str,
    k: usize,
    filter: Filter,
    context: &UserContext,
    now_ms: i64,
) -> Result<Vec<Recommendation>> {
    let filter = context.filter(filter);
    catalog.with_index(|index| {
        let anchor = index.get(item_id).ok_or_else(|| Error::ItemNotFound {
            id: item_id.to_string(),
        })?;
        let mut excluded = context.purchased_slots(index);
        excluded.push(anchor.slot);
        if !index.has_vector(anchor.slot) {
            let filter = within_category(filter, &anchor);
            return Ok(popular_instead(
                catalog, index, now_ms, k, &filter, &excluded,
            ));
        }
        let query = index.vector(anchor.slot);
        Ok(index
            .search(&query, k, &filter, &excluded)
            .0
            .into_iter()
            .map(|hit| Recommendation {
                hit,
                reason: Reason::Similar,
            })
            .collect())
    })
}

/// `filter` within the anchor's category, when it has one.
pub fn within_category(filter: Filter, anchor: &ItemView) -> Filter {
    match &anchor.meta.category {
        Some(c) => filter.and(Condition::Category(StringCondition::In(vec![c.clone()]))),
        None => filter,
    }
}

/// What an anchor without a vector is answered with: the most popular
/// items that pass `filter` (see the module documentation).
pub fn popular_instead(
    catalog: &Catalog,
    index: &IndexState,
    now_ms: i64,
    k: usize,
    filter: &Filter,
    excluded: &[u32],
) -> Vec<Recommendation> {
    catalog.with_behaviour(|b| trending_in(index, b, now_ms, k, filter, excluded))
}
