//! The crash harness, bounded for CI: concurrent writers of items, users
//! and events against the real binary, SIGKILL at a random moment, during
//! a background rebuild and during a snapshot, restart, and every
//! acknowledged write checked (tools/crash runs any number of cycles).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_cycles_lose_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = recstore_crash::Options::new(
        env!("CARGO_BIN_EXE_recstore").into(),
        dir.path().join("data"),
    );
    // One cycle of each kill: at random, in a rebuild, in a snapshot.
    options.cycles = 3;
    options.cycle_seconds = 4.0;
    options.preload = 3_000;
    let report = recstore_crash::run(&options)
        .await
        .expect("the harness runs");
    eprintln!("{report:#?}");
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.cycles, 3);
    assert!(report.acknowledged_item_requests > 20, "{report:?}");
    assert!(report.acknowledged_user_requests > 5, "{report:?}");
    assert!(report.acknowledged_events > 20, "{report:?}");
    assert!(report.items_checked > 3_000, "{report:?}");
}
