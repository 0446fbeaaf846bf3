//! A full disk and a read-only data directory: writes are refused with a
//! clear 5xx and a code, nothing of them is written, reads keep working,
//! writes resume once space is freed, and the store is whole after a
//! restart.
//!
//! The data directory lives on a small tmpfs, or behind a read-only bind
//! mount, made for the test: that needs root, which CI has (it runs as
//! root). Outside CI, a machine that cannot mount says so and the test
//! ends there; under CI=true it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::restart::{answers, assert_same_answers, populate};
use crate::support::{assert_error, Rng, TestServer};

/// A mount made for a test, lazily unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str], path: &Path) -> bool {
        Command::new("mount")
            .args(args)
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn unavailable() -> Option<Mount> {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs as root and must be able to mount for the disk tests"
        );
        eprintln!("cannot mount here (not root?): the disk tests need it");
        None
    }

    /// A tmpfs of `mib` MiB at `path`.
    fn tmpfs(path: &Path, mib: u32) -> Option<Mount> {
        std::fs::create_dir_all(path).unwrap();
        if Mount::run(
            &["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"],
            path,
        ) {
            Some(Mount(path.to_path_buf()))
        } else {
            Mount::unavailable()
        }
    }

    /// Grows (or shrinks) this tmpfs to `mib` MiB, mounted as it is.
    fn resize(&self, mib: u32) {
        assert!(
            Mount::run(&["-o", &format!("remount,size={mib}m")], &self.0),
            "resize the tmpfs"
        );
    }

    /// `from`, seen read-only at `path`.
    fn read_only_view(from: &Path, path: &Path) -> Option<Mount> {
        std::fs::create_dir_all(path).unwrap();
        if !Mount::run(&["--bind", from.to_str().unwrap()], path) {
            return Mount::unavailable();
        }
        let mount = Mount(path.to_path_buf());
        assert!(
            Mount::run(&["-o", "remount,bind,ro"], path),
            "remount read-only"
        );
        Some(mount)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn item(id: &str, rng: &mut Rng) -> Value {
    json!({"id": id, "vector": rng.vector(64), "price": 10.0})
}

/// Fills the file system holding `dir` with a file of zeros.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_whole_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Mount::tmpfs(&dir.path().join("mnt"), 64) else {
        return;
    };
    let data = fs.0.join("data");
    let server = TestServer::start_in(&data, |_| {}).await;
    let api = server.api.clone();
    api.create_catalog("c", json!({"dimension": 64, "metric": "l2"}))
        .await;
    let mut rng = Rng::new(3);
    let mut acked: Vec<Value> = (0..200).map(|i| item(&format!("i{i}"), &mut rng)).collect();
    api.upsert_items("c", &acked).await;
    let query = json!({"vector": acked[7]["vector"], "k": 5});
    let before = api.search("c", query.clone()).await;
    let similar = api
        .post_ok(
            "/v1/catalogs/c/recommend/similar",
            json!({"item_id": "i7", "k": 5}),
        )
        .await["recommendations"]
        .clone();

    let filler = fill(&fs.0);
    // RocksDB preallocates its log: writes fit until that space is used.
    let mut refused = None;
    for n in 0..1000 {
        let batch: Vec<Value> = (0..100)
            .map(|i| item(&format!("f{n}-{i}"), &mut rng))
            .collect();
        let (status, body) = api
            .post("/v1/catalogs/c/items", json!({"items": batch.clone()}))
            .await;
        if status.as_u16() == 200 {
            acked.extend(batch);
        } else {
            refused = Some(((status, body), batch));
            break;
        }
    }
    let (response, batch) = refused.expect("a full disk refuses a write");
    assert_error(&response, 507, "storage_full", None);
    for id in [&batch[0]["id"], &batch[99]["id"]] {
        let (status, _) = api
            .get(&format!("/v1/catalogs/c/items/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(
            status.as_u16(),
            404,
            "nothing of a refused batch is visible"
        );
    }
    // Every kind of write is refused the same way...
    let user = json!({"users": [{"id": "u1", "vector": rng.vector(64)}]});
    assert_error(
        &api.post("/v1/catalogs/c/users", user).await,
        507,
        "storage_full",
        None,
    );
    let events = json!({"events": [{"user_id": "u2", "item_id": "i1", "type": "view"}]});
    assert_error(
        &api.post("/v1/catalogs/c/events", events).await,
        507,
        "storage_full",
        None,
    );
    let (status, _) = api.get("/v1/catalogs/c/users/u2").await;
    assert_eq!(status.as_u16(), 404, "a refused event creates no user");
    // ...and reads go on, unchanged.
    assert_eq!(api.search("c", query.clone()).await, before);
    let again = api
        .post_ok(
            "/v1/catalogs/c/recommend/similar",
            json!({"item_id": "i7", "k": 5}),
        )
        .await["recommendations"]
        .clone();
    assert_eq!(again, similar);
    api.get_ok("/v1/catalogs/c/items/i7").await;
    let health = api.get_ok("/healthz").await;
    assert_eq!(health["writes"], json!("failing"), "{health}");
    assert!(
        health["write_error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{health}"
    );
    let count = api.get_ok("/v1/catalogs/c").await["counts"]["items"].clone();
    assert_eq!(count, json!(acked.len()));

    // Space freed: writes resume without a restart. RocksDB's own
    // recovery (its SstFileManager) checks the free space every 5 s and
    // clears the error once a memtable flush fits (64 MiB free); until
    // then writes get 507 as before. A 64 MiB file system never has that
    // much free, so it also grows, as an operator would grow a volume.
    // (A larger one from the start would not do: RocksDB would then
    // preallocate its log there, and filling that takes minutes.)
    std::fs::remove_file(filler).unwrap();
    fs.resize(192);
    let probe = item("after-free", &mut rng);
    let mut statuses = Vec::new();
    let resumed = std::time::Instant::now();
    loop {
        let answer = api
            .post("/v1/catalogs/c/items", json!({"items": [probe.clone()]}))
            .await;
        statuses.push(answer.0.as_u16());
        if answer.0.as_u16() == 200 {
            break;
        }
        assert_error(&answer, 507, "storage_full", None);
        assert!(
            resumed.elapsed() < std::time::Duration::from_secs(60),
            "writes did not resume within 60 s of freeing space: {statuses:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    eprintln!(
        "writes resumed {:.1} s after space was freed",
        resumed.elapsed().as_secs_f64()
    );
    acked.push(probe);
    assert_eq!(api.get_ok("/healthz").await["writes"], json!("ok"));
    assert_eq!(
        api.get_ok("/v1/catalogs/c").await["counts"]["items"],
        json!(acked.len())
    );

    // Restarted: every acknowledged write is there, the refused ones are
    // not, and writes work.
    server.stop().await;
    let server = TestServer::start_in(&data, |_| {}).await;
    let api = &server.api;
    let count = api.get_ok("/v1/catalogs/c").await["counts"]["items"].clone();
    assert_eq!(count, json!(acked.len()), "acknowledged writes survive");
    for item in acked.iter().step_by(97) {
        let got = api
            .get_ok(&format!(
                "/v1/catalogs/c/items/{}?with_vector=true",
                item["id"].as_str().unwrap()
            ))
            .await;
        let got: Vec<f32> = serde_json::from_value(got["vector"].clone()).unwrap();
        let want: Vec<f32> = serde_json::from_value(item["vector"].clone()).unwrap();
        assert_eq!(got, want);
    }
    let (status, _) = api
        .get(&format!(
            "/v1/catalogs/c/items/{}",
            batch[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status.as_u16(), 404);
    api.upsert_items("c", &[item("after", &mut rng)]).await;
    assert_eq!(api.get_ok("/healthz").await["writes"], json!("ok"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_served_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, |_| {}).await;
    populate(&server.api).await;
    let before = answers(&server.api).await;
    server.stop().await;

    let Some(view) = Mount::read_only_view(&data, &dir.path().join("ro")) else {
        return;
    };
    let server = TestServer::start_in(&view.0, |_| {}).await;
    let api = &server.api;
    assert_same_answers(&before, &answers(api).await);
    let p = crate::support::fixtures::superstore();
    let writes = [
        (
            reqwest::Method::POST,
            "/v1/catalogs/store/items".to_string(),
            Some(json!({"items": [p[0].to_item(0)]})),
        ),
        (
            reqwest::Method::POST,
            "/v1/catalogs/store/items/delete".into(),
            Some(json!({"ids": [p[1].id]})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/catalogs/store/items/{}", p[1].id),
            None,
        ),
        (
            reqwest::Method::POST,
            "/v1/catalogs/store/users".into(),
            Some(json!({"users": [{"id": "u9"}]})),
        ),
        (
            reqwest::Method::DELETE,
            "/v1/catalogs/store/users/u1".into(),
            None,
        ),
        (
            reqwest::Method::POST,
            "/v1/catalogs/store/events".into(),
            Some(json!({"events": [{"user_id": "u1", "item_id": p[2].id, "type": "purchase"}]})),
        ),
        (
            reqwest::Method::PUT,
            "/v1/catalogs/store/settings".into(),
            Some(json!({"session_half_life_secs": 600})),
        ),
        (
            reqwest::Method::PUT,
            "/v1/catalogs/other".into(),
            Some(json!({"dimension": 3})),
        ),
        (reqwest::Method::DELETE, "/v1/catalogs/store".into(), None),
        (
            reqwest::Method::POST,
            "/v1/admin/backup".into(),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in writes {
        let response = api.send(method.clone(), &path, body.as_ref()).await;
        assert_error(&response, 503, "read_only", None);
        eprintln!("{method} {path}: {}", response.1);
    }
    // Nothing changed; the probe says why writes fail.
    assert_same_answers(&before, &answers(api).await);
    assert_eq!(api.get_ok("/healthz").await["writes"], json!("read_only"));
    server.stop().await;
}
