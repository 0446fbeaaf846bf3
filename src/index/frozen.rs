//! A frozen copy of an HNSW graph, searched by our own beam search: what
//! serves every graph search of `index` (#20).
//!
//! hnsw_rs builds the graph; [`FrozenGraph::freeze`] copies its links
//! into flat arrays indexed by slot: layer 0 as a compressed sparse row
//! table (`offsets`, `links`), the upper layers (about one point in `M`)
//! as one small table per layer. The search is the textbook one (greedy
//! descent through the upper layers, then a beam of `ef` on layer 0)
//! without hnsw_rs's per-point locks, `Arc`s and hashing: distances come
//! from the caller's [`Space`] (our vector arena and kernels), the visited
//! set is an epoch-stamped array per thread (no clearing between
//! searches), the two heaps hold `(distance, slot)` pairs, and the
//! vectors of a node's unvisited neighbours are prefetched before the
//! first of them is scored.
//!
//! **Coverage.** A frozen graph covers the slots below [`FrozenGraph::covered`]:
//! each of them was a point of the graph, with all its links, when it was
//! frozen, and no link leads outside. Slots at and above it (written after
//! the freeze) are the caller's delta, searched exactly.
//!
//! **Filters inside the walk.** [`Space::accept`] decides which slots may
//! be results; every slot still navigates. So a filter never disconnects
//! the graph, and the walk stops as soon as `ef` accepted slots are found
//! and no candidate is closer than the worst of them (hnsw_rs's filtered
//! mode instead disables its early stop and drains the whole candidate
//! heap). Seeds given by the caller (members of the filter's match set)
//! join the descent's entry on layer 0, so that a filter whose matches lie
//! in another neighbourhood than the query's is reached from inside that
//! neighbourhood instead of by walking the graph towards it. The walk is
//! bounded by `max_visits` for the case of almost nothing matching: the
//! caller's planner sends those to an exact scan.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::index::graph::Graph;

/// What a search measures and filters with.
pub trait Space {
    /// The distance of slot `slot` to the query: lower is nearer.
    fn distance(&self, slot: u32) -> f32;
    /// Whether slot `slot` may be a result.
    fn accept(&self, slot: u32) -> bool;
    /// A hint that `distance(slot)` is coming soon.
    fn prefetch(&self, _slot: u32) {}
}

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
    /// Filter checks of slots not scored (matching-only walks).
    pub checks: u64,
    /// The walk hit `max_visits` before it could stop.
    pub cut_short: bool,
}

/// Most slots one expansion scores: a node's layer-0 links (hnsw_rs keeps
/// at most 2M, M at most 64 in our settings), or what a matching-only
/// walk gathers from them and their neighbours.
const MAX_FRESH: usize = 256;

/// Filter checks that cost about one distance evaluation in the walk's
/// budget (a check reads a bitmap; an evaluation, a vector).
pub const CHECKS_PER_VISIT: usize = 16;

/// How a search walks layer 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Navigation {
    /// Through every slot; only accepted ones become results. Right for
    /// no filter or a broad one: failing slots are few and bridge gaps.
    All,
    /// Through accepted slots only, reaching past a failing neighbour to
    /// its own neighbours (two hops, as ACORN does), so that only matches
    /// are scored: right for a selective filter, where walking failing
    /// slots would score mostly useless vectors.
    Matching,
}

/// One search's shape.
#[derive(Debug, Clone, Copy)]
pub struct Beam<'a> {
    /// Results wanted.
    pub k: usize,
    /// Beam width (at least `k`).
    pub ef: usize,
    /// Most distances evaluated on layer 0 (filter checks count
    /// [`CHECKS_PER_VISIT`] to one) before the walk gives up.
    pub max_visits: usize,
    /// Covered slots that start layer 0 beside the descent's end.
    pub seeds: &'a [u32],
    pub navigation: Navigation,
}

impl Beam<'_> {
    /// An unfiltered-style beam of `ef` for `k` results without a bound.
    pub fn new(k: usize, ef: usize) -> Beam<'static> {
        Beam {
            k,
            ef,
            max_visits: usize::MAX,
            seeds: &[],
            navigation: Navigation::All,
        }
    }
}

