//! Price tiers derived from price quantiles within a category.
//!
//! With `T` tiers and the category's `n` priced items, an item priced `p`
//! is in tier `1 + floor(T * r / n)`, where `r` counts the category's items
//! strictly cheaper than `p`. Equal prices share a tier, tier 1 holds the
//! cheapest items, and no tier exceeds `T`.

/// The derived tier of `price` among `sorted_prices` (ascending, non-empty).
pub fn derived_tier(sorted_prices: &[f64], price: f64, tiers: u8) -> u8 {
    let n = sorted_prices.len().max(1);
    let cheaper = sorted_prices.partition_point(|p| *p < price);
    let tier = 1 + (usize::from(tiers) * cheaper) / n;
    tier.min(usize::from(tiers)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_of_eight_prices() {
        let prices = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let tiers: Vec<u8> = prices
            .iter()
            .map(|p| derived_tier(&prices, *p, 4))
            .collect();
        assert_eq!(tiers, vec![1, 1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn equal_prices_share_a_tier_and_single_items_are_tier_one() {
        let prices = [5.0, 5.0, 5.0, 9.0];
        assert_eq!(derived_tier(&prices, 5.0, 4), 1);
        assert_eq!(derived_tier(&prices, 9.0, 4), 4);
        assert_eq!(derived_tier(&[3.0], 3.0, 4), 1);
    }
}
