//! The planner against brute force: for random catalogs (with replaced
//! vectors and deletions, so the graph holds dead points) and random
//! filters, the matching set equals a model predicate written
//! independently here, the exact path returns exactly the brute-force
//! top-k, and the graph path returns min(k, matches) hits that all match.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::filter::{Bound, Condition, Filter, PriceRange, Scalar, StringCondition, TagCondition};
use super::{Candidates, IndexState, Plan};
use crate::config::IndexSettings;
use crate::model::{CatalogConfig, Item, Metric, VectorType};

const DIM: usize = 4;
const TIERS: u8 = 4;
const CATEGORIES: [&str; 3] = ["a", "b", "c"];
const TAGS: [&str; 3] = ["t1", "t2", "t3"];

#[derive(Debug, Clone)]
struct Spec {
    vector: Vec<f32>,
    price: Option<f64>,
    category: Option<usize>,
    brand: Option<bool>,
    in_stock: bool,
    tags: Vec<usize>,
    explicit_tier: Option<u8>,
    color: Option<usize>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(-1.0f32..1.0, DIM),
        proptest::option::of(0u32..12),
        proptest::option::weighted(0.85, 0usize..3),
        proptest::option::of(any::<bool>()),
        proptest::bool::weighted(0.7),
        proptest::collection::vec(0usize..3, 0..3),
        proptest::option::weighted(0.1, 1u8..=TIERS),
        proptest::option::of(0usize..3),
    )
        .prop_map(
            |(vector, price, category, brand, in_stock, tags, explicit_tier, color)| Spec {
                vector,
                price: price.map(f64::from),
                category,
                brand,
                in_stock,
                tags,
                explicit_tier,
                color,
            },
        )
}

fn item(config: &CatalogConfig, id: usize, s: &Spec) -> Item {
    let mut vector = s.vector.clone();
    if vector.iter().all(|x| x.abs() < 1e-3) {
        vector[0] = 1.0;
    }
    let vector = config
        .prepare_vector("vector", vector)
        .expect("valid vector");
    let mut tags: Vec<String> = s.tags.iter().map(|t| TAGS[*t].to_string()).collect();
    tags.sort();
    tags.dedup();
    let mut attributes = Map::new();
    // Colour 2 is the number 1 (stored as 1.0), matched by the scalar 1.
    match s.color {
        Some(0) => drop(attributes.insert("color".into(), json!("red"))),
        Some(1) => drop(attributes.insert("color".into(), json!(["blue", "red"]))),
        Some(_) => drop(attributes.insert("color".into(), json!(1.0))),
        None => {}
    }
    Item {
        id: format!("i{id}"),
        vector,
        price: s.price,
        category: s.category.map(|c| CATEGORIES[c].to_string()),
        brand: s.brand.map(|b| if b { "x" } else { "y" }.to_string()),
        in_stock: s.in_stock,
        tags,
        explicit_tier: s.explicit_tier,
        attributes,
    }
}

fn strings(picks: &[usize], from: &[&str]) -> Vec<String> {
    picks
        .iter()
        .map(|p| from[*p % from.len()].to_string())
        .collect()
}

fn bound() -> impl Strategy<Value = Option<Bound>> {
    proptest::option::of((0u32..12, any::<bool>()).prop_map(|(v, inclusive)| Bound {
        value: f64::from(v),
        inclusive,
    }))
}