impl FrozenGraph {
    /// Copies `graph`'s links for the slots below `limit`: the slots the
    /// caller has published, every one of them fully inserted. Safe while
    /// later points are being inserted (see `Graph::for_each_link`); links
    /// to them are dropped.
    pub fn freeze(graph: &Graph, limit: usize) -> FrozenGraph {
        let mut lists: Vec<Option<Vec<u32>>> = vec![None; limit];
        let mut upper: Vec<Vec<(u32, Vec<u32>)>> = Vec::new();
        let mut levels: Vec<(usize, u32)> = Vec::new();
        graph.for_each_link(&mut |slot, level, layers| {
            if slot as usize >= limit {
                return;
            }
            if let Some(l0) = layers.first() {
                lists[slot as usize] = Some(l0.clone());
            }
            for (l, links) in layers.iter().enumerate().skip(1) {
                if upper.len() < l {
                    upper.resize_with(l, Vec::new);
                }
                upper[l - 1].push((slot, links.clone()));
            }
            if level > 0 {
                levels.push((level, slot));
            }
        });
        // Every slot below `limit` should be a point; if one is not, cover
        // only the prefix before it rather than leave it unreachable.
        let covered = lists.iter().position(Option::is_none).unwrap_or(limit);
        let inside = |s: &u32| (*s as usize) < covered;
        let mut offsets = Vec::with_capacity(covered + 1);
        let mut links = Vec::new();
        offsets.push(0);
        for list in lists.into_iter().take(covered) {
            links.extend(
                list.expect("covered slots are points")
                    .into_iter()
                    .filter(inside),
            );
            offsets.push(links.len() as u32);
        }
        let upper: Vec<Layer> = upper
            .into_iter()
            .map(|mut points| {
                points.retain(|(s, _)| inside(s));
                points.sort_by_key(|(s, _)| *s);
                let mut layer = Layer {
                    slots: Vec::with_capacity(points.len()),
                    offsets: vec![0],
                    links: Vec::new(),
                };
                for (s, l) in points {
                    layer.slots.push(s);
                    layer.links.extend(l.into_iter().filter(inside));
                    layer.offsets.push(layer.links.len() as u32);
                }
                layer
            })
            .collect();
        // The highest level, ties to the lowest slot: deterministic.
        let entry = levels
            .into_iter()
            .filter(|(_, s)| inside(s))
            .min_by_key(|&(level, slot)| (Reverse(level), slot))
            .map(|(_, s)| s)
            .or((covered > 0).then_some(0));
        let mut upper = upper;
        while upper.last().is_some_and(|l| l.slots.is_empty()) {
            upper.pop();
        }
        FrozenGraph {
            offsets,
            links,
            upper,
            entry,
        }
    }

