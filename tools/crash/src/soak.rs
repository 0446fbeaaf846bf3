//! `recstore-soak`: a bounded soak run. Starts the real server on a fresh
//! data directory, loads a catalog (clustered vectors, as embeddings are;
//! `--data uniform` for structureless noise), measures capacity (closed loop, the
//! soak's own mix), then drives an open loop at a share of it (70 % by
//! default) for a set time: searches, personal picks, behaviour events and
//! item upserts (see [`request`]). Every interval it prints requests,
//! errors by status, latency percentiles, the server's RSS, the rebuilds
//! and snapshots its log reported finished, and the server's CPU seconds
//! by thread group (request threads against rebuild threads); at the end,
//! the drift of p99 and RSS between the first and last intervals
//! (RELIABILITY.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use recstore_crash::Rng;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// The recstore binary (cargo build --release first).
    #[arg(long, default_value = "target/release/recstore")]
    binary: PathBuf,
    /// Soak duration in seconds (after the capacity measurement).
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Report interval in seconds.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Seconds of the capacity measurement: long enough to include the
    /// background rebuilds the mix's replacements trigger, or the offered
    /// load overshoots what the server sustains.
    #[arg(long, default_value_t = 90)]
    capacity_seconds: u64,
    /// Seconds of each open-loop step that confirms the closed loop's
    /// capacity (0: take the closed loop's figure as it is).
    #[arg(long, default_value_t = 60)]
    step_seconds: u64,
    /// Share of the measured capacity to offer.
    #[arg(long, default_value_t = 0.7)]
    load: f64,
    /// Offer this many requests a second instead, without measuring the
    /// capacity: two builds compared at one load on a machine whose
    /// capacity drifts (a shared VM's steal time) see the same traffic.
    #[arg(long)]
    rate: Option<f64>,
    /// Items in the catalog.
    #[arg(long, default_value_t = 20_000)]
    items: usize,
    #[arg(long, default_value_t = 128)]
    dimension: usize,
    /// How the vectors are made.
    #[arg(long, value_enum, default_value_t = Data::Clustered)]
    data: Data,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Echo the server's log to stderr (rebuild and snapshot timings).
    #[arg(long)]
    verbose: bool,
}

/// The soak's vectors.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Data {
    /// Clustered, as embedding models place products: one centre per 100
    /// items (unit normal per axis), each vector its centre plus normal
    /// noise of 0.6 per axis; a query is drawn the same way (a shopper's
    /// query lands among products). An item's category follows its
    /// cluster, as a shop's would.
    Clustered,
    /// Uniform noise in [-1, 1) per axis: no structure at all, the worst
    /// case for any HNSW graph. At 128-d a search evaluates thousands of
    /// the 20,000 vectors, and building the graph costs as much per point.
    Uniform,
}

/// Draws the soak's vectors (see [`Data`]).
#[derive(Clone)]
struct Vectors {
    dim: usize,
    centres: Arc<Vec<Vec<f32>>>,
}

impl Vectors {
    const SPREAD: f32 = 0.6;

    fn new(data: Data, items: usize, dim: usize) -> Vectors {
        let mut rng = Rng::new(0xC1u64);
        let centres = match data {
            Data::Uniform => Vec::new(),
            Data::Clustered => (0..(items / 100).max(1))
                .map(|_| (0..dim).map(|_| rng.normal() as f32).collect())
                .collect(),
        };
        Vectors {
            dim,
            centres: Arc::new(centres),
        }
    }

    /// A vector and its category.
    fn draw(&self, rng: &mut Rng) -> (Vec<f32>, String) {
        if self.centres.is_empty() {
            return (rng.vector(self.dim), format!("c{}", rng.below(20)));
        }
        let c = rng.below(self.centres.len());
        let v = self.centres[c]
            .iter()
            .map(|x| x + Self::SPREAD * rng.normal() as f32)
            .collect();
        (v, format!("c{}", c % 20))
    }
}

