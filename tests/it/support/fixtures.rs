//! The real fixtures in tests/data (see tests/data/README.md) and brute
//! force over them.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Value};

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Reads an `.fvecs` file.
pub fn read_fvecs(name: &str) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(data_path(name)).expect("fixture exists");
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let dim = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        let row = bytes[at..at + 4 * dim]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        at += 4 * dim;
        out.push(row);
    }
    out
}

/// One Superstore product with its title embedding.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub name: String,
    /// The department: Furniture, Office Supplies, Technology.
    pub department: String,
    /// The sub-category (Bookcases, Phones, ...): used as the item's
    /// `category`, the level at which upsell makes sense.
    pub category: String,
    pub price: f64,
    pub vector: Vec<f32>,
}

impl Product {
    /// The item as sent to the API; tags and stock are derived from the
    /// row number so filters on them have known selectivities.
    pub fn to_item(&self, row: usize) -> Value {
        json!({
            "id": self.id,
            "vector": self.vector,
            "price": self.price,
            "category": self.category,
            "brand": self.name.split_whitespace().next().unwrap_or(""),
            "in_stock": row % 4 != 0,
            "tags": tags_of(row),
            "attributes": {"department": self.department, "name": self.name, "row": row as i64},
        })
    }
}

/// Tags by row: "even" on half of the items, "tenth" on a tenth.
pub fn tags_of(row: usize) -> Vec<&'static str> {
    let mut tags = Vec::new();
    if row % 2 == 0 {
        tags.push("even");
    }
    if row % 10 == 0 {
        tags.push("tenth");
    }
    tags
}

/// The 1,862 Superstore products, row i with embedding i.
pub fn superstore() -> &'static [Product] {
    static PRODUCTS: OnceLock<Vec<Product>> = OnceLock::new();
    PRODUCTS.get_or_init(|| {
        let vectors = read_fvecs("embeddings.fvecs");
        let mut reader = csv::Reader::from_path(data_path("products.csv")).expect("products.csv");
        let products: Vec<Product> = reader
            .records()
            .zip(vectors)
            .map(|(record, vector)| {
                let r = record.expect("csv row");
                Product {
                    id: r[0].to_string(),
                    name: r[1].to_string(),
                    department: r[2].to_string(),
                    category: r[3].to_string(),
                    price: r[4].parse().expect("price"),
                    vector,
                }
            })
            .collect();
        assert_eq!(products.len(), 1862);
        products
    })
}

/// The MNIST subset: 3,000 base vectors and 200 queries (784-d, L2).
/// Base vectors and query vectors.
pub type Vectors = (Vec<Vec<f32>>, Vec<Vec<f32>>);

pub fn mnist() -> &'static Vectors {
    static DATA: OnceLock<Vectors> = OnceLock::new();
    DATA.get_or_init(|| {
        let base = read_fvecs("mnist_base_3000.fvecs");
        let queries = read_fvecs("mnist_query_200.fvecs");
        assert_eq!((base.len(), queries.len()), (3000, 200));
        (base, queries)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    L2,
}

/// The score recstore reports: higher is better.
pub fn score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / (na * nb)
        }
        Metric::L2 => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
    }
}

/// Brute-force top-`k` scores over the rows that pass `keep`, best first.
pub fn brute_force_scores(
    metric: Metric,
    base: &[Vec<f32>],
    query: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<(usize, f32)> {
    let mut all: Vec<(usize, f32)> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (i, score(metric, query, v)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.truncate(k);
    all
}

/// Recall of `found` scores against the exact top list: a hit counts when
/// it scores at least the exact k-th score (within a relative tolerance),
/// so ties between equal vectors cannot make a correct answer look wrong.
pub fn recall(found: &[f32], exact: &[(usize, f32)]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let kth = exact.last().unwrap().1;
    let tolerance = 1e-4 * kth.abs().max(1.0);
    let good = found
        .iter()
        .take(exact.len())
        .filter(|s| **s >= kth - tolerance)
        .count();
    good as f64 / exact.len() as f64
}

/// The derived tier (4 tiers) of product `i` within its category, by the
/// documented rule: 1 + floor(4 * cheaper / n).
pub fn tier_of(p: &[Product], i: usize) -> u8 {
    let same: Vec<f64> = p
        .iter()
        .filter(|q| q.category == p[i].category)
        .map(|q| q.price)
        .collect();
    let cheaper = same.iter().filter(|x| **x < p[i].price).count();
    (1 + 4 * cheaper / same.len()).min(4) as u8
}

/// Loads every Superstore product into `catalog` (cosine, 384-d).
pub async fn load_superstore(api: &super::Api, catalog: &str) {
    api.create_catalog(catalog, json!({"dimension": 384, "metric": "cosine"}))
        .await;
    let items: Vec<Value> = superstore()
        .iter()
        .enumerate()
        .map(|(i, p)| p.to_item(i))
        .collect();
    api.upsert_items(catalog, &items).await;
}
