//! The personal-picks blend fitted on a catalog's own events.
//!
//! Personal picks weigh four standardised features of each candidate
//! (`recommend::personal`): similarity to the profile, the collaborative
//! score, popularity and category share. Which of them carries a shop
//! depends on the shop: a history with strong co-occurrence wants the
//! collaborative score almost alone, a catalogue with good embeddings and
//! sparse baskets wants similarity, a shop of bestsellers popularity. No
//! fixed weights are best for all (the shipped defaults lost 2 points of
//! hit@10 to the collaborative score alone on the latent-taste history,
//! and won 1 point on Online Retail: BENCHMARKS.md, "Issue #17"), so each
//! training fits them on the catalog's own events.
//!
//! **The fit: leave-last-out.** Up to [`VALIDATION_USERS`] (1,000) users with at
//! least [`MIN_ITEMS`] distinct items are chosen by a stable hash of their
//! id (`collaborative::train::Interactions::validation_users`). Each holds
//! back the items they came to last (in the order of their first events:
//! a third of their items, at least one and at most five). A validation
//! model is trained on every interaction but those, with the same
//! settings as the real one, so it has never seen what it is asked for.
//! Each user is then asked, now, as personal picks would ask: their other
//! events make the profile and the collaborative row, what they bought and
//! saw is excluded, and every candidate source runs. The candidates'
//! features are computed once; each weighting of a grid ([`grid`]: 0 to
//! 1.5 for similarity, 0 to 0.8 for popularity, 0 to 1 for category, the
//! collaborative weight 1 or 0) is scored by recall@10: the share of the
//! held-back items ranked among the first ten. (One item per user made
//! too few events to tell weightings apart: on the latent-taste history a
//! single held-back item is found 8 % of the time, 48 finds in 600 users.)
//! The best wins; equal counts go to the weights nearest the settings' (so
//! a fit never moves for nothing). Fewer than [`MIN_USERS`] users to ask:
//! no fit, and the settings' blend is used.
//!
//! The result, with the recall@10 of the settings' weights and of each
//! feature alone on the same users (what carries the blend), travels in
//! the model (`collaborative::FittedBlend`), is persisted with it and shown
//! by `GET /v1/catalogs/{c}/model`. `collaborative.fit_blend: false` turns
//! it off. `tools/replay --protocol offline` measures the fitted blend on
//! a time split next to the fixed ones.
//!
//! Must not: write anything.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::collaborative::train::{HeldOut, Interactions};
use crate::collaborative::{FittedBlend, Model};
use crate::error::Result;
use crate::index::filter::Filter;
use crate::model::{BehaviourSettings, Blend};
use crate::recommend::personal::{features_with, Features, UserRequest};
use crate::recommend::UserContext;

/// Most users a fit asks. Each costs one personal-picks request with every
/// candidate source (~7 ms at 20k items of 384 dimensions: a fit adds ~6 s
/// to such a training, BENCHMARKS.md). 500 were measured too and fitted
/// worse (Online Retail 0.123 against 0.130 hit@10; the long latent
/// histories 0.815 against 0.825): half the held-back items is too few.
pub const VALIDATION_USERS: usize = 1_000;
/// Fewest users a fit needs: below, hit@10 differences are noise.
pub const MIN_USERS: usize = 30;
/// Fewest distinct items of a user asked: one held back, the rest a
/// history worth ranking from.
pub const MIN_ITEMS: usize = 3;
/// The cut-off of the recall the fit maximises.
const K: usize = 10;

/// One asked user: the candidates' standardised features and which of
/// them are held-back items (those that are not candidates are missed by
/// every weighting).
struct Asked {
    features: Vec<[f64; 4]>,
    targets: Vec<usize>,
}

/// The weightings a fit tries: `[similarity, collaborative, popularity,
/// category]`. Only the ratios matter (the features are z-scores), so the
/// collaborative weight is 1, or 0 for the rankings without it.
pub fn grid() -> Vec<[f64; 4]> {
    let mut out = Vec::new();
    for col in [1.0, 0.0] {
        for sim in [0.0, 0.1, 0.2, 0.4, 0.8, 1.5] {
            for pop in [0.0, 0.05, 0.1, 0.2, 0.4, 0.8] {
                for cat in [0.0, 0.1, 0.25, 0.5, 1.0] {
                    if col == 0.0 && sim == 0.0 && pop == 0.0 && cat == 0.0 {
                        continue;
                    }
                    out.push([sim, col, pop, cat]);
                }
            }
        }
    }
    out
}

