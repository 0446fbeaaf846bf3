//! `recstore-loadgen`: drives a recstore server on this machine with
//! searches, and optionally writes, for a bounded time per phase, and
//! reports queries/s, latency percentiles, recall@k against exact ground
//! truth, errors, and the server's own time split (`Server-Timing`).
//!
//! Phases: unfiltered (`100` in `--selectivity`), then one per filter
//! selectivity in percent. A filtered query keeps the items whose price
//! lies in a window holding that share of the catalog, at a different
//! place per query; its ground truth is computed by brute force over
//! exactly those items.
//!
//! Closed loop by default (`--concurrency` workers, each with one
//! keep-alive connection, sending as fast as answers come). With `--rate`,
//! an open loop: requests are scheduled at that total rate and latency is
//! measured from the scheduled time, so a stalled server shows up as
//! latency instead of silently lowering the load.
//!
//! With `--write-share`, that share of requests are upserts of an existing
//! item (its vector moved by ~1e-4, price and category resent), which go
//! through the full write path: a new graph point, a tombstone, and in
//! time a background rebuild. The tiny move leaves the ground truth intact.
//!
//! It only ever connects to loopback addresses, and stops by itself.

mod client;
mod data;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use client::{Connection, Target};
use data::{Meta, Metric, Query, Vectors};

#[derive(Debug, Parser)]
#[command(
    name = "recstore-loadgen",
    about = "Load, latency and recall for a local recstore server"
)]
struct Args {
    /// The server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Catalog to query.
    #[arg(long)]
    catalog: String,
    /// Query vectors (.fvecs).
    #[arg(long)]
    queries: PathBuf,
    /// Exact top-k of each query over the whole catalog (.ivecs, rows of
    /// `--base`); computed by brute force from `--base` when absent.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// The catalog's vectors (.fvecs, row i = item i): for filtered ground
    /// truth, brute force, and writes.
    #[arg(long)]
    base: Option<PathBuf>,
    /// Ids, prices and categories of the rows (CSV with `id`, `price`,
    /// `category` columns); without it, ids are row numbers.
    #[arg(long)]
    meta: Option<PathBuf>,
    /// Phases, as the percentage of items a filter keeps; 100 = unfiltered.
    #[arg(long, value_delimiter = ',', default_value = "100,50,10,1,0.1")]
    selectivity: Vec<f64>,
    /// Workers, each with one connection.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Total requests per second (open loop); default: as fast as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before each phase.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Share of requests that are writes (0..1).
    #[arg(long, default_value_t = 0.0)]
    write_share: f64,
    /// How vectors are sent.
    #[arg(long, value_enum, default_value_t = Encoding::Json)]
    encoding: Encoding,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Use only the first N queries.
    #[arg(long)]
    max_queries: Option<usize>,
    /// Ask for hits with their attributes (the server's default); off by
    /// default so the benchmark measures the search, not attribute copies.
    #[arg(long)]
    with_attributes: bool,
    /// Client threads (the client shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Encoding {
    /// `"vector": [0.1, ...]`
    Json,
    /// `"vector_b64"`: base64 of little-endian f32.
    B64,
    /// `"vector_b64"`: base64 of little-endian f16.
    B64F16,
}