fn condition() -> impl Strategy<Value = Condition> {
    let picks = || proptest::collection::vec(0usize..4, 1..3);
    prop_oneof![
        (picks(), any::<bool>()).prop_map(|(p, neg)| {
            // Index 3 is a category no item has.
            let names = strings(&p, &["a", "b", "c", "zz"]);
            Condition::Category(if neg {
                StringCondition::NotIn(names)
            } else {
                StringCondition::In(names)
            })
        }),
        Just(Condition::CategoryUnset),
        (picks(), any::<bool>()).prop_map(|(p, neg)| {
            let names = strings(&p, &["x", "y"]);
            Condition::Brand(if neg {
                StringCondition::NotIn(names)
            } else {
                StringCondition::In(names)
            })
        }),
        (bound(), bound()).prop_map(|(low, high)| Condition::Price(PriceRange { low, high })),
        (1u8..=TIERS, 0u8..3).prop_map(|(low, span)| Condition::Tier {
            low,
            high: low + span
        }),
        any::<bool>().prop_map(Condition::InStock),
        (picks(), any::<bool>()).prop_map(|(p, all)| {
            let tags = strings(&p, &TAGS);
            Condition::Tags(if all {
                TagCondition::All(tags)
            } else {
                TagCondition::Any(tags)
            })
        }),
        proptest::collection::vec(0usize..80, 0..6)
            .prop_map(|ids| Condition::ExcludeIds(ids.iter().map(|i| format!("i{i}")).collect())),
        (0usize..4).prop_map(|c| Condition::Attribute {
            key: "color".into(),
            value: match c {
                0 => Scalar::String("red".into()),
                1 => Scalar::String("blue".into()),
                2 => Scalar::Number(1.0),
                _ => Scalar::Bool(true),
            },
        }),
    ]
}

/// The documented tier rule, computed from the model alone.
fn model_tier(items: &BTreeMap<String, Item>, item: &Item) -> Option<u8> {
    if let Some(t) = item.explicit_tier {
        return Some(t);
    }
    let price = item.price?;
    let same: Vec<f64> = items
        .values()
        .filter(|o| o.category == item.category)
        .filter_map(|o| o.price)
        .collect();
    let cheaper = same.iter().filter(|p| **p < price).count();
    Some((1 + usize::from(TIERS) * cheaper / same.len()).min(usize::from(TIERS)) as u8)
}

/// Whether `item` matches `condition`, written from the API's definitions.
fn model_holds(condition: &Condition, item: &Item, tier: Option<u8>) -> bool {
    let in_list = |value: &Option<String>, c: &StringCondition| match c {
        StringCondition::In(names) => value.as_ref().is_some_and(|v| names.contains(v)),
        StringCondition::NotIn(names) => !value.as_ref().is_some_and(|v| names.contains(v)),
    };
    match condition {
        Condition::Category(c) => in_list(&item.category, c),
        Condition::CategoryUnset => item.category.is_none(),
        Condition::Brand(c) => in_list(&item.brand, c),
        Condition::Price(range) => item.price.is_some_and(|p| {
            range.low.is_none_or(|b| {
                if b.inclusive {
                    p >= b.value
                } else {
                    p > b.value
                }
            }) && range.high.is_none_or(|b| {
                if b.inclusive {
                    p <= b.value
                } else {
                    p < b.value
                }
            })
        }),
        Condition::Tier { low, high } => tier.is_some_and(|t| *low <= t && t <= *high),
        Condition::InStock(want) => item.in_stock == *want,
        Condition::Tags(TagCondition::Any(tags)) => tags.iter().any(|t| item.tags.contains(t)),
        Condition::Tags(TagCondition::All(tags)) => tags.iter().all(|t| item.tags.contains(t)),
        Condition::ExcludeIds(ids) => !ids.contains(&item.id),
        Condition::Attribute { value, .. } => {
            let color = item.attributes.get("color");
            let as_list: Vec<Value> = match color {
                Some(Value::Array(a)) => a.clone(),
                Some(v) => vec![v.clone()],
                None => vec![],
            };
            as_list.iter().any(|v| match (v, value) {
                (Value::String(s), Scalar::String(w)) => s == w,
                (Value::Number(n), Scalar::Number(w)) => n.as_f64() == Some(*w),
                (Value::Bool(b), Scalar::Bool(w)) => b == w,
                _ => false,
            })
        }
    }
}

fn brute_score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
        Metric::L2 => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
    }
}