/// One interval's figures.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    by_status: std::collections::BTreeMap<u16, u64>,
    transport_errors: u64,
}

/// The soak's request mix, per 100 requests: 75 searches (a third
/// filtered), 10 personal picks, 12 behaviour events and 3 item upserts
/// that replace a vector. Replacements leave dead graph points, so the
/// mix triggers background rebuilds as it runs (a 20,000-item catalog at
/// 600 req/s: one every ~5 minutes); at 10 upserts in 100 a rebuild never
/// finished before the next was due on 2 vCPUs, which is a write rate few
/// shops have (BENCHMARKS.md measures write-heavy mixes).
fn request(rng: &mut Rng, items: usize, vectors: &Vectors, n: u64) -> (String, Value) {
    match rng.below(100) {
        0..=74 => {
            let mut body = json!({"vector": vectors.draw(rng).0, "k": 10});
            if rng.below(3) == 0 {
                body["filter"] = json!({"category": format!("c{}", rng.below(20))});
            }
            ("/v1/catalogs/soak/search".into(), body)
        }
        75..=84 => (
            "/v1/catalogs/soak/recommend/user".into(),
            json!({"user_id": format!("u{}", rng.below(2_000)), "k": 10}),
        ),
        85..=87 => {
            let (vector, category) = vectors.draw(rng);
            (
                "/v1/catalogs/soak/items".into(),
                json!({"items": [{"id": format!("i{}", rng.below(items)), "vector": vector,
                                  "category": category, "price": 1 + rng.below(500)}]}),
            )
        }
        _ => (
            "/v1/catalogs/soak/events".into(),
            json!({"events": [{"user_id": format!("u{}", rng.below(2_000)), "item_id": format!("i{}", rng.below(items)),
                               "type": (["view", "click", "add_to_cart", "purchase"][rng.below(4)]),
                               "event_id": format!("soak-{n}")}]}),
        ),
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// CPU seconds each of the server's threads has used, by thread id, with
/// the thread's group: its name without a trailing number
/// (`tokio-rt-worker`, `rebuild-idle`, `rebuild-urgent`, `rebuild-soak`,
/// `recstore` for the main thread...).
fn thread_cpu(pid: u32) -> std::collections::HashMap<u32, (String, f64)> {
    let mut threads = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("stat")),
        ) else {
            continue;
        };
        // Fields after the parenthesised name: utime and stime are the
        // 12th and 13th, in clock ticks (100 per second on Linux).
        let Some(after) = stat.rsplit(')').next() else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
            f.iter().filter_map(|x| x.parse::<f64>().ok()).sum()
        });
        let group = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_string();
        threads.insert(tid, (group, ticks / 100.0));
    }
    threads
}

/// CPU seconds by thread group between two [`thread_cpu`] readings
/// (threads that ended in between lose their last part).
fn cpu_by_group(
    before: &std::collections::HashMap<u32, (String, f64)>,
    now: &std::collections::HashMap<u32, (String, f64)>,
) -> serde_json::Map<String, Value> {
    let mut groups: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for (tid, (group, seconds)) in now {
        let earlier = before.get(tid).map_or(0.0, |(_, s)| *s);
        *groups.entry(group.clone()).or_default() += seconds - earlier;
    }
    groups
        .into_iter()
        .filter(|(_, s)| *s >= 0.05)
        .map(|(g, s)| (g, json!((s * 10.0).round() / 10.0)))
        .collect()
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn send(client: &reqwest::Client, url: &str, path: &str, body: &Value) -> Result<u16, ()> {
    match client.post(format!("{url}{path}")).json(body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            Ok(status)
        }
        Err(_) => Err(()),
    }
}

/// The server's memory in MiB, from its `/metrics` (0 where the scrape
/// fails).
struct ServerMemory {
    /// RocksDB's memtables, which writes fill until a flush.
    memtables: f64,
    /// RocksDB's block cache, the memtables' reservations included: what
    /// `rocksdb_memory_mib` bounds.
    block_cache: f64,
    /// The heap in use and resident-but-free, which tell data and leaks
    /// (in use) from memory the allocator keeps after a peak (free).
    heap_in_use: f64,
    heap_free: f64,
    /// The same for glibc's heap, which RocksDB's C++ code uses (its
    /// memtables included).
    c_heap_in_use: f64,
    c_heap_free: f64,
}

