//! Backups while serving, and `recstore restore`: a restored store answers
//! exactly as the original did when the backup was taken, holds every
//! write acknowledged before the backup began and none made after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::recstore;
use crate::restart::{answers, assert_same_answers, populate};
use crate::support::{assert_error, Rng, TestServer};

/// One acknowledged write: id, vector, and whether it was acknowledged
/// before the backup request was sent.
type Acked = (String, Vec<f32>, bool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_answers_identically_and_is_a_point_in_time() {
    const DIM: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    let backups_for_server = backups.clone();
    let server = TestServer::start_in(&data, move |s| s.backup_dir = backups_for_server).await;
    let api = server.api.clone();
    populate(&api).await;
    let before = answers(&api).await;

    // A second catalog takes sequential writes while the backup runs.
    api.create_catalog("live", json!({"dimension": DIM, "metric": "l2"}))
        .await;
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let backup_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (api, acked, started, stop) = (
            api.clone(),
            acked.clone(),
            backup_started.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut rng = Rng::new(7);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let id = format!("w{n:05}");
                let vector = rng.vector(DIM);
                let before = !started.load(std::sync::atomic::Ordering::SeqCst);
                api.post_ok(
                    "/v1/catalogs/live/items",
                    json!({"items": [{"id": id, "vector": vector}]}),
                )
                .await;
                acked.lock().unwrap().push((id, vector, before));
                n += 1;
            }
        })
    };
    while acked.lock().unwrap().len() < 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    backup_started.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = api.post_ok("/v1/admin/backup", json!({"name": "b1"})).await;
    let acked_before_reply = acked.lock().unwrap().len();
    // Let writes go on after the backup answered, then stop them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() <= acked_before_reply + 5
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > acked_before_reply,
        "writes went on after the backup"
    );

    assert_eq!(report["name"], json!("b1"), "{report}");
    let listed: Vec<&str> = report["catalogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["live", "store"], "{report}");
    let store = &report["catalogs"][1];
    assert!(
        store["snapshot_watermark"].is_u64(),
        "the index snapshot is included: {report}"
    );
    assert!(backups.join("b1").join("BACKUP.json").is_file());
    assert!(!backups.join("b1.partial").exists());

    // The name is taken now; bad names are refused naming the field.
    assert_error(
        &api.post("/v1/admin/backup", json!({"name": "b1"})).await,
        409,
        "conflict",
        Some("name"),
    );
    for bad in ["../escape", ".hidden", "a/b", "", "x.partial"] {
        assert_error(
            &api.post("/v1/admin/backup", json!({"name": bad})).await,
            400,
            "invalid_argument",
            Some("name"),
        );
    }
    assert_error(
        &api.post("/v1/admin/backup", json!({"nmae": "x"})).await,
        400,
        "unknown_field",
        None,
    );
    // Changes after the backup must not be in it.
    api.post_ok(
        "/v1/catalogs/store/items",
        json!({"items": [{"id": "after-backup", "vector": vec![0.1f32; 384]}]}),
    )
    .await;
    server.stop().await;

    // Restore refuses a folder that is not empty, and anything not a backup.
    let b1 = backups.join("b1");
    let b1 = b1.to_str().unwrap();
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(taken.join("x")).unwrap();
    let out = recstore(
        &[
            "restore",
            "--from",
            b1,
            "--data-dir",
            taken.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let out = recstore(
        &[
            "restore",
            "--from",
            data.to_str().unwrap(),
            "--data-dir",
            dir.path().join("nope").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a recstore backup"));
    assert!(
        !dir.path().join("nope").exists(),
        "nothing written by a failed restore"
    );

    let restored = dir.path().join("restored");
    let out = recstore(
        &[
            "restore",
            "--from",
            b1,
            "--data-dir",
            restored.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["catalogs"].as_array().unwrap().len(),
        2,
        "{summary}"
    );

    let server = TestServer::start_in(&restored, |_| {}).await;
    let api = &server.api;
    // The index came from the backed-up snapshot, not a rebuild.
    let info = api.get_ok("/v1/catalogs/store").await;
    assert_eq!(info["index"]["source"], json!("snapshot"), "{info}");
    assert_same_answers(&before, &answers(api).await);
    let (status, _) = api.get("/v1/catalogs/store/items/after-backup").await;
    assert_eq!(
        status.as_u16(),
        404,
        "a write after the backup is not in it"
    );

    // The live catalog holds a prefix of the sequential writes: every one
    // acknowledged before the backup began, none acknowledged after its
    // reply, and no gap.
    let mut present = Vec::new();
    for (id, vector, _) in &acked {
        let (status, body) = api
            .get(&format!("/v1/catalogs/live/items/{id}?with_vector=true"))
            .await;
        if status.as_u16() == 200 {
            let got: Vec<f32> = serde_json::from_value(body["vector"].clone()).unwrap();
            assert_eq!(&got, vector);
            let hits = api.search("live", json!({"vector": vector, "k": 1})).await;
            assert_eq!(hits[0]["id"], json!(id), "{id} found by its own vector");
        }
        present.push(status.as_u16() == 200);
    }
    let kept = present.iter().take_while(|p| **p).count();
    assert!(
        present[kept..].iter().all(|p| !p),
        "the backup is a prefix: {present:?}"
    );
    let before_backup = acked.iter().filter(|(_, _, before)| *before).count();
    assert!(
        kept >= before_backup,
        "{kept} kept, {before_backup} acknowledged before"
    );
    assert!(
        kept <= acked_before_reply,
        "{kept} kept, {acked_before_reply} acknowledged by the reply"
    );
    let counts = api.get_ok("/v1/catalogs/live").await["counts"].clone();
    assert_eq!(counts["items"], json!(kept), "{counts}");
    eprintln!(
        "live catalog: {} writes, {before_backup} before the backup, {kept} in it, {acked_before_reply} acknowledged by its reply",
        acked.len()
    );
    server.stop().await;
}
