//! Similar items: the nearest neighbours of an item's own vector, never
//! the item itself.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::filter::Filter;
use crate::index::Hit;

/// The `k` items most similar to `item_id` that satisfy `filter`.
pub fn similar(catalog: &Catalog, item_id: &str, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
    catalog.with_index(|index| {
        let anchor = index.get(item_id).ok_or_else(|| Error::ItemNotFound {
            id: item_id.to_string(),
        })?;
        let query = index.vector(anchor.slot);
        Ok(index.search(&query, k, filter, &[anchor.slot]).0)
    })
}
