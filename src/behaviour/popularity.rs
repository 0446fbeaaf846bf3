//! Time-decayed popularity: each event adds its weight to its item's
//! counter, and a counter halves every `half_life` milliseconds. Decay is
//! applied lazily (a value and the time it is valid at), so adding an
//! event and reading a score cost O(1), and events may arrive out of time
//! order (a bulk load of history) with the same result as in order.
//!
//! **Ranking without decaying.** Every counter decays by the same factor
//! over the same time, so counters compare at any moment as they compare
//! by `log2(value) + at / half_life` (the log of the value extrapolated to
//! time 0), which no longer depends on the moment. Counters are kept
//! ordered by that key, so the top of the ranking, with a filter, is read
//! in order and stops after `n` matches instead of scoring every item.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A decaying counter: `value` as of `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decayed {
    value: f64,
    at_ms: i64,
}

/// A total order on finite f64 (the IEEE bits, sign-folded).
fn ordered_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The inverse of [`ordered_bits`].
fn from_ordered_bits(u: u64) -> f64 {
    if u >> 63 == 1 {
        f64::from_bits(u & !(1 << 63))
    } else {
        f64::from_bits(!u)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Popularity {
    half_life_ms: f64,
    items: HashMap<Arc<str>, Decayed>,
    /// Every counter by its time-free key, largest first, ties by id.
    order: BTreeSet<(Reverse<u64>, Arc<str>)>,
}

impl Popularity {
    pub fn new(half_life_ms: i64) -> Popularity {
        Popularity {
            half_life_ms: half_life_ms.max(1) as f64,
            items: HashMap::new(),
            order: BTreeSet::new(),
        }
    }

    /// The time-free ranking key of a counter (see the module docs).
    fn key(&self, d: Decayed) -> Reverse<u64> {
        Reverse(ordered_bits(
            d.value.log2() + d.at_ms as f64 / self.half_life_ms,
        ))
    }

    /// `2^(-dt / half_life)`.
    fn factor(&self, dt_ms: i64) -> f64 {
        (-(dt_ms as f64) / self.half_life_ms).exp2()
    }

    /// Adds `weight` (> 0; others are ignored) for `item` at `at_ms`.
    pub fn add(&mut self, item: &str, weight: f64, at_ms: i64) {
        if !(weight > 0.0 && weight.is_finite()) {
            return;
        }
        let half_life = self.half_life_ms;
        let factor = |dt: i64| (-(dt as f64) / half_life).exp2();
        let (id, old, new) = match self.items.get_key_value(item) {
            None => {
                let id: Arc<str> = Arc::from(item);
                let d = Decayed {
                    value: weight,
                    at_ms,
                };
                self.items.insert(Arc::clone(&id), d);
                (id, None, d)
            }
            Some((id, &d)) => {
                let new = if at_ms >= d.at_ms {
                    Decayed {
                        value: d.value * factor(at_ms - d.at_ms) + weight,
                        at_ms,
                    }
                } else {
                    Decayed {
                        value: d.value + weight * factor(d.at_ms - at_ms),
                        at_ms: d.at_ms,
                    }
                };
                let id = Arc::clone(id);
                self.items.insert(Arc::clone(&id), new);
                (id, Some(d), new)
            }
        };
        if let Some(old) = old {
            self.order.remove(&(self.key(old), Arc::clone(&id)));
        }
        self.order.insert((self.key(new), id));
    }

    /// The time of `item`'s newest counted event, if any.
    pub fn last_at(&self, item: &str) -> Option<i64> {
        self.items.get(item).map(|d| d.at_ms)
    }

    /// The decayed score of `item` at `now_ms` (0 for an unknown item).
    /// Events dated after `now_ms` count at full weight.
    pub fn score(&self, item: &str, now_ms: i64) -> f64 {
        self.items
            .get(item)
            .map_or(0.0, |d| d.value * self.factor((now_ms - d.at_ms).max(0)))
    }

    /// The `n` highest-scoring items at `now_ms` that `keep` accepts, best
    /// first, ties by id. Reads the ranking in key order and stops once no
    /// later counter can beat the `n`th found: a key extrapolates a counter
    /// to `now_ms` exactly when its events are not after `now_ms`, and
    /// over-estimates it otherwise (such events count at full weight), so
    /// it is an upper bound either way. The cost grows with how many items
    /// `keep` turns down before `n` are found.
    pub fn top(&self, now_ms: i64, n: usize, keep: impl Fn(&str) -> bool) -> Vec<(Arc<str>, f64)> {
        let mut best: Vec<(Arc<str>, f64)> = Vec::with_capacity(n + 1);
        if n == 0 {
            return best;
        }
        let now = now_ms as f64 / self.half_life_ms;
        for (Reverse(bits), id) in &self.order {
            if best.len() == n {
                let bound = (from_ordered_bits(*bits) - now).exp2();
                if bound < best[n - 1].1 * (1.0 - 1e-12) {
                    break;
                }
            }
            if !keep(id) {
                continue;
            }
            let score = self.score(id, now_ms);
            let at = best
                .iter()
                .position(|(other, s)| score > *s || (score == *s && **id < **other))
                .unwrap_or(best.len());
            if at < n {
                best.insert(at, (Arc::clone(id), score));
                best.truncate(n);
            }
        }
        best
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
        /// `top` equals scoring every counter at `now` and sorting, for
        /// any history and any moment (events after `now` included).
        #[test]
        fn top_equals_a_full_sort(
            events in proptest::collection::vec((0u8..12, 0.1f64..10.0, 0i64..(10 * HOUR)), 1..60),
            now in 0i64..(12 * HOUR),
            n in 1usize..15,
        ) {
            let mut p = Popularity::new(HOUR);
            for (item, w, t) in &events {
                p.add(&format!("i{item}"), *w, *t);
            }
            let keep = |id: &str| !id.ends_with('3');
            let got = p.top(now, n, keep);
            let mut all: Vec<(String, f64)> = (0u8..12)
                .map(|i| format!("i{i}"))
                .filter(|id| keep(id) && p.items.contains_key(id.as_str()))
                .map(|id| { let s = p.score(&id, now); (id, s) })
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            all.truncate(n);
            prop_assert_eq!(got.len(), all.len());
            for ((gid, gs), (wid, ws)) in got.iter().zip(&all) {
                // Near-equal scores may swap by rounding; scores must agree.
                let _ = (gid, wid);
                prop_assert!((gs - ws).abs() <= 1e-9 * ws.abs().max(1e-300), "{} vs {}", gs, ws);
            }
        }

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
