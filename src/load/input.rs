//! Input files of `recstore load`: NDJSON (one API item or user per line),
//! CSV (columns, the vector as a JSON array or space-separated numbers),
//! and `.npy` / `.fvecs` vectors with an optional CSV of ids and
//! attributes (row i of the CSV describes vector i).
//!
//! Every row becomes the API's wire type (`ItemWire` / `UserWire`), so a
//! loaded row is validated by exactly the code that validates an HTTP one.
//! A row that cannot even be read (broken JSON, a CSV row with the wrong
//! number of fields, an unparsable number) is a [`Rejection`] naming its
//! file, line and reason; so is a file that cannot be read as its format
//! (no `id` column, a bad `.npy` header), located at its first line.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::api::models::{EventKindWire, EventWire, ItemWire, UserWire};
use crate::model::MAX_DIMENSION;

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Npy,
    Fvecs,
}

impl Format {
    /// The format named by `--format`.
    pub fn parse(raw: &str) -> Option<Format> {
        match raw.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "npy" => Some(Format::Npy),
            "fvecs" => Some(Format::Fvecs),
            _ => None,
        }
    }

    /// The format a file's extension implies.
    pub fn from_path(path: &Path) -> Option<Format> {
        Format::parse(path.extension()?.to_str()?)
    }

    fn is_binary(self) -> bool {
        matches!(self, Format::Npy | Format::Fvecs)
    }
}

/// Where a row came from: a line of a text file, or a row (0-based, the
/// vector's index) of a binary one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub row: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        Ok(())
    }
}

/// A row (or a whole file) that cannot be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub location: Location,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {field}: {}", self.location, self.reason),
            None => write!(f, "{}: {}", self.location, self.reason),
        }
    }
}

/// A record type rows can become: the API's item, user or event.
pub trait Record: DeserializeOwned {
    /// Whether CSV rows need an `id` column (events have none).
    const KEYED: bool = true;

    /// Builds the record from CSV-style columns. `Err` is (field, reason).
    fn from_columns(
        id: Option<String>,
        vector: Option<Vec<f32>>,
        columns: Vec<(String, String)>,
    ) -> Result<Self, (String, String)>;
}

fn bad(field: &str, reason: impl Into<String>) -> (String, String) {
    (field.to_string(), reason.into())
}

impl Record for ItemWire {
    fn from_columns(
        id: Option<String>,
        vector: Option<Vec<f32>>,
        columns: Vec<(String, String)>,
    ) -> Result<Self, (String, String)> {
        let mut item = ItemWire {
            id: id.ok_or_else(|| bad("id", "missing"))?,
            // Missing is for the catalog to judge: an error with supplied
            // vectors, the rule with learned ones.
            vector,
            vector_b64: None,
            price: None,
            category: None,
            brand: None,
            in_stock: None,
            tags: Vec::new(),
            price_tier: None,
            attributes: Map::new(),
        };
        for (name, value) in columns {
            // An empty cell is an absent value.
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "price" => {
                    item.price = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| bad("price", format!("{value:?} is not a number")))?,
                    )
                }
                "category" => item.category = Some(value),
                "brand" => item.brand = Some(value),
                "in_stock" => item.in_stock = Some(parse_bool("in_stock", &value)?),
                "tags" => item.tags = parse_tags(&value)?,
                "price_tier" => {
                    item.price_tier = Some(value.trim().parse().map_err(|_| {
                        bad("price_tier", format!("{value:?} is not a tier number"))
                    })?)
                }
                _ => {
                    item.attributes.insert(name, Value::String(value));
                }
            }
        }
        Ok(item)
    }
}

impl Record for UserWire {
    fn from_columns(
        id: Option<String>,
        vector: Option<Vec<f32>>,
        columns: Vec<(String, String)>,
    ) -> Result<Self, (String, String)> {
        let mut attributes = Map::new();
        for (name, value) in columns {
            if !value.is_empty() {
                attributes.insert(name, Value::String(value));
            }
        }
        Ok(UserWire {
            id: id.ok_or_else(|| bad("id", "missing"))?,
            vector,
            vector_b64: None,
            attributes,
        })
    }
}

/// The columns an events CSV may have.
const EVENT_COLUMNS: &str = "user_id, item_id, type, timestamp, session_id, order_id, quantity, price, event_id, recommendation_id, value";

impl Record for EventWire {
    const KEYED: bool = false;

