//! The collaborative model: item-item weights learned from a catalog's own
//! events ("people who interacted with A also interacted with B"), next to
//! the content vectors the shop supplies.
//!
//! **What is learned.** The events are read into a binary user x item
//! matrix `X` (a user touched an item with an event whose type weight is
//! positive). From it, one of two item-item models (`train`):
//! - **EASE** (Steck, WWW 2019) when at most
//!   `collaborative.ease_max_items` items have events: the closed form
//!   `P = (XᵀX + λI)⁻¹`, `B = I - P·diag(1/diag(P))` (so `B_ii = 0`),
//!   solved densely by `faer`'s Cholesky. Exact, and the strongest of the
//!   simple models on every set measured (BENCHMARKS.md), but it costs
//!   `n²` memory and `n³/3` flops;
//! - **item-kNN** otherwise: cosine of co-occurrence with shrinkage,
//!   `s_ij = c_ij / (sqrt(n_i · n_j) + shrinkage)`, from sparse counts.
//!
//! Either way only the `neighbours` strongest positive weights of each
//! item's row are kept ([`Model`], a compressed sparse row table), so a
//! model costs `items x neighbours x 8` bytes whatever trained it.
//!
//! **Real time.** The model is item-item, so a user needs no factors of
//! their own: their score for item `j` is `Σ_i x_i · B_ij` over the items
//! of their newest events ([`user_row`]), computed per request. The very
//! next request after an event sees it, without retraining.
//!
//! **Lifecycle.** The model is derived state, like the index: trained in
//! the background from the stored events, persisted (`file`) with the
//! number of events it saw (its watermark), reloaded at start, retrained
//! when enough new events arrived (`catalog::Catalog::maybe_train`), and
//! rebuilt from the events whenever it is missing or unreadable.
//!
//! Must not: touch RocksDB (it is handed the events), or know about HTTP.

pub mod factors;
pub mod file;
pub mod train;

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{EventKind, EventWeights};

/// Most items for which [`Model::scores`] sums into a dense per-thread
/// row (1.6 MB per request thread at this size).
pub const DENSE_SCORES_MAX: usize = 200_000;

/// Which algorithm produced a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Ease,
    ItemKnn,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Ease => "ease",
            ModelKind::ItemKnn => "item_knn",
        }
    }
}

/// What a model was trained from, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingInfo {
    pub kind: ModelKind,
    /// Events the catalog had applied when the model's scan began: the
    /// watermark new events are counted from.
    pub events: u64,
    /// Users and (user, item) pairs in the training matrix.
    pub users: u64,
    pub interactions: u64,
    /// When training finished (ms since the epoch) and how long it took.
    pub trained_at_ms: i64,
    pub seconds: f64,
    /// EASE's lambda or kNN's shrinkage.
    pub regularisation: f64,
    /// The personal-picks blend fitted on this catalog's events when the
    /// model was trained (`None`: too few users to fit, or not asked).
    pub blend: Option<FittedBlend>,
}

/// Weights of the personal-picks blend fitted on a leave-last-out
/// validation of the catalog's own events (see `recommend::blend`), with
/// what the fitted and the reference rankings scored there: recall@10
/// over the same users, each asked for the items they came to last with a
/// model that never saw them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FittedBlend {
    pub similarity: f64,
    pub collaborative: f64,
    pub popularity: f64,
    pub category: f64,
    /// Users asked, and items held back from them.
    pub users: u32,
    pub held_out: u32,
    /// recall@10 of the fitted weights.
    pub recall: f64,
    /// recall@10 of the weights in the settings (the shipped defaults
    /// unless the shop set its own).
    pub settings_recall: f64,
    /// recall@10 of each feature alone: what carries the blend.
    pub collaborative_only: f64,
    pub similarity_only: f64,
    pub popularity_only: f64,
    pub category_only: f64,
}

/// Item-item weights, each item's `neighbours` largest in magnitude (see
/// the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub info: TrainingInfo,
    ids: Vec<Arc<str>>,
    position: HashMap<Arc<str>, u32>,
    /// Row `i` is `targets[offsets[i]..offsets[i + 1]]`, strongest first.
    offsets: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<f32>,
    /// Item factors (iALS, `factors`), `items x dimension` row-major: the
    /// item vectors of a catalog with learned vectors; `None` elsewhere.
    factors: Option<Factors>,
}