async fn server_memory(client: &reqwest::Client, url: &str) -> ServerMemory {
    let text = match client.get(format!("{url}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mib = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0.0, |b| (b / (1024.0 * 1024.0) * 10.0).round() / 10.0)
    };
    ServerMemory {
        memtables: mib(r#"recstore_rocksdb{property="memtable_bytes"}"#),
        block_cache: mib(r#"recstore_rocksdb{property="block_cache_bytes"}"#),
        heap_in_use: mib(r#"recstore_process_heap_bytes{allocator="jemalloc",state="in_use"}"#),
        heap_free: mib(r#"recstore_process_heap_bytes{allocator="jemalloc",state="free"}"#),
        c_heap_in_use: mib(r#"recstore_process_heap_bytes{allocator="glibc",state="in_use"}"#),
        c_heap_free: mib(r#"recstore_process_heap_bytes{allocator="glibc",state="free"}"#),
    }
}

/// The p99 an open-loop step of the capacity search may reach: a queue
/// that has begun to build, well before the server's 256 requests in
/// flight shed load.
const STEP_P99_MS: f64 = 250.0;

/// Drives the mix at `rate` requests a second for `seconds` (requests
/// start on schedule whether or not earlier ones finished) and returns the
/// requests sent, the errors (any status but 2xx, or no answer) and p99.
async fn open_step(
    client: &reqwest::Client,
    url: &str,
    rate: f64,
    seconds: u64,
    items: usize,
    vectors: &Vectors,
) -> (u64, u64, f64) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let mut rng = Rng::new(rate.to_bits());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = rate.to_bits() << 8;
    while Instant::now() < end {
        ticker.tick().await;
        n += 1;
        let (path, body) = request(&mut rng, items, vectors, n);
        let (client, url) = (client.clone(), url.to_string());
        let (latencies, errors) = (Arc::clone(&latencies), Arc::clone(&errors));
        tasks.spawn(async move {
            let t = Instant::now();
            match send(&client, &url, &path, &body).await {
                Ok(status) if (200..300).contains(&status) => latencies
                    .lock()
                    .unwrap()
                    .push(t.elapsed().as_micros() as u64),
                _ => drop(errors.fetch_add(1, Ordering::Relaxed)),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_unstable();
    let errors = errors.load(Ordering::Relaxed);
    (lat.len() as u64 + errors, errors, percentile(&lat, 0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    if !(0.05..=1.5).contains(&args.load) {
        bail!("--load must be in 0.05..=1.5");
    }
    let dir = std::env::temp_dir().join(format!("recstore-soak-{}", std::process::id()));
    let mut server = recstore_crash::Server::spawn_with(&args.binary, &dir, &[], args.verbose)?;
    let url = server.url.clone();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{url}/readyz")).send().await.is_err() {
        if Instant::now() > deadline {
            bail!("the server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dim = args.dimension;
    let vectors = Vectors::new(args.data, args.items, dim);
    client
        .put(format!("{url}/v1/catalogs/soak"))
        .json(&json!({"dimension": dim, "metric": "cosine"}))
        .send()
        .await?
        .error_for_status()
        .context("creating the catalog")?;
    let mut rng = Rng::new(1);
    for start in (0..args.items).step_by(1_000) {
        let items: Vec<Value> = (start..(start + 1_000).min(args.items))
            .map(|i| {
                let (vector, category) = vectors.draw(&mut rng);
                json!({"id": format!("i{i}"), "vector": vector, "category": category, "price": 1 + i % 500})
            })
            .collect();
        client
            .post(format!("{url}/v1/catalogs/soak/items"))
            .json(&json!({ "items": items }))
            .send()
            .await?
            .error_for_status()
            .context("loading items")?;
    }

    let (capacity, rate) = match args.rate {
        Some(rate) => {
            eprintln!(
                "capacity not measured; soaking at {rate:.0} req/s (--rate) for {} s",
                args.seconds
            );
            (None, rate)
        }
        None => {
            let capacity = measure_capacity(&args, &client, &url, &vectors).await?;
            eprintln!(
                "capacity {capacity:.0} req/s; soaking at {:.0} req/s ({:.0} %) for {} s",
                capacity * args.load,
                args.load * 100.0,
                args.seconds
            );
            (Some(capacity), capacity * args.load)
        }
    };

    // The open loop: requests start on schedule whether or not earlier
    // ones finished (at most 1,024 outstanding; beyond that, counted as
    // transport errors rather than queued).
    let window = Arc::new(Mutex::new(Window::default()));
    let outstanding = Arc::new(tokio::sync::Semaphore::new(1_024));
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let mut next_report = started + Duration::from_secs(args.interval);
    let mut rows: Vec<Value> = Vec::new();
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n: u64 = 1 << 50;
    let mut total_errors = 0u64;
    let mut background = server.finished_rebuilds_and_snapshots();
    let mut cpu = thread_cpu(server.pid());
    while Instant::now() < end {
        ticker.tick().await;
        n += 1;
        let (path, body) = request(&mut rng, args.items, &vectors, n);
        match Arc::clone(&outstanding).try_acquire_owned() {
            Ok(permit) => {
                let (client, url, window) = (client.clone(), url.clone(), Arc::clone(&window));
                tokio::spawn(async move {
                    let t = Instant::now();
                    let outcome = send(&client, &url, &path, &body).await;
                    let us = t.elapsed().as_micros() as u64;
                    let mut w = window.lock().unwrap();
                    match outcome {
                        Ok(status) => {
                            *w.by_status.entry(status).or_default() += 1;
                            w.latencies_us.push(us);
                        }
                        Err(()) => w.transport_errors += 1,
                    }
                    drop(permit);
                });
            }
            Err(_) => window.lock().unwrap().transport_errors += 1,
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(args.interval);
            let w = std::mem::take(&mut *window.lock().unwrap());
            let mut lat = w.latencies_us;
            lat.sort_unstable();
            let errors: u64 = w
                .by_status
                .iter()
                .filter(|(s, _)| **s >= 300)
                .map(|(_, n)| n)
                .sum::<u64>()
                + w.transport_errors;
            total_errors += errors;
            let now = server.finished_rebuilds_and_snapshots();
            let (rebuilds, snapshots) = (now.0 - background.0, now.1 - background.1);
            background = now;
            let cpu_now = thread_cpu(server.pid());
            let cpu_seconds = cpu_by_group(&cpu, &cpu_now);
            cpu = cpu_now;
            let memory = server_memory(&client, &url).await;
            let row = json!({
                "t": started.elapsed().as_secs(),
                "requests": lat.len() as u64 + w.transport_errors,
                "rate": (lat.len() as f64 / args.interval as f64).round(),
                "errors": errors,
                "statuses": w.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "p50_ms": percentile(&lat, 0.5),
                "p99_ms": percentile(&lat, 0.99),
                "max_ms": percentile(&lat, 1.0),
                "rss_mib": (rss_mib(server.pid()) * 10.0).round() / 10.0,
                "memtable_mib": memory.memtables,
                "block_cache_mib": memory.block_cache,
                "heap_in_use_mib": memory.heap_in_use,
                "heap_free_mib": memory.heap_free,
                "c_heap_in_use_mib": memory.c_heap_in_use,
                "c_heap_free_mib": memory.c_heap_free,
                "rebuilds": rebuilds,
                "snapshots": snapshots,
                "cpu_seconds": cpu_seconds,
            });
            if args.json {
                println!("{row}");
            } else {
                println!(
                    "t={:>5}s requests={:>7} rate={:>6}/s errors={:>3} p50={:>6.2}ms p99={:>7.2}ms max={:>8.2}ms rss={:>7.1}MiB memtables={:>5.1}MiB cache={:>5.1}MiB heap={:>6.1}+{:>5.1}MiB c_heap={:>5.1}+{:>5.1}MiB rebuilds={} snapshots={} cpu_s={} statuses={}",
                    row["t"], row["requests"], row["rate"], row["errors"], row["p50_ms"].as_f64().unwrap(),
                    row["p99_ms"].as_f64().unwrap(), row["max_ms"].as_f64().unwrap(), row["rss_mib"].as_f64().unwrap(),
                    memory.memtables, memory.block_cache, memory.heap_in_use, memory.heap_free, memory.c_heap_in_use, memory.c_heap_free, rebuilds, snapshots, row["cpu_seconds"], row["statuses"]
                );
            }
            rows.push(row);
        }
    }
    // Let the last requests finish.
    let _ = outstanding.acquire_many(1_024).await;
    server.kill();
    let _ = std::fs::remove_dir_all(&dir);
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let p99 = |r: &Value| r["p99_ms"].as_f64().unwrap_or(0.0);
        let rss = |r: &Value| r["rss_mib"].as_f64().unwrap_or(0.0);
        println!(
            "summary: capacity {} req/s, offered {rate:.0} req/s for {} s; errors {total_errors}; p99 first {:.2} ms, last {:.2} ms (x{:.2}); RSS first {:.1} MiB, last {:.1} MiB ({:+.1} %)",
            capacity.map_or("not measured".to_owned(), |c| format!("{c:.0}")),
            args.seconds,
            p99(first),
            p99(last),
            p99(last) / p99(first).max(1e-9),
            rss(first),
            rss(last),
            (rss(last) / rss(first).max(1e-9) - 1.0) * 100.0
        );
    }
    Ok(if total_errors == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Capacity: 8 clients in a closed loop with the soak's mix, then confirmed
/// by open-loop steps.
async fn measure_capacity(
    args: &Args,
    client: &reqwest::Client,
    url: &str,
    vectors: &Vectors,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(args.capacity_seconds);
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (client, url, done) = (client.clone(), url.to_owned(), Arc::clone(&done));
        let (items, vectors) = (args.items, vectors.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(w * 7919 + 13);
            let mut n = w << 40;
            while Instant::now() < stop_at {
                n += 1;
                let (path, body) = request(&mut rng, items, &vectors, n);
                let _ = send(&client, &url, &path, &body).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let closed = done.load(Ordering::Relaxed) as f64 / args.capacity_seconds as f64;
    eprintln!(
        "closed loop: {closed:.0} req/s (8 clients, this mix, {:?} vectors, {} s)",
        args.data, args.capacity_seconds
    );
    // The closed loop overstates what an open loop sustains here: with
    // eight clients the server never waits for work, while requests that
    // arrive on a schedule each wake threads that had gone idle, and
    // rebuilds take the idle time between them. Measured: at 70 % of the
    // closed loop's figure the server's threads used 1.6 of the 2 cores
    // (1.0 ms of CPU a request against 0.7 ms in the closed loop), and
    // every rebuild saturated the machine. So the capacity is the highest
    // open-loop rate, stepping down from 90 % of the closed loop's figure
    // by tenths of it, that runs a step without an error and with p99
    // under STEP_P99_MS.
    let mut capacity = closed;
    if args.step_seconds > 0 {
        let mut share = 0.9;
        loop {
            let step = closed * share;
            let (requests, errors, p99) =
                open_step(client, url, step, args.step_seconds, args.items, vectors).await;
            eprintln!(
                "open loop at {step:.0} req/s ({:.0} % of the closed loop) for {} s: {requests} requests, {errors} errors, p99 {p99:.1} ms",
                share * 100.0,
                args.step_seconds
            );
            capacity = step;
            if (errors == 0 && p99 <= STEP_P99_MS) || share < 0.35 {
                break;
            }
            share -= 0.1;
        }
    }
    Ok(capacity)
}