    fn from_columns(
        id: Option<String>,
        vector: Option<Vec<f32>>,
        columns: Vec<(String, String)>,
    ) -> Result<Self, (String, String)> {
        if id.is_some() {
            return Err(bad(
                "id",
                "events have no id column; a client event id goes in event_id",
            ));
        }
        if vector.is_some() {
            return Err(bad("vector", "events have no vector"));
        }
        let (mut user_id, mut item_id, mut kind): (_, _, Option<EventKindWire>) =
            (None, None, None);
        let mut event = EventWire {
            user_id: String::new(),
            item_id: String::new(),
            kind: EventKindWire::View,
            timestamp: None,
            session_id: None,
            order_id: None,
            quantity: None,
            price: None,
            event_id: None,
            recommendation_id: None,
            value: None,
        };
        for (name, value) in columns {
            // An empty cell is an absent value.
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "user_id" => user_id = Some(value),
                "item_id" => item_id = Some(value),
                "type" => {
                    // The wire enum decides the names, as for the API.
                    kind = Some(
                        serde_json::from_value(Value::String(value.trim().to_string())).map_err(
                            |_| {
                                bad(
                                    "type",
                                    format!(
                                        "{value:?} is not view, click, add_to_cart, purchase, rating, dislike, own or return"
                                    ),
                                )
                            },
                        )?,
                    )
                }
                "timestamp" => event.timestamp = Some(value),
                "session_id" => event.session_id = Some(value),
                "order_id" => event.order_id = Some(value),
                "quantity" => {
                    event.quantity =
                        Some(value.trim().parse().map_err(|_| {
                            bad("quantity", format!("{value:?} is not a whole number"))
                        })?)
                }
                "price" => {
                    event.price = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| bad("price", format!("{value:?} is not a number")))?,
                    )
                }
                "event_id" => event.event_id = Some(value),
                "recommendation_id" => event.recommendation_id = Some(value),
                "value" => {
                    event.value =
                        Some(value.trim().parse().map_err(|_| {
                            bad("value", format!("{value:?} is not a number of stars"))
                        })?)
                }
                other => {
                    return Err(bad(
                        other,
                        format!("unknown column; events have {EVENT_COLUMNS}"),
                    ))
                }
            }
        }
        event.user_id = user_id.ok_or_else(|| bad("user_id", "missing"))?;
        event.item_id = item_id.ok_or_else(|| bad("item_id", "missing"))?;
        event.kind = kind.ok_or_else(|| bad("type", "missing"))?;
        Ok(event)
    }
}

fn parse_bool(field: &str, value: &str) -> Result<bool, (String, String)> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(field, format!("{value:?} is not true or false"))),
    }
}

/// Tags as a JSON array of strings, or separated by `;`.
fn parse_tags(value: &str) -> Result<Vec<String>, (String, String)> {
    let trimmed = value.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| bad("tags", format!("not a JSON array of strings: {e}")));
    }
    Ok(trimmed
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect())
}

/// A vector cell: a JSON array, or numbers separated by spaces or commas.
fn parse_vector(value: &str) -> Result<Vec<f32>, (String, String)> {
    let trimmed = value.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| bad("vector", format!("not a JSON array of numbers: {e}")));
    }
    trimmed
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f32>()
                .map_err(|_| bad("vector", format!("{s:?} is not a number")))
        })
        .collect()
}

/// What reading one file produced: each row in order, good or rejected.
pub type RowResult<R> = Result<(Location, R), Rejection>;

/// Reads every row of `path` (with `meta`, the CSV describing the rows of
/// a binary file), calling `row` for each (it returns whether to go on)
/// and `progress` with bytes read. `Err` only for I/O errors; everything
/// about the content is a rejection.
pub fn read_file<R: Record>(
    path: &Path,
    format: Format,
    meta: Option<&Path>,
    progress: &mut dyn FnMut(u64),
    row: &mut dyn FnMut(RowResult<R>) -> bool,
) -> std::io::Result<()> {
    match format {
        Format::Ndjson => read_ndjson(path, progress, row),
        Format::Csv => read_csv(path, progress, row),
        Format::Npy | Format::Fvecs => read_vectors(path, format, meta, progress, row),
    }
}

fn at_line(path: &Path, line: u64) -> Location {
    Location {
        file: path.to_path_buf(),
        line: Some(line),
        row: None,
    }
}

fn at_row(path: &Path, row: u64) -> Location {
    Location {
        file: path.to_path_buf(),
        line: None,
        row: Some(row),
    }
}

