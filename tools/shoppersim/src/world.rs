//! The simulated world: a catalog of items, shoppers with latent tastes,
//! and what a shopper does when shown an answer, with every probability
//! known, so the true difference between two arms is known exactly.
//!
//! A shopper has a taste (a random unit vector) and a click propensity
//! `c`, one of [`Behaviour::click_levels`] drawn uniformly. On each visit
//! the shopper asks for personal picks; if the answer is not empty they
//! click one of the shown items with probability `c * m`, where `m` is the
//! arm's effect factor (1 for the control; `1 + lift` for an injected
//! lift; a holdout's answers are empty, so it never gets a click). *Which*
//! item is clicked follows the taste: a softmax over the shown items'
//! similarity to it, so the server's ranking and profiles are exercised
//! for real. A click leads to an add-to-cart and that to a purchase with
//! fixed probabilities; independently, each visit ends in an organic
//! purchase (of a taste-picked item from the whole catalog, with no
//! recommendation id) with probability `organic`. A purchase pays a
//! lognormal amount, sent as the event's price.
//!
//! The engagement probabilities do not depend on which items were shown,
//! only on whether any were: that is what makes the truth closed-form
//! while the server's own ranking, attribution and counting run as in a
//! shop.

use serde::Serialize;

/// Seeded per shopper (`Rng::derive`), so a shopper's draws do not
/// depend on the order concurrent requests complete in.
pub use recstore_toolkit::Rng;

/// The shoppers' known probabilities.
#[derive(Debug, Clone, Serialize)]
pub struct Behaviour {
    /// Per-visit click propensities; a shopper draws one uniformly.
    pub click_levels: Vec<f64>,
    /// P(add to cart | click).
    pub cart_after_click: f64,
    /// P(purchase | add to cart).
    pub purchase_after_cart: f64,
    /// P(an organic purchase) per visit.
    pub organic: f64,
    /// The amount paid per purchase is `exp(N(price_mu, price_sigma^2))`.
    pub price_mu: f64,
    pub price_sigma: f64,
    /// How sharply tastes choose among shown items (softmax scale).
    pub taste_sharpness: f64,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            click_levels: vec![0.02, 0.05, 0.10, 0.20],
            cart_after_click: 0.5,
            purchase_after_cart: 0.6,
            organic: 0.03,
            price_mu: 3.0,
            price_sigma: 0.8,
            taste_sharpness: 8.0,
        }
    }
}

/// The three metrics an experiment's results compare.
pub const METRICS: [&str; 3] = ["ctr", "conversion_rate", "revenue_per_unit"];

impl Behaviour {
    /// P(purchase | click).
    pub fn purchase_after_click(&self) -> f64 {
        self.cart_after_click * self.purchase_after_cart
    }

    fn mean_click(&self) -> f64 {
        self.click_levels.iter().sum::<f64>() / self.click_levels.len() as f64
    }

    fn mean_price(&self) -> f64 {
        (self.price_mu + self.price_sigma * self.price_sigma / 2.0).exp()
    }

    /// The expected value of `metric` in an arm with effect factor `m`
    /// for shoppers who visit `visits` times, over the shopper population
    /// (exact: the click levels are a finite uniform mixture).
    pub fn expected(&self, metric: &str, m: f64, visits: usize) -> f64 {
        let s = self.purchase_after_click();
        let b = self.organic;
        let v = visits as f64;
        match metric {
            // Every unit has `visits` impressions: the ratio of sums is
            // the mean click probability.
            "ctr" => self.mean_click() * m,
            "conversion_rate" => {
                self.click_levels
                    .iter()
                    .map(|c| 1.0 - ((1.0 - b) * (1.0 - c * m * s)).powf(v))
                    .sum::<f64>()
                    / self.click_levels.len() as f64
            }
            "revenue_per_unit" => v * (b + self.mean_click() * m * s) * self.mean_price(),
            other => panic!("unknown metric {other}"),
        }
    }

    /// One purchase's amount, rounded to cents.
    pub fn price(&self, rng: &mut Rng) -> f64 {
        ((self.price_mu + self.price_sigma * rng.normal()).exp() * 100.0).round() / 100.0
    }
}

