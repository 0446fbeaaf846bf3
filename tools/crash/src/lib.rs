//! The crash harness: concurrent writers (items, users, events) against
//! the real `recstore` binary, SIGKILL at a random moment or while a
//! background graph rebuild or an index snapshot runs, restart, and check
//! that every acknowledged write is there with its exact values, that the
//! request in flight at the kill was applied whole or not at all, and that
//! the index agrees with the store (each item found by its own vector, no
//! deleted item returned, the item count equal). Repeated for any number
//! of cycles on one data directory.
//!
//! The integration tests run a few cycles (`tests/it/crash.rs`); the
//! `recstore-crash` binary runs as many as asked (RELIABILITY.md).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use recstore_toolkit::Client;
use serde::Serialize;
use serde_json::{json, Value};

const CATALOG: &str = "crash";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `recstore` binary.
    pub binary: PathBuf,
    /// The data directory (created if missing; reused across cycles).
    pub data_dir: PathBuf,
    pub cycles: usize,
    /// Longest a cycle's writers run before the kill.
    pub cycle_seconds: f64,
    /// Items loaded before the first cycle (a larger catalog makes
    /// rebuilds and snapshots last long enough to be killed in).
    pub preload: usize,
    pub dimension: usize,
    pub seed: u64,
    /// Print the server's log lines.
    pub verbose: bool,
}

impl Options {
    pub fn new(binary: PathBuf, data_dir: PathBuf) -> Options {
        Options {
            binary,
            data_dir,
            cycles: 3,
            cycle_seconds: 3.0,
            preload: 3_000,
            dimension: 16,
            seed: 1,
            verbose: false,
        }
    }
}

/// What happened, for RELIABILITY.md.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub cycles: usize,
    pub kills_at_random: usize,
    pub kills_during_rebuild: usize,
    pub kills_during_snapshot: usize,
    pub rebuilds_started: usize,
    pub snapshots_started: usize,
    pub acknowledged_item_requests: usize,
    pub acknowledged_user_requests: usize,
    pub acknowledged_events: usize,
    pub in_flight_at_kills: usize,
    pub in_flight_applied: usize,
    pub items_checked: usize,
    pub users_checked: usize,
    pub events_checked: usize,
    /// Every violation found: a lost or changed acknowledged write, a
    /// half-applied batch, a disagreement between index and store, a 5xx.
    pub violations: Vec<String>,
    pub seconds: f64,
}

/// What an acknowledged item write left.
#[derive(Debug, Clone, PartialEq)]
enum ItemState {
    Present {
        vector: Vec<f32>,
        price: f64,
    },
    /// Deleted; its last vector, to check it is never returned.
    Deleted {
        last: Option<Vec<f32>>,
    },
}

/// The expected state, from acknowledged writes only.
#[derive(Debug, Default)]
struct Model {
    items: HashMap<String, ItemState>,
    users: HashMap<String, Option<Vec<f32>>>,
    /// Acknowledged events not yet re-checked, and a sample of older ones.
    events_new: Vec<Value>,
    events_old: Vec<Value>,
}

/// One write request.
#[derive(Debug, Clone)]
enum Op {
    ItemsUpsert(Vec<(String, Vec<f32>, f64)>),
    ItemsDelete(Vec<String>),
    UsersUpsert(Vec<(String, Vec<f32>)>),
    UserDelete(String),
    Events(Vec<Value>),
}