fn reject(location: Location, field: Option<String>, reason: impl Into<String>) -> Rejection {
    Rejection {
        location,
        field,
        reason: reason.into(),
    }
}

fn read_ndjson<R: Record>(
    path: &Path,
    progress: &mut dyn FnMut(u64),
    row: &mut dyn FnMut(RowResult<R>) -> bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        progress(n as u64);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let location = at_line(path, number);
        let parsed = match serde_json::from_str::<R>(text) {
            Ok(record) => Ok((location, record)),
            Err(e) => Err(reject(location, None, format!("not a valid record: {e}"))),
        };
        if !row(parsed) {
            return Ok(());
        }
    }
}

/// Splits a CSV header into the id column, the vector column and the rest.
struct Columns {
    id: Option<usize>,
    vector: Option<usize>,
    names: Vec<String>,
}

impl Columns {
    fn new(header: &csv::StringRecord) -> Columns {
        let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
        Columns {
            id: names.iter().position(|n| n == "id"),
            vector: names.iter().position(|n| n == "vector"),
            names,
        }
    }

    fn others(&self, record: &csv::StringRecord) -> Vec<(String, String)> {
        record
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.id && Some(*i) != self.vector)
            .map(|(i, v)| (self.names[i].clone(), v.to_string()))
            .collect()
    }
}

fn csv_reader(path: &Path) -> std::io::Result<csv::Reader<File>> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(File::open(path)?))
}

fn read_csv<R: Record>(
    path: &Path,
    progress: &mut dyn FnMut(u64),
    row: &mut dyn FnMut(RowResult<R>) -> bool,
) -> std::io::Result<()> {
    let mut reader = csv_reader(path)?;
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            row(Err(reject(
                at_line(path, 1),
                None,
                format!("unreadable header: {e}"),
            )));
            return Ok(());
        }
    };
    let columns = Columns::new(&header);
    if R::KEYED && columns.id.is_none() {
        row(Err(reject(
            at_line(path, 1),
            Some("id".into()),
            format!(
                "the header has no id column (columns: {})",
                columns.names.join(", ")
            ),
        )));
        return Ok(());
    }
    let mut record = csv::StringRecord::new();
    let mut consumed = reader.position().byte();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let location = at_line(path, line);
                let id = columns.id.map(|i| record[i].to_string());
                let vector = match columns.vector.map(|i| parse_vector(&record[i])) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err((field, reason))) => {
                        if !row(Err(reject(location, Some(field), reason))) {
                            return Ok(());
                        }
                        continue;
                    }
                };
                if !row(R::from_columns(id, vector, columns.others(&record))
                    .map(|r| (location.clone(), r))
                    .map_err(|(field, reason)| reject(location, Some(field), reason)))
                {
                    return Ok(());
                }
            }
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(std::io::Error::other(e.to_string()));
                }
                let line = e.position().map_or(line, |p| p.line());
                if !row(Err(reject(at_line(path, line), None, e.to_string()))) {
                    return Ok(());
                }
            }
        }
        let now = reader.position().byte();
        progress(now - consumed);
        consumed = now;
    }
}

/// The ids and columns of each row of a meta CSV, or why it is unusable.
type MetaRows = Result<Vec<(Option<String>, Vec<(String, String)>)>, Rejection>;

fn read_meta(path: &Path) -> std::io::Result<MetaRows> {
    let mut reader = csv_reader(path)?;
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Ok(Err(reject(
                at_line(path, 1),
                None,
                format!("unreadable header: {e}"),
            )))
        }
    };
    let columns = Columns::new(&header);
    if columns.vector.is_some() {
        return Ok(Err(reject(
            at_line(path, 1),
            Some("vector".into()),
            "a meta CSV describes binary vectors and must not have a vector column",
        )));
    }
    let mut rows = Vec::new();
    for result in reader.records() {
        match result {
            Ok(record) => rows.push((
                columns.id.map(|i| record[i].to_string()),
                columns.others(&record),
            )),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Ok(Err(reject(at_line(path, line), None, e.to_string())));
            }
        }
    }
    Ok(Ok(rows))
}