/// Fits the blend with `validation` (a model trained without the held
/// back pairs) at `now_ms`; `None` when fewer than [`MIN_USERS`] of
/// `held` can be asked.
pub fn fit(
    catalog: &Catalog,
    validation: &Model,
    held: &[HeldOut],
    now_ms: i64,
) -> Result<Option<FittedBlend>> {
    let settings = catalog.behaviour_settings();
    let every_source = Blend {
        similarity: 1.0,
        collaborative: 1.0,
        popularity: 1.0,
        category: 1.0,
        ..settings.blend
    };
    let mut asked = Vec::with_capacity(held.len());
    let mut targets = 0usize;
    for h in held {
        if let Some(a) = ask(catalog, validation, h, now_ms, &every_source)? {
            asked.push(a);
            targets += h.items.len();
        }
    }
    if asked.len() < MIN_USERS {
        return Ok(None);
    }
    let b = &settings.blend;
    let reference = [b.similarity, b.collaborative, b.popularity, b.category];
    let distance = |w: &[f64; 4]| -> f64 {
        w.iter()
            .zip(&reference)
            .map(|(a, r)| (a - r).abs())
            .sum::<f64>()
    };
    let mut best: Option<([f64; 4], usize)> = None;
    for w in grid() {
        let hits = hits(&asked, &w);
        let better = match &best {
            None => true,
            Some((bw, bh)) => hits > *bh || (hits == *bh && distance(&w) < distance(bw)),
        };
        if better {
            best = Some((w, hits));
        }
    }
    let (w, best_hits) = best.expect("the grid is not empty");
    let n = targets.max(1) as f64;
    let rate = |w: [f64; 4]| hits(&asked, &w) as f64 / n;
    // The settings' weights win when they do at least as well as the
    // grid's best (they may lie between its points).
    let settings_recall = rate(reference);
    let (weights, recall) = if settings_recall >= best_hits as f64 / n {
        (reference, settings_recall)
    } else {
        (w, best_hits as f64 / n)
    };
    Ok(Some(FittedBlend {
        similarity: weights[0],
        collaborative: weights[1],
        popularity: weights[2],
        category: weights[3],
        users: asked.len() as u32,
        held_out: targets as u32,
        recall,
        settings_recall,
        collaborative_only: rate([0.0, 1.0, 0.0, 0.0]),
        similarity_only: rate([1.0, 0.0, 0.0, 0.0]),
        popularity_only: rate([0.0, 0.0, 1.0, 0.0]),
        category_only: rate([0.0, 0.0, 0.0, 1.0]),
    }))
}

/// Asks one held-out user for personal picks without the held-back items
/// (`None`: the user's history is gone, or a cold start).
fn ask(
    catalog: &Catalog,
    validation: &Model,
    held: &HeldOut,
    now_ms: i64,
    blend: &Blend,
) -> Result<Option<Asked>> {
    let held_back = |id: &str| held.items.iter().any(|h| **h == *id);
    let events: Vec<_> = catalog
        .recent_events(&held.user)?
        .into_iter()
        .filter(|e| !held_back(&e.item_id))
        .collect();
    if events.is_empty() {
        return Ok(None);
    }
    let user = catalog.find_user(&held.user)?;
    let mut context = UserContext::of_events(catalog, &held.user, user, &events, now_ms);
    // The fit is about finding what the user has not had: everything of
    // their remaining history is left out, whatever the purchase and
    // repurchase rules would show again (otherwise, with re-buys allowed,
    // their own items fill the first ten and nothing can be found).
    context.purchased = events
        .iter()
        .map(|e| Arc::from(e.item_id.as_str()))
        .collect();
    context.purchased.sort();
    context.purchased.dedup();
    let request = UserRequest {
        user_id: held.user.to_string(),
        k: K,
        filter: Filter::default(),
        now_ms,
    };
    Ok(catalog.with_index(|index| {
        let targets: Vec<u32> = held
            .items
            .iter()
            .filter_map(|id| index.slot_of(id))
            .collect();
        let candidates =
            features_with(catalog, index, &context, &request, Some(validation), blend)?;
        Some(Asked {
            targets: (0..candidates.len())
                .filter(|&i| targets.contains(&candidates[i].slot))
                .collect(),
            features: candidates.iter().map(vector).collect(),
        })
    }))
}

fn vector(f: &Features) -> [f64; 4] {
    [f.similarity, f.collaborative, f.popularity, f.category]
}

