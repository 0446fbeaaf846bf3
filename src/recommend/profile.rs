//! A user's profile at a moment: computed per request from the user's
//! newest events, so the very next query after an event sees it.
//!
//! Each event counts `w(type) * 2^(-(now - t) / half_life)`, and a vector
//! is the weighted average of the interacted items' vectors:
//! - the **session** vector averages the events of the newest session
//!   (the events sharing the newest event's `session_id`; without one, the
//!   newest run of events no more than `session_gap` apart) with the
//!   session half-life;
//! - the **long-term** vector averages all the profile events (the newest
//!   `profile_events`) with the long-term half-life.
//!
//! The blend is `(b_s * f * S + b_l * L + b_u * U) / (b_s * f + b_l + b_u)`
//! over the parts that exist, where `U` is the user's stored vector and
//! `f = 2^(-(now - newest session event) / session_half_life)` fades an old
//! session out. Events dated after `now`, and events on items without a
//! vector (not indexed), are left out. An event of negative weight (a
//! dislike, a return, a rating below 3 stars) subtracts its item's vector
//! from the sum but adds nothing to the total, so it pushes the average
//! away from that item; a profile of negative events only is no profile. Everything takes `now` as an
//! argument: tests and replays inject their clock.

use std::collections::HashSet;

use crate::model::BehaviourSettings;
use crate::model::{Event, EventKind};

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub session: Option<Vec<f32>>,
    /// `f` above: 1 for a session active now, halving every half-life.
    pub session_freshness: f64,
    pub long_term: Option<Vec<f32>>,
    pub user_vector: Option<Vec<f32>>,
    pub blended: Option<Vec<f32>>,
    /// What the user was before the newest session: the long-term average
    /// of the older events blended with the stored vector (`None` for a
    /// user in their first session). Tells `recent_activity` hits from
    /// `profile` ones.
    pub history: Option<Vec<f32>>,
    /// Every distinct item of the profile events that has a vector, with
    /// its summed long-term event weight, strongest first (category
    /// affinity is computed from it).
    pub item_weights: Vec<(String, f64)>,
    /// Items added to the cart in the newest session and not bought after.
    pub cart: Vec<String>,
    /// The user's collaborative row: each item of the profile events with
    /// its relative, time-decayed weight (`collaborative::user_row`),
    /// whether or not the item has a vector.
    pub collaborative: Vec<(String, f64)>,
    /// Items of the profile events the user did not like (disliked,
    /// returned, rated 3 stars or fewer): personal picks leave them out
    /// with the seen ones (`exclude_seen`).
    pub pushed: Vec<String>,
    /// How many events the profile was computed from.
    pub events: usize,
}

/// `2^(-age / half_life)`.
pub fn decay(age_ms: i64, half_life_ms: i64) -> f64 {
    (-(age_ms.max(0) as f64) / half_life_ms.max(1) as f64).exp2()
}

/// The weighted average of the events' item vectors, if any weight.
fn average<'a>(
    events: impl Iterator<Item = &'a Event>,
    now_ms: i64,
    half_life_ms: i64,
    settings: &BehaviourSettings,
    vector_of: &impl Fn(&str) -> Option<Vec<f32>>,
) -> Option<Vec<f32>> {
    let mut sum: Option<Vec<f64>> = None;
    let mut total = 0.0f64;
    for event in events {
        let w = settings.weights.of(event.kind) * decay(now_ms - event.timestamp_ms, half_life_ms);
        if w == 0.0 {
            continue;
        }
        let Some(v) = vector_of(&event.item_id) else {
            continue;
        };
        let acc = sum.get_or_insert_with(|| vec![0.0; v.len()]);
        for (a, x) in acc.iter_mut().zip(&v) {
            *a += w * f64::from(*x);
        }
        // A negative weight (a dislike, a return, a low rating) pushes the
        // average away from its item without adding to the total: the
        // profile is what the user likes, minus what they do not.
        if w > 0.0 {
            total += w;
        }
    }
    let sum = sum?;
    (total > 0.0 && total.is_normal()).then(|| sum.iter().map(|a| (a / total) as f32).collect())
}