/// Reads an `.npy` or `.fvecs` file; with `meta`, row i takes its id and
/// attributes from the CSV's row i; without, its id is its row number.
fn read_vectors<R: Record>(
    path: &Path,
    format: Format,
    meta: Option<&Path>,
    progress: &mut dyn FnMut(u64),
    row: &mut dyn FnMut(RowResult<R>) -> bool,
) -> std::io::Result<()> {
    debug_assert!(format.is_binary());
    let meta_rows = match meta {
        None => None,
        Some(m) => match read_meta(m)? {
            Ok(rows) => Some(rows),
            Err(rejection) => {
                row(Err(rejection));
                return Ok(());
            }
        },
    };
    let mut vectors = match format {
        Format::Npy => match NpyReader::open(path)? {
            Ok(r) => VectorSource::Npy(r),
            Err(reason) => {
                row(Err(reject(at_row(path, 0), None, reason)));
                return Ok(());
            }
        },
        _ => VectorSource::Fvecs(BufReader::with_capacity(1 << 20, File::open(path)?)),
    };
    let mut index = 0u64;
    loop {
        let next = match vectors.next(progress) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                row(Err(reject(at_row(path, index), None, e.to_string())));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(vector) = next else { break };
        let location = at_row(path, index);
        let (id, columns) = match &meta_rows {
            None => (Some(index.to_string()), Vec::new()),
            Some(rows) => match rows.get(index as usize) {
                Some((id, columns)) => (
                    Some(id.clone().unwrap_or_else(|| index.to_string())),
                    columns.clone(),
                ),
                None => {
                    row(Err(reject(
                        location,
                        None,
                        format!(
                            "{} has more vectors than {} has rows ({})",
                            path.display(),
                            meta.expect("meta rows come from a meta file").display(),
                            rows.len()
                        ),
                    )));
                    return Ok(());
                }
            },
        };
        if !row(R::from_columns(id, Some(vector), columns)
            .map(|r| (location.clone(), r))
            .map_err(|(field, reason)| reject(location, Some(field), reason)))
        {
            return Ok(());
        }
        index += 1;
    }
    if let Some(rows) = &meta_rows {
        if rows.len() as u64 != index {
            row(Err(reject(
                at_row(path, index),
                None,
                format!(
                    "{} has {index} vectors but {} has {} rows",
                    path.display(),
                    meta.expect("meta rows come from a meta file").display(),
                    rows.len()
                ),
            )));
        }
    }
    Ok(())
}

enum VectorSource {
    Npy(NpyReader),
    Fvecs(BufReader<File>),
}

impl VectorSource {
    /// The next vector; `InvalidData` when the file is malformed.
    fn next(&mut self, progress: &mut dyn FnMut(u64)) -> std::io::Result<Option<Vec<f32>>> {
        match self {
            VectorSource::Npy(r) => r.next(progress),
            VectorSource::Fvecs(r) => {
                let mut dim = [0u8; 4];
                match read_exact_or_eof(r, &mut dim)? {
                    0 => return Ok(None),
                    4 => {}
                    _ => return Err(invalid("truncated dimension")),
                }
                let d = i32::from_le_bytes(dim);
                if d <= 0 || d as usize > MAX_DIMENSION {
                    return Err(invalid(format!(
                        "dimension {d} is not in 1..={MAX_DIMENSION}: not an .fvecs file?"
                    )));
                }
                let mut bytes = vec![0u8; d as usize * 4];
                if read_exact_or_eof(r, &mut bytes)? != bytes.len() {
                    return Err(invalid("truncated vector"));
                }
                progress(4 + bytes.len() as u64);
                Ok(Some(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ))
            }
        }
    }
}

fn invalid(reason: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into())
}

/// Fills `buf` unless the input ends first; returns the bytes read.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Element types of `.npy` files we read.
#[derive(Debug, Clone, Copy)]
enum NpyType {
    F16,
    F32,
    F64,
}

/// A 2-D, C-order, little-endian float `.npy` file, read row by row.
struct NpyReader {
    input: BufReader<File>,
    dtype: NpyType,
    rows: u64,
    cols: usize,
    read: u64,
}