/// The catalog the shoppers browse.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub ids: Vec<String>,
    pub vectors: Vec<Vec<f32>>,
    pub prices: Vec<f64>,
    pub categories: Vec<String>,
}

impl Catalog {
    pub fn generate(items: usize, dim: usize, seed: u64) -> Catalog {
        let mut rng = Rng::derive(seed, 0xCA7A_1065);
        let mut c = Catalog {
            ids: Vec::with_capacity(items),
            vectors: Vec::with_capacity(items),
            prices: Vec::with_capacity(items),
            categories: Vec::with_capacity(items),
        };
        for i in 0..items {
            c.ids.push(format!("item-{i}"));
            c.vectors.push(rng.direction(dim));
            c.prices
                .push(((5.0 + 195.0 * rng.unit()) * 100.0).round() / 100.0);
            c.categories.push(format!("category-{}", i % 8));
        }
        c
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        id.strip_prefix("item-")?
            .parse::<usize>()
            .ok()
            .filter(|&i| i < self.ids.len())
    }

    /// An item index among `candidates` chosen by the taste's softmax.
    pub fn choose(
        &self,
        taste: &[f32],
        candidates: &[usize],
        sharpness: f64,
        rng: &mut Rng,
    ) -> usize {
        let weights: Vec<f64> = candidates
            .iter()
            .map(|&i| {
                let dot: f32 = taste.iter().zip(&self.vectors[i]).map(|(a, b)| a * b).sum();
                (sharpness * f64::from(dot)).exp()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut pick = rng.unit() * total;
        for (w, &i) in weights.iter().zip(candidates) {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        *candidates.last().expect("candidates are not empty")
    }
}

/// One simulated shopper.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub id: String,
    pub taste: Vec<f32>,
    pub click: f64,
    pub rng: Rng,
}

impl Shopper {
    pub fn new(id: String, seed: u64, dim: usize, behaviour: &Behaviour) -> Shopper {
        let mut rng = Rng::new(seed);
        let taste = rng.direction(dim);
        let click = behaviour.click_levels[rng.below(behaviour.click_levels.len())];
        Shopper {
            id,
            taste,
            click,
            rng,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_values_match_a_direct_simulation() {
        let b = Behaviour::default();
        let (visits, m) = (3, 1.3);
        let n = 400_000;
        let mut rng = Rng::new(7);
        let (mut clicks, mut converted, mut revenue) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let c = b.click_levels[rng.below(b.click_levels.len())];
            let mut bought = false;
            for _ in 0..visits {
                if rng.chance(c * m) {
                    clicks += 1.0;
                    if rng.chance(b.cart_after_click) && rng.chance(b.purchase_after_cart) {
                        bought = true;
                        revenue += b.price(&mut rng);
                    }
                }
                if rng.chance(b.organic) {
                    bought = true;
                    revenue += b.price(&mut rng);
                }
            }
            converted += f64::from(u8::from(bought));
        }
        let n = f64::from(n);
        let ctr = clicks / (n * visits as f64);
        assert!((ctr - b.expected("ctr", m, visits)).abs() < 0.002, "{ctr}");
        let conv = converted / n;
        let want = b.expected("conversion_rate", m, visits);
        assert!((conv - want).abs() < 0.003, "{conv} vs {want}");
        let rpu = revenue / n;
        let want = b.expected("revenue_per_unit", m, visits);
        assert!((rpu - want).abs() / want < 0.02, "{rpu} vs {want}");
    }

    #[test]
    fn choices_follow_the_taste() {
        let c = Catalog::generate(50, 8, 1);
        let taste = c.vectors[3].clone();
        let mut rng = Rng::new(2);
        let candidates: Vec<usize> = (0..10).collect();
        let hits = (0..2_000)
            .filter(|_| c.choose(&taste, &candidates, 8.0, &mut rng) == 3)
            .count();
        assert!(hits > 600, "{hits}");
        assert_eq!(c.index_of("item-7"), Some(7));
        assert_eq!(c.index_of("item-70"), None);
    }
}