fn vector_field(encoding: Encoding, v: &[f32]) -> (&'static str, Value) {
    let b64 =
        |bytes: Vec<u8>| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    match encoding {
        Encoding::Json => ("vector", json!(v)),
        Encoding::B64 => (
            "vector_b64",
            b64(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ),
        Encoding::B64F16 => (
            "vector_b64",
            b64(v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect()),
        ),
    }
}

/// The server-side parts of `Server-Timing`, in the order sent.
const TIMING_PARTS: [&str; 5] = ["parse", "queue", "plan", "search", "encode"];

/// One phase's prepared requests.
struct Phase {
    name: String,
    bodies: Vec<Bytes>,
    truth: Vec<Vec<String>>,
}

/// What the writes need.
struct Writes {
    share: f64,
    base: Arc<Vectors>,
    meta: Arc<Meta>,
    encoding: Encoding,
}

impl Writes {
    fn body(&self, row: usize, seed: &mut u64) -> Bytes {
        let mut v = self.base.row(row).to_vec();
        for x in &mut v {
            *x += 1e-4 * (next(seed) as f32 / u64::MAX as f32 - 0.5);
        }
        let (field, value) = vector_field(self.encoding, &v);
        let mut item = json!({"id": self.meta.ids[row], field: value});
        if let Some(p) = self.meta.prices[row] {
            item["price"] = json!(p);
        }
        if let Some(c) = &self.meta.categories[row] {
            item["category"] = json!(c);
        }
        Bytes::from(serde_json::to_vec(&json!({"items": [item]})).expect("JSON"))
    }
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What one worker saw in one phase.
#[derive(Default)]
struct Tally {
    reads_us: Vec<u32>,
    writes_us: Vec<u32>,
    recall_sum: f64,
    recall_n: u64,
    errors: u64,
    first_error: Option<String>,
    timings: [Vec<f32>; 5],
}

#[derive(Deserialize)]
struct HitsAnswer {
    hits: Vec<HitId>,
}

#[derive(Deserialize)]
struct HitId {
    id: String,
}

#[derive(Serialize)]
struct PhaseReport {
    phase: String,
    seconds: f64,
    queries: usize,
    qps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    recall: f64,
    errors: u64,
    first_error: Option<String>,
    writes: usize,
    writes_per_s: f64,
    write_p50_ms: f64,
    write_p99_ms: f64,
    /// Medians of the server's `Server-Timing` parts, in ms.
    server_ms: std::collections::BTreeMap<String, f64>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn median(v: &mut [f32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2] as f64
}

struct Run {
    target: Target,
    catalog: String,
    concurrency: usize,
    rate: Option<f64>,
    writes: Option<Writes>,
}

impl Run {
    /// Runs `phase` for `seconds` and returns every worker's tally.
    async fn drive(self: &Arc<Self>, phase: &Arc<Phase>, seconds: f64, record: bool) -> Vec<Tally> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..self.concurrency {
            let run = Arc::clone(self);
            let phase = Arc::clone(phase);
            workers.push(tokio::spawn(async move {
                run.worker(w, &phase, started, deadline, record).await
            }));
        }
        let mut tallies = Vec::new();
        for w in workers {
            tallies.push(w.await.expect("worker"));
        }
        tallies
    }

    async fn worker(
        &self,
        w: usize,
        phase: &Phase,
        started: Instant,
        deadline: Instant,
        record: bool,
    ) -> Tally {
        let mut tally = Tally::default();
        let mut connection = Connection::new(self.target.clone());
        let search = format!("/v1/catalogs/{}/search", self.catalog);
        let upsert = format!("/v1/catalogs/{}/items", self.catalog);
        let mut seed =
            0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let interval = self
            .rate
            .map(|r| Duration::from_secs_f64(self.concurrency as f64 / r));
        let mut i = 0usize;
        loop {
            // Open loop: request i of this worker is due at a fixed time,
            // staggered across workers; latency counts from then.
            let due = match interval {
                Some(gap) => {
                    let due = started + gap.mul_f64(i as f64 + w as f64 / self.concurrency as f64);
                    tokio::time::sleep_until(due.into()).await;
                    due
                }
                None => Instant::now(),
            };
            if due >= deadline || Instant::now() >= deadline {
                break;
            }
            let j = (w + i * self.concurrency) % phase.bodies.len();
            i += 1;
            let write = self
                .writes
                .as_ref()
                .filter(|wr| (next(&mut seed) as f64 / u64::MAX as f64) < wr.share);
            let answer = match write {
                Some(wr) => {
                    let row = (next(&mut seed) % wr.base.len() as u64) as usize;
                    connection
                        .send("POST", &upsert, Some(wr.body(row, &mut seed)))
                        .await
                }
                None => {
                    connection
                        .send("POST", &search, Some(phase.bodies[j].clone()))
                        .await
                }
            };
            let micros = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
            if !record {
                continue;
            }
            let answer = match answer {
                Ok(a) if a.status == 200 => a,
                Ok(a) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| {
                        format!("HTTP {}: {}", a.status, String::from_utf8_lossy(&a.body))
                    });
                    continue;
                }
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                    continue;
                }
            };
            if write.is_some() {
                tally.writes_us.push(micros);
                continue;
            }
            tally.reads_us.push(micros);
            if let Some(t) = &answer.server_timing {
                for part in t.split(", ") {
                    if let Some((name, ms)) = part.split_once(";dur=") {
                        if let (Some(at), Ok(ms)) =
                            (TIMING_PARTS.iter().position(|p| *p == name), ms.parse())
                        {
                            tally.timings[at].push(ms);
                        }
                    }
                }
            }
            match serde_json::from_slice::<HitsAnswer>(&answer.body) {
                Ok(hits) => {
                    let truth = &phase.truth[j];
                    let found = hits.hits.iter().filter(|h| truth.contains(&h.id)).count();
                    tally.recall_sum += if truth.is_empty() {
                        1.0
                    } else {
                        found as f64 / truth.len() as f64
                    };
                    tally.recall_n += 1;
                }
                Err(e) => {
                    tally.errors += 1;
                    tally
                        .first_error
                        .get_or_insert_with(|| format!("unreadable answer: {e}"));
                }
            }
        }
        tally
    }
}