#[derive(Debug)]
struct Scenario {
    config: CatalogConfig,
    initial: Vec<Spec>,
    /// (id, new spec): upserts after the build, re-vectoring some items.
    updates: Vec<(usize, Spec)>,
    deletes: Vec<usize>,
    filter: Vec<Condition>,
    query: Vec<f32>,
    k: usize,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![Just(Metric::Cosine), Just(Metric::Dot), Just(Metric::L2)],
        prop_oneof![Just(VectorType::F32), Just(VectorType::F16)],
        proptest::collection::vec(spec(), 1..80),
        proptest::collection::vec((0usize..100, spec()), 0..30),
        proptest::collection::vec(0usize..100, 0..20),
        proptest::collection::vec(condition(), 0..4),
        proptest::collection::vec(-1.0f32..1.0, DIM),
        1usize..15,
    )
        .prop_map(
            |(metric, vector_type, initial, updates, deletes, filter, query, k)| Scenario {
                config: CatalogConfig::new(DIM, metric, vector_type, TIERS).unwrap(),
                initial,
                updates,
                deletes,
                filter,
                query,
                k,
            },
        )
}

/// Builds the index and the model through the same sequence of writes.
fn build(s: &Scenario, exact_scan_threshold: usize) -> (IndexState, BTreeMap<String, Item>) {
    let settings = IndexSettings {
        exact_scan_threshold,
        ..IndexSettings::default()
    };
    let items: Vec<Item> = s
        .initial
        .iter()
        .enumerate()
        .map(|(i, sp)| item(&s.config, i, sp))
        .collect();
    let mut model: BTreeMap<String, Item> =
        items.iter().map(|i| (i.id.clone(), i.clone())).collect();
    let mut index = IndexState::build(s.config, settings, items);
    let updates: Vec<Item> = s
        .updates
        .iter()
        .map(|(id, sp)| item(&s.config, *id, sp))
        .collect();
    for u in &updates {
        model.insert(u.id.clone(), u.clone());
    }
    let prepared = index.prepare_upsert(updates);
    index.graph().insert(&prepared.new_points());
    index.publish_upsert(prepared);
    // Half the scenarios freeze the updates into the walked graph; in the
    // other half they stay the exactly scanned delta (both must answer
    // the same).
    if s.updates.len() % 2 == 0 {
        index.freeze();
        assert_eq!(index.delta(), 0);
    } else {
        assert_eq!(
            index.delta(),
            index.counts().graph_points as usize - s.initial.len()
        );
    }
    let deletes: Vec<String> = s.deletes.iter().map(|i| format!("i{i}")).collect();
    for d in &deletes {
        model.remove(d);
    }
    index.delete(&deletes);
    (index, model)
}

/// Item `i` of a deterministic catalog: one of 97 vectors spread over
/// the unit cube (pattern `i mod 97`, so items repeat with ties broken by
/// id), with `price` and no other attribute.
fn spread(i: usize, price: Option<f64>) -> Spec {
    Spec {
        vector: (0..DIM)
            .map(|d| (((i * 31 + d * 17) % 97) as f32 / 97.0) - 0.5)
            .collect(),
        price,
        category: None,
        brand: None,
        in_stock: true,
        tags: Vec::new(),
        explicit_tier: None,
        color: None,
    }
}

fn query(s: &Scenario) -> Vec<f32> {
    let mut q = s.query.clone();
    if q.iter().all(|x| x.abs() < 1e-3) {
        q[0] = 1.0;
    }
    s.config.prepare_vector("query", q).unwrap()
}

