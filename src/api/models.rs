//! Wire types: the JSON shapes of API v1, and their conversion into domain
//! types. Conversion is where input is validated, once; every error names
//! the field by its JSON path.

pub mod analytics;
pub mod engagement;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::index::filter::{
    Bound, Condition, Filter, PriceRange, Scalar, StringCondition, TagCondition,
};
use crate::index::Hit;
use crate::model::{
    check_id, check_price, BehaviourSettings, Blend, CatalogConfig, CrossSellSettings, Event,
    EventKind, EventWeights, Item, Metric, RankBy, User, VectorType, DEFAULT_LEARNED_DIMENSION,
    RATING_RANGE,
};
use crate::recommend::preferences::Preferences;
use crate::recommend::{Reason, Recommendation};

/// Largest `k` a query may ask for.
pub const MAX_K: usize = 1000;
/// Longest category, brand, tag or attribute key, in bytes.
const MAX_LABEL_BYTES: usize = 256;
/// Most tags per item.
const MAX_TAGS: usize = 256;

fn default_k() -> usize {
    10
}
fn default_true() -> bool {
    true
}
fn default_price_tiers() -> u8 {
    4
}

/// Integer fields as JSON Schema counts integers: `10` and `10.0` alike
/// (Python's `json.dumps(10.0)` writes the latter), never `10.5`. serde
/// alone refuses any number with a decimal point for an integer type.
mod integral {
    use serde::de::{Deserializer, Error, Unexpected, Visitor};
    use serde::Deserialize;
    use std::fmt;

    /// A whole number, as `u64`.
    struct Whole(u64);

    impl<'de> Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Whole, D::Error> {
            d.deserialize_any(WholeVisitor).map(Whole)
        }
    }

    struct WholeVisitor;

    impl Visitor<'_> for WholeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<u64, E> {
            // 2^53: above it, f64 no longer holds every integer exactly.
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_992.0 {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
    }

    fn narrow<T: TryFrom<u64>, E: Error>(v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| {
            E::invalid_value(
                Unexpected::Unsigned(v),
                &format!("an integer that fits {}", std::any::type_name::<T>()).as_str(),
            )
        })
    }

    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
        narrow(Whole::deserialize(d)?.0)
    }

    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Whole>::deserialize(d)?
            .map(|w| narrow(w.0))
            .transpose()
    }
}

/// Checks `k` in `1..=MAX_K`.
pub fn check_k(k: usize) -> Result<usize> {
    if k == 0 || k > MAX_K {
        return Err(Error::invalid("k", format!("must be in 1..={MAX_K}")));
    }
    Ok(k)
}

fn check_label(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_LABEL_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_LABEL_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricWire {
    Cosine,
    Dot,
    L2,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VectorTypeWire {
    F32,
    F16,
}

/// `PUT /v1/catalogs/{catalog}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogPut {
    /// The supplied vectors' dimension (required with `"vectors":
    /// "supplied"`), or the number of learned factors (1 to 256, default
    /// 32, with `"vectors": "learned"`).
    #[schema(minimum = 1, maximum = 65536)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub dimension: Option<usize>,
    /// `supplied` (default): every item comes with its vector. `learned`:
    /// items come without one, and their vectors are item factors learned
    /// from the catalog's events (implicit ALS), refreshed at each
    /// training; compared by cosine.
    #[serde(default)]
    pub vectors: VectorSourceWire,
    /// Default `cosine`; a catalog with learned vectors is always cosine.
    #[serde(default)]
    pub metric: Option<MetricWire>,
    #[serde(default = "default_vector_type")]
    pub vector_type: VectorTypeWire,
    #[serde(default = "default_price_tiers")]
    #[schema(minimum = 1, maximum = 100, default = 4)]
    #[serde(deserialize_with = "integral::required")]
    pub price_tiers: u8,
}

/// Where item vectors come from.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VectorSourceWire {
    #[default]
    Supplied,
    Learned,
}
fn default_vector_type() -> VectorTypeWire {
    VectorTypeWire::F32
}

impl CatalogPut {
    pub fn into_config(self) -> Result<CatalogConfig> {
        let metric = match self.metric {
            None | Some(MetricWire::Cosine) => Metric::Cosine,
            Some(MetricWire::Dot) => Metric::Dot,
            Some(MetricWire::L2) => Metric::L2,
        };
        let vector_type = match self.vector_type {
            VectorTypeWire::F32 => VectorType::F32,
            VectorTypeWire::F16 => VectorType::F16,
        };
        match self.vectors {
            VectorSourceWire::Supplied => {
                let dimension = self.dimension.ok_or_else(|| {
                    Error::invalid(
                        "dimension",
                        "missing: give the vectors' dimension, or \"vectors\": \"learned\"",
                    )
                })?;
                CatalogConfig::new(dimension, metric, vector_type, self.price_tiers)
            }
            VectorSourceWire::Learned => {
                if metric != Metric::Cosine {
                    return Err(Error::invalid(
                        "metric",
                        "learned vectors are compared by cosine: leave metric out or give \"cosine\"",
                    ));
                }
                CatalogConfig::learned(
                    self.dimension.unwrap_or(DEFAULT_LEARNED_DIMENSION),
                    vector_type,
                    self.price_tiers,
                )
            }
        }
    }
}

/// A catalog as shown by `GET`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogView {
    pub name: String,
    pub dimension: usize,
    /// `supplied` or `learned`.
    pub vectors: &'static str,
    pub metric: &'static str,
    pub vector_type: &'static str,
    pub price_tiers: u8,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexView>,
}

/// How the catalog's index was made at open, and its snapshot state.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexView {
    /// `"snapshot"` or `"rebuild"`.
    pub source: &'static str,
    /// Why no snapshot was used (with `"rebuild"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild_reason: Option<String>,
    /// Items changed after the loaded snapshot and replayed (with `"snapshot"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u64>,
    pub open_seconds: f64,
    /// The change number the newest snapshot reflects.
    pub snapshot_watermark: Option<u64>,
    pub changes_since_snapshot: u64,
    /// Graph points written since the graph was last frozen: every graph
    /// search scans them exactly until a background freeze takes them in.
    pub delta: u64,
    /// Background freezes of the live graph since the catalog opened.
    pub freezes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountsView {
    pub items: u64,
    pub users: u64,
    pub graph_points: u64,
    pub tombstones: u64,
    pub rebuilds: u64,
    pub rebuilding: bool,
    /// With learned vectors: items the model has no factors for yet (no
    /// events when it was trained). Vector searches skip them; similar and
    /// upsell asked about one answer with what is popular in its category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_without_vectors: Option<u64>,
}

/// An item in `POST /items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemWire {
    /// 1 to 256 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 64)]
    pub id: String,
    /// The vector as a JSON array; or `vector_b64`.
    pub vector: Option<Vec<f32>>,
    /// The vector as base64 of little-endian f32 or f16 (see [`decode_vector`]).
    pub vector_b64: Option<String>,
    pub price: Option<f64>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub in_stock: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub price_tier: Option<u8>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// The JSON path of field `f` under `prefix` (`items[3]` -> `items[3].f`;
/// an empty prefix, for one item on its own line, -> `f`).
fn path(prefix: &str, f: &str) -> String {
    if prefix.is_empty() {
        f.to_string()
    } else {
        format!("{prefix}.{f}")
    }
}