fn report(name: &str, seconds: f64, tallies: Vec<Tally>) -> PhaseReport {
    let mut reads: Vec<u32> = Vec::new();
    let mut writes: Vec<u32> = Vec::new();
    let mut timings: [Vec<f32>; 5] = Default::default();
    let (mut recall_sum, mut recall_n, mut errors, mut first_error) = (0.0, 0, 0, None);
    for t in tallies {
        reads.extend(t.reads_us);
        writes.extend(t.writes_us);
        for (all, mine) in timings.iter_mut().zip(t.timings) {
            all.extend(mine);
        }
        recall_sum += t.recall_sum;
        recall_n += t.recall_n;
        errors += t.errors;
        first_error = first_error.or(t.first_error);
    }
    reads.sort_unstable();
    writes.sort_unstable();
    PhaseReport {
        phase: name.to_string(),
        seconds,
        queries: reads.len(),
        qps: reads.len() as f64 / seconds,
        p50_ms: percentile(&reads, 50.0),
        p95_ms: percentile(&reads, 95.0),
        p99_ms: percentile(&reads, 99.0),
        max_ms: percentile(&reads, 100.0),
        recall: if recall_n == 0 {
            0.0
        } else {
            recall_sum / recall_n as f64
        },
        errors,
        first_error,
        writes: writes.len(),
        writes_per_s: writes.len() as f64 / seconds,
        write_p50_ms: percentile(&writes, 50.0),
        write_p99_ms: percentile(&writes, 99.0),
        server_ms: TIMING_PARTS
            .iter()
            .zip(timings.iter_mut())
            .map(|(name, v)| (name.to_string(), median(v)))
            .collect(),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let target = Target::parse(&args.url)?;
    if args.concurrency == 0 || args.client_threads == 0 {
        bail!("--concurrency and --client-threads must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.write_share) {
        bail!("--write-share must be in 0..=1");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of requests per second");
    }
    let duration_ok = args.duration > 0.0 && args.duration <= 3600.0;
    if !duration_ok || !(0.0..=600.0).contains(&args.warmup) {
        bail!("--duration must be in (0, 3600] seconds and --warmup in [0, 600]");
    }
    let runtime = if args.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args, target))
}