/// The ids the model says match, and the brute-force top-k scores.
fn expected(
    s: &Scenario,
    model: &BTreeMap<String, Item>,
    q: &[f32],
) -> (HashSet<String>, Vec<f32>) {
    let matching: Vec<&Item> = model
        .values()
        .filter(|it| {
            let tier = model_tier(model, it);
            s.filter.iter().all(|c| model_holds(c, it, tier))
        })
        .collect();
    let stored = |v: &[f32]| -> Vec<f32> {
        match s.config.vector_type {
            VectorType::F32 => v.to_vec(),
            VectorType::F16 => v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect(),
        }
    };
    let mut scores: Vec<f32> = matching
        .iter()
        .map(|it| brute_score(s.config.metric, q, &stored(&it.vector)))
        .collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    scores.truncate(s.k);
    (matching.iter().map(|it| it.id.clone()).collect(), scores)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The attribute index's candidate set is exactly the model's matches,
    /// and the exact path returns exactly the brute-force top-k.
    #[test]
    fn exact_path_equals_brute_force(s in scenario()) {
        let (index, model) = build(&s, usize::MAX);
        let q = query(&s);
        let (matching, scores) = expected(&s, &model, &q);
        let filter = Filter { conditions: s.filter.clone() };

        // Tiers as the model derives them.
        for it in model.values() {
            prop_assert_eq!(index.get(&it.id).expect("live").tier, model_tier(&model, it), "tier of {}", it.id);
        }
        prop_assert_eq!(index.counts().items as usize, model.len());

        let (hits, plan) = index.search(&q, s.k, &filter, &[]);
        prop_assert_eq!(hits.len(), s.k.min(matching.len()));
        for (hit, want) in hits.iter().zip(&scores) {
            prop_assert!(matching.contains(&*hit.meta.id), "{} does not match", hit.meta.id);
            prop_assert!((hit.score - want).abs() <= 1e-4, "score {} vs brute force {}", hit.score, want);
        }
        // Under the threshold every query is an exact scan.
        let want_plan = if matching.is_empty() { Plan::Empty } else { Plan::Exact };
        prop_assert_eq!(plan, want_plan);
        // A filter with an indexed condition goes through the attribute
        // index: its set must be the model's exactly.
        let mut excluded = roaring::RoaringBitmap::new();
        if let Candidates::Set(set) = index.candidates(&filter, &mut excluded) {
            let ids: HashSet<String> = set.iter().map(|slot| index.id_of(slot).to_string()).collect();
            prop_assert_eq!(ids, matching);
        }
    }

    /// A broad price filter checked per candidate instead of materialised
    /// (limit 0: every price filter is "broad"), with prices and vectors
    /// changed and items deleted after the price order was read, so the
    /// planner's estimate is stale: the exact path still equals brute
    /// force, and the graph path still returns min(k, matches) matching
    /// hits.
    #[test]
    fn priced_predicate_equals_brute_force(s in scenario()) {
        let q = query(&s);
        let filter = Filter { conditions: s.filter.clone() };
        let priced = s.filter.iter().any(|c| matches!(c, Condition::Price(_)));
        for threshold in [usize::MAX, 0] {
            let (mut index, model) = build(&s, threshold);
            index.set_price_materialize_limit(0);
            let (matching, scores) = expected(&s, &model, &q);
            let mut excluded = roaring::RoaringBitmap::new();
            let candidates = index.candidates(&filter, &mut excluded);
            let is_priced = matches!(candidates, Candidates::Priced { .. });
            // At limit 0 a price filter is checked per candidate, unless
            // other conditions left a small set (here always: at most 80
            // items), whose prices are checked at once, or the narrowest
            // range is estimated empty, which is materialised (cheaply).
            if priced {
                let others = s.filter.iter().any(|c| !matches!(c, Condition::Price(_) | Condition::ExcludeIds(_)));
                let narrowest = s.filter.iter().filter_map(|c| match c {
                    Condition::Price(range) => Some(index.attrs.estimate_price_slots(range)),
                    _ => None,
                }).min().expect("a price condition");
                prop_assert_eq!(is_priced, !others && narrowest > 0, "others {} narrowest estimate {}", others, narrowest);
            } else {
                prop_assert!(!is_priced);
            }
            let (hits, plan) = index.search(&q, s.k, &filter, &[]);
            prop_assert_eq!(hits.len(), s.k.min(matching.len()));
            let mut seen = HashSet::new();
            for hit in &hits {
                prop_assert!(matching.contains(&*hit.meta.id), "{} does not match", hit.meta.id);
                prop_assert!(seen.insert(hit.meta.id.clone()), "duplicate hit");
            }
            if threshold == usize::MAX {
                for (hit, want) in hits.iter().zip(&scores) {
                    prop_assert!((hit.score - want).abs() <= 1e-4, "score {} vs brute force {}", hit.score, want);
                }
                if is_priced {
                    // An estimate never ends a search as empty.
                    prop_assert_eq!(plan, Plan::Exact);
                }
            }
        }
    }

    /// Through the graph (threshold 0), with dead points in it: every hit
    /// matches, hits are distinct and best first, and there are
    /// min(k, matches) of them.
    #[test]
    fn graph_path_returns_k_matching_hits(s in scenario()) {
        let (index, model) = build(&s, 0);
        let q = query(&s);
        let (matching, _) = expected(&s, &model, &q);
        let filter = Filter { conditions: s.filter.clone() };
        let (hits, _) = index.search(&q, s.k, &filter, &[]);
        prop_assert_eq!(hits.len(), s.k.min(matching.len()));
        let mut seen = HashSet::new();
        for hit in &hits {
            prop_assert!(matching.contains(&*hit.meta.id), "{} does not match", hit.meta.id);
            prop_assert!(seen.insert(hit.meta.id.clone()), "duplicate hit");
            let it = &model[&*hit.meta.id];
            let stored: Vec<f32> = index.vector(hit.slot);
            prop_assert!(stored.len() == it.vector.len());
            prop_assert!((hit.score - brute_score(s.config.metric, &q, &stored)).abs() <= 1e-4);
        }
        prop_assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }

    /// A rebuild's catch-up, as `Catalog::rebuild` runs it: a copy built
    /// from a snapshot taken before the updates and deletes, caught up
    /// once without the writer's turn, then again under it. The first
    /// pass leaves it equal to the live index item for item; the second
    /// finds nothing left (it shares the live metadata, so unchanged items
    /// are told by pointer); a write after the first pass is exactly what
    /// the second pass brings over.
    #[test]
    fn rebuild_catch_up_converges(s in scenario()) {
        let settings = IndexSettings::default();
        let items: Vec<Item> = s.initial.iter().enumerate().map(|(i, sp)| item(&s.config, i, sp)).collect();
        let mut live = IndexState::build(s.config, settings, items);
        let mut fresh = IndexState::build_from_snapshot(s.config, settings, live.snapshot(), &mut |entries| live.refresh_entries(entries), &mut |graph, points| graph.insert(points));
        let updates: Vec<Item> = s.updates.iter().map(|(id, sp)| item(&s.config, *id, sp)).collect();
        let prepared = live.prepare_upsert(updates);
        live.graph().insert(&prepared.new_points());
        live.publish_upsert(prepared);
        live.delete(&s.deletes.iter().map(|i| format!("i{i}")).collect::<Vec<_>>());

        let sorted = |index: &IndexState| {
            let mut items = index.items();
            items.sort_by(|a, b| a.id.cmp(&b.id));
            items
        };
        let first = fresh.catch_up_with(&live);
        fresh.graph().insert(&first.new_points());
        fresh.publish_upsert(first);
        prop_assert_eq!(sorted(&fresh), sorted(&live));
        prop_assert!(fresh.catch_up_with(&live).items.is_empty());

        let late = item(&s.config, 1_000, &s.initial[0]);
        let prepared = live.prepare_upsert(vec![late.clone()]);
        live.graph().insert(&prepared.new_points());
        live.publish_upsert(prepared);
        let second = fresh.catch_up_with(&live);
        prop_assert_eq!(second.items.iter().map(|(it, _)| it.id.clone()).collect::<Vec<_>>(), vec![late.id]);
        fresh.graph().insert(&second.new_points());
        fresh.publish_upsert(second);
        prop_assert_eq!(sorted(&fresh), sorted(&live));
        prop_assert_eq!(fresh.counts().items, live.counts().items);
    }

    /// A rebuild refreshes each chunk of its snapshot from the live index
    /// before inserting it: items changed after the snapshot but before
    /// their chunk went in enter the new graph with their current values,
    /// so the catch-up brings over only items the snapshot lacked, and the
    /// only dead points are the items deleted since.
    #[test]
    fn rebuild_refreshes_chunks_before_inserting(s in scenario()) {
        let settings = IndexSettings::default();
        let items: Vec<Item> = s.initial.iter().enumerate().map(|(i, sp)| item(&s.config, i, sp)).collect();
        let mut live = IndexState::build(s.config, settings, items);
        let snapshot = live.snapshot();
        let before: HashSet<String> = snapshot.iter().map(|(m, _)| m.id.to_string()).collect();
        let updates: Vec<Item> = s.updates.iter().map(|(id, sp)| item(&s.config, *id, sp)).collect();
        let prepared = live.prepare_upsert(updates);
        live.graph().insert(&prepared.new_points());
        live.publish_upsert(prepared);
        live.delete(&s.deletes.iter().map(|i| format!("i{i}")).collect::<Vec<_>>());

        let mut fresh = IndexState::build_from_snapshot(s.config, settings, snapshot, &mut |entries| live.refresh_entries(entries), &mut |graph, points| graph.insert(points));
        let prepared = fresh.catch_up_with(&live);
        let mut caught: Vec<String> = prepared.items.iter().map(|(it, _)| it.id.clone()).collect();
        caught.sort();
        let mut missing: Vec<String> = live.items().into_iter().map(|it| it.id).filter(|id| !before.contains(id)).collect();
        missing.sort();
        prop_assert_eq!(caught, missing);
        fresh.graph().insert(&prepared.new_points());
        fresh.publish_upsert(prepared);
        let gone = before.iter().filter(|id| live.get(id).is_none()).count();
        prop_assert_eq!(fresh.counts().tombstones, gone as u64);
        let mut a = fresh.items();
        a.sort_by(|x, y| x.id.cmp(&y.id));
        let mut b = live.items();
        b.sort_by(|x, y| x.id.cmp(&y.id));
        prop_assert_eq!(a, b);
    }
}