impl NpyReader {
    /// Opens the file; the inner `Err` says why it is not a usable `.npy`.
    fn open(path: &Path) -> std::io::Result<Result<NpyReader, String>> {
        let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut magic = [0u8; 8];
        if read_exact_or_eof(&mut input, &mut magic)? != 8 || &magic[..6] != b"\x93NUMPY" {
            return Ok(Err("not an .npy file (bad magic)".into()));
        }
        let header_len = match magic[6] {
            1 => {
                let mut b = [0u8; 2];
                input.read_exact(&mut b)?;
                u16::from_le_bytes(b) as usize
            }
            2 | 3 => {
                let mut b = [0u8; 4];
                input.read_exact(&mut b)?;
                u32::from_le_bytes(b) as usize
            }
            v => return Ok(Err(format!("unsupported .npy version {v}"))),
        };
        if header_len > 1 << 20 {
            return Ok(Err("implausible .npy header length".into()));
        }
        let mut header = vec![0u8; header_len];
        input.read_exact(&mut header)?;
        let header = String::from_utf8_lossy(&header).to_string();
        Ok(
            parse_npy_header(&header).map(|(dtype, rows, cols)| NpyReader {
                input,
                dtype,
                rows,
                cols,
                read: 0,
            }),
        )
    }

    fn next(&mut self, progress: &mut dyn FnMut(u64)) -> std::io::Result<Option<Vec<f32>>> {
        if self.read == self.rows {
            return Ok(None);
        }
        let width = match self.dtype {
            NpyType::F16 => 2,
            NpyType::F32 => 4,
            NpyType::F64 => 8,
        };
        let mut bytes = vec![0u8; self.cols * width];
        if read_exact_or_eof(&mut self.input, &mut bytes)? != bytes.len() {
            return Err(invalid(format!(
                "truncated: the header promises {} rows",
                self.rows
            )));
        }
        self.read += 1;
        progress(bytes.len() as u64);
        Ok(Some(match self.dtype {
            NpyType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            NpyType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            NpyType::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        }))
    }
}

/// Parses the Python-literal header of an `.npy` file, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (9000, 784), }`.
fn parse_npy_header(header: &str) -> Result<(NpyType, u64, usize), String> {
    let value_after = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = &header[at + key.len() + 2..];
        Some(rest[rest.find(':')? + 1..].trim_start())
    };
    let descr = value_after("descr").ok_or("the .npy header has no descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("unreadable descr in the .npy header")?;
    let dtype = match descr {
        "<f2" | "=f2" => NpyType::F16,
        "<f4" | "=f4" => NpyType::F32,
        "<f8" | "=f8" => NpyType::F64,
        other => {
            return Err(format!(
                "unsupported .npy dtype {other:?} (little-endian float16, float32 or float64 only)"
            ))
        }
    };
    let fortran = value_after("fortran_order").ok_or("the .npy header has no fortran_order")?;
    if !fortran.starts_with("False") {
        return Err("Fortran-order .npy arrays are not supported (save with C order)".into());
    }
    let shape = value_after("shape").ok_or("the .npy header has no shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("unreadable shape in the .npy header")?;
    let dims: Vec<u64> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| format!("bad .npy shape ({inner})"))
        })
        .collect::<Result<_, _>>()?;
    match dims.as_slice() {
        [rows, cols] if *cols >= 1 && (*cols as usize) <= MAX_DIMENSION => {
            Ok((dtype, *rows, *cols as usize))
        }
        _ => Err(format!(
            "the .npy array must be 2-D (rows, dimension), got shape ({inner})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_parse() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (9000, 784), }";
        assert!(matches!(parse_npy_header(h), Ok((NpyType::F32, 9000, 784))));
        let h = "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2)}";
        assert!(matches!(parse_npy_header(h), Ok((NpyType::F16, 3, 2))));
        for bad in [
            "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }",
            "{}",
        ] {
            assert!(parse_npy_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_cells_parse() {
        assert_eq!(parse_vector("[1, 2.5]").unwrap(), vec![1.0, 2.5]);
        assert_eq!(parse_vector(" 1 2.5  -3 ").unwrap(), vec![1.0, 2.5, -3.0]);
        assert!(parse_vector("1 x").is_err());
        assert_eq!(parse_tags("a; b;;c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_tags(r#"["a;b"]"#).unwrap(), vec!["a;b"]);
        assert!(parse_bool("in_stock", "maybe").is_err());
        let item = ItemWire::from_columns(
            Some("x".into()),
            Some(vec![1.0]),
            vec![
                ("price".into(), "2.5".into()),
                ("in_stock".into(), "0".into()),
                ("color".into(), "red".into()),
                ("size".into(), "".into()),
            ],
        )
        .unwrap();
        assert_eq!(item.price, Some(2.5));
        assert_eq!(item.in_stock, Some(false));
        assert_eq!(item.attributes.len(), 1);
        assert!(ItemWire::from_columns(None, Some(vec![1.0]), vec![]).is_err());
    }
}
