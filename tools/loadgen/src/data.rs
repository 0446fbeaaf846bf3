//! The workload's data: vectors (`.fvecs`), ground truth (`.ivecs`), item
//! ids and prices (the `meta.csv` of `recstore-datagen` or any CSV with an
//! `id` and a `price` column), and the filtered query sets with their
//! exact ground truth.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Row-major vectors.
pub struct Vectors {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Reads an `.fvecs` file: per row, a little-endian i32 dimension and that
/// many f32.
pub fn read_fvecs(path: &Path) -> Result<Vectors> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut data = Vec::new();
    let mut dim = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 4) else {
            bail!("{} is truncated at byte {at}", path.display());
        };
        let d = i32::from_le_bytes(head.try_into()?);
        if d <= 0 || (dim != 0 && d as usize != dim) {
            bail!("{}: row dimension {d} at byte {at}", path.display());
        }
        dim = d as usize;
        at += 4;
        let Some(row) = bytes.get(at..at + 4 * dim) else {
            bail!("{} is truncated at byte {at}", path.display());
        };
        data.extend(
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
        at += 4 * dim;
    }
    Ok(Vectors { dim, data })
}

/// Reads an `.ivecs` file into rows.
pub fn read_ivecs(path: &Path) -> Result<Vec<Vec<usize>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let d = i32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        at += 4;
        let Some(row) = bytes.get(at..at + 4 * d) else {
            bail!("{} is truncated at byte {at}", path.display());
        };
        rows.push(
            row.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
                .collect(),
        );
        at += 4 * d;
    }
    Ok(rows)
}

/// Item ids, prices and categories by row.
pub struct Meta {
    pub ids: Vec<String>,
    pub prices: Vec<Option<f64>>,
    pub categories: Vec<Option<String>>,
}

impl Meta {
    /// Row numbers as ids, no prices: what `recstore load` gives an
    /// `.fvecs` file loaded without `--meta`.
    pub fn row_numbers(n: usize) -> Meta {
        Meta {
            ids: (0..n).map(|i| i.to_string()).collect(),
            prices: vec![None; n],
            categories: vec![None; n],
        }
    }

    /// Reads a CSV with a header holding `id` and optionally `price` and
    /// `category` (other columns are ignored).
    pub fn read(path: &Path) -> Result<Meta> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let col = |name: &str| header.iter().position(|h| h.trim() == name);
        let id = col("id").with_context(|| format!("{}: no `id` column", path.display()))?;
        let (price, category) = (col("price"), col("category"));
        let mut meta = Meta {
            ids: Vec::new(),
            prices: Vec::new(),
            categories: Vec::new(),
        };
        for (n, line) in lines.enumerate() {
            // datagen's CSV has no quoted fields; a quoted one would need a
            // real CSV reader, so refuse it rather than misread it.
            if line.contains('"') {
                bail!(
                    "{} line {}: quoted fields are not supported",
                    path.display(),
                    n + 2
                );
            }
            let cells: Vec<&str> = line.split(',').collect();
            let cell = |c: Option<usize>| c.and_then(|c| cells.get(c)).map(|s| s.trim());
            meta.ids.push(cell(Some(id)).unwrap_or("").to_string());
            meta.prices.push(match cell(price) {
                None | Some("") => None,
                Some(p) => {
                    Some(p.parse().with_context(|| {
                        format!("{} line {}: price {p:?}", path.display(), n + 2)
                    })?)
                }
            });
            meta.categories
                .push(cell(category).filter(|c| !c.is_empty()).map(str::to_string));
        }
        Ok(meta)
    }
}

/// How a score is computed (higher is better), as the server does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    Cosine,
    Dot,
    L2,
}

impl Metric {
    pub fn parse(name: &str) -> Result<Metric> {
        Ok(match name {
            "cosine" => Metric::Cosine,
            "dot" => Metric::Dot,
            "l2" => Metric::L2,
            other => bail!("unknown metric {other:?}"),
        })
    }

    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let n = a.len() / 8 * 8;
        match self {
            Metric::Cosine | Metric::Dot => {
                for (x, y) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
                    for l in 0..8 {
                        acc[l] += x[l] * y[l];
                    }
                }
                let tail: f32 = a[n..].iter().zip(&b[n..]).map(|(x, y)| x * y).sum();
                acc.iter().sum::<f32>() + tail
            }
            Metric::L2 => {
                for (x, y) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
                    for l in 0..8 {
                        let d = x[l] - y[l];
                        acc[l] += d * d;
                    }
                }
                let tail: f32 = a[n..]
                    .iter()
                    .zip(&b[n..])
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum();
                -(acc.iter().sum::<f32>() + tail)
            }
        }
    }
}