/// A catalog of 3,000 items priced 0..3,000, of which 500 were then
/// re-priced to 25,000 (1,000 price changes: fewer than trigger a refresh
/// of the price order), so the planner's estimates are stale: 2,000 for
/// [0, 2,000) where 1,497 match, and 0 for [20,000, 30,000) where 500
/// match. Whether the price filter is materialised (default limit) or
/// checked per candidate (limit 0), exact or through the graph, the
/// answers are the brute-force ones.
#[test]
fn stale_price_estimates_do_not_change_answers() {
    let config = CatalogConfig::new(DIM, Metric::L2, VectorType::F32, TIERS).unwrap();
    let initial: Vec<Spec> = (0..3000).map(|i| spread(i, Some(i as f64))).collect();
    let updates: Vec<(usize, Spec)> = (0..500)
        .map(|i| (i * 2, spread(i * 2, Some(25_000.0))))
        .collect();
    let range = |low: f64, high: f64| {
        Condition::Price(PriceRange {
            low: Some(Bound {
                value: low,
                inclusive: true,
            }),
            high: Some(Bound {
                value: high,
                inclusive: false,
            }),
        })
    };
    // Items 1, 3 and 5 (priced 1, 3, 5) are deleted too.
    let stale = |index: &IndexState, filter: &Condition| match filter {
        Condition::Price(range) => index.attrs.estimate_price_slots(range),
        _ => unreachable!(),
    };
    for (filter, count) in [(range(0.0, 2000.0), 1497), (range(20_000.0, 30_000.0), 500)] {
        for (threshold, limit) in [
            (usize::MAX, u64::MAX),
            (usize::MAX, 0),
            (0, u64::MAX),
            (0, 0),
        ] {
            let s = Scenario {
                config,
                initial: initial.clone(),
                updates: updates.clone(),
                deletes: vec![1, 3, 5],
                filter: vec![filter.clone()],
                query: (0..DIM).map(|d| d as f32 / DIM as f32).collect(),
                k: 10,
            };
            let (mut index, model) = build(&s, threshold);
            index.set_price_materialize_limit(limit);
            // The premise: the estimates are stale.
            let estimate = stale(&index, &filter);
            if count == 500 {
                assert_eq!(estimate, 0);
            } else {
                assert!(estimate > 1900, "estimate {estimate}");
            }
            let q = query(&s);
            let (matching, scores) = expected(&s, &model, &q);
            assert_eq!(matching.len(), count);
            let (hits, plan) = index.search(
                &q,
                s.k,
                &Filter {
                    conditions: s.filter.clone(),
                },
                &[],
            );
            assert_eq!(
                hits.len(),
                10,
                "{plan:?} threshold {threshold} limit {limit}"
            );
            for hit in &hits {
                assert!(
                    matching.contains(&*hit.meta.id),
                    "{} does not match",
                    hit.meta.id
                );
            }
            if threshold == usize::MAX {
                for (hit, want) in hits.iter().zip(&scores) {
                    assert!((hit.score - want).abs() <= 1e-4);
                }
            }
        }
    }
}