    /// The slots the graph covers: `0..covered()`.
    pub fn covered(&self) -> usize {
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

    /// The `beam.k` nearest accepted slots, nearest first (see [`Beam`]).
    pub fn search(&self, beam: &Beam<'_>, space: &impl Space) -> (Vec<(u32, f32)>, Walk) {
        let mut walk = Walk::default();
        let Some(entry) = self.entry else {
            return (Vec::new(), walk);
        };
        let k = beam.k;
        if k == 0 {
            return (Vec::new(), walk);
        }
        let ef = beam.ef.max(k);
        // Greedy descent through the upper layers.
        let mut current = Scored(space.distance(entry), entry);
        walk.evaluations += 1;
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                let links = layer.neighbours(current.1);
                links.iter().for_each(|&n| space.prefetch(n));
                for &n in links {
                    let d = Scored(space.distance(n), n);
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
        let covered = self.covered();
        let matching_only = beam.navigation == Navigation::Matching;
        // The beam on layer 0.
        let found = VISITED.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (stamps, epoch) = &mut *cell;
            if stamps.len() < covered {
                stamps.resize(covered, 0);
            }
            *epoch = epoch.wrapping_add(1);
            if *epoch == 0 {
                stamps.iter_mut().for_each(|s| *s = 0);
                *epoch = 1;
            }
            let epoch = *epoch;
            let mut candidates: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
            let mut results: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef + 1);
            let offer = |d: Scored, accepted: bool, results: &mut BinaryHeap<Scored>| {
                if accepted {
                    results.push(d);
                    if results.len() > ef {
                        results.pop();
                    }
                }
            };
            // The descent's end starts the walk even when it fails the
            // filter: its neighbours (and theirs) are where to look.
            stamps[current.1 as usize] = epoch;
            candidates.push(Reverse(current));
            offer(current, space.accept(current.1), &mut results);
            let mut visits = 1usize;
            for &s in beam.seeds {
                if s as usize >= covered || stamps[s as usize] == epoch {
                    continue;
                }
                stamps[s as usize] = epoch;
                let d = Scored(space.distance(s), s);
                walk.evaluations += 1;
                visits += 1;
                candidates.push(Reverse(d));
                offer(d, space.accept(s), &mut results);
            }
            let mut fresh = [0u32; MAX_FRESH];
            let mut checks = 0usize;
            while let Some(Reverse(c)) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|w| c > *w) {
                    break;
                }
                // Mark and prefetch the neighbours to score first, then
                // score them: the reads overlap instead of queueing.
                let mut n_fresh = 0;
                let mut take = |n: u32, n_fresh: &mut usize| {
                    space.prefetch(n);
                    fresh[*n_fresh] = n;
                    *n_fresh += 1;
                };
                for &n in self.neighbours0(c.1) {
                    if n_fresh == MAX_FRESH {
                        break;
                    }
                    if stamps[n as usize] == epoch {
                        continue;
                    }
                    stamps[n as usize] = epoch;
                    if !matching_only {
                        take(n, &mut n_fresh);
                        continue;
                    }
                    checks += 1;
                    if space.accept(n) {
                        take(n, &mut n_fresh);
                        continue;
                    }
                    // A failing neighbour: look one hop further (ACORN).
                    for &m in self.neighbours0(n) {
                        if n_fresh == MAX_FRESH {
                            break;
                        }
                        if stamps[m as usize] == epoch {
                            continue;
                        }
                        checks += 1;
                        if space.accept(m) {
                            stamps[m as usize] = epoch;
                            take(m, &mut n_fresh);
                        }
                    }
                }
                for &n in &fresh[..n_fresh] {
                    if visits + checks / CHECKS_PER_VISIT >= beam.max_visits {
                        walk.cut_short = true;
                        break;
                    }
                    visits += 1;
                    let d = Scored(space.distance(n), n);
                    walk.evaluations += 1;
                    if results.len() >= ef && results.peek().is_some_and(|w| d >= *w) {
                        // Farther than every result: not worth walking on.
                        continue;
                    }
                    candidates.push(Reverse(d));
                    // Matching-only walks took only accepted slots.
                    offer(d, matching_only || space.accept(n), &mut results);
                }
                if walk.cut_short {
                    break;
                }
            }
            walk.checks = checks as u64;
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

    /// A [`Space`] from two closures.
    struct Fns<D, A>(D, A);

    impl<D: Fn(u32) -> f32, A: Fn(u32) -> bool> Space for Fns<D, A> {
        fn distance(&self, slot: u32) -> f32 {
            (self.0)(slot)
        }
        fn accept(&self, slot: u32) -> bool {
            (self.1)(slot)
        }
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
        let frozen = FrozenGraph::freeze(&graph, points.len());
        assert_eq!(frozen.covered(), points.len());
        assert!(!frozen.upper.is_empty(), "some points reach upper layers");
        let queries = clustered(60, 24, 99);
        let filters: [(&str, &dyn Fn(u32) -> bool); 5] = [
            ("all", &|_| true),
            ("half", &|s| s % 2 == 0),
            ("a tenth", &|s| s % 10 == 3),
            ("a fiftieth", &|s| s % 50 == 7),
            // A filter correlated with the clusters: the matches are a
            // few clusters, mostly away from the query's.
            ("three clusters", &|s| s % 40 < 3),
        ];
        for (name, accept) in filters {
            let matches: Vec<u32> = (0..points.len() as u32).filter(|&s| accept(s)).collect();
            let seeds: Vec<u32> = matches
                .iter()
                .step_by(matches.len() / 16)
                .copied()
                .collect();
            for navigation in [Navigation::All, Navigation::Matching] {
                let mut total = 0.0;
                let mut evaluations = 0;
                for q in &queries {
                    let space = Fns(|s: u32| l2(&points[s as usize], q), accept);
                    let beam = Beam {
                        seeds: &seeds,
                        navigation,
                        ..Beam::new(10, 64)
                    };
                    let (found, walk) = frozen.search(&beam, &space);
                    assert!(found.iter().all(|(s, _)| accept(*s)), "{name}");
                    assert!(found.windows(2).all(|w| w[0].1 <= w[1].1), "{name}");
                    assert!(!walk.cut_short);
                    evaluations += walk.evaluations;
                    total += recall(&points, q, &found, 10, accept);
                }
                let mean = total / queries.len() as f64;
                eprintln!(
                    "{name} {navigation:?}: recall@10 {mean:.3}, {} evaluations a query",
                    evaluations / queries.len() as u64
                );
                assert!(mean >= 0.95, "{name} {navigation:?}: recall@10 {mean}");
            }
        }
    }

