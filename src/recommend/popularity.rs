//! Time-decayed popularity: each event adds its weight to its item's
//! counter, and a counter halves every `half_life` milliseconds. Decay is
//! applied lazily (a value and the time it is valid at), so adding an
//! event and reading a score cost O(1), and events may arrive out of time
//! order (a bulk load of history) with the same result as in order.

use std::collections::HashMap;
use std::sync::Arc;

/// A decaying counter: `value` as of `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decayed {
    value: f64,
    at_ms: i64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Popularity {
    half_life_ms: f64,
    items: HashMap<Arc<str>, Decayed>,
}

impl Popularity {
    pub fn new(half_life_ms: i64) -> Popularity {
        Popularity {
            half_life_ms: half_life_ms.max(1) as f64,
            items: HashMap::new(),
        }
    }

    /// `2^(-dt / half_life)`.
    fn factor(&self, dt_ms: i64) -> f64 {
        (-(dt_ms as f64) / self.half_life_ms).exp2()
    }

    /// Adds `weight` for `item` at `at_ms`.
    pub fn add(&mut self, item: &str, weight: f64, at_ms: i64) {
        let half_life = self.half_life_ms;
        let factor = |dt: i64| (-(dt as f64) / half_life).exp2();
        match self.items.get_mut(item) {
            None => {
                self.items.insert(
                    Arc::from(item),
                    Decayed {
                        value: weight,
                        at_ms,
                    },
                );
            }
            Some(d) if at_ms >= d.at_ms => {
                d.value = d.value * factor(at_ms - d.at_ms) + weight;
                d.at_ms = at_ms;
            }
            Some(d) => d.value += weight * factor(d.at_ms - at_ms),
        }
    }

    /// The decayed score of `item` at `now_ms` (0 for an unknown item).
    /// Events dated after `now_ms` count at full weight.
    pub fn score(&self, item: &str, now_ms: i64) -> f64 {
        self.items
            .get(item)
            .map_or(0.0, |d| d.value * self.factor((now_ms - d.at_ms).max(0)))
    }

    /// The `n` highest-scoring items at `now_ms` that `keep` accepts, best
    /// first, ties by id.
    pub fn top(&self, now_ms: i64, n: usize, keep: impl Fn(&str) -> bool) -> Vec<(Arc<str>, f64)> {
        let mut all: Vec<(Arc<str>, f64)> = self
            .items
            .iter()
            .filter(|(id, _)| keep(id))
            .map(|(id, d)| {
                (
                    Arc::clone(id),
                    d.value * self.factor((now_ms - d.at_ms).max(0)),
                )
            })
            .collect();
        let order = |a: &(Arc<str>, f64), b: &(Arc<str>, f64)| {
            b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0))
        };
        // Select the best n first: sorting every counter per request would
        // cost O(P log P).
        if n == 0 {
            return Vec::new();
        }
        if all.len() > n {
            all.select_nth_unstable_by(n - 1, order);
            all.truncate(n);
        }
        all.sort_by(order);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn scores_halve_every_half_life() {
        let mut p = Popularity::new(HOUR);
        p.add("a", 8.0, 0);
        p.add("b", 1.0, 2 * HOUR);
        assert_eq!(p.score("a", 0), 8.0);
        assert!((p.score("a", HOUR) - 4.0).abs() < 1e-12);
        assert!((p.score("a", 3 * HOUR) - 1.0).abs() < 1e-12);
        assert_eq!(p.score("zzz", 3 * HOUR), 0.0);
        // At 2 h: a = 2, b = 1; at 3 h: a = 1, b = 0.5.
        let top = p.top(3 * HOUR, 10, |_| true);
        assert_eq!(top.len(), 2);
        assert_eq!(&*top[0].0, "a");
        assert!((top[1].1 - 0.5).abs() < 1e-12);
        assert_eq!(p.top(3 * HOUR, 10, |id| id != "a").len(), 1);
    }

    proptest! {
        /// The order events arrive in does not change any score.
        #[test]
        fn arrival_order_does_not_matter(
            events in proptest::collection::vec((0u8..3, 0.0f64..10.0, 0i64..(10 * HOUR)), 1..40),
            seed in any::<u64>(),
        ) {
            let mut in_order = events.clone();
            in_order.sort_by_key(|e| e.2);
            let mut shuffled = events.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut a = Popularity::new(HOUR);
            let mut b = Popularity::new(HOUR);
            for (item, w, t) in &in_order { a.add(&format!("i{item}"), *w, *t); }
            for (item, w, t) in &shuffled { b.add(&format!("i{item}"), *w, *t); }
            for item in 0u8..3 {
                let id = format!("i{item}");
                let (x, y) = (a.score(&id, 10 * HOUR), b.score(&id, 10 * HOUR));
                prop_assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{} vs {}", x, y);
            }
        }
    }
}