impl ItemWire {
    /// Validates the item as element `index` of a batch.
    pub fn into_item(self, index: usize, config: &CatalogConfig) -> Result<Item> {
        self.into_item_at(&format!("items[{index}]"), config)
    }

    /// Validates the item; errors name fields under `prefix`.
    pub fn into_item_at(self, prefix: &str, config: &CatalogConfig) -> Result<Item> {
        let at = |f: &str| path(prefix, f);
        check_id(&at("id"), &self.id)?;
        let vector = if config.is_learned() {
            refuse_learned_vector(prefix, &self.vector, &self.vector_b64, "item")?;
            // Filled from the model's factors by the catalog.
            Vec::new()
        } else {
            decode_vector(prefix, self.vector, self.vector_b64, config)?
                .ok_or_else(|| Error::invalid(at("vector"), "missing: give vector or vector_b64"))?
        };
        let price = self
            .price
            .map(|p| check_price(&at("price"), p))
            .transpose()?;
        if let Some(c) = &self.category {
            check_label(&at("category"), c)?;
        }
        if let Some(b) = &self.brand {
            check_label(&at("brand"), b)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid(
                at("tags"),
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        for (i, t) in self.tags.iter().enumerate() {
            check_label(&at(&format!("tags[{i}]")), t)?;
        }
        if let Some(t) = self.price_tier {
            if t == 0 || t > config.price_tiers {
                return Err(Error::invalid(
                    at("price_tier"),
                    format!("must be in 1..={}", config.price_tiers),
                ));
            }
        }
        for key in self.attributes.keys() {
            check_label(&at("attributes"), key)?;
        }
        let mut tags = self.tags;
        tags.sort();
        tags.dedup();
        Ok(Item {
            id: self.id,
            vector,
            price,
            category: self.category,
            brand: self.brand,
            in_stock: self.in_stock.unwrap_or(true),
            tags,
            explicit_tier: self.price_tier,
            attributes: self.attributes,
        })
    }
}

/// In a catalog with learned vectors no item or user carries one: a
/// vector sent there is a client's mistake (another catalog meant, or the
/// wrong kind of catalog created), not something to drop silently.
fn refuse_learned_vector(
    prefix: &str,
    array: &Option<Vec<f32>>,
    b64: &Option<String>,
    what: &str,
) -> Result<()> {
    let field = match (array, b64) {
        (Some(_), _) => "vector",
        (None, Some(_)) => "vector_b64",
        (None, None) => return Ok(()),
    };
    Err(Error::invalid(
        path(prefix, field),
        format!("not accepted: this catalog learns its vectors from events (\"vectors\": \"learned\"), so a {what} has none"),
    ))
}

/// A vector from its two wire forms, checked and prepared for `config`
/// (see `CatalogConfig::prepare_vector`); `None` if neither was given.
///
/// `vector_b64` is standard base64 (padding optional) of the components
/// as little-endian IEEE floats: 4 bytes each (f32) or 2 bytes each (f16).
/// The catalog's dimension tells which: `4·d` bytes are f32, `2·d` f16.
/// It spares the client printing and the server parsing hundreds of
/// decimal numbers per request.
pub fn decode_vector(
    prefix: &str,
    array: Option<Vec<f32>>,
    b64: Option<String>,
    config: &CatalogConfig,
) -> Result<Option<Vec<f32>>> {
    use base64::Engine as _;
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let field = path(prefix, "vector_b64");
    match (array, b64) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(Error::invalid(
            field,
            "give either vector or vector_b64, not both",
        )),
        (Some(v), None) => config.prepare_vector(&path(prefix, "vector"), v).map(Some),
        (None, Some(text)) => {
            let d = config.dimension;
            // Reject before decoding anything much larger than a vector.
            if text.len() > (4 * d).div_ceil(3) * 4 + 4 {
                return Err(Error::invalid(
                    field,
                    format!("too long for a {d}-d vector ({} characters)", text.len()),
                ));
            }
            let bytes = ENGINE
                .decode(text.as_bytes())
                .map_err(|e| Error::invalid(&field, format!("not valid base64: {e}")))?;
            let vector: Vec<f32> = if bytes.len() == 4 * d {
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else if bytes.len() == 2 * d {
                bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect()
            } else {
                return Err(Error::invalid(
                    field,
                    format!(
                        "decodes to {} bytes; a {d}-d vector is {} bytes as f32 or {} as f16, little-endian",
                        bytes.len(),
                        4 * d,
                        2 * d
                    ),
                ));
            };
            config.prepare_vector(&field, vector).map(Some)
        }
    }
}

/// `POST /v1/catalogs/{catalog}/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsUpsert {
    pub items: Vec<ItemWire>,
}

/// An item or user id inside a list, for the schema only: 1 to 256 bytes
/// of UTF-8 on the server. The schema says 64 characters, the length that
/// fits in 256 bytes whatever the characters are.
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 64)]
pub struct IdSchema(pub String);

/// `POST /v1/admin/backup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The backup folder's name under the backup directory; default
    /// `backup-<UTC time>`. 1 to 128 letters, digits, `-`, `_` or `.`,
    /// not starting with `.` nor ending in `.partial` (`backup::check_name`).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?!\.)(?!.*\.partial$)[A-Za-z0-9_.-]{1,128}$"
    )]
    pub name: Option<String>,
}

/// `{"upserted": n}`: how many were written (durably, atomically).
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertedView {
    pub upserted: usize,
}

/// `{"deleted": n}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedView {
    pub deleted: usize,
}

/// `POST /items/delete`: how many existed and were deleted, and the ids
/// that did not exist.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedManyView {
    pub deleted: usize,
    pub not_found: Vec<String>,
}

/// `DELETE /v1/catalogs/{catalog}`: the deleted catalog's name.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogDeletedView {
    pub deleted: String,
}

/// `GET /v1/catalogs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogListView {
    pub catalogs: Vec<CatalogView>,
}

/// `POST /events`: stored events, duplicates skipped (by `event_id`),
/// item ids the catalog does not hold (the events are kept), users created.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsOutcomeView {
    pub accepted: usize,
    pub duplicates: usize,
    pub unknown_items: Vec<String>,
    pub new_users: Vec<String>,
    /// Events citing a `recommendation_id` whose answer showed the item.
    pub attributed: usize,
    /// Events citing a `recommendation_id` that is unknown (or expired)
    /// or whose answer did not show the item: accepted, not attributed.
    pub unattributed: usize,
}

/// One rejected line of `items:bulk`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRejectView {
    /// 1-based line number.
    pub line: u64,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

/// `POST /items:bulk`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkView {
    pub loaded: u64,
    pub rejected: u64,
    /// The first 1,000 rejected lines.
    pub rejects: Vec<BulkRejectView>,
    pub rejects_truncated: bool,
}

/// `POST /v1/admin/backup`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    pub name: String,
    /// The backup folder, on the server.
    pub path: String,
    pub bytes: u64,
    pub seconds: f64,
    pub catalogs: Vec<BackedUpCatalogView>,
}

/// One catalog in a backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackedUpCatalogView {
    pub name: String,
    pub id: u32,
    pub items: u64,
    pub users: u64,
    /// The index snapshot included, if the catalog had one.
    pub snapshot_watermark: Option<u64>,
}

/// Every error: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorView {
    pub error: ErrorDetailView,
}