async fn run(args: Args, target: Target) -> Result<()> {
    let mut probe = Connection::new(target.clone());
    let info = probe
        .send("GET", &format!("/v1/catalogs/{}", args.catalog), None)
        .await
        .context("asking the server for the catalog")?;
    if info.status != 200 {
        bail!(
            "GET catalog {:?}: HTTP {}: {}",
            args.catalog,
            info.status,
            String::from_utf8_lossy(&info.body)
        );
    }
    let info: Value = serde_json::from_slice(&info.body)?;
    let metric = Metric::parse(info["metric"].as_str().unwrap_or(""))?;
    let dimension = info["dimension"].as_u64().unwrap_or(0) as usize;
    let items = info["counts"]["items"].as_u64().unwrap_or(0);

    let mut queries = data::read_fvecs(&args.queries)?;
    if let Some(n) = args.max_queries {
        queries.data.truncate(n.max(1) * queries.dim);
    }
    if queries.dim != dimension {
        bail!(
            "queries have dimension {}, the catalog {dimension}",
            queries.dim
        );
    }
    let mut base = args.base.as_deref().map(data::read_fvecs).transpose()?;
    if metric == Metric::Cosine {
        for v in queries.data.chunks_mut(dimension) {
            data::normalise(v);
        }
        if let Some(b) = &mut base {
            for v in b.data.chunks_mut(dimension) {
                data::normalise(v);
            }
        }
    }
    let meta = match (&args.meta, &base) {
        (Some(path), _) => Meta::read(path)?,
        (None, Some(b)) => Meta::row_numbers(b.len()),
        (None, None) => Meta::row_numbers(0),
    };
    if let Some(b) = &base {
        if b.dim != dimension || meta.ids.len() != b.len() {
            bail!(
                "--base has {} rows of dimension {}, --meta {} rows, the catalog dimension {dimension}",
                b.len(),
                b.dim,
                meta.ids.len()
            );
        }
    }
    let truth = args.gt.as_deref().map(data::read_ivecs).transpose()?;
    let id_of = |row: usize| -> String {
        meta.ids
            .get(row)
            .cloned()
            .unwrap_or_else(|| row.to_string())
    };
    eprintln!(
        "catalog {:?}: {items} items, {dimension}-d, {:?}; {} queries, k {}, concurrency {}{}, write share {}, {:?}",
        args.catalog,
        metric,
        queries.len(),
        args.k,
        args.concurrency,
        args.rate.map(|r| format!(", rate {r}/s")).unwrap_or_default(),
        args.write_share,
        args.encoding
    );

    let mut phases = Vec::new();
    for &s in &args.selectivity {
        if !(s > 0.0 && s <= 100.0) {
            bail!("--selectivity {s}: percentages in (0, 100]");
        }
        let started = Instant::now();
        let list: Vec<Query> = if s >= 100.0 {
            data::unfiltered_queries(base.as_ref(), &queries, truth.clone(), metric, args.k)?
        } else {
            let Some(b) = &base else {
                bail!("filtered phases need --base (and --meta with prices)");
            };
            data::filtered_queries(
                b,
                &queries,
                &meta,
                metric,
                s / 100.0,
                args.k,
                0xC0FFEE ^ s.to_bits(),
            )?
        };
        let bodies = list
            .iter()
            .map(|q| {
                let (field, value) = vector_field(args.encoding, queries.row(q.vector));
                let mut body =
                    json!({field: value, "k": args.k, "with_attributes": args.with_attributes});
                if let Some((lo, hi)) = q.price {
                    body["filter"] = json!({"price": {"gte": lo, "lte": hi}});
                }
                Bytes::from(serde_json::to_vec(&body).expect("JSON"))
            })
            .collect();
        let name = if s >= 100.0 {
            "unfiltered".to_string()
        } else {
            format!("{s}%")
        };
        eprintln!(
            "  {name}: ground truth in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        phases.push(Arc::new(Phase {
            name,
            bodies,
            truth: list
                .iter()
                .map(|q| q.truth.iter().map(|&r| id_of(r)).collect())
                .collect(),
        }));
    }

    let writes = if args.write_share > 0.0 {
        let Some(b) = base else {
            bail!("--write-share needs --base (writes upsert its rows)");
        };
        Some(Writes {
            share: args.write_share,
            base: Arc::new(b),
            meta: Arc::new(meta),
            encoding: args.encoding,
        })
    } else {
        None
    };
    let run = Arc::new(Run {
        target,
        catalog: args.catalog.clone(),
        concurrency: args.concurrency,
        rate: args.rate,
        writes,
    });

    println!(
        "{:<11} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} | server medians, ms: parse queue plan search encode",
        "phase", "q/s", "p50 ms", "p95", "p99", "max", "recall", "errors", "writes/s"
    );
    let mut reports = Vec::new();
    for phase in &phases {
        if args.warmup > 0.0 {
            run.drive(phase, args.warmup, false).await;
        }
        let r = report(
            &phase.name,
            args.duration,
            run.drive(phase, args.duration, true).await,
        );
        println!(
            "{:<11} {:>8.0} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.4} {:>6} {:>8.1} | {}",
            r.phase,
            r.qps,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.max_ms,
            r.recall,
            r.errors,
            r.writes_per_s,
            TIMING_PARTS
                .iter()
                .map(|p| format!("{:.3}", r.server_ms[*p]))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Some(e) = &r.first_error {
            println!("  first error: {e}");
        }
        reports.push(r);
    }
    if let Some(path) = &args.json {
        let out = json!({
            "url": args.url,
            "catalog": args.catalog,
            "items": items,
            "dimension": dimension,
            "queries": queries.len(),
            "k": args.k,
            "concurrency": args.concurrency,
            "rate": args.rate,
            "write_share": args.write_share,
            "encoding": args.encoding,
            "phases": reports,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
