//! `recstore load` (the real binary, offline) and `POST items:bulk`: every
//! input format loads the real fixtures so that the server then answers
//! with recall@10 >= 0.95 against brute force and returns the input's
//! attributes; bad rows are named and, by default, nothing is written; an
//! interrupted load leaves the catalog as it was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fixtures::{self, brute_force_scores, recall, Metric};
use crate::support::{Api, TestServer};

/// Runs `recstore load --data-dir DIR ARGS...` and returns its output.
async fn load(data_dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recstore"));
    command
        .arg("load")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--no-progress")
        .args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("RECSTORE_") {
            command.env_remove(key);
        }
    }
    tokio::task::spawn_blocking(move || command.output().expect("run recstore load"))
        .await
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs a load that must succeed with `--json` and returns its summary.
async fn load_ok(data_dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = load(data_dir, &all).await;
    assert!(out.status.success(), "load failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON summary")
}

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for row in rows {
        out.write_all(&(row.len() as i32).to_le_bytes()).unwrap();
        for x in row {
            out.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

/// A C-order float32 `.npy` file, as numpy writes it (version 1.0).
fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        rows[0].len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"\x93NUMPY\x01\x00").unwrap();
    out.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    out.write_all(header.as_bytes()).unwrap();
    for row in rows {
        for x in row {
            out.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for line in lines {
        writeln!(out, "{line}").unwrap();
    }
}

/// The MNIST label-like attribute each row gets (for attribute checks).
fn digit_of(row: usize) -> String {
    format!("d{}", row % 10)
}

/// Recall@10 of the catalog's answers for the MNIST queries against brute
/// force over `base`, where item `id` is row `row_of(id)`.
async fn mnist_recall(api: &Api, catalog: &str, base: &[Vec<f32>]) -> f64 {
    let (_, queries) = fixtures::mnist();
    let mut total = 0.0;
    for q in queries {
        let hits = api
            .search(
                catalog,
                json!({"vector": q, "k": 10, "with_attributes": false}),
            )
            .await;
        let scores: Vec<f32> = hits
            .iter()
            .map(|h| h["score"].as_f64().unwrap() as f32)
            .collect();
        let exact = brute_force_scores(Metric::L2, base, q, 10, |_| true);
        total += recall(&scores, &exact);
    }
    total / queries.len() as f64
}

/// Starts a server on `dir` and checks the catalog came from the load's
/// snapshot (no rebuild at start) with `items` items.
async fn serve_loaded(dir: &Path, catalog: &str, items: u64) -> TestServer {
    let server = TestServer::start_in(dir, |_| {}).await;
    let info = server.api.get_ok(&format!("/v1/catalogs/{catalog}")).await;
    assert_eq!(info["index"]["source"], "snapshot", "{info}");
    assert_eq!(info["counts"]["items"], items, "{info}");
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mnist_loads_from_every_format_with_recall_and_attributes() {
    let (base, _) = fixtures::mnist();
    let files = tempfile::tempdir().unwrap();
    let f = |name: &str| files.path().join(name).to_str().unwrap().to_string();
    let create = ["--create", "--dimension", "784", "--metric", "l2"];

    // .fvecs with a meta CSV (ids and an attribute), all 3,000 rows.
    write_fvecs(Path::new(&f("base.fvecs")), base);
    write_lines(
        Path::new(&f("meta.csv")),
        std::iter::once("id,digit".to_string())
            .chain((0..base.len()).map(|i| format!("m{i},{}", digit_of(i)))),
    );
    // The other formats carry the first 1,000 rows (they are slower to
    // write and read; the formats, not the size, are under test here).
    let part = &base[..1000];
    write_npy(Path::new(&f("part.npy")), part);
    write_lines(
        Path::new(&f("part.ndjson")),
        part.iter().enumerate().map(|(i, v)| {
            json!({"id": format!("m{i}"), "vector": v, "attributes": {"digit": digit_of(i)}})
                .to_string()
        }),
    );
    write_lines(
        Path::new(&f("part.csv")),
        std::iter::once("id,digit,vector".to_string()).chain(part.iter().enumerate().map(
            |(i, v)| {
                let cells: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                format!("m{i},{},{}", digit_of(i), cells.join(" "))
            },
        )),
    );

    struct Case<'a> {
        args: Vec<String>,
        rows: &'a [Vec<f32>],
        id: fn(usize) -> String,
        digit: bool,
    }
    let cases = [
        Case {
            args: vec![f("base.fvecs"), "--meta".into(), f("meta.csv")],
            rows: base,
            id: |i| format!("m{i}"),
            digit: true,
        },
        Case {
            args: vec![f("part.npy")],
            rows: part,
            id: |i| i.to_string(),
            digit: false,
        },
        Case {
            args: vec![f("part.ndjson")],
            rows: part,
            id: |i| format!("m{i}"),
            digit: true,
        },
        Case {
            args: vec![f("part.csv")],
            rows: part,
            id: |i| format!("m{i}"),
            digit: true,
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<&str> = vec!["--catalog", "mnist"];
        args.extend_from_slice(&create);
        args.extend(case.args.iter().map(String::as_str));
        let summary = load_ok(dir.path(), &args).await;
        assert_eq!(summary["loaded"], case.rows.len(), "{summary}");
        assert_eq!(summary["rejected"], 0);
        let server = serve_loaded(dir.path(), "mnist", case.rows.len() as u64).await;
        let r = mnist_recall(&server.api, "mnist", case.rows).await;
        println!("recall@10 after loading {:?}: {r:.4}", case.args[0]);
        assert!(r >= 0.95, "recall {r} for {:?}", case.args);
        for i in [0, 7, case.rows.len() - 1] {
            let item = server
                .api
                .get_ok(&format!(
                    "/v1/catalogs/mnist/items/{}?with_vector=true",
                    (case.id)(i)
                ))
                .await;
            let expected = if case.digit {
                json!({"digit": digit_of(i)})
            } else {
                json!({})
            };
            assert_eq!(item["attributes"], expected, "{:?} row {i}", case.args[0]);
            let vector: Vec<f32> = serde_json::from_value(item["vector"].clone()).unwrap();
            assert_eq!(vector, case.rows[i], "the stored vector of row {i}");
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superstore_loads_from_fvecs_with_its_csv_and_from_ndjson() {
    let p = fixtures::superstore();
    let vectors: Vec<Vec<f32>> = p.iter().map(|x| x.vector.clone()).collect();
    let files = tempfile::tempdir().unwrap();
    let fvecs = files.path().join("embeddings.fvecs");
    write_fvecs(&fvecs, &vectors);
    let products = fixtures::data_path("products.csv");
    let ndjson = files.path().join("items.ndjson");
    write_lines(
        &ndjson,
        p.iter().enumerate().map(|(i, x)| x.to_item(i).to_string()),
    );

    // The shop's own CSV as it is: id, name, category, sub_category, price.
    let dir = tempfile::tempdir().unwrap();
    let summary = load_ok(
        dir.path(),
        &[
            "--catalog",
            "store",
            "--create",
            "--dimension",
            "384",
            "--metric",
            "cosine",
            fvecs.to_str().unwrap(),
            "--meta",
            products.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(summary["catalog_items"], 1862, "{summary}");
    let server = serve_loaded(dir.path(), "store", 1862).await;
    let mut reader = csv::Reader::from_path(&products).unwrap();
    for (i, row) in reader.records().enumerate().step_by(97) {
        let row = row.unwrap();
        let item = server
            .api
            .get_ok(&format!("/v1/catalogs/store/items/{}", &row[0]))
            .await;
        assert_eq!(
            item["price"].as_f64().unwrap(),
            row[4].parse::<f64>().unwrap()
        );
        assert_eq!(item["category"], row[2]);
        assert_eq!(
            item["attributes"],
            json!({"name": &row[1], "sub_category": &row[3]}),
            "row {i}"
        );
        // Similar items agree with brute force over the same vectors.
        let hits = server
            .api
            .post_ok(
                "/v1/catalogs/store/recommend/similar",
                json!({"item_id": &row[0], "k": 10}),
            )
            .await;
        let scores: Vec<f32> = hits["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["score"].as_f64().unwrap() as f32)
            .collect();
        let exact = brute_force_scores(Metric::Cosine, &vectors, &vectors[i], 10, |j| j != i);
        assert!(recall(&scores, &exact) >= 0.9, "similar to row {i}");
    }
    server.stop().await;

    // The same catalog from .npy + the CSV, and from one CSV with the
    // vectors in a column: the same attributes, the same answers.
    let npy = files.path().join("embeddings.npy");
    write_npy(&npy, &vectors);
    let with_vectors = files.path().join("products_with_vectors.csv");
    {
        let mut reader = csv::Reader::from_path(&products).unwrap();
        let mut writer = csv::Writer::from_path(&with_vectors).unwrap();
        writer
            .write_record(["id", "name", "category", "sub_category", "price", "vector"])
            .unwrap();
        for (row, v) in reader.records().zip(&vectors) {
            let row = row.unwrap();
            let cells: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            let joined = cells.join(" ");
            writer
                .write_record([&row[0], &row[1], &row[2], &row[3], &row[4], joined.as_str()])
                .unwrap();
        }
        writer.flush().unwrap();
    }
    let inputs: [Vec<&str>; 2] = [
        vec![npy.to_str().unwrap(), "--meta", products.to_str().unwrap()],
        vec![with_vectors.to_str().unwrap()],
    ];
    for input in inputs {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--catalog",
            "store",
            "--create",
            "--dimension",
            "384",
            "--metric",
            "cosine",
        ];
        args.extend(&input);
        load_ok(dir.path(), &args).await;
        let server = serve_loaded(dir.path(), "store", 1862).await;
        for i in (0..p.len()).step_by(131) {
            let item = server
                .api
                .get_ok(&format!("/v1/catalogs/store/items/{}", p[i].id))
                .await;
            assert_eq!(
                item["attributes"],
                json!({"name": p[i].name, "sub_category": p[i].category}),
                "{input:?} row {i}"
            );
            let hits = server
                .api
                .post_ok(
                    "/v1/catalogs/store/recommend/similar",
                    json!({"item_id": p[i].id, "k": 10}),
                )
                .await;
            let scores: Vec<f32> = hits["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["score"].as_f64().unwrap() as f32)
                .collect();
            let exact = brute_force_scores(Metric::Cosine, &vectors, &vectors[i], 10, |j| j != i);
            assert!(
                recall(&scores, &exact) >= 0.9,
                "{input:?} similar to row {i}"
            );
        }
        server.stop().await;
    }

    // NDJSON of the API's own items: every attribute comes back as sent.
    let dir = tempfile::tempdir().unwrap();
    load_ok(
        dir.path(),
        &[
            "--catalog",
            "store",
            "--create",
            "--dimension",
            "384",
            "--metric",
            "cosine",
            ndjson.to_str().unwrap(),
        ],
    )
    .await;
    let server = serve_loaded(dir.path(), "store", 1862).await;
    for (i, x) in p.iter().enumerate().step_by(53) {
        let sent = x.to_item(i);
        let item = server
            .api
            .get_ok(&format!("/v1/catalogs/store/items/{}", x.id))
            .await;
        for key in [
            "price",
            "category",
            "brand",
            "in_stock",
            "tags",
            "attributes",
        ] {
            assert_eq!(item[key], sent[key], "{key} of row {i}");
        }
    }
    server.stop().await;
}

/// Bad rows: by default the load stops at the first, names its file, line
/// and reason, and changes nothing; with --skip-invalid it loads the rest,
/// lists the rejects and exits with 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_named_and_nothing_is_written_by_default() {
    let p = fixtures::superstore();
    let files = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let create = [
        "--catalog",
        "store",
        "--create",
        "--dimension",
        "384",
        "--metric",
        "cosine",
    ];
    // A first, good load: the catalog that bad loads must leave alone.
    let good = files.path().join("good.ndjson");
    write_lines(&good, (0..20).map(|i| p[i].to_item(i).to_string()));
    let mut args = create.to_vec();
    args.push(good.to_str().unwrap());
    load_ok(d, &args).await;

    let ndjson = files.path().join("bad.ndjson");
    let mut short = p[21].to_item(21);
    short["vector"] = json!(p[21].vector[..383]);
    write_lines(
        &ndjson,
        [
            p[20].to_item(20).to_string(),
            p[22].to_item(22).to_string(),
            short.to_string(),
            "{\"id\": \"broken\", \"vector\": [1, 2".to_string(),
            p[23].to_item(23).to_string(),
        ],
    );
    let nan_csv = files.path().join("nan.csv");
    let cells = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    write_lines(
        &nan_csv,
        [
            "id,price,vector".to_string(),
            format!("{},3.5,{}", p[24].id, cells(&p[24].vector)),
            format!("nan-row,1,{} NaN", cells(&p[25].vector[..383])),
            format!("{},2,{}", p[26].id, cells(&p[26].vector)),
        ],
    );
    let no_id = files.path().join("no_id.csv");
    write_lines(
        &no_id,
        [
            "sku,vector".to_string(),
            format!("x,{}", cells(&p[27].vector)),
        ],
    );

    let cases: [(&Path, &str); 3] = [
        (
            &ndjson,
            "line 3: vector: expected a vector of dimension 384, got 383",
        ),
        (&nan_csv, "line 3: vector"),
        (&no_id, "line 1: id: the header has no id column"),
    ];
    for (file, expected) in cases {
        let mut args = vec!["--catalog", "store"];
        args.push(file.to_str().unwrap());
        let out = load(d, &args).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains(file.to_str().unwrap()) && message.contains(expected),
            "{message}"
        );
    }
    // The broken JSON line is named too once the short vector is skipped.
    let server = TestServer::start_in(d, |_| {}).await;
    let catalog = server.api.get_ok("/v1/catalogs/store").await;
    assert_eq!(
        catalog["counts"]["items"], 20,
        "failed loads changed nothing: {catalog}"
    );
    server.stop().await;

    let rejects = files.path().join("rejects.ndjson");
    let out = load(
        d,
        &[
            "--catalog",
            "store",
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
            "--json",
            ndjson.to_str().unwrap(),
            nan_csv.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["loaded"], 5, "{summary}");
    assert_eq!(summary["rejected"], 3, "{summary}");
    let listed: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at: Vec<(String, u64)> = listed
        .iter()
        .map(|r| {
            let file = PathBuf::from(r["file"].as_str().unwrap());
            (
                file.file_name().unwrap().to_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            ("bad.ndjson".to_string(), 3),
            ("bad.ndjson".to_string(), 4),
            ("nan.csv".to_string(), 3)
        ]
    );
    assert_eq!(listed[0]["field"], "vector");
    assert!(
        listed[1]["reason"].as_str().unwrap().contains("EOF"),
        "{}",
        listed[1]
    );
    assert!(
        listed[2]["reason"].as_str().unwrap().contains("finite"),
        "{}",
        listed[2]
    );

    let server = TestServer::start_in(d, |_| {}).await;
    let catalog = server.api.get_ok("/v1/catalogs/store").await;
    assert_eq!(catalog["counts"]["items"], 25, "{catalog}");
    let item = server
        .api
        .get_ok(&format!("/v1/catalogs/store/items/{}", p[24].id))
        .await;
    assert_eq!(item["price"], 3.5);
    server.stop().await;
}

/// A load killed at any point leaves the catalog as before (or complete);
/// it opens, answers consistently, and the interrupted generation's
/// records and snapshot are cleaned up. Loads are idempotent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_load_leaves_the_catalog_whole() {
    let (base, _) = fixtures::mnist();
    let files = tempfile::tempdir().unwrap();
    let fvecs = files.path().join("base.fvecs");
    write_fvecs(&fvecs, base);
    let small = files.path().join("small.fvecs");
    write_fvecs(&small, &base[..100]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let create = [
        "--catalog",
        "mnist",
        "--create",
        "--dimension",
        "784",
        "--metric",
        "l2",
    ];
    let mut args = create.to_vec();
    args.push(small.to_str().unwrap());
    load_ok(d, &args).await;

    let mut interrupted = 0;
    for delay_ms in [150u64, 600, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_recstore"))
            .args(["load", "--no-progress", "--data-dir"])
            .arg(d)
            .args(["--catalog", "mnist"])
            .arg(&fvecs)
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        let server = TestServer::start_in(d, |_| {}).await;
        let catalog = server.api.get_ok("/v1/catalogs/mnist").await;
        let items = catalog["counts"]["items"].as_u64().unwrap();
        if finished {
            assert_eq!(items, 3000);
        } else {
            interrupted += 1;
            assert!(
                items == 100 || items == 3000,
                "half-visible load: {catalog}"
            );
        }
        // Consistent: each item is found by its own vector.
        for i in (0..items as usize).step_by(23) {
            let hits = server
                .api
                .search(
                    "mnist",
                    json!({"vector": base[i], "k": 1, "with_attributes": false}),
                )
                .await;
            assert_eq!(hits[0]["score"].as_f64().unwrap(), 0.0, "row {i}");
        }
        server.stop().await;
        // Only the live generation keeps a snapshot.
        let snapshots: Vec<_> = std::fs::read_dir(d.join("snapshots")).unwrap().collect();
        assert_eq!(snapshots.len(), 1);
    }
    assert!(interrupted > 0, "no load was interrupted; lower the delays");

    // Twice the same load: the same catalog.
    let mut args = vec!["--catalog", "mnist"];
    args.push(fvecs.to_str().unwrap());
    let first = load_ok(d, &args).await;
    let second = load_ok(d, &args).await;
    assert_eq!(first["catalog_items"], 3000);
    assert_eq!(second["catalog_items"], 3000);
    let server = serve_loaded(d, "mnist", 3000).await;
    assert!(mnist_recall(&server.api, "mnist", base).await >= 0.95);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_refuses_a_data_dir_held_by_a_server_and_bad_flags() {
    let files = tempfile::tempdir().unwrap();
    let input = files.path().join("x.ndjson");
    write_lines(
        &input,
        [json!({"id": "a", "vector": [1.0, 0.0]}).to_string()],
    );
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let out = load(
        dir.path(),
        &[
            "--catalog",
            "c",
            "--create",
            "--dimension",
            "2",
            "--metric",
            "l2",
            input.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    server.stop().await;

    for (args, expected) in [
        (vec!["--catalog", "c"], "does not exist"),
        (
            vec!["--catalog", "c", "--create", "--dimension", "2"],
            "--metric",
        ),
        (
            vec!["--catalog", "c", "--format", "parquet"],
            "not ndjson, csv, npy or fvecs",
        ),
    ] {
        let mut args = args.clone();
        args.push(input.to_str().unwrap());
        let out = load(dir.path(), &args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let unknown = files.path().join("x.parquet");
    std::fs::write(&unknown, b"PAR1").unwrap();
    let out = load(
        dir.path(),
        &[
            "--catalog",
            "c",
            "--create",
            "--dimension",
            "2",
            "--metric",
            "l2",
            unknown.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--format"), "{}", stderr(&out));
}

/// The online bulk path: an NDJSON stream is loaded in batches while the
/// server runs; bad lines are reported by number and the rest loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_bulk_streams_ndjson_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.limits.max_body_bytes = 64 * 1024).await;
    let api = &server.api;
    api.create_catalog("store", json!({"dimension": 384, "metric": "cosine"}))
        .await;
    let p = fixtures::superstore();
    let mut lines: Vec<String> = p
        .iter()
        .enumerate()
        .map(|(i, x)| x.to_item(i).to_string())
        .collect();
    // Line 6: wrong dimension; line 11: unknown field; line 16: broken
    // JSON; line 21: longer than the 64 KiB limit; plus a blank line.
    lines[5] = json!({"id": "bad-dim", "vector": [1.0, 2.0]}).to_string();
    lines[10] = json!({"id": "bad-field", "vector": p[0].vector, "colour": "red"}).to_string();
    lines[15] = "{\"id\": ".to_string();
    lines[20] =
        json!({"id": "huge", "vector": p[0].vector, "attributes": {"blob": "x".repeat(70_000)}})
            .to_string();
    lines.insert(30, String::new());
    let body = lines.join("\n");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/v1/catalogs/store/items:bulk", api.url))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["loaded"], 1862 - 4, "{summary}");
    assert_eq!(summary["rejected"], 4);
    let rejects = summary["rejects"].as_array().unwrap();
    let at: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        at,
        [
            (6, "wrong_dimension"),
            (11, "unknown_field"),
            (16, "malformed_json"),
            (21, "payload_too_large")
        ],
        "{summary}"
    );
    assert_eq!(rejects[0]["field"], "vector");
    let catalog = api.get_ok("/v1/catalogs/store").await;
    assert_eq!(catalog["counts"]["items"], 1862 - 4);
    let hits = api
        .search("store", json!({"vector": p[100].vector, "k": 1}))
        .await;
    assert_eq!(hits[0]["id"], p[100].id);

    let wrong = client
        .post(format!("{}/v1/catalogs/store/items:bulk", api.url))
        .header("content-type", "text/csv")
        .body("id,vector\n")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 415);
    let missing = client
        .post(format!("{}/v1/catalogs/nope/items:bulk", api.url))
        .header("content-type", "application/x-ndjson")
        .body("{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

/// `--users` loads users the same way: NDJSON of the API's users, or a CSV
/// whose extra columns become attributes; items are left as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_load_from_ndjson_and_csv() {
    let p = fixtures::superstore();
    let files = tempfile::tempdir().unwrap();
    let items = files.path().join("items.ndjson");
    write_lines(&items, (0..50).map(|i| p[i].to_item(i).to_string()));
    let users = files.path().join("users.ndjson");
    write_lines(
        &users,
        (0..30).map(|i| {
            json!({"id": format!("u{i}"), "vector": p[i].vector, "attributes": {"segment": if i % 2 == 0 {"b2b"} else {"b2c"}}})
                .to_string()
        }),
    );
    let csv = files.path().join("more_users.csv");
    write_lines(
        &csv,
        [
            "id,segment,city".to_string(),
            "u100,b2c,Lyon".into(),
            "u101,,Oslo".into(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    load_ok(
        d,
        &[
            "--catalog",
            "store",
            "--create",
            "--dimension",
            "384",
            "--metric",
            "cosine",
            items.to_str().unwrap(),
        ],
    )
    .await;
    let summary = load_ok(
        d,
        &[
            "--catalog",
            "store",
            "--users",
            users.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(summary["kind"], "users");
    assert_eq!(summary["loaded"], 32, "{summary}");
    assert_eq!(summary["catalog_users"], 32);
    assert_eq!(summary["catalog_items"], 50);
    let server = serve_loaded(d, "store", 50).await;
    let u3 = server.api.get_ok("/v1/catalogs/store/users/u3").await;
    assert_eq!(u3["attributes"], json!({"segment": "b2c"}));
    let stored: Vec<f32> = serde_json::from_value(u3["vector"].clone()).unwrap();
    let norm: f32 = p[3].vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (a, b) in stored.iter().zip(&p[3].vector) {
        assert!((a - b / norm).abs() < 1e-5);
    }
    let u101 = server.api.get_ok("/v1/catalogs/store/users/u101").await;
    assert_eq!(u101["vector"], Value::Null);
    assert_eq!(u101["attributes"], json!({"city": "Oslo"}));
    let hits = server
        .api
        .search("store", json!({"vector": p[7].vector, "k": 1}))
        .await;
    assert_eq!(hits[0]["id"], p[7].id);
    server.stop().await;
}

/// `load --events`: a shop's order history as CSV (and NDJSON), validated
/// like the API's events, deduplicated by `event_id` on a re-run, creating
/// the customers; the history survives a later items load (a new
/// generation); a bad row loads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_history_loads_as_events_and_survives_an_items_reload() {
    let p = fixtures::superstore();
    let files = tempfile::tempdir().unwrap();
    let fvecs = files.path().join("embeddings.fvecs");
    write_fvecs(
        &fvecs,
        &p.iter().map(|x| x.vector.clone()).collect::<Vec<_>>(),
    );
    let products = fixtures::data_path("products.csv");
    let dir = tempfile::tempdir().unwrap();
    let items_args = [
        "--catalog",
        "store",
        "--create",
        "--dimension",
        "384",
        "--metric",
        "cosine",
        fvecs.to_str().unwrap(),
        "--meta",
        products.to_str().unwrap(),
    ];
    load_ok(dir.path(), &items_args).await;

    // The orders as an events CSV, one event id per order line.
    let mut reader = csv::Reader::from_path(fixtures::data_path("orders.csv")).unwrap();
    let mut lines = vec!["user_id,item_id,type,timestamp,order_id,event_id,quantity".to_string()];
    let mut customers = std::collections::BTreeSet::new();
    let mut line_ids = std::collections::BTreeSet::new();
    for r in reader.records() {
        let r = r.unwrap();
        customers.insert(r[1].to_string());
        // An order listing a product twice is one event.
        line_ids.insert(format!("{}/{}", &r[0], &r[3]));
        lines.push(format!(
            "{},{},purchase,{}T12:00:00Z,{},{}/{},{}",
            &r[1], &r[3], &r[2], &r[0], &r[0], &r[3], &r[4]
        ));
    }
    let rows = lines.len() as u64 - 1;
    let events_csv = files.path().join("orders-events.csv");
    write_lines(&events_csv, lines.clone());
    let summary = load_ok(
        dir.path(),
        &[
            "--catalog",
            "store",
            "--events",
            events_csv.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(summary["kind"], "events");
    assert_eq!(summary["rows"], rows);
    assert_eq!(summary["loaded"], line_ids.len() as u64, "{summary}");
    assert_eq!(summary["duplicates"], rows - line_ids.len() as u64);
    assert_eq!(summary["new_users"], customers.len() as u64);
    assert_eq!(summary["unknown_items"], 0);
    // Again: every event id is known, nothing is added.
    let again = load_ok(
        dir.path(),
        &[
            "--catalog",
            "store",
            "--events",
            events_csv.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(again["loaded"], 0, "{again}");
    assert_eq!(again["duplicates"], rows);
    // NDJSON too, with an unknown item kept.
    let ndjson = files.path().join("more.ndjson");
    write_lines(
        &ndjson,
        [json!({"user_id": "web-1", "item_id": "NOT-YET", "type": "view"}).to_string()],
    );
    let more = load_ok(
        dir.path(),
        &["--catalog", "store", "--events", ndjson.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        (more["loaded"].as_u64(), more["unknown_items"].as_u64()),
        (Some(1), Some(1))
    );

    // A bad row: exit 1, named, nothing written.
    let bad = files.path().join("bad.csv");
    let mut bad_lines = lines[..3].to_vec();
    bad_lines[2] = bad_lines[2]
        .replace(",purchase,", ",like,")
        .replace("/", "/bad-");
    bad_lines[1] = bad_lines[1].replace("/", "/new-");
    write_lines(&bad, bad_lines);
    let out = load(
        dir.path(),
        &["--catalog", "store", "--events", bad.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("line 3") && err.contains("type") && err.contains("\"like\""),
        "{err}"
    );

    // Serve: bought-together evidence is there; reload the items (a new
    // generation) and it must be exactly the same.
    let anchor = "OFF-BI-10004728";
    let ask = json!({"item_ids": [anchor], "k": 30, "with_attributes": false});
    let server = serve_loaded(dir.path(), "store", 1862).await;
    let (status, before) = server
        .api
        .post("/v1/catalogs/store/recommend/cross-sell", ask.clone())
        .await;
    assert_eq!(status.as_u16(), 200, "{before}");
    assert!(before["hits"][0]["reason"] == "bought_together", "{before}");
    server
        .api
        .put(
            "/v1/catalogs/store/settings",
            json!({"upsell_affinity": 0.25}),
        )
        .await;
    // An experiment and its results travel with the catalog too (#18).
    let (status, _) = server
        .api
        .put(
            "/v1/catalogs/store/experiments/reload",
            json!({"surface": "cross-sell", "unit": "user", "control": "a",
                   "primary_metric": "ctr",
                   "arms": [{"name": "a", "weight": 1, "strategy": {"kind": "default"}},
                            {"name": "b", "weight": 1, "strategy": {"kind": "trending"}}]}),
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    let shown = server
        .api
        .post_ok(
            "/v1/catalogs/store/recommend/cross-sell",
            json!({"item_ids": [anchor], "user_id": "shopper", "k": 5}),
        )
        .await;
    let results_before = server
        .api
        .get_ok("/v1/catalogs/store/experiments/reload/results")
        .await;
    assert_eq!(results_before["sample_size"], 1);
    let users_before = server.api.get_ok("/v1/catalogs/store").await["counts"]["users"].clone();
    assert_eq!(
        users_before,
        customers.len() as u64 + 1,
        "no user from the bad load"
    );
    server.stop().await;
    load_ok(dir.path(), &items_args).await;
    let server = serve_loaded(dir.path(), "store", 1862).await;
    let (_, after) = server
        .api
        .post("/v1/catalogs/store/recommend/cross-sell", ask)
        .await;
    assert_eq!(before["hits"], after["hits"]);
    let settings = server.api.get_ok("/v1/catalogs/store/settings").await;
    assert_eq!(settings["upsell_affinity"], 0.25);
    let results_after = server
        .api
        .get_ok("/v1/catalogs/store/experiments/reload/results")
        .await;
    assert_eq!(results_after, results_before);
    let id = shown["recommendation_id"].as_str().unwrap();
    server
        .api
        .get_ok(&format!("/v1/catalogs/store/recommendations/{id}"))
        .await;
    server.stop().await;
}

/// A shop with no embeddings (#17): Superstore's products as a CSV
/// without vectors, loaded into a catalog with learned vectors, then its
/// orders as events; the server trains the model at start, indexes its
/// factors, and answers similar items from behaviour alone. A catalog of
/// supplied vectors refuses the same CSV, naming the field.
#[tokio::test]
async fn a_catalog_with_learned_vectors_loads_from_a_product_csv_and_the_order_history() {
    let files = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let products = fixtures::data_path("products.csv");
    let products = products.to_str().unwrap();
    let refused = load(
        dir.path(),
        &[
            "--catalog",
            "plain",
            "--create",
            "--dimension",
            "8",
            "--metric",
            "cosine",
            products,
        ],
    )
    .await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("vector"), "{}", stderr(&refused));
    let summary = load_ok(
        dir.path(),
        &[
            "--catalog",
            "store",
            "--create",
            "--vectors",
            "learned",
            "--dimension",
            "16",
            products,
        ],
    )
    .await;
    assert_eq!(summary["catalog_items"], 1862, "{summary}");
    let mut reader = csv::Reader::from_path(fixtures::data_path("orders.csv")).unwrap();
    let mut lines = vec!["user_id,item_id,type,timestamp,order_id".to_string()];
    let mut ordered = std::collections::BTreeSet::new();
    for r in reader.records() {
        let r = r.unwrap();
        ordered.insert(r[3].to_string());
        lines.push(format!(
            "{},{},purchase,{}T12:00:00Z,{}",
            &r[1], &r[3], &r[2], &r[0]
        ));
    }
    let events_csv = files.path().join("orders-events.csv");
    write_lines(&events_csv, lines);
    load_ok(
        dir.path(),
        &[
            "--catalog",
            "store",
            "--events",
            events_csv.to_str().unwrap(),
        ],
    )
    .await;

    let server = TestServer::start_in(dir.path(), |s| s.index.model_check_secs = 1).await;
    let api = server.api.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let catalog = api.get_ok("/v1/catalogs/store").await;
        let status = api.get_ok("/v1/catalogs/store/model").await;
        if status["model"]["factors"] == json!(16)
            && catalog["counts"]["items_without_vectors"].as_u64() < Some(1862)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no learned vectors in time: {status} {catalog}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let catalog = api.get_ok("/v1/catalogs/store").await;
    assert_eq!(catalog["vectors"], "learned", "{catalog}");
    // Products nobody ordered have no factors.
    let products: Vec<(String, String)> =
        csv::Reader::from_path(fixtures::data_path("products.csv"))
            .unwrap()
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_string(), r[2].to_string())
            })
            .collect();
    let never: Vec<&(String, String)> = products
        .iter()
        .filter(|(id, _)| !ordered.contains(id))
        .collect();
    assert_eq!(
        catalog["counts"]["items_without_vectors"],
        json!(never.len()),
        "{catalog}"
    );
    let ask = |item: String| {
        let api = api.clone();
        async move {
            api.post_ok(
                "/v1/catalogs/store/recommend/similar",
                json!({"item_id": item, "k": 5}),
            )
            .await["hits"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let anchor = ordered.iter().next().unwrap().clone();
    let hits = ask(anchor.clone()).await;
    assert_eq!(hits.len(), 5, "{hits:?}");
    for hit in &hits {
        assert_eq!(hit["reason"], "similar", "{hits:?}");
        assert_ne!(hit["id"], json!(anchor));
        assert!(
            ordered.contains(hit["id"].as_str().unwrap()),
            "only learned items: {hits:?}"
        );
    }
    if let Some((id, category)) = never.first() {
        let hits = ask(id.clone()).await;
        for hit in &hits {
            assert_eq!(hit["reason"], "trending", "{hits:?}");
            assert_eq!(hit["category"], json!(category), "{hits:?}");
        }
    }
    server.stop().await;
}
