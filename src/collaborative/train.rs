//! Training: the events -> a binary user x item matrix -> EASE or
//! item-kNN (see the module above for the formulas and when each is used).
//!
//! Runs on a background thread (never on the request path); it reads no
//! shared state, so reads and writes go on while it works.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

use crate::collaborative::factors::{ials, AlsSettings};
use crate::collaborative::{Model, ModelKind, TrainingInfo};
use crate::model::{CollaborativeSettings, Event, EventWeights};

/// Most items a validation holds back per user: the share of a user's
/// items is a third, at least one.
pub const MOST_HELD_OUT: usize = 5;

/// Most distinct items of one user that training reads (the newest): a
/// user with `m` items costs `m²` in either algorithm, and a crawler or a
/// wholesaler buying half the catalogue says little about item pairs.
pub const MAX_ITEMS_PER_USER: usize = 1_000;

/// The user x item matrix, built one event at a time in the store's order
/// (one user's events together, oldest first).
#[derive(Debug, Default)]
pub struct Interactions {
    ids: Vec<Arc<str>>,
    position: HashMap<Arc<str>, u32>,
    /// Each user's distinct items (sorted by position).
    users: Vec<Vec<u32>>,
    /// Each user's id and the (at most [`MOST_HELD_OUT`]) items they came
    /// to last, in the order of their first events: what a leave-last-out
    /// validation holds back (see `recommend::blend`).
    user_ids: Vec<Arc<str>>,
    came_to_last: Vec<Vec<u32>>,
    current: Option<String>,
    row: Vec<u32>,
    events: u64,
    /// The newest interaction's time.
    newest_ms: Option<i64>,
}

impl Interactions {
    pub fn new() -> Interactions {
        Interactions::default()
    }

    /// Adds one event; events of a type weighted 0 are not interactions.
    pub fn add(&mut self, event: &Event, weights: &EventWeights) {
        if weights.of(event.kind) <= 0.0 {
            return;
        }
        if self.current.as_deref() != Some(event.user_id.as_str()) {
            self.finish_user();
            self.current = Some(event.user_id.clone());
        }
        let item = match self.position.get(event.item_id.as_str()) {
            Some(&i) => i,
            None => {
                let i = self.ids.len() as u32;
                let id: Arc<str> = Arc::from(event.item_id.as_str());
                self.ids.push(Arc::clone(&id));
                self.position.insert(id, i);
                i
            }
        };
        self.row.push(item);
        self.events += 1;
        self.newest_ms = Some(
            self.newest_ms
                .map_or(event.timestamp_ms, |t| t.max(event.timestamp_ms)),
        );
    }

    fn finish_user(&mut self) {
        if self.row.is_empty() {
            return;
        }
        let mut met = HashSet::new();
        let mut firsts: Vec<u32> = Vec::new();
        for &i in &self.row {
            if met.insert(i) {
                firsts.push(i);
            }
        }
        let last_new = firsts.split_off(firsts.len().saturating_sub(MOST_HELD_OUT));
        // Newest last: keep each item's newest occurrence, then the newest
        // MAX_ITEMS_PER_USER of them.
        let mut seen = HashSet::new();
        let mut items: Vec<u32> = Vec::new();
        for &i in self.row.iter().rev() {
            if seen.insert(i) {
                items.push(i);
                if items.len() == MAX_ITEMS_PER_USER {
                    break;
                }
            }
        }
        items.sort_unstable();
        self.users.push(items);
        self.user_ids
            .push(Arc::from(self.current.as_deref().unwrap_or_default()));
        self.came_to_last.push(last_new);
        self.row.clear();
    }

    /// Closes the last user; call once every event was added.
    pub fn finish(mut self) -> Interactions {
        self.finish_user();
        self.current = None;
        self
    }

    /// Items with at least one interaction.
    pub fn items(&self) -> usize {
        self.ids.len()
    }

    /// When the newest interaction happened (ms since the epoch).
    pub fn newest_ms(&self) -> Option<i64> {
        self.newest_ms
    }

    /// (user, item) pairs.
    pub fn pairs(&self) -> u64 {
        self.users.iter().map(|u| u.len() as u64).sum()
    }

    /// Item factors by iALS over these interactions, in item order (see
    /// `factors`).
    pub fn learn_factors(&self, settings: &AlsSettings) -> Vec<f32> {
        ials(self.ids.len(), &self.users, settings)
    }