/// What went wrong: a stable machine-readable `code` (see the README's
/// error table), a message for people, and the offending field's JSON
/// path when one is to blame.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetailView {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// Always `ok`: the process answers.
    pub status: &'static str,
    /// `ok`, `read_only` or `failing`.
    pub writes: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_error: Option<String>,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyView {
    /// `ready`, `loading` or `failed`.
    pub status: &'static str,
    /// Catalogs still building their index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loading: Option<Vec<String>>,
    /// Catalogs that failed to open, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<std::collections::BTreeMap<String, String>>,
}

/// `POST /v1/catalogs/{catalog}/items/delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsDelete {
    #[schema(value_type = Vec<IdSchema>)]
    pub ids: Vec<String>,
}

/// `?with_vector=true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetItemQuery {
    #[serde(default)]
    pub with_vector: bool,
}

/// An item as returned by `GET /items/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    pub id: String,
    pub price: Option<f64>,
    pub price_tier: Option<u8>,
    /// `"explicit"` when set by the shop, `"derived"` when computed from prices.
    pub price_tier_source: Option<&'static str>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub in_stock: bool,
    pub tags: Vec<String>,
    pub attributes: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// A user in `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserWire {
    /// 1 to 256 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 64)]
    pub id: String,
    pub vector: Option<Vec<f32>>,
    /// The vector as base64 of little-endian f32 or f16.
    pub vector_b64: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

impl UserWire {
    /// Validates the user as element `index` of a batch.
    pub fn into_user(self, index: usize, config: &CatalogConfig) -> Result<User> {
        self.into_user_at(&format!("users[{index}]"), config)
    }

    /// Validates the user; errors name fields under `prefix`.
    pub fn into_user_at(self, prefix: &str, config: &CatalogConfig) -> Result<User> {
        let at = |f: &str| path(prefix, f);
        check_id(&at("id"), &self.id)?;
        if config.is_learned() {
            refuse_learned_vector(prefix, &self.vector, &self.vector_b64, "user")?;
        }
        let vector = decode_vector(prefix, self.vector, self.vector_b64, config)?;
        Preferences::from_attributes(&at("attributes"), &self.attributes)?;
        Ok(User {
            id: self.id,
            vector,
            attributes: self.attributes,
        })
    }
}

/// `POST /v1/catalogs/{catalog}/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsersUpsert {
    pub users: Vec<UserWire>,
}

/// A user as returned by `GET /users/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub vector: Option<Vec<f32>>,
    pub attributes: Map<String, Value>,
}

/// The filter object. Polymorphic fields are taken as raw JSON and parsed
/// by hand so errors can say exactly what was expected.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterWire {
    category: Option<Value>,
    brand: Option<Value>,
    price: Option<PriceWire>,
    price_tier: Option<Value>,
    in_stock: Option<bool>,
    tags: Option<TagsWire>,
    exclude_ids: Option<Vec<String>>,
    attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PriceWire {
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TagsWire {
    any: Option<Vec<String>>,
    all: Option<Vec<String>>,
}

fn string_list(field: &str, value: &Value) -> Result<Vec<String>> {
    let Value::Array(items) = value else {
        return Err(Error::invalid(field, "must be an array of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(Error::invalid(format!("{field}[{i}]"), "must be a string")),
        })
        .collect()
}

fn string_condition(field: &str, value: &Value) -> Result<StringCondition> {
    match value {
        Value::String(s) => Ok(StringCondition::In(vec![s.clone()])),
        Value::Object(map) => {
            let mut conditions = Vec::new();
            for (key, v) in map {
                match key.as_str() {
                    "in" => conditions
                        .push(StringCondition::In(string_list(&format!("{field}.in"), v)?)),
                    "not_in" => conditions.push(StringCondition::NotIn(string_list(
                        &format!("{field}.not_in"),
                        v,
                    )?)),
                    other => {
                        return Err(Error::invalid(
                            format!("{field}.{other}"),
                            "unknown key; expected \"in\" or \"not_in\"",
                        ))
                    }
                }
            }
            match conditions.len() {
                1 => Ok(conditions.pop().expect("one condition")),
                _ => Err(Error::invalid(
                    field,
                    "must have exactly one of \"in\" or \"not_in\"",
                )),
            }
        }
        _ => Err(Error::invalid(
            field,
            "must be a string, {\"in\": [...]} or {\"not_in\": [...]}",
        )),
    }
}

fn tier_value(field: &str, value: &Value) -> Result<u8> {
    value
        .as_u64()
        .filter(|t| (1..=255).contains(t))
        .map(|t| t as u8)
        .ok_or_else(|| Error::invalid(field, "must be an integer tier >= 1"))
}

fn finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::invalid(field, "must be a finite number"))
    }
}

impl FilterWire {
    /// The domain filter; `prefix` is the JSON path of this object.
    pub fn into_filter(self, prefix: &str) -> Result<Filter> {
        let at = |f: &str| format!("{prefix}.{f}");
        let mut filter = Filter::default();
        if let Some(v) = &self.category {
            filter = filter.and(Condition::Category(string_condition(&at("category"), v)?));
        }
        if let Some(v) = &self.brand {
            filter = filter.and(Condition::Brand(string_condition(&at("brand"), v)?));
        }
        if let Some(p) = self.price {
            if p.gt.is_some() && p.gte.is_some() {
                return Err(Error::invalid(
                    at("price"),
                    "give at most one of gt and gte",
                ));
            }
            if p.lt.is_some() && p.lte.is_some() {
                return Err(Error::invalid(
                    at("price"),
                    "give at most one of lt and lte",
                ));
            }
            let low = match (p.gt, p.gte) {
                (Some(v), _) => Some(Bound {
                    value: finite(&at("price.gt"), v)?,
                    inclusive: false,
                }),
                (_, Some(v)) => Some(Bound {
                    value: finite(&at("price.gte"), v)?,
                    inclusive: true,
                }),
                _ => None,
            };
            let high = match (p.lt, p.lte) {
                (Some(v), _) => Some(Bound {
                    value: finite(&at("price.lt"), v)?,
                    inclusive: false,
                }),
                (_, Some(v)) => Some(Bound {
                    value: finite(&at("price.lte"), v)?,
                    inclusive: true,
                }),
                _ => None,
            };
            if low.is_none() && high.is_none() {
                return Err(Error::invalid(
                    at("price"),
                    "give at least one of gt, gte, lt, lte",
                ));
            }
            if let (Some(l), Some(h)) = (&low, &high) {
                if l.value > h.value {
                    return Err(Error::invalid(
                        at("price"),
                        "the lower bound must not exceed the upper bound",
                    ));
                }
            }
            filter = filter.and(Condition::Price(PriceRange { low, high }));
        }
        if let Some(v) = &self.price_tier {
            let field = at("price_tier");
            let (low, high) = match v {
                Value::Object(map) => {
                    let mut low = 1u8;
                    let mut high = u8::MAX;
                    for (key, bound) in map {
                        match key.as_str() {
                            "gte" => low = tier_value(&format!("{field}.gte"), bound)?,
                            "lte" => high = tier_value(&format!("{field}.lte"), bound)?,
                            other => {
                                return Err(Error::invalid(
                                    format!("{field}.{other}"),
                                    "unknown key; expected \"gte\" or \"lte\"",
                                ))
                            }
                        }
                    }
                    if map.is_empty() {
                        return Err(Error::invalid(field, "give gte, lte or both"));
                    }
                    if low > high {
                        return Err(Error::invalid(field, "gte must not exceed lte"));
                    }
                    (low, high)
                }
                other => {
                    let t = tier_value(&field, other)?;
                    (t, t)
                }
            };
            filter = filter.and(Condition::Tier { low, high });
        }
        if let Some(s) = self.in_stock {
            filter = filter.and(Condition::InStock(s));
        }
        if let Some(t) = self.tags {
            match (t.any, t.all) {
                (Some(any), None) => filter = filter.and(Condition::Tags(TagCondition::Any(any))),
                (None, Some(all)) => filter = filter.and(Condition::Tags(TagCondition::All(all))),
                _ => {
                    return Err(Error::invalid(
                        at("tags"),
                        "must have exactly one of \"any\" or \"all\"",
                    ))
                }
            }
        }
        if let Some(ids) = self.exclude_ids {
            filter = filter.and(Condition::ExcludeIds(ids));
        }
        if let Some(attributes) = self.attributes {
            for (key, value) in attributes {
                let scalar = Scalar::from_json(&value).ok_or_else(|| {
                    Error::invalid(
                        format!("{}.{key}", at("attributes")),
                        "must be a string, number or boolean",
                    )
                })?;
                filter = filter.and(Condition::Attribute { key, value: scalar });
            }
        }
        Ok(filter)
    }
}