/// Learned item vectors, aligned with the model's items.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub dimension: usize,
    pub values: Vec<f32>,
}

impl Model {
    /// Builds a model from per-item rows of `(target, weight)`; each row
    /// is cut to the `keep` weights largest in magnitude and sorted by
    /// weight, largest first (negative weights last). Zero and non-finite
    /// weights are dropped.
    pub fn from_rows(
        info: TrainingInfo,
        ids: Vec<Arc<str>>,
        rows: Vec<Vec<(u32, f32)>>,
        keep: usize,
    ) -> Model {
        debug_assert_eq!(ids.len(), rows.len());
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        let mut targets = Vec::new();
        let mut weights = Vec::new();
        offsets.push(0);
        for mut row in rows {
            row.retain(|&(t, w)| w.is_finite() && w != 0.0 && (t as usize) < ids.len());
            row.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
            row.truncate(keep);
            row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (t, w) in row {
                targets.push(t);
                weights.push(w);
            }
            offsets.push(targets.len() as u32);
        }
        Model::assemble(info, ids, offsets, targets, weights)
    }

    /// The model of checked tables, with its id -> position map.
    fn assemble(
        info: TrainingInfo,
        ids: Vec<Arc<str>>,
        offsets: Vec<u32>,
        targets: Vec<u32>,
        weights: Vec<f32>,
    ) -> Model {
        let position = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (Arc::clone(id), i as u32))
            .collect();
        Model {
            info,
            ids,
            position,
            offsets,
            targets,
            weights,
            factors: None,
        }
    }

    /// Items the model knows (those with events when it was trained).
    pub fn items(&self) -> usize {
        self.ids.len()
    }

    /// Stored item-item weights.
    pub fn weights(&self) -> usize {
        self.weights.len()
    }

    /// The model with these item factors (`values`: one row of
    /// `dimension` per item, in the model's item order).
    pub fn with_factors(mut self, dimension: usize, values: Vec<f32>) -> Model {
        debug_assert_eq!(values.len(), dimension * self.ids.len());
        self.factors = Some(Factors { dimension, values });
        self
    }

    /// The learned vector of an item: `None` when the model has no
    /// factors, does not know the item, or its factors are all zero.
    pub fn factor(&self, id: &str) -> Option<&[f32]> {
        let f = self.factors.as_ref()?;
        let i = self.position(id)? as usize;
        let row = f.values.get(i * f.dimension..(i + 1) * f.dimension)?;
        row.iter().any(|x| *x != 0.0).then_some(row)
    }

    /// The factors' dimension, when the model has them.
    pub fn factor_dimension(&self) -> Option<usize> {
        self.factors.as_ref().map(|f| f.dimension)
    }

    /// Bytes of memory the model holds, roughly.
    pub fn memory_bytes(&self) -> usize {
        self.factors.as_ref().map_or(0, |f| f.values.len() * 4)
            + self.weights.len() * 8
            + self.offsets.len() * 4
            + self.ids.iter().map(|id| id.len() + 16 + 32).sum::<usize>()
    }

    pub fn id(&self, position: u32) -> &Arc<str> {
        &self.ids[position as usize]
    }

    pub fn position(&self, id: &str) -> Option<u32> {
        self.position.get(id).copied()
    }

    /// The row of item `i`: its neighbours by weight, largest first
    /// (negative weights, EASE's "not with this", last).
    pub fn row(&self, i: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        let (from, to) = (
            self.offsets[i as usize] as usize,
            self.offsets[i as usize + 1] as usize,
        );
        self.targets[from..to]
            .iter()
            .copied()
            .zip(self.weights[from..to].iter().copied())
    }

    /// The neighbours of one item by id, strongest first.
    pub fn neighbours(&self, id: &str) -> Vec<(Arc<str>, f32)> {
        match self.position(id) {
            Some(i) => self
                .row(i)
                .map(|(t, w)| (Arc::clone(self.id(t)), w))
                .collect(),
            None => Vec::new(),
        }
    }

    /// `Σ_i x_i · B_ij` for every `j` reached from the row's items (whose
    /// weights are `x_i`), as model positions. Items the model does not
    /// know contribute nothing.
    ///
    /// Sums into a per-thread dense scratch row rather than a hash map: a
    /// user row of 500 items with 1,000 neighbours each is 500,000
    /// additions, far cheaper dense than hashed. The scores are read from
    /// that row in place ([`RowScores`]; collecting tens of thousands of
    /// them into a map took 12 % of a heavy user's request), and it goes
    /// back to the thread, cleared where it was touched, when they are
    /// dropped. Above `DENSE_SCORES_MAX` items the scratch (9 bytes per
    /// item, per request thread) would cost more memory than it saves
    /// time, and a hash map is used.
    pub fn scores(&self, row: &[(String, f64)]) -> RowScores {
        if self.ids.len() > DENSE_SCORES_MAX {
            let mut out: HashMap<u32, f64> = HashMap::new();
            for (id, x) in row {
                let Some(i) = self.position(id) else { continue };
                for (j, w) in self.row(i) {
                    *out.entry(j).or_insert(0.0) += x * f64::from(w);
                }
            }
            out.retain(|_, v| *v != 0.0);
            return RowScores(Sums::Hashed(out));
        }
        let mut scratch = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        if scratch.sums.len() < self.ids.len() {
            scratch.sums.resize(self.ids.len(), 0.0);
            scratch.touched_mark.resize(self.ids.len(), false);
        }
        for (id, x) in row {
            let Some(i) = self.position(id) else { continue };
            for (j, w) in self.row(i) {
                let j_ = j as usize;
                if !scratch.touched_mark[j_] {
                    scratch.touched_mark[j_] = true;
                    scratch.touched.push(j);
                }
                scratch.sums[j_] += x * f64::from(w);
            }
        }
        RowScores(Sums::Dense(scratch))
    }

    /// The parts of a model as stored (see `file`).
    pub(crate) fn parts(&self) -> Parts<'_> {
        Parts {
            ids: &self.ids,
            offsets: &self.offsets,
            targets: &self.targets,
            weights: &self.weights,
            factors: self.factors.as_ref(),
        }
    }

    /// A model from stored parts, checked: every offset in order and in
    /// range, every target an item.
    pub(crate) fn from_parts(
        info: TrainingInfo,
        ids: Vec<Arc<str>>,
        offsets: Vec<u32>,
        targets: Vec<u32>,
        weights: Vec<f32>,
    ) -> Result<Model, String> {
        if offsets.len() != ids.len() + 1 || offsets.first() != Some(&0) {
            return Err("offsets do not match the items".into());
        }
        if offsets.windows(2).any(|w| w[0] > w[1])
            || *offsets.last().expect("one offset at least") as usize != targets.len()
            || targets.len() != weights.len()
        {
            return Err("offsets out of order or out of range".into());
        }
        if targets.iter().any(|&t| t as usize >= ids.len()) {
            return Err("a neighbour is not an item".into());
        }
        let model = Model::assemble(info, ids, offsets, targets, weights);
        if model.position.len() != model.ids.len() {
            return Err("an item id is repeated".into());
        }
        Ok(model)
    }
}