    #[test]
    fn a_freeze_covers_only_the_published_prefix_and_links_nothing_beyond() {
        let points = clustered(3_000, 16, 11);
        let graph = build(&points);
        let frozen = FrozenGraph::freeze(&graph, 2_000);
        assert_eq!(frozen.covered(), 2_000);
        assert!(frozen.links.iter().all(|&s| s < 2_000));
        assert!(frozen
            .upper
            .iter()
            .all(|l| l.slots.iter().chain(&l.links).all(|&s| s < 2_000)));
        let q = &points[2_500];
        let space = Fns(|s: u32| l2(&points[s as usize], q), |_| true);
        let (found, _) = frozen.search(&Beam::new(10, 64), &space);
        assert!(found.iter().all(|(s, _)| *s < 2_000));
        let r = recall(&points[..2_000], q, &found, 10, &|_| true);
        assert!(r >= 0.9, "recall {r}");
    }

    #[test]
    fn freezing_while_points_are_inserted_neither_blocks_nor_breaks() {
        let points = clustered(6_000, 16, 12);
        let graph = std::sync::Arc::new(build(&points[..2_000]));
        let inserter = {
            let graph = std::sync::Arc::clone(&graph);
            let points = points.clone();
            std::thread::spawn(move || {
                for chunk in (2_000..6_000u32).collect::<Vec<_>>().chunks(300) {
                    let batch: Vec<(u32, &[f32])> = chunk
                        .iter()
                        .map(|&s| (s, points[s as usize].as_slice()))
                        .collect();
                    graph.insert(&batch);
                }
            })
        };
        let mut freezes = 0;
        while !inserter.is_finished() || freezes == 0 {
            let frozen = FrozenGraph::freeze(&graph, 2_000);
            assert_eq!(frozen.covered(), 2_000);
            assert!(frozen.links.iter().all(|&s| s < 2_000));
            freezes += 1;
        }
        inserter.join().unwrap();
        let frozen = FrozenGraph::freeze(&graph, 6_000);
        assert_eq!(frozen.covered(), 6_000);
        assert!(freezes > 0);
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
        let frozen = FrozenGraph::freeze(&empty, 0);
        let anything = Fns(|_| 0.0, |_| true);
        assert_eq!(frozen.search(&Beam::new(10, 64), &anything).0, vec![]);
        let points = clustered(500, 8, 5);
        let frozen = FrozenGraph::freeze(&build(&points), points.len());
        let q = &points[7];
        let all = Fns(|s: u32| l2(&points[s as usize], q), |_| true);
        let bounded = Beam {
            max_visits: 20,
            ..Beam::new(5, 10)
        };
        let (hits, walk) = frozen.search(&bounded, &all);
        assert!(walk.cut_short && hits.len() <= 5);
        // Nothing accepted: no hits, and the walk ends.
        let nothing = Fns(|s: u32| l2(&points[s as usize], q), |_| false);
        let (none, _) = frozen.search(&Beam::new(5, 10), &nothing);
        assert!(none.is_empty());
        // k 0, and its own vector is found first.
        assert!(frozen.search(&Beam::new(0, 10), &anything).0.is_empty());
        let (first, _) = frozen.search(&Beam::new(1, 32), &all);
        assert_eq!(first[0].0, 7);
        // Seeds out of range are ignored.
        let seeded = Beam {
            seeds: &[7, 9_999],
            ..Beam::new(1, 32)
        };
        let (seeded, _) = frozen.search(&seeded, &all);
        assert_eq!(seeded[0].0, 7);
        assert!(frozen.memory_bytes() > 500 * 4);
    }
}
