//! RocksDB point reads as the write path makes them: every event with a
//! client id asks `event_ids` whether the id was seen, and almost always
//! it was not. The answer's cost depends on how many files the store has
//! to consult, so the store here holds 300,000 events flushed into
//! several files, as a server's does after a while.
//!
//! Run: `cargo bench --bench storage`

use criterion::{criterion_group, criterion_main, Criterion};
use recstore::model::{Event, EventKind};
use recstore::storage::{Batch, Store};

const EVENTS: u64 = 300_000;

fn event(i: u64) -> Event {
    Event {
        user_id: format!("customer-{:05}", i % 20_000),
        item_id: format!("item-{:05}", (i * 7919) % 50_000),
        kind: EventKind::View,
        timestamp_ms: 1_700_000_000_000 + i as i64,
        session_id: None,
        order_id: None,
        quantity: 1,
        price: None,
        event_id: Some(format!("evt-{i:08}")),
        recommendation_id: None,
    }
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    for start in (0..EVENTS).step_by(5_000) {
        let mut batch = Batch::new();
        for i in start..start + 5_000 {
            batch.put_event(1, &event(i), i);
        }
        store.commit(batch).expect("commit");
        if (start + 5_000) % 50_000 == 0 {
            store.flush().expect("flush");
        }
    }
    // Measure the settled store: a compaction running in the background
    // would compete for the CPU and change the files under the reads.
    let settled = std::time::Instant::now();
    while {
        let stats = store.stats();
        stats.running_compactions + stats.running_flushes > 0 || stats.pending_compaction_bytes > 0
    } {
        assert!(
            settled.elapsed().as_secs() < 120,
            "RocksDB did not settle in 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut group = c.benchmark_group("event_id_lookup");
    // Absent ids are never written ("new-"); present ones are walked in a
    // stride so consecutive reads land in different blocks.
    for (name, prefix, stride) in [("absent", "new", 1), ("present", "evt", 7919)] {
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += stride;
                store
                    .has_event_id(1, &format!("{prefix}-{:08}", n % EVENTS))
                    .expect("read")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
