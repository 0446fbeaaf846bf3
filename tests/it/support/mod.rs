//! Test support: a real server (in-process on 127.0.0.1:0, or the real
//! binary for crash tests), a small HTTP client, the fixtures and brute
//! force.

pub mod fixtures;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use recstore::config::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A JSON HTTP client bound to one server's base URL.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(url: String) -> Api {
        Api {
            url,
            client: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let text = response.text().await.expect("response body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("non-JSON response ({status}): {text:?}: {e}"))
        };
        (status, value)
    }

    /// Sends raw bytes with a content type (for malformed bodies).
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request reaches the server");
        let status = response.status();
        let text = response.text().await.expect("response body");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("non-JSON response ({status}): {text:?}: {e}"));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(&body)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(&body)).await
    }

    /// POST that must succeed; returns the body.
    pub async fn post_ok(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {value}");
        value
    }

    /// GET that must succeed; returns the body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, value) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
        value
    }

    /// Creates a catalog (201 or 200).
    pub async fn create_catalog(&self, name: &str, config: Value) {
        let (status, body) = self.put(&format!("/v1/catalogs/{name}"), config).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "PUT catalog {name}: {status} {body}"
        );
    }

    /// Upserts items in batches of 500.
    pub async fn upsert_items(&self, catalog: &str, items: &[Value]) {
        for chunk in items.chunks(500) {
            let body = self
                .post_ok(
                    &format!("/v1/catalogs/{catalog}/items"),
                    json!({ "items": chunk }),
                )
                .await;
            assert_eq!(body["upserted"], json!(chunk.len()), "{body}");
        }
    }

    /// The hits of a search.
    pub async fn search(&self, catalog: &str, body: Value) -> Vec<Value> {
        let response = self
            .post_ok(&format!("/v1/catalogs/{catalog}/search"), body)
            .await;
        response["hits"].as_array().expect("hits array").clone()
    }

    /// Waits until `/readyz` says ready.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, _) = self.get("/readyz").await;
            if status == StatusCode::OK {
                return;
            }
            assert!(Instant::now() < deadline, "server not ready in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The ids of hits, in order.
pub fn ids(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["id"].as_str().expect("hit id").to_string())
        .collect()
}

/// A server running in this process on 127.0.0.1:0.
pub struct TestServer {
    pub api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<recstore::Result<()>>>,
}

impl TestServer {
    /// Starts a server on `data_dir` with settings adjusted by `tweak`, and
    /// waits until it is ready.
    pub async fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut Settings)) -> TestServer {
        let server = TestServer::start_unready(data_dir, tweak).await;
        server.api.wait_ready().await;
        server
    }

    /// Starts a server without waiting for its catalogs to open.
    pub async fn start_unready(data_dir: &Path, tweak: impl FnOnce(&mut Settings)) -> TestServer {
        let mut settings = Settings::with_data_dir(data_dir);
        // Tests run two at a time on two cores: a rebuild that waited up to
        // the default 10 minutes for idle time would make every test that
        // waits for one depend on its neighbour's load. After 5 s it moves
        // to the urgent pool, as on a saturated server.
        settings.index.rebuild_idle_secs = 5;
        tweak(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(recstore::server::run(listener, settings, async move {
            let _ = stopped.await;
        }));
        let api = Api::new(url);
        TestServer {
            api,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits until it has closed the store.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

/// The real `recstore` binary, for tests that kill it with SIGKILL.
pub struct BinaryServer {
    pub api: Api,
    child: Child,
}

impl BinaryServer {
    /// Spawns `recstore serve --listen 127.0.0.1:0 --data-dir DIR` and
    /// reads the bound address from its log.
    pub fn spawn(data_dir: &Path, extra_args: &[&str]) -> BinaryServer {
        let data_dir = data_dir.to_str().expect("utf-8 temp dir");
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        args.extend_from_slice(extra_args);
        BinaryServer::spawn_with(&args, &[])
    }

    /// Spawns `recstore` with exactly these arguments and environment
    /// (no RECSTORE_* variables inherited) and reads the bound address
    /// from its log.
    pub fn spawn_with(args: &[&str], envs: &[(&str, &str)]) -> BinaryServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_recstore"));
        command.args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("RECSTORE_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .env("RECSTORE_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn recstore");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.split("recstore listening on ").nth(1) {
                        let address = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(address);
                        sent = true;
                    }
                }
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs the address it bound");
        BinaryServer {
            api: Api::new(format!("http://{address}")),
            child,
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Waits for the process to exit (after a signal).
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(self) {
        self.signal_term();
        let exit = self.wait_exit();
        assert!(exit.success(), "graceful exit, got {exit}");
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts a JSON error response: status, code, and (if given) field.
pub fn assert_error(
    (status, body): &(StatusCode, Value),
    want_status: u16,
    want_code: &str,
    want_field: Option<&str>,
) {
    assert_eq!(status.as_u16(), want_status, "body: {body}");
    assert_eq!(body["error"]["code"], json!(want_code), "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error message: {body}"
    );
    if let Some(field) = want_field {
        assert_eq!(body["error"]["field"], json!(field), "body: {body}");
    }
}

/// A small deterministic generator (xorshift64*), so tests need no
/// randomness crate and every run sees the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.unit()).collect()
    }
}

/// Cosine similarity, as recstore scores a cosine catalog.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    fixtures::score(fixtures::Metric::Cosine, a, b)
}

/// Scrapes `/metrics` into series (name plus labels, as printed) -> value.
pub async fn scrape_metrics(url: &str) -> HashMap<String, f64> {
    let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

pub fn metric(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    *metrics
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {:#?}", metrics.keys()))
}