/// Parses an optional filter.
pub fn parse_filter(filter: Option<FilterWire>) -> Result<Filter> {
    filter
        .map(|f| f.into_filter("filter"))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// `POST /v1/catalogs/{catalog}/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Record this answer as an impression (surface `search`), so clicks
    /// citing its `recommendation_id` are attributed.
    #[serde(default)]
    pub log: bool,
    /// With `log`: the impression's unit.
    #[schema(min_length = 1, max_length = 256)]
    pub user_id: Option<String>,
    /// The shopper's session: the experiment unit of `unit: "session"`
    /// experiments, and the impression's unit when there is no user.
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
    pub vector: Option<Vec<f32>>,
    /// The query as base64 of little-endian f32 or f16.
    pub vector_b64: Option<String>,
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    #[serde(deserialize_with = "integral::required")]
    pub k: usize,
    pub filter: Option<FilterWire>,
    #[serde(default = "default_true")]
    pub with_attributes: bool,
}

/// `POST /v1/catalogs/{catalog}/recommend/similar`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    /// The shopper's session: the experiment unit of `unit: "session"`
    /// experiments, and the impression's unit when there is no user.
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub item_id: String,
    /// Leaves out what the user bought and applies their preferences.
    pub user_id: Option<String>,
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    #[serde(deserialize_with = "integral::required")]
    pub k: usize,
    pub filter: Option<FilterWire>,
    #[serde(default = "default_true")]
    pub with_attributes: bool,
    /// `score` (the surface's own order) or `engagement` (the engagement
    /// score, best first); default: the catalog's (or the experiment
    /// arm's) `engagement.rank_by` setting.
    pub rank_by: Option<RankByWire>,
}

fn default_min_ratio() -> f64 {
    1.0
}
fn default_max_ratio() -> f64 {
    2.0
}

/// `POST /v1/catalogs/{catalog}/recommend/upsell`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsellWire {
    /// The shopper's session: the experiment unit of `unit: "session"`
    /// experiments, and the impression's unit when there is no user.
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub item_id: String,
    /// Exclusions, preferences, and the user's affinity in the ranking.
    pub user_id: Option<String>,
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    #[serde(deserialize_with = "integral::required")]
    pub k: usize,
    #[serde(default = "default_true")]
    pub same_category: bool,
    #[serde(default = "default_min_ratio")]
    #[schema(minimum = 1.0, default = 1.0)]
    pub min_price_ratio: f64,
    #[serde(default = "default_max_ratio")]
    pub max_price_ratio: f64,
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub tiers_up: Option<u8>,
    pub filter: Option<FilterWire>,
    #[serde(default = "default_true")]
    pub with_attributes: bool,
    /// `score` (the surface's own order) or `engagement` (the engagement
    /// score, best first); default: the catalog's (or the experiment
    /// arm's) `engagement.rank_by` setting.
    pub rank_by: Option<RankByWire>,
}

/// One hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitView {
    pub id: String,
    pub score: f32,
    pub price: Option<f64>,
    pub price_tier: Option<u8>,
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_stock: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

impl HitView {
    pub fn new(hit: &Hit, with_attributes: bool) -> HitView {
        let m = &hit.meta;
        HitView {
            id: m.id.to_string(),
            score: hit.score,
            price: m.price,
            price_tier: hit.tier,
            category: m.category.clone(),
            brand: with_attributes.then(|| m.brand.clone()),
            in_stock: with_attributes.then_some(m.in_stock),
            tags: with_attributes.then(|| m.tags.clone()),
            attributes: with_attributes.then(|| m.attributes.clone()),
        }
    }
}

/// `{"hits": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitsResponse {
    pub hits: Vec<HitView>,
    /// With `log: true`: the impression's id, for events to cite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation_id: Option<String>,
}

impl HitsResponse {
    pub fn new(hits: &[Hit], with_attributes: bool) -> HitsResponse {
        HitsResponse {
            recommendation_id: None,
            hits: hits
                .iter()
                .map(|h| HitView::new(h, with_attributes))
                .collect(),
        }
    }
}

/// An event's `type`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKindWire {
    View,
    Click,
    AddToCart,
    Purchase,
    /// Needs `value`, 1 to 5 stars.
    Rating,
    Dislike,
    Own,
    Return,
}

/// An event in `POST /events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventWire {
    #[schema(min_length = 1, max_length = 64)]
    pub user_id: String,
    #[schema(min_length = 1, max_length = 64)]
    pub item_id: String,
    #[serde(rename = "type")]
    pub kind: EventKindWire,
    /// RFC 3339; defaults to the time the request is received.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub session_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "integral::optional")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub quantity: Option<u32>,
    #[schema(minimum = 0)]
    pub price: Option<f64>,
    #[schema(min_length = 1, max_length = 64)]
    pub event_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub recommendation_id: Option<String>,
    /// The stars of a `rating`: a whole number from 1 to 5 (only for
    /// `rating`, which requires it).
    #[schema(minimum = 1, maximum = 5)]
    pub value: Option<f64>,
}

/// Most units one event may carry.
const MAX_QUANTITY: u32 = 1_000_000;

impl EventWire {
    /// Validates the event as element `index` of a batch; `now_ms` is the
    /// default timestamp.
    pub fn into_event(self, index: usize, now_ms: i64) -> Result<Event> {
        self.into_event_at(&format!("events[{index}]"), now_ms)
    }

