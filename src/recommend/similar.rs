//! Similar items: the nearest neighbours of an item's own vector, never
//! the item itself. For a known user, their purchases (within the
//! exclusion window) are left out and their preferences complete the
//! filter.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::filter::Filter;
use crate::index::Hit;
use crate::recommend::UserContext;

/// The `k` items most similar to `item_id` that satisfy `filter`.
pub fn similar(
    catalog: &Catalog,
    item_id: &str,
    k: usize,
    filter: Filter,
    context: &UserContext,
) -> Result<Vec<Hit>> {
    let filter = context.filter(filter);
    catalog.with_index(|index| {
        let anchor = index.get(item_id).ok_or_else(|| Error::ItemNotFound {
            id: item_id.to_string(),
        })?;
        let query = index.vector(anchor.slot);
        let mut excluded = context.purchased_slots(index);
        excluded.push(anchor.slot);
        Ok(index.search(&query, k, &filter, &excluded).0)
    })
}