/// The planner weighs the graph by what its searches evaluated on this
/// catalog's data: a first graph search sets the estimate to its own
/// evaluations per unit of beam; an estimate cheaper than the scan keeps
/// the graph; a dearer one sends searches to the exact scan (exact
/// answers), but one in [`super::PROBE_EVERY`] still walks the graph so
/// the estimate stays current.
#[test]
fn the_planner_learns_what_the_graph_costs() {
    use std::sync::atomic::Ordering::Relaxed;
    let config = CatalogConfig::new(DIM, Metric::L2, VectorType::F32, TIERS).unwrap();
    let initial: Vec<Spec> = (0..2000).map(|i| spread(i, None)).collect();
    let s = Scenario {
        config,
        initial,
        updates: Vec::new(),
        deletes: Vec::new(),
        filter: Vec::new(),
        query: vec![0.1, -0.2, 0.3, 0.05],
        k: 10,
    };
    let q = query(&s);
    let unfiltered = Filter::default();
    let ef = IndexSettings::default().hnsw.ef_search as f64;
    // Graph always (threshold 0): the first search is measured as it is.
    let (mut index, model) = build(&s, 0);
    assert_eq!(index.plan_counts.cost.per_beam(0), None);
    let (_, plan) = index.search(&q, s.k, &unfiltered, &[]);
    assert_eq!(plan, Plan::Graph { rounds: 1 });
    let counts = &index.plan_counts;
    let evaluations = counts.graph_evaluations.load(Relaxed);
    assert_eq!(counts.graph_searches.load(Relaxed), 1);
    // A beam of 64 evaluates at least its own width, and not the whole
    // catalog on this well-spread 4-d data.
    assert!((64..2000).contains(&evaluations), "{evaluations}");
    assert_eq!(counts.cost.per_beam(0), Some(evaluations as f64 / ef));

    // Cost-based planning (threshold 1): a graph measured as cheap stays
    // the path; 2,000 4-d vectors are 32 KB to scan.
    index.settings.exact_scan_threshold = 1;
    let set = |per_beam: f64| {
        index.plan_counts.cost.buckets[0]
            .per_beam
            .store(per_beam.to_bits(), Relaxed)
    };
    set(0.05); // 3.2 evaluations x (16 + 1,024) bytes = 3.3 KB
    let (_, plan) = index.search(&q, s.k, &unfiltered, &[]);
    assert_eq!(plan, Plan::Graph { rounds: 1 });
    // ...and the estimate moved toward what that search measured.
    let after = index.plan_counts.cost.per_beam(0).unwrap();
    assert!(after > 0.05, "{after}");

    // Measured as dear: the exact scan, with the brute-force answers, and
    // one probe of the graph in every PROBE_EVERY searches.
    let (_, scores) = expected(&s, &model, &q);
    let graph_before = index.plan_counts.graph.load(Relaxed);
    let mut plans = BTreeMap::new();
    for _ in 0..2 * super::PROBE_EVERY {
        set(1.0); // 64 x 1,040 bytes = 67 KB, more than the scan
        let (hits, plan) = index.search(&q, s.k, &unfiltered, &[]);
        *plans.entry(format!("{plan:?}")).or_insert(0) += 1;
        if plan == Plan::Exact {
            for (hit, want) in hits.iter().zip(&scores) {
                assert!((hit.score - want).abs() <= 1e-4);
            }
        }
    }
    assert_eq!(
        plans,
        BTreeMap::from([
            ("Exact".to_string(), 2 * super::PROBE_EVERY - 2),
            ("Graph { rounds: 1 }".to_string(), 2),
        ])
    );
    assert_eq!(index.plan_counts.graph.load(Relaxed), graph_before + 2);
}
