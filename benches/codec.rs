//! The on-disk codec (`storage::codec`): encoding and decoding one item
//! (384-d, f32 and f16 storage, shop-like metadata and attributes) and one
//! event. Every write encodes, and every open, rebuild and `GET` decodes,
//! so these bound the store's per-record CPU cost.
//!
//! Run: `cargo bench --bench codec`

mod support;

use support::{unit_length, Rng};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use recstore::model::{CatalogConfig, Event, EventKind, Item, Metric, VectorType};
use recstore::storage::codec;
use serde_json::json;

const DIM: usize = 384;

fn item(rng: &mut Rng) -> Item {
    let attributes = json!({"colour": "graphite", "material": "steel", "warranty_years": 2});
    Item {
        id: "OFF-BI-10001718".into(),
        vector: unit_length((0..DIM).map(|_| rng.normal()).collect()),
        price: Some(149.99),
        category: Some("Office Supplies".into()),
        brand: Some("Acme".into()),
        in_stock: true,
        tags: vec!["binders".into(), "sale".into()],
        explicit_tier: None,
        attributes: attributes.as_object().expect("object").clone(),
    }
}

fn codec(c: &mut Criterion) {
    let mut rng = Rng(0xB17E);
    let item = item(&mut rng);
    let mut group = c.benchmark_group("codec");
    for (vector_type, name) in [(VectorType::F32, "f32"), (VectorType::F16, "f16")] {
        let config = CatalogConfig::new(DIM, Metric::Cosine, vector_type, 4).expect("config");
        let bytes = codec::encode_item(&item, vector_type);
        eprintln!("item {name}: {} bytes", bytes.len());
        group.bench_function(BenchmarkId::new("encode_item", name), |b| {
            b.iter(|| codec::encode_item(std::hint::black_box(&item), vector_type).len())
        });
        group.bench_function(BenchmarkId::new("decode_item", name), |b| {
            b.iter(|| {
                codec::decode_item(&item.id, std::hint::black_box(&bytes), &config)
                    .expect("decodes")
                    .vector
                    .len()
            })
        });
    }
    let event = Event {
        user_id: "customer-00042".into(),
        item_id: "OFF-BI-10001718".into(),
        kind: EventKind::Purchase,
        timestamp_ms: 1_700_000_000_000,
        session_id: Some("s-1".into()),
        order_id: Some("CA-2019-100111".into()),
        quantity: 2,
        price: Some(149.99),
        event_id: Some("e-123".into()),
        recommendation_id: None,
    };
    let bytes = codec::encode_event(&event);
    group.bench_function("encode_event", |b| {
        b.iter(|| codec::encode_event(std::hint::black_box(&event)).len())
    });
    group.bench_function("decode_event", |b| {
        b.iter(|| {
            codec::decode_event(std::hint::black_box(&bytes))
                .expect("decodes")
                .quantity
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
