//! Optional HTTPS: with a certificate and key the server speaks TLS (and
//! only TLS) on its port, with the same API; a bad certificate or a
//! certificate without its key stops the start with a message.

use std::time::{Duration, Instant};

use recstore::config::{Settings, TlsFiles};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::recstore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_api_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();

    let mut settings = Settings::with_data_dir(dir.path().join("data"));
    settings.tls = Some(TlsFiles { cert, key });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(recstore::server::run(listener, settings, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", address)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}", address.port());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{url}/readyz")).send().await {
            Ok(r) if r.status().as_u16() == 200 => break,
            _ => assert!(Instant::now() < deadline, "ready over https"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created = client
        .put(format!("{url}/v1/catalogs/c"))
        .json(&json!({"dimension": 2, "metric": "l2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    client
        .post(format!("{url}/v1/catalogs/c/items"))
        .json(&json!({"items": [{"id": "a", "vector": [1.0, 0.0]}]}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let hits: serde_json::Value = client
        .post(format!("{url}/v1/catalogs/c/search"))
        .json(&json!({"vector": [1.0, 0.0], "k": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["hits"][0]["id"], json!("a"));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{address}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP must not be served: {plain:?}");
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", address)
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err());

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[test]
fn bad_tls_settings_stop_the_binary_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let g = garbage.to_str().unwrap();
    for (args, needle) in [
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                d,
                "--tls-cert",
                g,
            ],
            "tls_key",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                d,
                "--tls-key",
                g,
            ],
            "tls_cert",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                d,
                "--tls-cert",
                g,
                "--tls-key",
                g,
            ],
            "garbage.pem",
        ),
    ] {
        let out = recstore(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr names {needle}: {stderr}"
        );
    }
}