/// Scales `v` to unit length (the server does the same to cosine vectors).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// One query of a phase: the vector, an optional price window, and the
/// rows of its exact top-k.
pub struct Query {
    pub vector: usize,
    pub price: Option<(f64, f64)>,
    pub truth: Vec<usize>,
}

/// The queries of a filtered phase: query `j` keeps the items whose price
/// lies in a window holding `selectivity` of all priced items, placed at
/// a pseudo-random position in price order (so each query filters a
/// different set), with its ground truth by brute force over exactly the
/// items the server's filter keeps.
pub fn filtered_queries(
    base: &Vectors,
    queries: &Vectors,
    meta: &Meta,
    metric: Metric,
    selectivity: f64,
    k: usize,
    seed: u64,
) -> Result<Vec<Query>> {
    let mut by_price: Vec<(f64, usize)> = meta
        .prices
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (p, i)))
        .collect();
    if by_price.len() < base.len() {
        bail!("filtered phases need a price for every item (--meta with a price column)");
    }
    by_price.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = by_price.len();
    let window = ((selectivity * n as f64).round() as usize).clamp(1, n);
    let mut state = seed | 1;
    let windows: Vec<(f64, f64)> = (0..queries.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let start = (state % (n - window + 1) as u64) as usize;
            (by_price[start].0, by_price[start + window - 1].0)
        })
        .collect();
    let truths = parallel_map(queries.len(), |j| {
        let (lo, hi) = windows[j];
        // Every item with a price in [lo, hi], ties at either end included,
        // exactly as the server's `gte`/`lte` filter keeps them.
        let from = by_price.partition_point(|(p, _)| *p < lo);
        let to = by_price.partition_point(|(p, _)| *p <= hi);
        top_k(
            base,
            queries.row(j),
            metric,
            k,
            by_price[from..to].iter().map(|(_, i)| *i),
        )
    });
    Ok(truths
        .into_iter()
        .enumerate()
        .map(|(j, truth)| Query {
            vector: j,
            price: Some(windows[j]),
            truth,
        })
        .collect())
}

/// Unfiltered queries with a given ground truth, or one computed by brute
/// force over every row of `base`.
pub fn unfiltered_queries(
    base: Option<&Vectors>,
    queries: &Vectors,
    truth: Option<Vec<Vec<usize>>>,
    metric: Metric,
    k: usize,
) -> Result<Vec<Query>> {
    let truth = match (truth, base) {
        (Some(t), _) => {
            if t.len() < queries.len() {
                bail!(
                    "the ground truth has {} rows for {} queries",
                    t.len(),
                    queries.len()
                );
            }
            t.into_iter()
                .map(|mut row| {
                    row.truncate(k);
                    row
                })
                .collect()
        }
        (None, Some(base)) => parallel_map(queries.len(), |j| {
            top_k(base, queries.row(j), metric, k, 0..base.len())
        }),
        (None, None) => bail!("recall needs --gt or --base"),
    };
    Ok(truth
        .into_iter()
        .take(queries.len())
        .enumerate()
        .map(|(j, truth)| Query {
            vector: j,
            price: None,
            truth,
        })
        .collect())
}

/// The exact top-`k` rows among `rows` (best first; ties by row).
fn top_k(
    base: &Vectors,
    q: &[f32],
    metric: Metric,
    k: usize,
    rows: impl Iterator<Item = usize>,
) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for i in rows {
        let s = metric.score(q, base.row(i));
        if best.len() < k || s > best[best.len() - 1].0 {
            let at = best.partition_point(|(b, j)| *b > s || (*b == s && *j < i));
            best.insert(at, (s, i));
            best.truncate(k);
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// `f(0..n)` on all cores.
fn parallel_map<T: Send + Default + Clone>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = n.div_ceil(threads).max(1);
    let mut out = vec![T::default(); n];
    std::thread::scope(|scope| {
        for (c, slots) in out.chunks_mut(chunk).enumerate() {
            let f = &f;
            scope.spawn(move || {
                for (i, slot) in slots.iter_mut().enumerate() {
                    *slot = f(c * chunk + i);
                }
            });
        }
    });
    out
}