    /// Validates the event; errors name fields under `prefix`.
    pub fn into_event_at(self, prefix: &str, now_ms: i64) -> Result<Event> {
        let at = |f: &str| path(prefix, f);
        check_id(&at("user_id"), &self.user_id)?;
        check_id(&at("item_id"), &self.item_id)?;
        for (name, value) in [
            ("session_id", &self.session_id),
            ("order_id", &self.order_id),
            ("event_id", &self.event_id),
            ("recommendation_id", &self.recommendation_id),
        ] {
            if let Some(v) = value {
                check_id(&at(name), v)?;
            }
        }
        let timestamp_ms = match &self.timestamp {
            None => now_ms,
            Some(raw) => parse_time(&at("timestamp"), raw)?,
        };
        let quantity = self.quantity.unwrap_or(1);
        if quantity == 0 || quantity > MAX_QUANTITY {
            return Err(Error::invalid(
                at("quantity"),
                format!("must be in 1..={MAX_QUANTITY}"),
            ));
        }
        let price = self
            .price
            .map(|p| check_price(&at("price"), p))
            .transpose()?;
        let kind = match (self.kind, self.value) {
            (EventKindWire::Rating, None) => {
                return Err(Error::invalid(
                    at("value"),
                    "is required for a rating: 1 to 5 stars",
                ))
            }
            (EventKindWire::Rating, Some(v)) => {
                let (lo, hi) = (*RATING_RANGE.start(), *RATING_RANGE.end());
                if !(v.fract() == 0.0 && (f64::from(lo)..=f64::from(hi)).contains(&v)) {
                    return Err(Error::invalid(
                        at("value"),
                        format!("must be a whole number of stars from {lo} to {hi}"),
                    ));
                }
                EventKind::Rating(v as u8)
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    at("value"),
                    "is only for events of type rating",
                ))
            }
            (EventKindWire::View, None) => EventKind::View,
            (EventKindWire::Click, None) => EventKind::Click,
            (EventKindWire::AddToCart, None) => EventKind::AddToCart,
            (EventKindWire::Purchase, None) => EventKind::Purchase,
            (EventKindWire::Dislike, None) => EventKind::Dislike,
            (EventKindWire::Own, None) => EventKind::Own,
            (EventKindWire::Return, None) => EventKind::Return,
        };
        Ok(Event {
            user_id: self.user_id,
            item_id: self.item_id,
            kind,
            timestamp_ms,
            session_id: self.session_id,
            order_id: self.order_id,
            quantity,
            price,
            event_id: self.event_id,
            recommendation_id: self.recommendation_id,
        })
    }
}

/// `POST /v1/catalogs/{catalog}/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsPost {
    pub events: Vec<EventWire>,
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn parse_time(field: &str, raw: &str) -> Result<i64> {
    let parsed = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
        Error::invalid(
            field,
            format!("{raw:?} is not an RFC 3339 time such as 2026-11-24T10:00:00Z: {e}"),
        )
    })?;
    Ok((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `POST /v1/catalogs/{catalog}/recommend/user`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRecommendWire {
    /// The shopper's session: the experiment unit of `unit: "session"`
    /// experiments, and the impression's unit when there is no user.
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub user_id: String,
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    #[serde(deserialize_with = "integral::required")]
    pub k: usize,
    pub filter: Option<FilterWire>,
    #[serde(default = "default_true")]
    pub with_attributes: bool,
    /// Rank as of this RFC 3339 time instead of now (replays, tests).
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// `score` (the surface's own order) or `engagement` (the engagement
    /// score, best first); default: the catalog's (or the experiment
    /// arm's) `engagement.rank_by` setting.
    pub rank_by: Option<RankByWire>,
}

/// `POST /v1/catalogs/{catalog}/recommend/cross-sell`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrossSellWire {
    /// The shopper's session: the experiment unit of `unit: "session"`
    /// experiments, and the impression's unit when there is no user.
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
    /// The cart: 1 to 100 item ids.
    #[schema(value_type = Vec<IdSchema>, min_items = 1, max_items = 100)]
    pub item_ids: Vec<String>,
    pub user_id: Option<String>,
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    #[serde(deserialize_with = "integral::required")]
    pub k: usize,
    pub filter: Option<FilterWire>,
    #[serde(default = "default_true")]
    pub with_attributes: bool,
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// `score` (the surface's own order) or `engagement` (the engagement
    /// score, best first); default: the catalog's (or the experiment
    /// arm's) `engagement.rank_by` setting.
    pub rank_by: Option<RankByWire>,
}

/// `POST /v1/catalogs/{catalog}/recommend/trending`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrendingWire {
    /// The shopper's session: the experiment unit of `unit: "session"`
    /// experiments, and the impression's unit when there is no user.
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    #[serde(deserialize_with = "integral::required")]
    pub k: usize,
    pub filter: Option<FilterWire>,
    #[serde(default = "default_true")]
    pub with_attributes: bool,
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// `score` (the surface's own order) or `engagement` (the engagement
    /// score, best first); default: the catalog's (or the experiment
    /// arm's) `engagement.rank_by` setting.
    pub rank_by: Option<RankByWire>,
}

/// The statistics behind a `bought_together` reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceView {
    /// The cart item this one is bought with.
    pub with: String,
    /// Baskets holding both.
    pub together: u32,
    pub support: f64,
    pub confidence: f64,
    pub lift: f64,
}

/// What a `collaborative` hit rests on: the item of the user's history
/// (or of the cart) whose learned item-item weight to this one is largest.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelEvidenceView {
    pub with: String,
}

/// One recommended item: a hit plus why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendedView {
    #[serde(flatten)]
    pub hit: HitView,
    /// `similar`, `profile`, `recent_activity`, `trending`,
    /// `bought_together`, `complementary` or `collaborative`.
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_evidence: Option<ModelEvidenceView>,
    /// The predicted probability (0 to 1) that the shopper clicks this
    /// hit, or better, at the position it is served in, within the
    /// attribution window (README, "Engagement score").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement: Option<f64>,
    /// `model` (learned from this catalog's impressions) or `prior` (not
    /// enough feedback yet: the surface's rate by position).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement_source: Option<&'static str>,
    /// Why the hit was moved down: `high_return_rate` (the item is sent
    /// back too often), `like_disliked` (close to an item the user
    /// disliked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demoted: Option<Vec<&'static str>>,
    /// Returns / purchases of the item, once it has
    /// `feedback.return_min_purchases` purchases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_rate: Option<f64>,
}

/// A trending category and its decayed, type-weighted event count.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    pub category: String,
    pub score: f64,
}

/// Every recommendation response: an id later events can cite, and hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationsResponse {
    pub recommendation_id: String,
    pub hits: Vec<RecommendedView>,
    /// Trending categories (the trending endpoint only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<CategoryView>>,
    /// The experiment and arm that served this answer, when the surface
    /// has a running experiment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<analytics::ExperimentRefView>,
    /// Where every hit's `engagement` came from: `model` or `prior`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement_source: Option<&'static str>,
    /// The order the hits are in: `score` or `engagement`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank_by: Option<RankByWire>,
}

impl RecommendationsResponse {
    /// The answer of the rerank stage: hits with their engagement,
    /// source and demotions.
    pub fn finished(
        recommendation_id: String,
        finished: &crate::recommend::rerank::Finished,
        rank_by: RankBy,
        with_attributes: bool,
    ) -> RecommendationsResponse {
        let mut answer =
            RecommendationsResponse::new(recommendation_id, &finished.picks, with_attributes);
        let source = finished.source.as_str();
        for (view, extra) in answer.hits.iter_mut().zip(&finished.extras) {
            view.engagement = Some(extra.engagement);
            view.engagement_source = Some(source);
            view.demoted = (!extra.demoted.is_empty())
                .then(|| extra.demoted.iter().map(|d| d.as_str()).collect());
            view.return_rate = extra.return_rate;
        }
        answer.engagement_source = Some(source);
        answer.rank_by = Some(RankByWire::of(rank_by));
        answer
    }