/// A user's collaborative scores by model position ([`Model::scores`]);
/// only non-zero sums are scores.
#[derive(Debug)]
pub struct RowScores(Sums);

#[derive(Debug)]
enum Sums {
    Dense(Scratch),
    Hashed(HashMap<u32, f64>),
}

/// The dense row sum's per-thread memory: the sums, and which positions
/// were touched (each once).
#[derive(Debug, Default)]
struct Scratch {
    sums: Vec<f64>,
    touched_mark: Vec<bool>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

impl RowScores {
    /// No scores (no model, or a row without known items).
    pub fn none() -> RowScores {
        RowScores(Sums::Hashed(HashMap::new()))
    }

    /// The score of one model position, when it has one.
    pub fn get(&self, position: u32) -> Option<f64> {
        let v = match &self.0 {
            Sums::Dense(s) => s.sums.get(position as usize).copied()?,
            Sums::Hashed(m) => *m.get(&position)?,
        };
        (v != 0.0).then_some(v)
    }

    /// Every (position, score), in no particular order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u32, f64)> + '_> {
        match &self.0 {
            Sums::Dense(s) => Box::new(
                s.touched
                    .iter()
                    .map(|&j| (j, s.sums[j as usize]))
                    .filter(|(_, v)| *v != 0.0),
            ),
            Sums::Hashed(m) => Box::new(m.iter().map(|(&j, &v)| (j, v))),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The scores as a map (tests, and callers that keep them).
    pub fn to_map(&self) -> HashMap<u32, f64> {
        self.iter().collect()
    }
}

impl Drop for RowScores {
    /// Gives the dense scratch back to the thread, cleared where touched
    /// (`O(touched)`, not `O(items)`).
    fn drop(&mut self) {
        if let Sums::Dense(scratch) = &mut self.0 {
            let mut scratch = std::mem::take(scratch);
            for &j in &scratch.touched {
                scratch.sums[j as usize] = 0.0;
                scratch.touched_mark[j as usize] = false;
            }
            scratch.touched.clear();
            SCRATCH.with(|cell| {
                let mut current = cell.borrow_mut();
                if current.sums.len() < scratch.sums.len() {
                    *current = scratch;
                }
            });
        }
    }
}

/// A model's tables, borrowed (what `file` stores).
pub(crate) struct Parts<'a> {
    pub ids: &'a [Arc<str>],
    pub offsets: &'a [u32],
    pub targets: &'a [u32],
    pub weights: &'a [f32],
    pub factors: Option<&'a Factors>,
}

/// A user's collaborative row at `now_ms`: each distinct item of their
/// events (newest first, those after `now_ms` left out) with
/// `x_i = 2^(-(now - t_i) / half_life)`, `t_i` the newest event on `i` of
/// a type with positive weight, then divided by the largest `x`, so the
/// freshest item weighs 1.
///
/// Computed in the log domain: the largest exponent is subtracted before
/// `exp2`, so a history 30 years old with a 30-minute half-life still
/// ranks its items by age instead of underflowing to zeros (the ranking is
/// scale-free; only the ratios matter).
pub fn user_row<'a>(
    events: impl IntoIterator<Item = (&'a str, EventKind, i64)>,
    now_ms: i64,
    half_life_ms: i64,
    weights: &EventWeights,
) -> Vec<(String, f64)> {
    let half_life = half_life_ms.max(1) as f64;
    // item -> the largest log2 weight (the newest event).
    let mut logs: Vec<(String, f64)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (item, kind, t) in events {
        if t > now_ms || weights.of(kind) <= 0.0 {
            continue;
        }
        let log2 = -((now_ms - t) as f64) / half_life;
        match at.get(item) {
            Some(&k) => logs[k].1 = logs[k].1.max(log2),
            None => {
                at.insert(item, logs.len());
                logs.push((item.to_string(), log2));
            }
        }
    }
    let top = logs
        .iter()
        .map(|(_, l)| *l)
        .fold(f64::NEG_INFINITY, f64::max);
    for (_, l) in &mut logs {
        *l = (*l - top).exp2();
    }
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: EventWeights = EventWeights {
        view: 1.0,
        click: 2.0,
        add_to_cart: 4.0,
        purchase: 8.0,
        rating: 4.0,
        dislike: 4.0,
        own: 8.0,
        return_: 4.0,
    };

    #[test]
    fn the_user_row_decays_relative_to_the_freshest_item_without_underflow() {
        const DAY: i64 = 86_400_000;
        const YEAR: i64 = 365 * DAY;
        let now = 60 * YEAR;
        // 30 years old, half-life 30 minutes: 2^(-525,600) would be 0.
        let events = [
            ("a", EventKind::Purchase, now - 30 * YEAR),
            ("b", EventKind::View, now - 30 * YEAR - 30 * 60_000),
            ("a", EventKind::View, now - 31 * YEAR),
            ("later", EventKind::View, now + 1),
        ];
        let row = user_row(events, now, 30 * 60_000, &W);
        assert_eq!(row.len(), 2);
        assert_eq!(row[0], ("a".to_string(), 1.0));
        assert_eq!(row[1].0, "b");
        assert!((row[1].1 - 0.5).abs() < 1e-12, "{row:?}");
        // A type weighted 0 is not an interaction.
        let zero = EventWeights { view: 0.0, ..W };
        let row = user_row([("v", EventKind::View, now)], now, DAY, &zero);
        assert!(row.is_empty());
    }

    fn info() -> TrainingInfo {
        TrainingInfo {
            kind: ModelKind::ItemKnn,
            events: 0,
            users: 0,
            interactions: 0,
            trained_at_ms: 0,
            seconds: 0.0,
            regularisation: 0.0,
            blend: None,
        }
    }

    #[test]
    fn scores_are_the_row_sum_of_the_kept_weights() {
        let info = info();
        let ids: Vec<Arc<str>> = ["a", "b", "c"].into_iter().map(Arc::from).collect();
        let rows = vec![
            vec![(1, 0.5), (2, 0.25), (0, 9.0)],
            vec![(2, 1.0), (0, -1.0)],
            vec![],
        ];
        let m = Model::from_rows(info, ids, rows, 2);
        // Row a keeps its two largest (a->a 9.0 is kept: the caller zeroes
        // diagonals); b keeps its negative weight, last.
        assert_eq!(m.neighbours("a").len(), 2);
        assert_eq!(
            m.neighbours("b"),
            vec![(Arc::<str>::from("c"), 1.0), (Arc::<str>::from("a"), -1.0)]
        );
        let s = m.scores(&[("a".into(), 1.0), ("b".into(), 0.5), ("zz".into(), 1.0)]);
        assert_eq!(s.get(0), Some(8.5));
        assert_eq!(s.get(1), Some(0.5));
        assert_eq!(s.get(2), Some(0.5));
        let p = m.parts();
        let back = Model::from_parts(
            m.info.clone(),
            p.ids.to_vec(),
            p.offsets.to_vec(),
            p.targets.to_vec(),
            p.weights.to_vec(),
        )
        .unwrap();
        assert_eq!(back, m);
        let short = Model::from_parts(
            m.info.clone(),
            p.ids.to_vec(),
            vec![0, 1],
            vec![0],
            vec![1.0],
        );
        assert!(short.is_err());
    }

    #[test]
    fn dense_and_hashed_row_sums_agree() {
        let info = info();
        let rows = |n: usize| {
            let mut r = vec![Vec::new(); n];
            r[0] = vec![(1, 0.5), (2, -0.25)];
            r[1] = vec![(2, 1.0), (0, 2.0)];
            r
        };
        let ids = |n: usize| {
            (0..n)
                .map(|i| Arc::from(format!("i{i}")))
                .collect::<Vec<_>>()
        };
        let small = Model::from_rows(info.clone(), ids(3), rows(3), 10);
        let big_n = DENSE_SCORES_MAX + 1;
        let big = Model::from_rows(info, ids(big_n), rows(big_n), 10);
        let row = [("i0".to_string(), 1.0), ("i1".to_string(), 0.25)];
        let (a, b) = (small.scores(&row).to_map(), big.scores(&row).to_map());
        assert_eq!(a, b);
        // i2's two contributions cancel (-0.25 + 0.25): not a score.
        assert_eq!(a, HashMap::from([(0, 0.5), (1, 0.5)]));
        assert_eq!(small.scores(&row).get(2), None);
        // Twice in a row on one thread, and two alive at once: the scratch
        // was cleared, and the second one sums into its own.
        let first = small.scores(&row);
        let second = small.scores(&[("i1".to_string(), 1.0)]);
        assert_eq!(first.to_map(), a);
        assert_eq!(second.to_map(), HashMap::from([(2, 1.0), (0, 2.0)]));
        drop((first, second));
        assert_eq!(small.scores(&row).to_map(), a);
    }
}
