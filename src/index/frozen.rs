//! A frozen copy of an HNSW graph, searched by our own beam search (#20,
//! first step: built and tested against brute force here, not yet on the
//! serving path).
//!
//! hnsw_rs builds the graph; [`FrozenGraph::freeze`] copies its links
//! into flat arrays indexed by slot: layer 0 as a compressed sparse row
//! table (`offsets`, `links`), the upper layers (about one point in `M`)
//! as one small table per layer. The search is the textbook one (greedy
//! descent through the upper layers, then a beam of `ef` on layer 0)
//! without hnsw_rs's per-point locks, `Arc`s and hashing: distances come
//! from a closure over our vector arena and kernels, the visited set is an
//! epoch-stamped array per thread (no clearing between searches), and the
//! two heaps hold `(distance, slot)` pairs.
//!
//! **Filters inside the walk.** `accept` decides which slots may be
//! results; every slot still navigates. So a filter never disconnects the
//! graph, and the walk stops as soon as `ef` accepted slots are found and
//! no candidate is closer than the worst of them (hnsw_rs's filtered mode
//! instead disables its early stop and drains the whole candidate heap).
//! The walk is bounded by `max_visits` for the case of almost nothing
//! matching: the caller's planner sends those to an exact scan.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::index::graph::Graph;

/// One upper layer: the slots on it, sorted, and each one's links.
#[derive(Debug, Default, Clone)]
struct Layer {
    slots: Vec<u32>,
    offsets: Vec<u32>,
    links: Vec<u32>,
}