impl Op {
    fn request(&self) -> (reqwest::Method, String, Option<Value>) {
        let base = format!("/v1/catalogs/{CATALOG}");
        match self {
            Op::ItemsUpsert(items) => {
                let items: Vec<Value> = items
                    .iter()
                    .map(|(id, v, p)| json!({"id": id, "vector": v, "price": p}))
                    .collect();
                (
                    reqwest::Method::POST,
                    format!("{base}/items"),
                    Some(json!({ "items": items })),
                )
            }
            Op::ItemsDelete(ids) => (
                reqwest::Method::POST,
                format!("{base}/items/delete"),
                Some(json!({ "ids": ids })),
            ),
            Op::UsersUpsert(users) => {
                let users: Vec<Value> = users
                    .iter()
                    .map(|(id, v)| json!({"id": id, "vector": v}))
                    .collect();
                (
                    reqwest::Method::POST,
                    format!("{base}/users"),
                    Some(json!({ "users": users })),
                )
            }
            Op::UserDelete(id) => (reqwest::Method::DELETE, format!("{base}/users/{id}"), None),
            Op::Events(events) => (
                reqwest::Method::POST,
                format!("{base}/events"),
                Some(json!({ "events": events })),
            ),
        }
    }

    /// Applies an acknowledged op to the model.
    fn apply(&self, model: &mut Model) {
        match self {
            Op::ItemsUpsert(items) => {
                for (id, vector, price) in items {
                    model.items.insert(
                        id.clone(),
                        ItemState::Present {
                            vector: vector.clone(),
                            price: *price,
                        },
                    );
                }
            }
            Op::ItemsDelete(ids) => {
                for id in ids {
                    let last = match model.items.get(id) {
                        Some(ItemState::Present { vector, .. }) => Some(vector.clone()),
                        Some(ItemState::Deleted { last }) => last.clone(),
                        None => None,
                    };
                    model.items.insert(id.clone(), ItemState::Deleted { last });
                }
            }
            Op::UsersUpsert(users) => {
                for (id, vector) in users {
                    model.users.insert(id.clone(), Some(vector.clone()));
                }
            }
            Op::UserDelete(id) => {
                model.users.insert(id.clone(), None);
            }
            Op::Events(events) => model.events_new.extend(events.iter().cloned()),
        }
    }
}

pub use recstore_toolkit::Rng;

/// A price in 0.01..=1000.00.
fn price(rng: &mut Rng) -> f64 {
    (1 + rng.below(100_000)) as f64 / 100.0
}

/// What the server's log said, counted.
#[derive(Debug, Default)]
struct LogCounts {
    rebuild_started: usize,
    rebuild_done: usize,
    snapshot_started: usize,
    snapshot_ended: usize,
}

/// A `recstore serve` process and what its log said.
pub struct Server {
    child: Child,
    pub url: String,
    log: Arc<Mutex<LogCounts>>,
}

impl Server {
    fn spawn(options: &Options) -> anyhow::Result<Server> {
        Server::spawn_with(
            &options.binary,
            &options.data_dir,
            &[
                // Rebuilds and snapshots often, so kills land in them.
                "--rebuild-min-tombstones",
                "200",
                "--rebuild-tombstone-ratio",
                "0.05",
                "--snapshot-min-changes",
                "300",
                "--snapshot-min-interval-secs",
                "1",
            ],
            options.verbose,
        )
    }