/// `sum(w * v) / sum(w)` over the parts that exist with a positive weight.
fn weighted(parts: &[(Option<&[f32]>, f64)]) -> Option<Vec<f32>> {
    let mut sum: Option<Vec<f64>> = None;
    let mut total = 0.0;
    for &(vector, weight) in parts {
        let Some(v) = vector else { continue };
        if weight <= 0.0 {
            continue;
        }
        let acc = sum.get_or_insert_with(|| vec![0.0; v.len()]);
        for (a, x) in acc.iter_mut().zip(v) {
            *a += weight * f64::from(*x);
        }
        total += weight;
    }
    let sum = sum?;
    (total > 0.0 && total.is_normal()).then(|| sum.iter().map(|a| (a / total) as f32).collect())
}

/// The newest session among `events` (newest first).
fn newest_session<'a>(events: &'a [&'a Event], gap_ms: i64) -> Vec<&'a Event> {
    let Some(first) = events.first() else {
        return Vec::new();
    };
    match &first.session_id {
        Some(id) => events
            .iter()
            .filter(|e| e.session_id.as_deref() == Some(id))
            .copied()
            .collect(),
        None => {
            let mut out = vec![*first];
            for pair in events.windows(2) {
                if pair[1].session_id.is_some()
                    || pair[0].timestamp_ms - pair[1].timestamp_ms > gap_ms
                {
                    break;
                }
                out.push(pair[1]);
            }
            out
        }
    }
}

/// Computes the profile from `events` (the user's newest events, newest
/// first), `user_vector`, and the catalog's item vectors.
pub fn profile(
    events: &[Event],
    user_vector: Option<&[f32]>,
    now_ms: i64,
    settings: &BehaviourSettings,
    vector_of: impl Fn(&str) -> Option<Vec<f32>>,
) -> Profile {
    let events: Vec<&Event> = events
        .iter()
        .filter(|e| e.timestamp_ms <= now_ms)
        .take(settings.profile_events)
        .collect();
    let session_events = newest_session(&events, settings.session_gap_ms);
    let session = average(
        session_events.iter().copied(),
        now_ms,
        settings.session_half_life_ms,
        settings,
        &vector_of,
    );
    let session_freshness = session_events.first().map_or(0.0, |e| {
        decay(now_ms - e.timestamp_ms, settings.session_half_life_ms)
    });
    let long_term = average(
        events.iter().copied(),
        now_ms,
        settings.long_term_half_life_ms,
        settings,
        &vector_of,
    );
    // The cart: added in the session and not bought later in it.
    let mut bought = HashSet::new();
    let mut cart = Vec::new();
    for event in &session_events {
        match event.kind {
            // Bought, owned, disliked or sent back: not in the cart.
            EventKind::Purchase | EventKind::Own | EventKind::Dislike | EventKind::Return => {
                bought.insert(event.item_id.as_str());
            }
            EventKind::AddToCart => {
                if !bought.contains(event.item_id.as_str()) && !cart.contains(&event.item_id) {
                    cart.push(event.item_id.clone());
                }
            }
            EventKind::View | EventKind::Click | EventKind::Rating(_) => {}
        }
    }
    let b = &settings.blend;
    let blended = weighted(&[
        (session.as_deref(), b.session * session_freshness),
        (long_term.as_deref(), b.long_term),
        (user_vector, b.user_vector),
    ]);
    let older = average(
        events
            .iter()
            .copied()
            .filter(|e| !session_events.iter().any(|s| std::ptr::eq(*s, *e))),
        now_ms,
        settings.long_term_half_life_ms,
        settings,
        &vector_of,
    );
    let history = weighted(&[
        (older.as_deref(), b.long_term),
        (user_vector, b.user_vector),
    ]);
    let mut weights: Vec<(String, f64)> = Vec::new();
    for event in &events {
        let w = settings.weights.of(event.kind)
            * decay(now_ms - event.timestamp_ms, settings.long_term_half_life_ms);
        if w <= 0.0 || vector_of(&event.item_id).is_none() {
            continue;
        }
        match weights.iter_mut().find(|(id, _)| *id == event.item_id) {
            Some((_, total)) => *total += w,
            None => weights.push((event.item_id.clone(), w)),
        }
    }
    weights.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut pushed: Vec<String> = events
        .iter()
        .filter(|e| match e.kind {
            EventKind::Dislike | EventKind::Return => true,
            EventKind::Rating(stars) => stars <= 3,
            _ => false,
        })
        .map(|e| e.item_id.clone())
        .collect();
    pushed.sort();
    pushed.dedup();
    let collaborative = crate::collaborative::user_row(
        events
            .iter()
            .map(|e| (e.item_id.as_str(), e.kind, e.timestamp_ms)),
        now_ms,
        settings.collaborative.half_life_ms,
        &settings.weights,
    );
    Profile {
        collaborative,
        item_weights: weights,
        session,
        session_freshness,
        long_term,
        user_vector: user_vector.map(<[f32]>::to_vec),
        blended,
        history,
        cart,
        pushed,
        events: events.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn ev(item: &str, kind: EventKind, at: i64, session: Option<&str>) -> Event {
        Event {
            user_id: "u".into(),
            item_id: item.into(),
            kind,
            timestamp_ms: at,
            session_id: session.map(String::from),
            order_id: None,
            quantity: 1,
            price: None,
            event_id: None,
            recommendation_id: None,
        }
    }

    fn vectors(id: &str) -> Option<Vec<f32>> {
        match id {
            "a" => Some(vec![1.0, 0.0]),
            "b" => Some(vec![0.0, 1.0]),
            "c" => Some(vec![1.0, 1.0]),
            _ => None,
        }
    }

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (f64::from(*x) - y).abs() < 1e-6)
    }

    /// A low rating pushes by `rating * (stars - 3) / 2` without adding to
    /// the total; a profile of pushes only is none.
    #[test]
    fn negative_feedback_pushes_the_average_away() {
        let s = BehaviourSettings::default();
        let now = 10 * MIN;
        // A purchase of a (+8), a one-star rating of b (-4), same moment.
        let events = vec![
            ev("b", EventKind::Rating(1), now, None),
            ev("a", EventKind::Purchase, now, None),
        ];
        let p = profile(&events, None, now, &s, vectors);
        // (8 * [1, 0] - 4 * [0, 1]) / 8.
        assert!(close(p.session.as_ref().unwrap(), &[1.0, -0.5]), "{p:?}");
        assert_eq!(p.pushed, ["b"]);
        assert_eq!(s.weights.of(EventKind::Rating(5)), 4.0);
        assert_eq!(s.weights.of(EventKind::Rating(4)), 2.0);
        assert_eq!(s.weights.of(EventKind::Rating(3)), 0.0);
        assert_eq!(s.weights.of(EventKind::Dislike), -4.0);
        // Pushes only: no vector at all.
        let only = profile(
            &[
                ev("a", EventKind::Dislike, now, None),
                ev("b", EventKind::Return, now, None),
            ],
            None,
            now,
            &s,
            vectors,
        );
        assert_eq!((only.session, only.long_term), (None, None));
        assert_eq!(only.pushed, ["a", "b"]);
        // Disliked, owned or returned: not in the cart.
        let cart = profile(
            &[
                ev("a", EventKind::Dislike, now, Some("s")),
                ev("a", EventKind::AddToCart, now - 1, Some("s")),
                ev("b", EventKind::AddToCart, now - 2, Some("s")),
            ],
            None,
            now,
            &s,
            vectors,
        );
        assert_eq!(cart.cart, ["b"]);
    }

    /// The exact vectors for a known sequence, by the documented formulas.
    #[test]
    fn decay_and_weights_give_the_expected_vectors() {
        let s = BehaviourSettings::default();
        let now = 1_000 * MIN;
        // Newest first: a purchase of b 30 min ago (one session half-life),
        // a view of a 60 min ago (same session: 30 min gap at most), then a
        // click on c two days earlier (another session), and an event on
        // an unknown item, ignored.
        let events = vec![
            ev("b", EventKind::Purchase, now - 30 * MIN, None),
            ev("zzz", EventKind::View, now - 45 * MIN, None),
            ev("a", EventKind::View, now - 60 * MIN, None),
            ev("c", EventKind::Click, now - 60 * MIN - 2 * 1440 * MIN, None),
        ];
        let p = profile(&events, None, now, &s, vectors);
        // Session: b weighs 8 * 1/2 = 4, a weighs 1 * 1/4 = 0.25.
        let session = p.session.clone().unwrap();
        assert!(close(&session, &[0.25 / 4.25, 4.0 / 4.25]), "{session:?}");
        assert!((p.session_freshness - 0.5).abs() < 1e-12);
        // Long term (30 days): b 8*d(30m), a 1*d(60m), c 2*d(2d+60m).
        let d = |age: i64| decay(age, 30 * 1440 * MIN);
        let (wb, wa, wc) = (
            8.0 * d(30 * MIN),
            d(60 * MIN),
            2.0 * d(60 * MIN + 2 * 1440 * MIN),
        );
        let total = wa + wb + wc;
        let long = [(wa + wc) / total, (wb + wc) / total];
        assert!(close(p.long_term.as_ref().unwrap(), &long));
        // Blend: (1 * 0.5 * S + 1 * L) / 1.5, no user vector.
        let blended: Vec<f64> = (0..2)
            .map(|i| (0.5 * f64::from(session[i]) + long[i]) / 1.5)
            .collect();
        assert!(close(p.blended.as_ref().unwrap(), &blended));
        assert_eq!(p.events, 4);
        // Interests by summed long-term weight: b (8), c (2), a (1).
        let interests: Vec<&str> = p.item_weights.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(interests, ["b", "c", "a"]);
        // History: only c, the older session.
        assert!(close(p.history.as_ref().unwrap(), &[1.0, 1.0]));
        // With a stored user vector it joins the blend at weight 1.
        let p = profile(&events, Some(&[3.0, 3.0]), now, &s, vectors);
        let with_user: Vec<f64> = (0..2)
            .map(|i| (0.5 * f64::from(session[i]) + long[i] + 3.0) / 2.5)
            .collect();
        assert!(close(p.blended.as_ref().unwrap(), &with_user));
    }

    #[test]
    fn events_after_now_are_ignored_and_no_events_means_no_profile() {
        let s = BehaviourSettings::default();
        let p = profile(&[ev("a", EventKind::View, 10, None)], None, 5, &s, vectors);
        assert_eq!(p.blended, None);
        assert_eq!(p.events, 0);
        let p = profile(&[], Some(&[1.0, 0.0]), 5, &s, vectors);
        assert_eq!(p.blended.as_deref(), Some(&[1.0, 0.0][..]));
    }

    #[test]
    fn the_cart_is_what_the_newest_session_added_and_did_not_buy() {
        let s = BehaviourSettings::default();
        let events = vec![
            ev("a", EventKind::Purchase, 50, Some("s2")),
            ev("c", EventKind::AddToCart, 40, Some("s2")),
            ev("a", EventKind::AddToCart, 30, Some("s2")),
            ev("b", EventKind::AddToCart, 20, Some("s1")),
        ];
        let p = profile(&events, None, 100, &s, vectors);
        assert_eq!(p.cart, ["c"]);
    }
}