impl Layer {
    fn neighbours(&self, slot: u32) -> &[u32] {
        match self.slots.binary_search(&slot) {
            Ok(i) => &self.links[self.offsets[i] as usize..self.offsets[i + 1] as usize],
            Err(_) => &[],
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default, Clone)]
pub struct FrozenGraph {
    /// Layer 0, by slot: `links[offsets[s]..offsets[s + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// Layers 1 and up.
    upper: Vec<Layer>,
    /// A point of the top layer, and that layer.
    entry: Option<u32>,
}

/// A distance and a slot, ordered by distance, then slot (total: NaN
/// sorts last, so it never wins).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

thread_local! {
    /// Per search thread: a stamp per slot and the current epoch; a slot
    /// is visited when its stamp equals the epoch.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// What one search did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walk {
    /// Distances evaluated.
    pub evaluations: u64,
    /// The walk hit `max_visits` before it could stop.
    pub cut_short: bool,
}

impl FrozenGraph {
    /// Copies `graph`'s links. Not while points are being inserted (see
    /// `Graph::for_each_link`).
    pub fn freeze(graph: &Graph) -> FrozenGraph {
        let mut zero: Vec<(u32, Vec<u32>)> = Vec::with_capacity(graph.len());
        let mut upper: Vec<Vec<(u32, Vec<u32>)>> = Vec::new();
        let mut top: Option<(usize, u32)> = None;
        graph.for_each_link(&mut |slot, level, layers| {
            if let Some(l0) = layers.first() {
                zero.push((slot, l0.clone()));
            }
            for (l, links) in layers.iter().enumerate().skip(1) {
                if upper.len() < l {
                    upper.resize_with(l, Vec::new);
                }
                upper[l - 1].push((slot, links.clone()));
            }
            // The highest level, ties to the lowest slot: deterministic.
            if top.is_none_or(|(lv, s)| level > lv || (level == lv && slot < s)) {
                top = Some((level, slot));
            }
        });
        let slots = zero.iter().map(|(s, _)| *s as usize + 1).max().unwrap_or(0);
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); slots];
        for (s, l) in zero {
            lists[s as usize] = l;
        }
        let mut offsets = Vec::with_capacity(slots + 1);
        let mut links = Vec::new();
        offsets.push(0);
        for l in &lists {
            links.extend_from_slice(l);
            offsets.push(links.len() as u32);
        }
        let upper = upper
            .into_iter()
            .map(|mut points| {
                points.sort_by_key(|(s, _)| *s);
                let mut layer = Layer {
                    slots: Vec::with_capacity(points.len()),
                    offsets: vec![0],
                    links: Vec::new(),
                };
                for (s, l) in points {
                    layer.slots.push(s);
                    layer.links.extend_from_slice(&l);
                    layer.offsets.push(layer.links.len() as u32);
                }
                layer
            })
            .collect();
        FrozenGraph {
            offsets,
            links,
            upper,
            entry: top.map(|(_, s)| s),
        }
    }

    /// Slots the graph spans (the highest slot + 1).
    pub fn slots(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Bytes of the link tables.
    pub fn memory_bytes(&self) -> usize {
        let u = |v: &Vec<u32>| v.len() * 4;
        u(&self.offsets)
            + u(&self.links)
            + self
                .upper
                .iter()
                .map(|l| u(&l.slots) + u(&l.offsets) + u(&l.links))
                .sum::<usize>()
    }

    fn neighbours0(&self, slot: u32) -> &[u32] {
        let s = slot as usize;
        if s + 1 >= self.offsets.len() {
            return &[];
        }
        &self.links[self.offsets[s] as usize..self.offsets[s + 1] as usize]
    }

    /// The `k` nearest accepted slots by `distance` (lower is nearer),
    /// nearest first, with a beam of `max(ef, k)` accepted slots; at most
    /// `max_visits` distances are evaluated on layer 0.
    pub fn search(
        &self,
        k: usize,
        ef: usize,
        max_visits: usize,
        distance: impl Fn(u32) -> f32,
        accept: impl Fn(u32) -> bool,
    ) -> (Vec<(u32, f32)>, Walk) {
        let mut walk = Walk::default();
        let Some(entry) = self.entry else {
            return (Vec::new(), walk);
        };
        if k == 0 {
            return (Vec::new(), walk);
        }
        let ef = ef.max(k);
        // Greedy descent through the upper layers.
        let mut current = Scored(distance(entry), entry);
        walk.evaluations += 1;
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                for &n in layer.neighbours(current.1) {
                    let d = Scored(distance(n), n);
                    walk.evaluations += 1;
                    if d < current {
                        current = d;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        // The beam on layer 0.
        let found = VISITED.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (stamps, epoch) = &mut *cell;
            if stamps.len() < self.slots() {
                stamps.resize(self.slots(), 0);
            }
            *epoch = epoch.wrapping_add(1);
            if *epoch == 0 {
                stamps.iter_mut().for_each(|s| *s = 0);
                *epoch = 1;
            }
            let epoch = *epoch;
            let mut candidates: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
            let mut results: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef + 1);
            let visit = |s: u32, stamps: &mut Vec<u32>| {
                let slot = &mut stamps[s as usize];
                let fresh = *slot != epoch;
                *slot = epoch;
                fresh
            };
            if (current.1 as usize) < stamps.len() {
                visit(current.1, stamps);
            }
            candidates.push(Reverse(current));
            if accept(current.1) {
                results.push(current);
            }
            let mut visits = 1usize;
            while let Some(Reverse(c)) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|w| c > *w) {
                    break;
                }
                for &n in self.neighbours0(c.1) {
                    if n as usize >= stamps.len() || !visit(n, stamps) {
                        continue;
                    }
                    if visits >= max_visits {
                        walk.cut_short = true;
                        break;
                    }
                    visits += 1;
                    let d = Scored(distance(n), n);
                    walk.evaluations += 1;
                    let full = results.len() >= ef;
                    if full && results.peek().is_some_and(|w| d >= *w) {
                        // Farther than every result: still worth walking
                        // through only while results are not full.
                        continue;
                    }
                    candidates.push(Reverse(d));
                    if accept(n) {
                        results.push(d);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
                if walk.cut_short {
                    break;
                }
            }
            results.into_sorted_vec()
        });
        let hits = found.into_iter().take(k).map(|s| (s.1, s.0)).collect();
        (hits, walk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HnswSettings;
    use crate::model::{Metric, VectorType};

    use crate::testing::Rng;

    /// `n` clustered `dim`-d points (40 clusters).
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng(seed);
        let centres: Vec<Vec<f32>> = (0..40)
            .map(|_| (0..dim).map(|_| 3.0 * rng.normal()).collect())
            .collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % 40];
                c.iter().map(|x| x + rng.normal()).collect()
            })
            .collect()
    }

    fn l2(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    fn build(points: &[Vec<f32>]) -> Graph {
        let settings = HnswSettings {
            m: 16,
            ef_construction: 100,
            ef_search: 64,
        };
        let g = Graph::new(VectorType::F32, Metric::L2, &settings, points.len());
        let batch: Vec<(u32, &[f32])> = points
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, v.as_slice()))
            .collect();
        g.insert(&batch);
        g
    }

    /// Recall@k of `found` against the exact top k of the accepted slots.
    fn recall(
        points: &[Vec<f32>],
        query: &[f32],
        found: &[(u32, f32)],
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> f64 {
        let mut exact: Vec<(f32, u32)> = (0..points.len() as u32)
            .filter(|&s| accept(s))
            .map(|s| (l2(&points[s as usize], query), s))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want: Vec<u32> = exact.iter().take(k).map(|e| e.1).collect();
        if want.is_empty() {
            return 1.0;
        }
        found.iter().filter(|(s, _)| want.contains(s)).count() as f64 / want.len() as f64
    }

    #[test]
    fn the_frozen_walk_finds_what_brute_force_finds_with_and_without_filters() {
        let points = clustered(4_000, 24, 3);
        let graph = build(&points);
        let frozen = FrozenGraph::freeze(&graph);
        assert_eq!(frozen.slots(), points.len());
        assert!(!frozen.upper.is_empty(), "some points reach upper layers");
        let queries = clustered(60, 24, 99);
        for (name, accept, min) in [
            ("all", &(|_: u32| true) as &dyn Fn(u32) -> bool, 0.97),
            ("half", &|s: u32| s % 2 == 0, 0.95),
            ("a tenth", &|s: u32| s % 10 == 3, 0.95),
            // A filter correlated with the clusters: the matches are a
            // few clusters, mostly away from the query's.
            ("three clusters", &|s: u32| s % 40 < 3, 0.95),
        ] {
            let mut total = 0.0;
            for q in &queries {
                let (found, walk) =
                    frozen.search(10, 64, usize::MAX, |s| l2(&points[s as usize], q), accept);
                assert!(found.iter().all(|(s, _)| accept(*s)), "{name}");
                assert!(found.windows(2).all(|w| w[0].1 <= w[1].1), "{name}");
                assert!(!walk.cut_short);
                total += recall(&points, q, &found, 10, accept);
            }
            let mean = total / queries.len() as f64;
            assert!(mean >= min, "{name}: recall@10 {mean}");
        }
    }

    #[test]
    fn empty_graphs_and_small_bounds_answer_without_panicking() {
        let empty = Graph::new(
            VectorType::F32,
            Metric::L2,
            &HnswSettings {
                m: 16,
                ef_construction: 100,
                ef_search: 64,
            },
            0,
        );
        let frozen = FrozenGraph::freeze(&empty);
        assert_eq!(
            frozen.search(10, 64, usize::MAX, |_| 0.0, |_| true).0,
            vec![]
        );
        let points = clustered(500, 8, 5);
        let frozen = FrozenGraph::freeze(&build(&points));
        let q = &points[7];
        let (hits, walk) = frozen.search(5, 10, 20, |s| l2(&points[s as usize], q), |_| true);
        assert!(walk.cut_short && hits.len() <= 5);
        // Nothing accepted: no hits, and the walk ends.
        let (none, _) = frozen.search(5, 10, usize::MAX, |s| l2(&points[s as usize], q), |_| false);
        assert!(none.is_empty());
        // k 0, and its own vector is found first.
        assert!(frozen
            .search(0, 10, usize::MAX, |_| 0.0, |_| true)
            .0
            .is_empty());
        let (first, _) = frozen.search(1, 32, usize::MAX, |s| l2(&points[s as usize], q), |_| true);
        assert_eq!(first[0].0, 7);
        assert!(frozen.memory_bytes() > 500 * 4);
    }
}
