//! `recstore-datagen`: a clustered synthetic data set with a fixed seed,
//! so 100k and 1M benchmark runs are reproducible on any machine.
//!
//! Writes into `--out`:
//! - `base.fvecs`: `--n` vectors of `--dim` dimensions. Each belongs to one
//!   of `--clusters` clusters (centre uniform in [-1, 1]^d, point = centre
//!   + Gaussian noise of `--spread`); unit length with `--metric cosine`.
//! - `meta.csv`: `id,price,category` for row i (id `s<i>`; the category is
//!   derived from the cluster, so categories correlate with neighbourhoods
//!   as they do in a shop; prices are log-normal around a per-category
//!   level).
//! - `query.fvecs`: `--queries` vectors from the same distribution.
//! - `gt10.ivecs`: the exact top-`--k` rows of `base` for each query (brute
//!   force, all cores), the ground truth recall is measured against.
//! - `README.txt`: the command and parameters that made the set.
//!
//! The data is synthetic: label results obtained on it as such.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "recstore-datagen",
    about = "Clustered synthetic vectors with exact ground truth"
)]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Base vectors.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Query vectors.
    #[arg(long, default_value_t = 1_000)]
    queries: usize,
    /// Clusters.
    #[arg(long, default_value_t = 1_000)]
    clusters: usize,
    /// Standard deviation of a point around its cluster centre, per axis.
    #[arg(long, default_value_t = 0.15)]
    spread: f32,
    /// Categories (cluster c is in category c % categories).
    #[arg(long, default_value_t = 50)]
    categories: usize,
    /// l2 or cosine (cosine normalises every vector to unit length).
    #[arg(long, default_value = "l2")]
    metric: String,
    /// Neighbours per query in the ground truth.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// xoshiro256** seeded by splitmix64: small, fast and reproducible.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

struct Generator {
    centres: Vec<Vec<f32>>,
    spread: f32,
    cosine: bool,
}

impl Generator {
    fn point(&self, rng: &mut Rng) -> (usize, Vec<f32>) {
        let c = rng.below(self.centres.len());
        let mut v: Vec<f32> = self.centres[c]
            .iter()
            .map(|x| x + self.spread * rng.normal() as f32)
            .collect();
        if self.cosine {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        (c, v)
    }
}

fn write_vecs(path: &Path, rows: &[Vec<f32>]) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for row in rows {
        out.write_all(&(row.len() as i32).to_le_bytes())?;
        for x in row {
            out.write_all(&x.to_le_bytes())?;
        }
    }
    out.flush()
}

/// Higher is better, as recstore scores.
fn score(cosine: bool, a: &[f32], b: &[f32]) -> f32 {
    if cosine {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    } else {
        -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>()
    }
}

/// Exact top-k rows of `base` for every query, on all cores.
fn ground_truth(base: &[Vec<f32>], queries: &[Vec<f32>], k: usize, cosine: bool) -> Vec<Vec<i32>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = queries.len().div_ceil(threads).max(1);
    let mut out = vec![Vec::new(); queries.len()];
    std::thread::scope(|scope| {
        for (qs, slots) in queries.chunks(chunk).zip(out.chunks_mut(chunk)) {
            scope.spawn(move || {
                for (q, slot) in qs.iter().zip(slots) {
                    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
                    for (i, v) in base.iter().enumerate() {
                        let s = score(cosine, q, v);
                        if best.len() < k || s > best[best.len() - 1].0 {
                            let at = best.partition_point(|(b, j)| *b > s || (*b == s && *j < i));
                            best.insert(at, (s, i));
                            best.truncate(k);
                        }
                    }
                    *slot = best.into_iter().map(|(_, i)| i as i32).collect();
                }
            });
        }
    });
    out
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let cosine = match args.metric.as_str() {
        "cosine" => true,
        "l2" => false,
        other => {
            eprintln!("error: --metric {other:?} is not l2 or cosine");
            std::process::exit(1);
        }
    };
    std::fs::create_dir_all(&args.out)?;
    let mut rng = Rng::new(args.seed);
    let centres: Vec<Vec<f32>> = (0..args.clusters)
        .map(|_| {
            (0..args.dim)
                .map(|_| (rng.unit() * 2.0 - 1.0) as f32)
                .collect()
        })
        .collect();
    // Per-category price level: 5 to 500, log-uniform.
    let levels: Vec<f64> = (0..args.categories)
        .map(|_| 5.0 * 100f64.powf(rng.unit()))
        .collect();
    let generator = Generator {
        centres,
        spread: args.spread,
        cosine,
    };
    let started = std::time::Instant::now();
    let mut base = Vec::with_capacity(args.n);
    let mut meta = BufWriter::new(std::fs::File::create(args.out.join("meta.csv"))?);
    writeln!(meta, "id,price,category")?;
    for i in 0..args.n {
        let (cluster, v) = generator.point(&mut rng);
        let category = cluster % args.categories;
        let price = levels[category] * (0.5 * rng.normal()).exp();
        writeln!(meta, "s{i},{price:.2},c{category}")?;
        base.push(v);
    }
    meta.flush()?;
    let queries: Vec<Vec<f32>> = (0..args.queries)
        .map(|_| generator.point(&mut rng).1)
        .collect();
    write_vecs(&args.out.join("base.fvecs"), &base)?;
    write_vecs(&args.out.join("query.fvecs"), &queries)?;
    eprintln!(
        "generated {} x {} in {:.1} s; computing exact top-{}",
        args.n,
        args.dim,
        started.elapsed().as_secs_f64(),
        args.k
    );
    let gt = ground_truth(&base, &queries, args.k, cosine);
    let mut out = BufWriter::new(std::fs::File::create(args.out.join("gt10.ivecs"))?);
    for row in &gt {
        out.write_all(&(row.len() as i32).to_le_bytes())?;
        for i in row {
            out.write_all(&i.to_le_bytes())?;
        }
    }
    out.flush()?;
    std::fs::write(
        args.out.join("README.txt"),
        format!(
            "Synthetic clustered vectors made by recstore-datagen (tools/datagen).\n{args:?}\nFiles: base.fvecs, query.fvecs, gt10.ivecs (exact top-{} by brute force, {}), meta.csv (id,price,category; row i = vector i).\n",
            args.k,
            if cosine { "cosine" } else { "l2" }
        ),
    )?;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
