//! Where settings come from: flags, RECSTORE_* environment, a config file;
//! and bad settings stop the binary with a message naming the key.

use std::process::Command;

use serde_json::json;

use crate::support::BinaryServer;

pub(crate) fn recstore(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recstore"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RECSTORE_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run recstore")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_sets_listen_address_and_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-env");
    let server = BinaryServer::spawn_with(
        &["serve"],
        &[
            ("RECSTORE_LISTEN", "127.0.0.1:0"),
            ("RECSTORE_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    server.api.wait_ready().await;
    server
        .api
        .create_catalog("shop", json!({"dimension": 2}))
        .await;
    assert!(
        data.join("CURRENT").exists(),
        "RocksDB lives in RECSTORE_DATA_DIR"
    );
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_is_read_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let file_data = dir.path().join("from-file");
    let flag_data = dir.path().join("from-flag");
    let config = dir.path().join("recstore.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 2048\nexact_scan_threshold = 10\n",
            file_data.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = BinaryServer::spawn_with(&["serve", "--config", config.to_str().unwrap()], &[]);
    server.api.wait_ready().await;
    server
        .api
        .create_catalog("shop", json!({"dimension": 2}))
        .await;
    assert!(file_data.join("CURRENT").exists(), "data_dir from the file");
    // max_body_bytes = 2048 from the file applies.
    let big: Vec<_> = (0..200)
        .map(|i| json!({"id": format!("i{i}"), "vector": [1, 2]}))
        .collect();
    let (status, _) = server
        .api
        .post("/v1/catalogs/shop/items", json!({"items": big}))
        .await;
    assert_eq!(status.as_u16(), 413);
    server.terminate();

    let server = BinaryServer::spawn_with(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            flag_data.to_str().unwrap(),
        ],
        &[],
    );
    server.api.wait_ready().await;
    assert_eq!(
        server.api.get_ok("/v1/catalogs").await,
        json!({"catalogs": []})
    );
    assert!(
        flag_data.join("CURRENT").exists(),
        "the flag wins over the file"
    );
    server.terminate();
}

#[test]
fn bad_settings_stop_the_binary_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "listen = \"127.0.0.1:0\"\nshards = 4\n").unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, envs, needle) in [
        (
            vec!["serve", "--listen", "nowhere", "--data-dir", d],
            vec![],
            "listen",
        ),
        (
            vec!["serve", "--data-dir", d],
            vec![("RECSTORE_LISTEN", "1.2.3")],
            "listen",
        ),
        // API keys: too short, a read key without an admin key, the same
        // key twice.
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![("RECSTORE_API_KEY", "secret")],
            "api_key",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![("RECSTORE_READ_API_KEY", "read-key-0123456789abcdef")],
            "read_api_key",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![
                ("RECSTORE_API_KEY", "same-key-0123456789abcdef"),
                ("RECSTORE_READ_API_KEY", "same-key-0123456789abcdef"),
            ],
            "read_api_key",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                d,
                "--hnsw-m",
                "1000",
            ],
            vec![],
            "hnsw_m",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                d,
                "--rebuild-tombstone-ratio",
                "0",
            ],
            vec![],
            "rebuild_tombstone_ratio",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![("RECSTORE_MAX_IN_FLIGHT", "0")],
            "max_in_flight",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![("RECSTORE_REQUEST_TIMEOUT_SECS", "0")],
            "request_timeout_secs",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![("RECSTORE_MAX_BATCH_ITEMS", "0")],
            "max_batch_items",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", d],
            vec![("RECSTORE_ROCKSDB_MEMORY_MIB", "4")],
            "rocksdb_memory_mib",
        ),
        (
            vec!["serve", "--config", bad_file.to_str().unwrap()],
            vec![],
            "shards",
        ),
        (
            vec!["serve", "--config", "/nonexistent/recstore.toml"],
            vec![],
            "/nonexistent/recstore.toml",
        ),
    ] {
        let out = recstore(&args, &envs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr names {needle}: {stderr}"
        );
    }
}