    pub fn new(
        recommendation_id: String,
        picks: &[Recommendation],
        with_attributes: bool,
    ) -> RecommendationsResponse {
        RecommendationsResponse {
            recommendation_id,
            hits: picks
                .iter()
                .map(|p| RecommendedView {
                    hit: HitView::new(&p.hit, with_attributes),
                    reason: p.reason.as_str(),
                    evidence: match &p.reason {
                        Reason::BoughtTogether { with, stats } => Some(EvidenceView {
                            with: with.to_string(),
                            together: stats.together,
                            support: stats.support,
                            confidence: stats.confidence,
                            lift: stats.lift,
                        }),
                        Reason::Similar
                        | Reason::Profile
                        | Reason::RecentActivity
                        | Reason::Trending
                        | Reason::Complementary
                        | Reason::Collaborative { .. } => None,
                    },
                    model_evidence: match &p.reason {
                        Reason::Collaborative { with: Some(with) } => Some(ModelEvidenceView {
                            with: with.to_string(),
                        }),
                        Reason::Collaborative { with: None }
                        | Reason::Similar
                        | Reason::Profile
                        | Reason::RecentActivity
                        | Reason::Trending
                        | Reason::BoughtTogether { .. }
                        | Reason::Complementary => None,
                    },
                    engagement: None,
                    engagement_source: None,
                    demoted: None,
                    return_rate: None,
                })
                .collect(),
            categories: None,
            experiment: None,
            engagement_source: None,
            rank_by: None,
        }
    }
}

/// `GET /v1/catalogs/{catalog}/model`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    /// `collaborative.enabled` in the settings.
    pub enabled: bool,
    /// A training is running now.
    pub training: bool,
    /// Trainings since the catalog opened.
    pub trainings: u64,
    /// Events the catalog holds now.
    pub events: u64,
    /// Events added (or removed) since the model was trained: what the
    /// retrain rule counts.
    pub events_since_training: u64,
    /// The model in use; absent before the first training (or when
    /// disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<TrainedModelView>,
}

/// A trained collaborative model.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainedModelView {
    /// `ease` or `item_knn`.
    pub kind: &'static str,
    /// Items with events (the model's rows).
    pub items: usize,
    /// Item-item weights kept.
    pub weights: usize,
    pub users: u64,
    /// Distinct (user, item) pairs trained on.
    pub interactions: u64,
    /// Events the catalog held when training began (the watermark).
    pub events: u64,
    /// RFC 3339.
    pub trained_at: String,
    pub training_seconds: f64,
    /// EASE's lambda, or item-kNN's shrinkage.
    pub regularisation: f64,
    pub memory_bytes: usize,
    /// With learned vectors: the item factors' dimension (iALS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factors: Option<usize>,
    /// The personal-picks blend fitted when the model was trained; absent
    /// when too few users could be asked or `collaborative.fit_blend` was
    /// off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blend: Option<FittedBlendView>,
}

/// Blend weights fitted on a leave-last-out validation of the catalog's
/// events: the items each asked user came to last (a third of theirs, one
/// to five), held back from a validation model, are looked for in their
/// first ten personal picks.
#[derive(Debug, Serialize, ToSchema)]
pub struct FittedBlendView {
    /// Whether personal picks use these weights now
    /// (`collaborative.fit_blend`).
    pub in_use: bool,
    pub similarity: f64,
    pub collaborative: f64,
    pub popularity: f64,
    pub category: f64,
    /// Users asked, and items held back from them.
    pub users: u32,
    pub held_out: u32,
    /// recall@10 on those users (the share of the held-back items in the
    /// first ten): the fitted weights, the settings' `blend` weights, and
    /// each feature alone (what carries the blend).
    pub recall_at_10: FitRecalls,
}

/// recall@10 of the validation, per ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct FitRecalls {
    pub fitted: f64,
    pub settings: f64,
    pub collaborative_only: f64,
    pub similarity_only: f64,
    pub popularity_only: f64,
    pub category_only: f64,
}

impl ModelView {
    pub fn new(status: &crate::catalog::ModelStatus) -> ModelView {
        let model = status.model.as_ref().filter(|_| status.enabled);
        ModelView {
            enabled: status.enabled,
            training: status.training,
            trainings: status.trainings,
            events: status.events,
            events_since_training: model
                .map_or(status.events, |m| status.events.abs_diff(m.info.events)),
            model: model.map(|m| TrainedModelView {
                kind: m.info.kind.as_str(),
                items: m.items(),
                weights: m.weights(),
                users: m.info.users,
                interactions: m.info.interactions,
                events: m.info.events,
                trained_at: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(m.info.trained_at_ms) * 1_000_000,
                )
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
                training_seconds: m.info.seconds,
                regularisation: m.info.regularisation,
                memory_bytes: m.memory_bytes(),
                factors: m.factor_dimension(),
                blend: m.info.blend.map(|b| FittedBlendView {
                    in_use: status.fit_blend,
                    similarity: b.similarity,
                    collaborative: b.collaborative,
                    popularity: b.popularity,
                    category: b.category,
                    users: b.users,
                    held_out: b.held_out,
                    recall_at_10: FitRecalls {
                        fitted: b.recall,
                        settings: b.settings_recall,
                        collaborative_only: b.collaborative_only,
                        similarity_only: b.similarity_only,
                        popularity_only: b.popularity_only,
                        category_only: b.category_only,
                    },
                }),
            }),
        }
    }
}

/// Event weights as JSON.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventWeightsWire {
    #[schema(minimum = 0, maximum = 1000000)]
    pub view: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub click: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub add_to_cart: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub purchase: f64,
    /// A 5-star rating counts `+rating`, 3 stars nothing, 1 star
    /// `-rating` (linear in between). Omitted on `PUT`: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub rating: Option<f64>,
    /// How hard a dislike pushes the profile away (it counts `-dislike`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub dislike: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub own: Option<f64>,
    /// How hard a return pushes the profile away (it counts `-return`).
    #[serde(default, rename = "return", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub return_: Option<f64>,
}

/// What explicit feedback does, as JSON; on `PUT` an omitted field keeps
/// its current value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackSettingsWire {
    /// How many nearest neighbours of a disliked item are demoted for the
    /// user who disliked it (0..=100, default 10; the item itself never
    /// comes back to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 0, maximum = 100)]
    pub dislike_neighbours: Option<u32>,
    /// Fewest purchases before an item's return rate counts (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(value_type = u64, minimum = 1, maximum = 4294967295.0)]
    pub return_min_purchases: Option<u32>,
    /// Items with returns / purchases above this are demoted in every
    /// surface, with `demoted: ["high_return_rate"]` (0..=1, default 0.33;
    /// 1 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub return_max_rate: Option<f64>,
}

/// `rank_by`: the surface's own order, or the engagement score's.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RankByWire {
    Score,
    Engagement,
}

impl RankByWire {
    pub fn of(r: RankBy) -> RankByWire {
        match r {
            RankBy::Score => RankByWire::Score,
            RankBy::Engagement => RankByWire::Engagement,
        }
    }

    pub fn domain(self) -> RankBy {
        match self {
            RankByWire::Score => RankBy::Score,
            RankByWire::Engagement => RankBy::Engagement,
        }
    }
}

/// The engagement model's settings, as JSON; on `PUT` an omitted field
/// keeps its current value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngagementSettingsWire {
    /// How answers are ordered unless a request says (default `score`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_by: Option<RankByWire>,
    /// Fewest labelled hits before a model replaces the prior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub min_samples: Option<u64>,
    /// Fewest engaged hits among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub min_positives: Option<u64>,
    /// Retrain this often while impressions arrive (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub retrain_secs: Option<f64>,
    /// ...and sooner once this many new engaged hits were attributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub retrain_min_outcomes: Option<u64>,
}