    /// Up to `most` users with at least `min_items` distinct items, each
    /// with the items they came to last (a third of their items, at least
    /// one and at most [`MOST_HELD_OUT`]): the users a leave-last-out
    /// validation asks. Chosen by a hash of the user id, so the same
    /// events always give the same users (and a fit that can be
    /// reproduced), whatever order they arrived in.
    pub fn validation_users(&self, most: usize, min_items: usize) -> Vec<HeldOut> {
        let held = |u: usize| -> &[u32] {
            let last = &self.came_to_last[u];
            let n = (self.users[u].len() / 3).clamp(1, MOST_HELD_OUT);
            &last[last.len().saturating_sub(n)..]
        };
        let mut chosen: Vec<(u64, usize)> = (0..self.users.len())
            .filter(|&u| self.users[u].len() >= min_items)
            .filter(|&u| {
                held(u)
                    .iter()
                    .all(|i| self.users[u].binary_search(i).is_ok())
            })
            .map(|u| (fnv1a(self.user_ids[u].as_bytes()), u))
            .collect();
        chosen.sort_unstable();
        chosen.truncate(most);
        chosen.sort_unstable_by_key(|&(_, u)| u);
        chosen
            .into_iter()
            .map(|(_, u)| HeldOut {
                row: u,
                user: Arc::clone(&self.user_ids[u]),
                items: held(u)
                    .iter()
                    .map(|&i| Arc::clone(&self.ids[i as usize]))
                    .collect(),
            })
            .collect()
    }

    /// A copy without the held-out (user, item) pairs: what the
    /// validation model is trained on, so it has never seen what it is
    /// asked to find.
    pub fn without(&self, held: &[HeldOut]) -> Interactions {
        let mut users = self.users.clone();
        for h in held {
            let out: Vec<u32> = h
                .items
                .iter()
                .filter_map(|id| self.position.get(id).copied())
                .collect();
            users[h.row].retain(|i| !out.contains(i));
        }
        Interactions {
            ids: self.ids.clone(),
            position: self.position.clone(),
            users,
            user_ids: self.user_ids.clone(),
            came_to_last: self.came_to_last.clone(),
            current: None,
            row: Vec::new(),
            events: self.events,
            newest_ms: self.newest_ms,
        }
    }
}

/// One user of a leave-last-out validation and the items held back.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOut {
    /// The user's row in the [`Interactions`].
    pub row: usize,
    pub user: Arc<str>,
    pub items: Vec<Arc<str>>,
}