    /// Starts `binary serve` on `data_dir` (port 0) with `extra` flags and
    /// waits until it logs its address.
    pub fn spawn_with(
        binary: &std::path::Path,
        data_dir: &std::path::Path,
        extra: &[&str],
        verbose: bool,
    ) -> anyhow::Result<Server> {
        let data_dir = data_dir.to_str().context("a UTF-8 data dir")?;
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars() {
            if key.starts_with("RECSTORE_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir])
            .args(extra)
            .env("RECSTORE_LOG", "info,hnsw_rs=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let log = Arc::new(Mutex::new(LogCounts::default()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let counts = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if verbose {
                    eprintln!("server: {line}");
                }
                if let Some(rest) = line.split("recstore listening on ").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = address_tx.send(address);
                }
                let mut c = counts.lock().unwrap();
                if line.contains("index rebuild started") {
                    c.rebuild_started += 1;
                } else if line.contains("index rebuilt") {
                    c.rebuild_done += 1;
                } else if line.contains("index snapshot started") {
                    c.snapshot_started += 1;
                } else if line.contains("index snapshot written")
                    || line.contains("snapshot failed")
                {
                    c.snapshot_ended += 1;
                }
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(120))
            .context("the server did not log its address")?;
        Ok(Server {
            child,
            url: format!("http://{address}"),
            log,
        })
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Rebuilds and snapshots the server's log reported finished so far.
    pub fn finished_rebuilds_and_snapshots(&self) -> (usize, usize) {
        let c = self.log.lock().unwrap();
        (c.rebuild_done, c.snapshot_ended)
    }

    /// The process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the harness.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.data_dir)?;
    let mut report = Report::default();
    let mut model = Model::default();
    let mut rng = Rng::new(options.seed);
    let dim = options.dimension;

    let mut server = Server::spawn(options)?;
    let mut client = Client::new(&server.url, None);
    client.wait_ready(Duration::from_secs(300)).await?;
    client
        .must(
            reqwest::Method::PUT,
            &format!("/v1/catalogs/{CATALOG}"),
            Some(&json!({"dimension": dim, "metric": "l2"})),
        )
        .await?;
    for start in (0..options.preload).step_by(1_000) {
        let op = Op::ItemsUpsert(
            (start..(start + 1_000).min(options.preload))
                .map(|i| (format!("p{i}"), rng.vector(dim), price(&mut rng)))
                .collect(),
        );
        let (method, path, body) = op.request();
        client.must(method, &path, body.as_ref()).await?;
        op.apply(&mut model);
    }

    for cycle in 0..options.cycles {
        // Writers run until the server dies under them.
        let model_shared = Arc::new(Mutex::new(std::mem::take(&mut model)));
        let in_flight: Arc<Mutex<Vec<Op>>> = Arc::default();
        let acked_counts: Arc<Mutex<(usize, usize, usize)>> = Arc::default();
        let failed = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4u64 {
            let client = client.clone();
            let model = Arc::clone(&model_shared);
            let in_flight = Arc::clone(&in_flight);
            let acked = Arc::clone(&acked_counts);
            let failed = Arc::clone(&failed);
            let mut rng = Rng::new(options.seed ^ (cycle as u64 * 131 + w + 7));
            writers.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    let op = next_op(w, cycle, &mut n, &mut rng, dim);
                    let (method, path, body) = op.request();
                    match client.send(method, &path, body.as_ref()).await {
                        Ok((status, value)) => {
                            // A user deleted twice answers 404: the state
                            // is "absent" either way.
                            let ok =
                                status == 200 || (status == 404 && matches!(op, Op::UserDelete(_)));
                            if !ok {
                                failed.store(true, Ordering::SeqCst);
                                return Some(format!("{path}: {status} {value}"));
                            }
                            op.apply(&mut model.lock().unwrap());
                            let mut a = acked.lock().unwrap();
                            match op {
                                Op::ItemsUpsert(_) | Op::ItemsDelete(_) => a.0 += 1,
                                Op::UsersUpsert(_) | Op::UserDelete(_) => a.1 += 1,
                                Op::Events(ref e) => a.2 += e.len(),
                            }
                        }
                        Err(_) => {
                            // The server died: this request may or may not
                            // have been applied.
                            in_flight.lock().unwrap().push(op);
                            return None;
                        }
                    }
                }
            }));
        }

        // Pick the moment to kill.
        let mode = cycle % 3;
        let deadline = Instant::now()
            + Duration::from_secs_f64(match mode {
                0 => 0.2 + (rng.below(1000) as f64 / 1000.0) * (options.cycle_seconds - 0.2),
                _ => options.cycle_seconds,
            });
        let (rebuilds_before, snapshots_before) = {
            let c = server.log.lock().unwrap();
            (c.rebuild_started, c.snapshot_started)
        };
        loop {
            if failed.load(Ordering::SeqCst) || Instant::now() >= deadline {
                break;
            }
            let hit = {
                let c = server.log.lock().unwrap();
                match mode {
                    1 => c.rebuild_started > rebuilds_before && c.rebuild_started > c.rebuild_done,
                    2 => {
                        c.snapshot_started > snapshots_before
                            && c.snapshot_started > c.snapshot_ended
                    }
                    _ => false,
                }
            };
            if hit {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let (during_rebuild, during_snapshot) = {
            let c = server.log.lock().unwrap();
            (
                c.rebuild_started > c.rebuild_done,
                c.snapshot_started > c.snapshot_ended,
            )
        };
        server.kill();
        {
            let c = server.log.lock().unwrap();
            report.rebuilds_started += c.rebuild_started;
            report.snapshots_started += c.snapshot_started;
        }
        if during_rebuild {
            report.kills_during_rebuild += 1;
        }
        if during_snapshot {
            report.kills_during_snapshot += 1;
        }
        if !during_rebuild && !during_snapshot {
            report.kills_at_random += 1;
        }
        for writer in writers {
            if let Some(error) = writer.await? {
                report.violations.push(format!("cycle {cycle}: {error}"));
            }
        }
        let (items, users, events) = *acked_counts.lock().unwrap();
        report.acknowledged_item_requests += items;
        report.acknowledged_user_requests += users;
        report.acknowledged_events += events;
        model = Arc::try_unwrap(model_shared)
            .map_err(|_| anyhow::anyhow!("writers still hold the model"))?
            .into_inner()
            .unwrap();
        let in_flight = std::mem::take(&mut *in_flight.lock().unwrap());

        server = Server::spawn(options)?;
        client = Client::new(&server.url, None);
        client.wait_ready(Duration::from_secs(300)).await?;
        report.in_flight_at_kills += in_flight.len();
        for op in in_flight {
            match resolve(&client, &mut model, &op).await? {
                Resolved::Applied => report.in_flight_applied += 1,
                Resolved::NotApplied => {}
                Resolved::Half(what) => report
                    .violations
                    .push(format!("cycle {cycle}: half-applied batch: {what}")),
            }
        }
        check(&client, &mut model, &mut rng, &mut report, cycle).await?;
        report.cycles += 1;
        eprintln!(
            "cycle {}: killed {}; {} violations so far",
            cycle + 1,
            if during_rebuild {
                "during a rebuild"
            } else if during_snapshot {
                "during a snapshot"
            } else {
                "at a random moment"
            },
            report.violations.len()
        );
    }
    server.kill();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The next write of writer `w`: writers 0 and 1 change items, 2 users,
/// 3 posts events. Each owns its ids, so its acknowledged writes define
/// their state.
fn next_op(w: u64, cycle: usize, n: &mut u64, rng: &mut Rng, dim: usize) -> Op {
    *n += 1;
    match w {
        0 | 1 => {
            let size = 1 + rng.below(20);
            let ids: Vec<String> = (0..size)
                .map(|_| format!("w{w}-{}", rng.below(400)))
                .collect();
            if rng.below(4) == 0 {
                Op::ItemsDelete(ids)
            } else {
                // The last occurrence of an id wins within a batch: keep
                // only that one, so the model and the store agree.
                let mut seen = std::collections::HashSet::new();
                let mut items: Vec<(String, Vec<f32>, f64)> = ids
                    .into_iter()
                    .rev()
                    .filter(|id| seen.insert(id.clone()))
                    .map(|id| (id, rng.vector(dim), price(rng)))
                    .collect();
                items.reverse();
                Op::ItemsUpsert(items)
            }
        }
        2 => {
            if rng.below(5) == 0 {
                Op::UserDelete(format!("u{}", rng.below(100)))
            } else {
                let mut seen = std::collections::HashSet::new();
                let ids: Vec<String> = (0..1 + rng.below(10))
                    .map(|_| format!("u{}", rng.below(100)))
                    .filter(|id| seen.insert(id.clone()))
                    .collect();
                Op::UsersUpsert(ids.into_iter().map(|id| (id, rng.vector(dim))).collect())
            }
        }
        _ => {
            let kinds = ["view", "click", "add_to_cart", "purchase"];
            let events = (0..1 + rng.below(10))
                .map(|i| {
                    json!({
                        "event_id": format!("c{cycle}-e{n}-{i}"),
                        "user_id": format!("shopper{}", rng.below(50)),
                        "item_id": format!("p{}", rng.below(1000)),
                        "type": kinds[rng.below(kinds.len())],
                    })
                })
                .collect();
            Op::Events(events)
        }
    }
}

enum Resolved {
    Applied,
    NotApplied,
    Half(String),
}

async fn get_item(client: &Client, id: &str) -> anyhow::Result<Option<(Vec<f32>, f64)>> {
    let (status, body) = client
        .send(
            reqwest::Method::GET,
            &format!("/v1/catalogs/{CATALOG}/items/{id}?with_vector=true"),
            None,
        )
        .await?;
    match status {
        200 => Ok(Some((
            serde_json::from_value(body["vector"].clone())?,
            body["price"].as_f64().unwrap_or(f64::NAN),
        ))),
        404 => Ok(None),
        other => bail!("GET item {id}: {other} {body}"),
    }
}

async fn get_user(client: &Client, id: &str) -> anyhow::Result<Option<Vec<f32>>> {
    let (status, body) = client
        .send(
            reqwest::Method::GET,
            &format!("/v1/catalogs/{CATALOG}/users/{id}"),
            None,
        )
        .await?;
    match status {
        200 => Ok(Some(
            serde_json::from_value(body["vector"].clone()).unwrap_or_default(),
        )),
        404 => Ok(None),
        other => bail!("GET user {id}: {other} {body}"),
    }
}

/// Whether the request in flight at the kill was applied: wholly, not at
/// all, or (a violation) in part. Folds an applied one into the model.
async fn resolve(client: &Client, model: &mut Model, op: &Op) -> anyhow::Result<Resolved> {
    // For each id whose state the op would change: did it change?
    let mut applied = Vec::new();
    match op {
        Op::ItemsUpsert(items) => {
            for (id, vector, price) in items {
                let want = ItemState::Present {
                    vector: vector.clone(),
                    price: *price,
                };
                if model.items.get(id) == Some(&want) {
                    continue;
                }
                let now = get_item(client, id).await?;
                applied.push(now.as_ref() == Some(&(vector.clone(), *price)));
            }
        }
        Op::ItemsDelete(ids) => {
            for id in ids {
                if matches!(model.items.get(id), Some(ItemState::Present { .. })) {
                    applied.push(get_item(client, id).await?.is_none());
                }
            }
        }
        Op::UsersUpsert(users) => {
            for (id, vector) in users {
                if model.users.get(id) == Some(&Some(vector.clone())) {
                    continue;
                }
                applied.push(get_user(client, id).await?.as_ref() == Some(vector));
            }
        }
        Op::UserDelete(id) => {
            if matches!(model.users.get(id), Some(Some(_))) {
                applied.push(get_user(client, id).await?.is_none());
            }
        }
        Op::Events(events) => {
            // Re-posting tells which were stored (duplicates) and stores
            // the rest, so afterwards all of them are.
            let outcome = client
                .must(
                    reqwest::Method::POST,
                    &format!("/v1/catalogs/{CATALOG}/events"),
                    Some(&json!({ "events": events })),
                )
                .await?;
            let duplicates = outcome["duplicates"].as_u64().unwrap_or(0) as usize;
            model.events_new.extend(events.iter().cloned());
            return Ok(if duplicates == events.len() {
                Resolved::Applied
            } else if duplicates == 0 {
                Resolved::NotApplied
            } else {
                Resolved::Half(format!("{duplicates} of {} events stored", events.len()))
            });
        }
    }
    if applied.iter().all(|a| *a) && !applied.is_empty() {
        op.apply(model);
        Ok(Resolved::Applied)
    } else if applied.iter().all(|a| !*a) {
        Ok(Resolved::NotApplied)
    } else {
        Ok(Resolved::Half(format!("{op:?}: {applied:?}")))
    }
}

/// Checks the restarted store against the model.
async fn check(
    client: &Client,
    model: &mut Model,
    rng: &mut Rng,
    report: &mut Report,
    cycle: usize,
) -> anyhow::Result<()> {
    let mut present = 0u64;
    let mut ids: Vec<&String> = model.items.keys().collect();
    ids.sort();
    for id in ids {
        let state = &model.items[id];
        let now = get_item(client, id).await?;
        report.items_checked += 1;
        match state {
            ItemState::Present { vector, price } => {
                present += 1;
                match &now {
                    Some((v, p)) if v == vector && p == price => {}
                    other => {
                        report.violations.push(format!(
                            "cycle {cycle}: item {id}: acknowledged {vector:?} at {price}, found {other:?}"
                        ));
                        continue;
                    }
                }
                // The index agrees: found first by its own vector (written
                // items come from a random generator, so a tie is
                // practically impossible). Checked for a sample, plus
                // every writer-owned id.
                if id.starts_with('w') || rng.below(10) == 0 {
                    let hits = client
                        .must(
                            reqwest::Method::POST,
                            &format!("/v1/catalogs/{CATALOG}/search"),
                            Some(&json!({"vector": vector, "k": 1})),
                        )
                        .await?;
                    if hits["hits"][0]["id"] != json!(id) {
                        report.violations.push(format!(
                            "cycle {cycle}: item {id} is not found by its own vector: {}",
                            hits["hits"]
                        ));
                    }
                }
            }
            ItemState::Deleted { last } => {
                if let Some(found) = now {
                    report.violations.push(format!(
                        "cycle {cycle}: item {id} was deleted, found {found:?}"
                    ));
                }
                if let Some(vector) = last {
                    let hits = client
                        .must(
                            reqwest::Method::POST,
                            &format!("/v1/catalogs/{CATALOG}/search"),
                            Some(&json!({"vector": vector, "k": 5})),
                        )
                        .await?;
                    let returned = hits["hits"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|h| h["id"] == json!(id)));
                    if returned {
                        report.violations.push(format!(
                            "cycle {cycle}: deleted item {id} is returned by a search"
                        ));
                    }
                }
            }
        }
    }
    let info = client
        .must(
            reqwest::Method::GET,
            &format!("/v1/catalogs/{CATALOG}"),
            None,
        )
        .await?;
    if info["counts"]["items"] != json!(present) {
        report.violations.push(format!(
            "cycle {cycle}: the catalog counts {} items, {present} expected",
            info["counts"]["items"]
        ));
    }
    for (id, want) in &model.users {
        let now = get_user(client, id).await?;
        report.users_checked += 1;
        if now.as_ref() != want.as_ref() {
            report.violations.push(format!(
                "cycle {cycle}: user {id}: acknowledged {want:?}, found {now:?}"
            ));
        }
    }
    // Every event acknowledged this cycle, and a sample of older ones, is
    // stored: posting it again finds it a duplicate.
    let mut sample: Vec<Value> = std::mem::take(&mut model.events_new);
    let older = model.events_old.len();
    for _ in 0..older.min(300) {
        sample.push(model.events_old[rng.below(older)].clone());
    }
    for chunk in sample.chunks(500) {
        let outcome = client
            .must(
                reqwest::Method::POST,
                &format!("/v1/catalogs/{CATALOG}/events"),
                Some(&json!({ "events": chunk })),
            )
            .await?;
        report.events_checked += chunk.len();
        let duplicates = outcome["duplicates"].as_u64().unwrap_or(0) as usize;
        if duplicates != chunk.len() {
            report.violations.push(format!(
                "cycle {cycle}: {} of {} acknowledged events were not stored",
                chunk.len() - duplicates,
                chunk.len()
            ));
        }
    }
    model.events_old.extend(sample);
    model.events_old.sort_by_key(|e| e["event_id"].to_string());
    model.events_old.dedup();
    Ok(())
}