/// The personal-picks blend as JSON.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlendWire {
    #[schema(minimum = 0, maximum = 1000000)]
    pub session: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub long_term: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub user_vector: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub popularity: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub category: f64,
    /// Weight of similarity to the profile vector (default 1; omitted on
    /// `PUT`: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub similarity: Option<f64>,
    /// Weight of the collaborative model's score (omitted on `PUT`: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub collaborative: Option<f64>,
}

/// When bought items come back, as JSON; on `PUT` an omitted field keeps
/// its current value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepurchaseSettingsWire {
    /// Off: a bought item stays out for `purchase_exclusion_secs` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Share of buyers who re-buy an item (a day or more later) above
    /// which it comes back after its typical interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub min_rate: Option<f64>,
    /// Fewest repeat buyers before an item's own figures are used (else
    /// its category's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(value_type = u64, minimum = 1, maximum = 4294967295.0)]
    pub min_repeaters: Option<u32>,
    /// The item comes back once this share of its typical interval has
    /// passed since the user's last purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub due_share: Option<f64>,
}

/// The collaborative model's settings as JSON; on `PUT` an omitted field
/// keeps its current value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollaborativeSettingsWire {
    /// Off: no model is trained or used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Half-life of a user's events in their collaborative row (1 ms to
    /// 100 years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub half_life_secs: Option<f64>,
    /// EASE's regularisation, > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    pub ease_lambda: Option<f64>,
    /// Most active items EASE is used for (0..=20000); above, item-kNN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 0, maximum = 20000)]
    pub ease_max_items: Option<usize>,
    /// Neighbours kept per item (1..=10000), largest weights in magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 1, maximum = 10000)]
    pub neighbours: Option<usize>,
    /// Item-kNN's shrinkage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000000)]
    pub shrinkage: Option<f64>,
    /// Fewest new events that trigger a retrain while events keep coming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 1)]
    pub retrain_min_events: Option<u64>,
    /// New events as a share of the trained ones that trigger a retrain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub retrain_share: Option<f64>,
    /// After this long without an event, any new event triggers a retrain
    /// (once the model is a minute, and ten of its trainings, old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub retrain_quiet_secs: Option<f64>,
    /// Each training also fits the personal-picks blend's similarity,
    /// collaborative, popularity and category weights on a leave-last-out
    /// validation of this catalog's events, and personal picks use them
    /// (default true; `GET .../model` shows them). Off: `blend` as set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_blend: Option<bool>,
    /// Implicit ALS, for the item factors of a catalog with learned
    /// vectors: L2 regularisation (> 0, default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    pub als_lambda: Option<f64>,
    /// Implicit ALS: confidence of an observed interaction, `1 + alpha`
    /// (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000000)]
    pub als_alpha: Option<f64>,
    /// Implicit ALS: iterations (1..=100, default 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "integral::optional")]
    #[schema(minimum = 1, maximum = 100)]
    pub als_iterations: Option<u32>,
}

/// Cross-sell thresholds as JSON.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrossSellSettingsWire {
    // The schema says int64: utoipa's int32 for a `u32` would tell
    // clients the bound is half what the server takes.
    #[serde(deserialize_with = "integral::required")]
    #[schema(value_type = u64, minimum = 1, maximum = 4294967295.0)]
    pub min_together: u32,
    #[schema(minimum = 0)]
    pub min_lift: f64,
}

/// `GET`/`PUT /v1/catalogs/{catalog}/settings`: durations in seconds.
/// On `PUT` every field is optional; an omitted one keeps its current
/// value (`purchase_exclusion_secs: null` means forever).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_weights: Option<EventWeightsWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// 1 ms to 100 (365-day) years.
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub session_half_life_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// 1 ms to 100 (365-day) years.
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub long_term_half_life_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// 1 ms to 100 (365-day) years.
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub popularity_half_life_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// 1 ms to 100 (365-day) years.
    #[schema(minimum = 0.001, maximum = 3153600000.0)]
    pub session_gap_secs: Option<f64>,
    /// Outer `None`: not given; `Some(None)`: forever.
    #[serde(
        default,
        deserialize_with = "some_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 3153600000.0)]
    pub purchase_exclusion_secs: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "integral::optional")]
    pub profile_events: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blend: Option<BlendWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_sell: Option<CrossSellSettingsWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub upsell_affinity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaborative: Option<CollaborativeSettingsWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repurchase: Option<RepurchaseSettingsWire>,
    /// Personal picks leave out the items the user viewed, clicked or
    /// carted (among their profile events) and did not buy (default true;
    /// bought items follow the purchase and repurchase rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_seen: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackSettingsWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<EngagementSettingsWire>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`).
fn some_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

fn secs_to_ms(field: &str, secs: f64) -> Result<i64> {
    if !secs.is_finite() || !(0.0..=4e9).contains(&secs) {
        return Err(Error::invalid(
            format!("settings.{field}"),
            "must be a number of seconds between 0 and 4e9",
        ));
    }
    Ok((secs * 1000.0).round() as i64)
}

impl SettingsWire {
    /// The settings as JSON (every field present).
    pub fn from_settings(s: &BehaviourSettings) -> SettingsWire {
        let secs = |ms: i64| ms as f64 / 1000.0;
        SettingsWire {
            event_weights: Some(EventWeightsWire {
                view: s.weights.view,
                click: s.weights.click,
                add_to_cart: s.weights.add_to_cart,
                purchase: s.weights.purchase,
                rating: Some(s.weights.rating),
                dislike: Some(s.weights.dislike),
                own: Some(s.weights.own),
                return_: Some(s.weights.return_),
            }),
            session_half_life_secs: Some(secs(s.session_half_life_ms)),
            long_term_half_life_secs: Some(secs(s.long_term_half_life_ms)),
            popularity_half_life_secs: Some(secs(s.popularity_half_life_ms)),
            session_gap_secs: Some(secs(s.session_gap_ms)),
            purchase_exclusion_secs: Some(s.purchase_exclusion_ms.map(secs)),
            profile_events: Some(s.profile_events),
            blend: Some(BlendWire {
                session: s.blend.session,
                long_term: s.blend.long_term,
                user_vector: s.blend.user_vector,
                popularity: s.blend.popularity,
                category: s.blend.category,
                similarity: Some(s.blend.similarity),
                collaborative: Some(s.blend.collaborative),
            }),
            cross_sell: Some(CrossSellSettingsWire {
                min_together: s.cross_sell.min_together,
                min_lift: s.cross_sell.min_lift,
            }),
            upsell_affinity: Some(s.upsell_affinity),
            collaborative: Some(CollaborativeSettingsWire {
                enabled: Some(s.collaborative.enabled),
                half_life_secs: Some(secs(s.collaborative.half_life_ms)),
                ease_lambda: Some(s.collaborative.ease_lambda),
                ease_max_items: Some(s.collaborative.ease_max_items),
                neighbours: Some(s.collaborative.neighbours),
                shrinkage: Some(s.collaborative.shrinkage),
                retrain_min_events: Some(s.collaborative.retrain_min_events),
                retrain_share: Some(s.collaborative.retrain_share),
                retrain_quiet_secs: Some(secs(s.collaborative.retrain_quiet_ms)),
                fit_blend: Some(s.collaborative.fit_blend),
                als_lambda: Some(s.collaborative.als_lambda),
                als_alpha: Some(s.collaborative.als_alpha),
                als_iterations: Some(s.collaborative.als_iterations),
            }),
            repurchase: Some(RepurchaseSettingsWire {
                enabled: Some(s.repurchase.enabled),
                min_rate: Some(s.repurchase.min_rate),
                min_repeaters: Some(s.repurchase.min_repeaters),
                due_share: Some(s.repurchase.due_share),
            }),
            exclude_seen: Some(s.exclude_seen),
            feedback: Some(FeedbackSettingsWire {
                dislike_neighbours: Some(s.feedback.dislike_neighbours),
                return_min_purchases: Some(s.feedback.return_min_purchases),
                return_max_rate: Some(s.feedback.return_max_rate),
            }),
            engagement: Some(EngagementSettingsWire {
                rank_by: Some(RankByWire::of(s.engagement.rank_by)),
                min_samples: Some(s.engagement.min_samples),
                min_positives: Some(s.engagement.min_positives),
                retrain_secs: Some(secs(s.engagement.retrain_ms)),
                retrain_min_outcomes: Some(s.engagement.retrain_min_outcomes),
            }),
        }
    }