/// FNV-1a: a stable hash (the standard library's may change between
/// releases, and the validation users must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Trains the model `settings` ask for on `data` (`None` without any
/// interaction). `events` is the watermark recorded in the model.
pub fn train(data: &Interactions, settings: &CollaborativeSettings, events: u64) -> Option<Model> {
    let n = data.items();
    if n == 0 {
        return None;
    }
    let started = Instant::now();
    let (kind, regularisation, rows) = if n <= settings.ease_max_items {
        (
            ModelKind::Ease,
            settings.ease_lambda,
            ease(n, &data.users, settings.ease_lambda, settings.neighbours),
        )
    } else {
        (
            ModelKind::ItemKnn,
            settings.shrinkage,
            item_knn(n, &data.users, settings.shrinkage, settings.neighbours),
        )
    };
    let info = TrainingInfo {
        kind,
        events,
        users: data.users.len() as u64,
        interactions: data.pairs(),
        trained_at_ms: now_ms(),
        seconds: started.elapsed().as_secs_f64(),
        regularisation,
        blend: None,
    };
    Some(Model::from_rows(
        info,
        data.ids.clone(),
        rows,
        settings.neighbours,
    ))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `keep` entries of `row` largest in magnitude (unsorted). EASE's
/// negative weights count: "bought A, so probably not B" is evidence too
/// (dropping them cost 2-4 points of hit@10, BENCHMARKS.md).
fn strongest(mut row: Vec<(u32, f32)>, keep: usize) -> Vec<(u32, f32)> {
    row.retain(|&(_, w)| w != 0.0 && w.is_finite());
    if row.len() > keep && keep > 0 {
        row.select_nth_unstable_by(keep - 1, |a, b| {
            b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
        });
        row.truncate(keep);
    }
    row
}

/// EASE's weight matrix `B`, row by row (row `i`: what item `i` says of
/// each other item), cut to the `keep` weights largest in magnitude.
///
/// `G = XᵀX + λI`, `P = G⁻¹` by Cholesky (G is symmetric positive
/// definite for λ > 0), `B_ij = -P_ij / P_jj` off the diagonal, `B_ii = 0`.
pub fn ease(n: usize, users: &[Vec<u32>], lambda: f64, keep: usize) -> Vec<Vec<(u32, f32)>> {
    let mut g = Mat::<f64>::zeros(n, n);
    for items in users {
        for &i in items {
            for &j in items {
                g[(i as usize, j as usize)] += 1.0;
            }
        }
    }
    for i in 0..n {
        g[(i, i)] += lambda;
    }
    // G is positive definite for lambda > 0 (XᵀX is semi-definite), so
    // the factorisation cannot fail on valid settings; a failure would
    // mean non-finite input, and gives no model rather than a panic.
    let Ok(llt) = g.llt(Side::Lower) else {
        tracing::error!(n, lambda, "EASE: the Gram matrix is not positive definite");
        return vec![Vec::new(); n];
    };
    drop(g);
    let p = llt.inverse();
    drop(llt);
    let diag: Vec<f64> = (0..n).map(|j| p[(j, j)]).collect();
    (0..n)
        .map(|i| {
            let row: Vec<(u32, f32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (j as u32, (-p[(i, j)] / diag[j]) as f32))
                .collect();
            strongest(row, keep)
        })
        .collect()
}

/// Item-kNN: `s_ij = c_ij / (sqrt(n_i · n_j) + shrinkage)` with `c_ij`
/// the users who have both items and `n_i` those who have `i`, each row cut
/// to the `keep` strongest. Sparse: one dense scratch row of `n` counts,
/// cost `Σ_u |items of u|²`.
pub fn item_knn(n: usize, users: &[Vec<u32>], shrinkage: f64, keep: usize) -> Vec<Vec<(u32, f32)>> {
    let mut by_item: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (u, items) in users.iter().enumerate() {
        for &i in items {
            by_item[i as usize].push(u as u32);
        }
    }
    let counts: Vec<f64> = by_item.iter().map(|u| u.len() as f64).collect();
    let mut scratch = vec![0u32; n];
    let mut touched: Vec<u32> = Vec::new();
    (0..n)
        .map(|i| {
            for &u in &by_item[i] {
                for &j in &users[u as usize] {
                    if j as usize != i {
                        if scratch[j as usize] == 0 {
                            touched.push(j);
                        }
                        scratch[j as usize] += 1;
                    }
                }
            }
            let row: Vec<(u32, f32)> = touched
                .iter()
                .map(|&j| {
                    let c = f64::from(scratch[j as usize]);
                    let s = c / ((counts[i] * counts[j as usize]).sqrt() + shrinkage);
                    (j, s as f32)
                })
                .collect();
            for &j in &touched {
                scratch[j as usize] = 0;
            }
            touched.clear();
            strongest(row, keep)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event of `user` on `item` at time 0.
    fn event(user: &str, item: &str, kind: crate::model::EventKind) -> Event {
        Event {
            user_id: user.into(),
            item_id: item.into(),
            kind,
            timestamp_ms: 0,
            session_id: None,
            order_id: None,
            quantity: 1,
            price: None,
            event_id: None,
            recommendation_id: None,
        }
    }

    fn dense(rows: &[Vec<(u32, f32)>], n: usize) -> Vec<Vec<f64>> {
        let mut out = vec![vec![0.0; n]; n];
        for (i, row) in rows.iter().enumerate() {
            for &(j, w) in row {
                out[i][j as usize] = f64::from(w);
            }
        }
        out
    }

    /// EASE on a 4-user x 5-item matrix, against weights worked out by
    /// hand (exact rational arithmetic, `tools/replay/ease_4x5.py`).
    #[test]
    fn ease_matches_the_hand_worked_4x5_example() {
        // X (users x items):
        //   u0: 1 1 0 0 0
        //   u1: 1 1 1 0 0
        //   u2: 0 1 1 1 0
        //   u3: 0 0 0 1 1
        let users = vec![vec![0, 1], vec![0, 1, 2], vec![1, 2, 3], vec![3, 4]];
        let b = dense(&ease(5, &users, 1.0, 5), 5);
        for (i, row) in EASE_4X5_LAMBDA_1.iter().enumerate() {
            for (j, &want) in row.iter().enumerate() {
                assert!(
                    (b[i][j] - want).abs() < 1e-6,
                    "B[{i}][{j}] = {}, want {want}",
                    b[i][j]
                );
            }
        }
    }

    /// `B` for the matrix above with lambda 1 (row i, column j).
    const EASE_4X5_LAMBDA_1: [[f64; 5]; 5] = [
        [0.0, 9.0 / 17.0, 1.0 / 17.0, -1.0 / 4.0, 1.0 / 10.0],
        [9.0 / 17.0, 0.0, 7.0 / 17.0, 1.0 / 4.0, -1.0 / 10.0],
        [1.0 / 17.0, 7.0 / 17.0, 0.0, 1.0 / 4.0, -1.0 / 10.0],
        [-4.0 / 17.0, 4.0 / 17.0, 4.0 / 17.0, 0.0, 2.0 / 5.0],
        [2.0 / 17.0, -2.0 / 17.0, -2.0 / 17.0, 1.0 / 2.0, 0.0],
    ];

    #[test]
    fn item_knn_is_the_shrunk_cosine_of_co_occurrence() {
        let users = vec![vec![0, 1], vec![0, 1, 2], vec![1, 2, 3], vec![3, 4]];
        let s = dense(&item_knn(5, &users, 1.0, 5), 5);
        // Items 0 and 1: together twice; n_0 = 2, n_1 = 3.
        assert!((s[0][1] - 2.0 / (6f64.sqrt() + 1.0)).abs() < 1e-6);
        assert!((s[1][0] - s[0][1]).abs() < 1e-6);
        // Items 0 and 4 never meet.
        assert_eq!(s[0][4], 0.0);
        assert_eq!(s[2][2], 0.0);
        // Keeping 1 neighbour keeps the strongest: 1 for item 0.
        let one = item_knn(5, &users, 1.0, 1);
        assert_eq!(one[0].len(), 1);
        assert_eq!(one[0][0].0, 1);
    }

    #[test]
    fn interactions_keep_each_users_distinct_items() {
        let w = EventWeights {
            view: 0.0,
            click: 1.0,
            add_to_cart: 1.0,
            purchase: 1.0,
            rating: 1.0,
            dislike: 1.0,
            own: 1.0,
            return_: 1.0,
        };
        let ev = event;
        use crate::model::EventKind::*;
        let mut data = Interactions::new();
        for e in [
            ev("a", "x", Purchase),
            ev("a", "x", Click),
            ev("a", "y", View),
            ev("b", "y", Purchase),
            ev("b", "z", Purchase),
        ] {
            data.add(&e, &w);
        }
        let data = data.finish();
        // Views weigh 0 here: "y" enters through b only.
        assert_eq!(data.users, vec![vec![0], vec![1, 2]]);
        assert_eq!(data.pairs(), 3);
        let model = train(&data, &CollaborativeSettings::default(), 5).unwrap();
        assert_eq!(model.info.kind, ModelKind::Ease);
        assert_eq!(model.info.events, 5);
        assert_eq!(model.items(), 3);
        let knn = CollaborativeSettings {
            ease_max_items: 2,
            ..Default::default()
        };
        assert_eq!(train(&data, &knn, 5).unwrap().info.kind, ModelKind::ItemKnn);
        assert!(train(&Interactions::new().finish(), &knn, 0).is_none());
    }

    #[test]
    fn validation_holds_back_the_item_each_user_came_to_last() {
        let w = EventWeights {
            view: 1.0,
            click: 1.0,
            add_to_cart: 1.0,
            purchase: 1.0,
            rating: 1.0,
            dislike: 1.0,
            own: 1.0,
            return_: 1.0,
        };
        let ev = |user: &str, item: &str| event(user, item, crate::model::EventKind::View);
        let mut data = Interactions::new();
        // a came to z last, and went back to x after it: z is held back,
        // not x. b has too few items to be asked.
        for (u, i) in [
            ("a", "x"),
            ("a", "y"),
            ("a", "z"),
            ("a", "x"),
            ("b", "x"),
            ("b", "y"),
        ] {
            data.add(&ev(u, i), &w);
        }
        let data = data.finish();
        let held = data.validation_users(10, 3);
        assert_eq!(held.len(), 1);
        assert_eq!(&*held[0].user, "a");
        assert_eq!(held[0].items, [Arc::from("z")]);
        let rest = data.without(&held);
        assert_eq!(rest.users, vec![vec![0, 1], vec![0, 1]]);
        assert_eq!(rest.items(), 3, "item positions are kept");
        // A third of a long history, at most five, the newest discoveries.
        let mut long = Interactions::new();
        for i in 0..30 {
            long.add(&ev("c", &format!("i{i:02}")), &w);
        }
        let held = long.finish().validation_users(10, 3);
        let want: Vec<Arc<str>> = (25..30).map(|i| Arc::from(format!("i{i}"))).collect();
        assert_eq!(held[0].items, want);
        // At most `most`, the same ones whatever the order of arrival.
        let mut many = Interactions::new();
        for u in 0..50 {
            for i in ["p", "q", "r"] {
                many.add(&ev(&format!("u{u}"), i), &w);
            }
        }
        let picked: Vec<String> = many
            .finish()
            .validation_users(7, 3)
            .iter()
            .map(|h| h.user.to_string())
            .collect();
        let mut reversed = Interactions::new();
        for u in (0..50).rev() {
            for i in ["p", "q", "r"] {
                reversed.add(&ev(&format!("u{u}"), i), &w);
            }
        }
        let mut again: Vec<String> = reversed
            .finish()
            .validation_users(7, 3)
            .iter()
            .map(|h| h.user.to_string())
            .collect();
        assert_eq!(picked.len(), 7);
        let mut sorted = picked.clone();
        sorted.sort();
        again.sort();
        assert_eq!(sorted, again);
    }
}