fn dot(w: &[f64; 4], x: &[f64; 4]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// Held-back items ranked in the first [`K`] under `w`, over every asked
/// user. Ties go against a target when the tying candidate comes first in
/// slot order, as the candidates are (personal picks break ties by id,
/// which the fit does not see; ties of z-scores are rare).
fn hits(asked: &[Asked], w: &[f64; 4]) -> usize {
    let mut found = 0;
    for a in asked {
        if a.targets.is_empty() {
            continue;
        }
        let scores: Vec<f64> = a.features.iter().map(|x| dot(w, x)).collect();
        for &t in &a.targets {
            let ahead = scores
                .iter()
                .enumerate()
                .filter(|&(i, &s)| s > scores[t] || (s == scores[t] && i < t))
                .take(K)
                .count();
            if ahead < K {
                found += 1;
            }
        }
    }
    found
}

/// Fits the personal-picks blend of `catalog` on a leave-last-out
/// validation of `data` (see the module documentation); `None` with too
/// few users, or when the fit failed (logged: the settings' blend is
/// used). What `Catalog::train_collaborative` is handed.
pub fn fit_for(
    catalog: &Catalog,
    data: &Interactions,
    settings: &BehaviourSettings,
) -> Option<FittedBlend> {
    let held = data.validation_users(VALIDATION_USERS, MIN_ITEMS);
    if held.len() < MIN_USERS {
        return None;
    }
    let validation =
        crate::collaborative::train::train(&data.without(&held), &settings.collaborative, 0)?;
    // Asked now, as personal picks are; or at the newest event when
    // events are dated ahead of this clock (a skewed clock, or a
    // replay), so that none of them lies in the future of the ask.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        .max(data.newest_ms().unwrap_or(i64::MIN));
    match fit(catalog, &validation, &held, now_ms) {
        Ok(fitted) => {
            if let Some(f) = &fitted {
                tracing::info!(
                    catalog = %catalog.name(),
                    users = f.users,
                    similarity = f.similarity,
                    collaborative = f.collaborative,
                    popularity = f.popularity,
                    category = f.category,
                    held_out = f.held_out,
                    recall = f.recall,
                    settings_recall = f.settings_recall,
                    "personal-picks blend fitted"
                );
            }
            fitted
        }
        Err(e) => {
            tracing::warn!(catalog = %catalog.name(), error = %e, "could not fit the blend (the settings' weights are used)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_holds_the_single_features_and_no_empty_weighting() {
        let g = grid();
        assert!(g.contains(&[0.0, 1.0, 0.0, 0.0]));
        assert!(g.contains(&[1.5, 0.0, 0.0, 0.0]));
        assert!(g.contains(&[0.0, 0.0, 0.8, 0.0]));
        assert!(!g.contains(&[0.0, 0.0, 0.0, 0.0]));
        assert_eq!(g.len(), 2 * 6 * 6 * 5 - 1);
    }

    #[test]
    fn hits_count_the_targets_within_the_first_ten_with_ties_in_slot_order() {
        // Candidate i has similarity i; the target is candidate 5.
        let features: Vec<[f64; 4]> = (0..20).map(|i| [i as f64, 0.0, -(i as f64), 0.0]).collect();
        let asked = vec![Asked {
            features,
            targets: vec![5],
        }];
        // By similarity, 14 candidates are ahead: a miss.
        assert_eq!(hits(&asked, &[1.0, 0.0, 0.0, 0.0]), 0);
        // By popularity (the reverse order), 5 are ahead: a hit.
        assert_eq!(hits(&asked, &[0.0, 0.0, 1.0, 0.0]), 1);
        // Everything ties under category: 5 come first in slot order.
        assert_eq!(hits(&asked, &[0.0, 0.0, 0.0, 1.0]), 1);
        let late = vec![Asked {
            features: vec![[0.0; 4]; 20],
            targets: vec![12],
        }];
        assert_eq!(hits(&late, &[0.0, 0.0, 0.0, 1.0]), 0);
        let absent = vec![Asked {
            features: vec![[0.0; 4]; 3],
            targets: vec![],
        }];
        assert_eq!(hits(&absent, &[1.0, 1.0, 1.0, 1.0]), 0);
        // Each target counts: two of three within the first ten.
        let three = vec![Asked {
            features: (0..20).map(|i| [i as f64, 0.0, 0.0, 0.0]).collect(),
            targets: vec![19, 15, 2],
        }];
        assert_eq!(hits(&three, &[1.0, 0.0, 0.0, 0.0]), 2);
    }
}