    /// `current` with the given fields replaced, validated.
    pub fn apply_to(self, current: BehaviourSettings) -> Result<BehaviourSettings> {
        let mut s = current;
        if let Some(w) = self.event_weights {
            s.weights = EventWeights {
                view: w.view,
                click: w.click,
                add_to_cart: w.add_to_cart,
                purchase: w.purchase,
                rating: w.rating.unwrap_or(s.weights.rating),
                dislike: w.dislike.unwrap_or(s.weights.dislike),
                own: w.own.unwrap_or(s.weights.own),
                return_: w.return_.unwrap_or(s.weights.return_),
            };
        }
        if let Some(v) = self.session_half_life_secs {
            s.session_half_life_ms = secs_to_ms("session_half_life_secs", v)?;
        }
        if let Some(v) = self.long_term_half_life_secs {
            s.long_term_half_life_ms = secs_to_ms("long_term_half_life_secs", v)?;
        }
        if let Some(v) = self.popularity_half_life_secs {
            s.popularity_half_life_ms = secs_to_ms("popularity_half_life_secs", v)?;
        }
        if let Some(v) = self.session_gap_secs {
            s.session_gap_ms = secs_to_ms("session_gap_secs", v)?;
        }
        if let Some(v) = self.purchase_exclusion_secs {
            s.purchase_exclusion_ms = v
                .map(|secs| secs_to_ms("purchase_exclusion_secs", secs))
                .transpose()?;
        }
        if let Some(v) = self.profile_events {
            s.profile_events = v;
        }
        if let Some(b) = self.blend {
            s.blend = Blend {
                session: b.session,
                long_term: b.long_term,
                user_vector: b.user_vector,
                popularity: b.popularity,
                category: b.category,
                similarity: b.similarity.unwrap_or(s.blend.similarity),
                collaborative: b.collaborative.unwrap_or(s.blend.collaborative),
            };
        }
        if let Some(c) = self.cross_sell {
            s.cross_sell = CrossSellSettings {
                min_together: c.min_together,
                min_lift: c.min_lift,
            };
        }
        if let Some(v) = self.upsell_affinity {
            s.upsell_affinity = v;
        }
        if let Some(c) = self.collaborative {
            let t = &mut s.collaborative;
            if let Some(v) = c.enabled {
                t.enabled = v;
            }
            if let Some(v) = c.half_life_secs {
                t.half_life_ms = secs_to_ms("collaborative.half_life_secs", v)?;
            }
            if let Some(v) = c.ease_lambda {
                t.ease_lambda = v;
            }
            if let Some(v) = c.ease_max_items {
                t.ease_max_items = v;
            }
            if let Some(v) = c.neighbours {
                t.neighbours = v;
            }
            if let Some(v) = c.shrinkage {
                t.shrinkage = v;
            }
            if let Some(v) = c.retrain_min_events {
                t.retrain_min_events = v;
            }
            if let Some(v) = c.retrain_share {
                t.retrain_share = v;
            }
            if let Some(v) = c.retrain_quiet_secs {
                t.retrain_quiet_ms = secs_to_ms("collaborative.retrain_quiet_secs", v)?;
            }
            if let Some(v) = c.fit_blend {
                t.fit_blend = v;
            }
            if let Some(v) = c.als_lambda {
                t.als_lambda = v;
            }
            if let Some(v) = c.als_alpha {
                t.als_alpha = v;
            }
            if let Some(v) = c.als_iterations {
                t.als_iterations = v;
            }
        }
        if let Some(v) = self.exclude_seen {
            s.exclude_seen = v;
        }
        if let Some(f) = self.feedback {
            let t = &mut s.feedback;
            if let Some(v) = f.dislike_neighbours {
                t.dislike_neighbours = v;
            }
            if let Some(v) = f.return_min_purchases {
                t.return_min_purchases = v;
            }
            if let Some(v) = f.return_max_rate {
                t.return_max_rate = v;
            }
        }
        if let Some(g) = self.engagement {
            let t = &mut s.engagement;
            if let Some(v) = g.rank_by {
                t.rank_by = v.domain();
            }
            if let Some(v) = g.min_samples {
                t.min_samples = v;
            }
            if let Some(v) = g.min_positives {
                t.min_positives = v;
            }
            if let Some(v) = g.retrain_secs {
                t.retrain_ms = secs_to_ms("engagement.retrain_secs", v)?;
            }
            if let Some(v) = g.retrain_min_outcomes {
                t.retrain_min_outcomes = v;
            }
        }
        if let Some(r) = self.repurchase {
            let t = &mut s.repurchase;
            if let Some(v) = r.enabled {
                t.enabled = v;
            }
            if let Some(v) = r.min_rate {
                t.min_rate = v;
            }
            if let Some(v) = r.min_repeaters {
                t.min_repeaters = v;
            }
            if let Some(v) = r.due_share {
                t.due_share = v;
            }
        }
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        let put: CatalogPut =
            serde_json::from_str(r#"{"dimension": 3.0, "price_tiers": 5.0}"#).unwrap();
        assert_eq!((put.dimension, put.price_tiers), (Some(3), 5));
        for bad in [
            r#"{"dimension": 3.5}"#,
            r#"{"dimension": -3}"#,
            r#"{"dimension": -3.0}"#,
            r#"{"dimension": "3"}"#,
            r#"{"dimension": 1e300}"#,
            r#"{"dimension": 3, "price_tiers": 256}"#,
            r#"{"dimension": 3, "price_tiers": 256.0}"#,
        ] {
            assert!(serde_json::from_str::<CatalogPut>(bad).is_err(), "{bad}");
        }
        let event = |quantity: &str| {
            serde_json::from_str::<EventWire>(&format!(
                r#"{{"user_id": "u", "item_id": "i", "type": "view"{quantity}}}"#
            ))
        };
        assert_eq!(event(r#", "quantity": 2.0"#).unwrap().quantity, Some(2));
        assert_eq!(event(r#", "quantity": null"#).unwrap().quantity, None);
        assert_eq!(event("").unwrap().quantity, None);
        assert!(event(r#", "quantity": 2.5"#).is_err());
    }
}
