//! Domain types of a catalog: what an item, a user and a catalog's
//! configuration *are*, independent of JSON (see `api::models`) and of
//! bytes on disk (see `storage::codec`). Values of these types are valid by
//! construction: the API layer parses wire input into them once.
//!
//! The bottom of the crate: it imports only `error`, so `index`,
//! `storage`, `collaborative` and `catalog` all use it without importing
//! upward (it lived in `catalog::model` until #17).

pub mod analytics;

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Longest accepted item or user id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Largest accepted vector dimension.
pub const MAX_DIMENSION: usize = 65_536;
/// Largest number of price tiers per catalog.
pub const MAX_PRICE_TIERS: u8 = 100;

/// Checks a name that goes into URLs, paths and metrics (catalogs,
/// experiments): 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
pub fn check_name(field: &str, raw: &str) -> Result<()> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '-', '.'",
        ))
    }
}

/// A catalog's name: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
/// The restricted alphabet keeps names safe in paths, URLs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CatalogName(String);

impl CatalogName {
    pub fn parse(raw: &str) -> Result<Self> {
        check_name("catalog", raw).map(|()| CatalogName(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CatalogName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an item or user id: non-empty, at most [`MAX_ID_BYTES`] bytes.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes, got {}", id.len()),
        ));
    }
    Ok(())
}

/// How similarity is measured. Scores are always "higher is better".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity; vectors are normalised on write and searched by dot product.
    Cosine,
    /// Raw dot product.
    Dot,
    /// Euclidean; the score is the negative squared distance.
    L2,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }
}

/// How vectors are stored, in memory and on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorType {
    F32,
    F16,
}

impl VectorType {
    pub fn as_str(self) -> &'static str {
        match self {
            VectorType::F32 => "f32",
            VectorType::F16 => "f16",
        }
    }
}

/// Where a catalog's item vectors come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorSource {
    /// The shop sends a vector with every item.
    Supplied,
    /// Items come without vectors; their vectors are the collaborative
    /// model's item factors (iALS, `collaborative::factors`), learned from
    /// the events and refreshed at each training.
    Learned,
}

impl VectorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VectorSource::Supplied => "supplied",
            VectorSource::Learned => "learned",
        }
    }
}

/// Most factors a learned-vector catalog may ask for.
pub const MAX_LEARNED_DIMENSION: usize = 256;
/// Factors of a learned-vector catalog when the request names none.
pub const DEFAULT_LEARNED_DIMENSION: usize = 32;

/// A catalog's immutable configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogConfig {
    /// Of the supplied vectors, or of the learned factors.
    pub dimension: usize,
    pub metric: Metric,
    pub vector_type: VectorType,
    pub price_tiers: u8,
    pub vectors: VectorSource,
}

impl CatalogConfig {
    /// Validates the parts that are not enforced by the types.
    pub fn new(
        dimension: usize,
        metric: Metric,
        vector_type: VectorType,
        price_tiers: u8,
    ) -> Result<Self> {
        if dimension == 0 || dimension > MAX_DIMENSION {
            return Err(Error::invalid(
                "dimension",
                format!("must be in 1..={MAX_DIMENSION}"),
            ));
        }
        if price_tiers == 0 || price_tiers > MAX_PRICE_TIERS {
            return Err(Error::invalid(
                "price_tiers",
                format!("must be in 1..={MAX_PRICE_TIERS}"),
            ));
        }
        Ok(CatalogConfig {
            dimension,
            metric,
            vector_type,
            price_tiers,
            vectors: VectorSource::Supplied,
        })
    }

    /// A catalog whose item vectors are learned from its events: `dimension`
    /// factors, compared by cosine.
    pub fn learned(dimension: usize, vector_type: VectorType, price_tiers: u8) -> Result<Self> {
        if dimension == 0 || dimension > MAX_LEARNED_DIMENSION {
            return Err(Error::invalid(
                "dimension",
                format!("learned vectors have 1..={MAX_LEARNED_DIMENSION} factors"),
            ));
        }
        let supplied = CatalogConfig::new(dimension, Metric::Cosine, vector_type, price_tiers)?;
        Ok(CatalogConfig {
            vectors: VectorSource::Learned,
            ..supplied
        })
    }

    /// Whether item vectors are learned (not sent by the shop).
    pub fn is_learned(&self) -> bool {
        self.vectors == VectorSource::Learned
    }

    /// The length of the vector an item record stores: none when learned
    /// (the vectors are derived from the model, like the index).
    pub fn stored_dimension(&self) -> usize {
        match self.vectors {
            VectorSource::Supplied => self.dimension,
            VectorSource::Learned => 0,
        }
    }

    /// Describes how `other` differs from `self`, or `None` when equal.
    pub fn difference(&self, other: &CatalogConfig) -> Option<String> {
        let mut parts = Vec::new();
        if self.dimension != other.dimension {
            parts.push(format!(
                "dimension is {} not {}",
                self.dimension, other.dimension
            ));
        }
        if self.metric != other.metric {
            parts.push(format!(
                "metric is {} not {}",
                self.metric.as_str(),
                other.metric.as_str()
            ));
        }
        if self.vector_type != other.vector_type {
            parts.push(format!(
                "vector_type is {} not {}",
                self.vector_type.as_str(),
                other.vector_type.as_str()
            ));
        }
        if self.vectors != other.vectors {
            parts.push(format!(
                "vectors are {} not {}",
                self.vectors.as_str(),
                other.vectors.as_str()
            ));
        }
        if self.price_tiers != other.price_tiers {
            parts.push(format!(
                "price_tiers is {} not {}",
                self.price_tiers, other.price_tiers
            ));
        }
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(", "))
        }
    }

    /// Validates a raw vector for this catalog and returns it ready to
    /// store: finite, of the right dimension, within the range of the
    /// vector type, normalised under cosine.
    pub fn prepare_vector(&self, field: &str, mut vector: Vec<f32>) -> Result<Vec<f32>> {
        if vector.len() != self.dimension {
            return Err(Error::WrongDimension {
                field: field.to_string(),
                expected: self.dimension,
                got: vector.len(),
            });
        }
        if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                "must be a finite number",
            ));
        }
        // Bounding the norm keeps every distance and dot product finite, so
        // the graph never sees inf or NaN (hnsw_rs asserts on both).
        let norm_sq: f64 = vector.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if norm_sq > 1e30 {
            return Err(Error::invalid(
                field,
                "vector norm is too large (squared norm above 1e30)",
            ));
        }
        if self.metric == Metric::Cosine {
            if norm_sq == 0.0 || !norm_sq.is_normal() {
                return Err(Error::invalid(
                    field,
                    "a zero vector has no direction under the cosine metric",
                ));
            }
            let inv = (1.0 / norm_sq.sqrt()) as f32;
            for x in &mut vector {
                *x *= inv;
            }
        }
        if self.vector_type == VectorType::F16 {
            if let Some(i) = vector.iter().position(|x| x.abs() > 65_504.0) {
                return Err(Error::invalid(
                    format!("{field}[{i}]"),
                    "exceeds the f16 range (|x| <= 65504)",
                ));
            }
        }
        Ok(vector)
    }
}

/// A product as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// Ready to store: validated, and normalised under cosine.
    pub vector: Vec<f32>,
    pub price: Option<f64>,
    pub category: Option<String>,
    pub brand: Option<String>,
    /// Items without stock information count as in stock: most shop feeds
    /// only flag what is sold out.
    pub in_stock: bool,
    pub tags: Vec<String>,
    /// A tier set by the shop; when `None` the store derives one from prices.
    pub explicit_tier: Option<u8>,
    pub attributes: Map<String, Value>,
}

/// A shopper.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub vector: Option<Vec<f32>>,
    pub attributes: Map<String, Value>,
}

/// Checks a price: finite and not negative.
pub fn check_price(field: &str, price: f64) -> Result<f64> {
    if !price.is_finite() || price < 0.0 {
        return Err(Error::invalid(field, "must be a finite number >= 0"));
    }
    Ok(price)
}

/// What a shopper did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    View,
    Click,
    AddToCart,
    Purchase,
    /// Explicit feedback: 1 to 5 stars (checked at the edge). Above 3
    /// pulls the user's profile toward the item, below 3 pushes it away.
    Rating(u8),
    /// "Not for me": the item never comes back for this user and its near
    /// neighbours are demoted for them.
    Dislike,
    /// "I own this": left out like a purchase, without being one (no
    /// revenue, no basket, no repurchase figures).
    Own,
    /// A purchase sent back: counts against the item (its return rate)
    /// and pushes the user's profile away from it.
    Return,
}

/// Lowest and highest star of a `rating`.
pub const RATING_RANGE: std::ops::RangeInclusive<u8> = 1..=5;

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::AddToCart => "add_to_cart",
            EventKind::Purchase => "purchase",
            EventKind::Rating(_) => "rating",
            EventKind::Dislike => "dislike",
            EventKind::Own => "own",
            EventKind::Return => "return",
        }
    }

    /// Whether the event shows interest in the item shown (a click or
    /// better): what attribution and the engagement score count.
    pub fn is_engagement(self) -> bool {
        matches!(
            self,
            EventKind::Click | EventKind::AddToCart | EventKind::Purchase
        )
    }
}

/// One behaviour event, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub user_id: String,
    pub item_id: String,
    pub kind: EventKind,
    /// Milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    pub session_id: Option<String>,
    pub order_id: Option<String>,
    pub quantity: u32,
    pub price: Option<f64>,
    /// The client's id for the event; a repeated one is a duplicate.
    pub event_id: Option<String>,
    /// The recommendation response the event followed, if any.
    pub recommendation_id: Option<String>,
}

// Behaviour settings: how events shape profiles, popularity and ranking
// (`recommend::behaviour`). Set per catalog with `PUT .../settings`.

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
/// Longest accepted half-life or window: 100 years, in milliseconds.
const MAX_DURATION_MS: i64 = 100 * 365 * DAY_MS;

/// How much one event of each type counts, in profiles and popularity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventWeights {
    pub view: f64,
    pub click: f64,
    pub add_to_cart: f64,
    pub purchase: f64,
    /// A 5-star rating counts `+rating`, 4 stars `+rating / 2`, 3 nothing,
    /// 2 stars `-rating / 2`, 1 star `-rating`.
    pub rating: f64,
    /// Magnitudes of a push: a dislike counts `-dislike`, a return
    /// `-return_`.
    pub dislike: f64,
    pub own: f64,
    pub return_: f64,
}

impl EventWeights {
    /// The signed weight of one event: positive pulls a profile toward
    /// the item and adds to its popularity and to the collaborative row;
    /// negative pushes a profile away and counts nowhere else.
    pub fn of(&self, kind: EventKind) -> f64 {
        match kind {
            EventKind::View => self.view,
            EventKind::Click => self.click,
            EventKind::AddToCart => self.add_to_cart,
            EventKind::Purchase => self.purchase,
            EventKind::Rating(stars) => self.rating * (f64::from(stars) - 3.0) / 2.0,
            EventKind::Dislike => -self.dislike,
            EventKind::Own => self.own,
            EventKind::Return => -self.return_,
        }
    }
}

/// The weights of the personal-picks blend (see `recommend::personal`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blend {
    /// Weight of the session vector (scaled by how fresh the session is).
    pub session: f64,
    /// Weight of the long-term vector.
    pub long_term: f64,
    /// Weight of the user's own stored vector.
    pub user_vector: f64,
    /// Weight of standardised log-popularity next to standardised similarity.
    pub popularity: f64,
    /// Weight of standardised category affinity (the user's share of
    /// activity in the candidate's category).
    pub category: f64,
    /// Weight of standardised similarity to the blended profile vector.
    pub similarity: f64,
    /// Weight of the standardised collaborative score (the learned
    /// item-item model's row sum over the user's recent items).
    pub collaborative: f64,
}

/// How the collaborative model is learned from the events and when it is
/// retrained (see `collaborative`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollaborativeSettings {
    /// Off: no model is trained and none is used.
    pub enabled: bool,
    /// Half-life of a user's events in their collaborative row.
    pub half_life_ms: i64,
    /// EASE's L2 regularisation (lambda).
    pub ease_lambda: f64,
    /// Most active items EASE is used for; above it, item-kNN.
    pub ease_max_items: usize,
    /// Neighbours kept per item (the strongest weights).
    pub neighbours: usize,
    /// Item-kNN's shrinkage (added to the cosine's denominator).
    pub shrinkage: f64,
    /// Fewest new events that trigger a retrain while events keep coming.
    pub retrain_min_events: u64,
    /// New events, as a share of those the model saw, that trigger a
    /// retrain while events keep coming.
    pub retrain_share: f64,
    /// Any new event triggers a retrain once no event arrived for this
    /// long (the end of an import, a quiet hour) and the model is a
    /// minute, and ten of its trainings, old.
    pub retrain_quiet_ms: i64,
    /// Each training also fits the personal-picks blend's four feature
    /// weights on a leave-last-out validation of the events
    /// (`recommend::blend`), and personal picks use the fitted weights;
    /// off, they use `blend` as set.
    pub fit_blend: bool,
    /// Implicit ALS (the item factors of a catalog with learned vectors,
    /// `collaborative::factors`): L2 regularisation, confidence of an
    /// observed interaction, and iterations.
    pub als_lambda: f64,
    pub als_alpha: f64,
    pub als_iterations: u32,
}

impl Default for CollaborativeSettings {
    fn default() -> Self {
        CollaborativeSettings {
            enabled: true,
            half_life_ms: 365 * DAY_MS,
            ease_lambda: 200.0,
            ease_max_items: 5_000,
            neighbours: 1_000,
            shrinkage: 10.0,
            retrain_min_events: 1_000,
            retrain_share: 0.1,
            retrain_quiet_ms: 5_000,
            fit_blend: true,
            als_lambda: DEFAULT_ALS_LAMBDA,
            als_alpha: 20.0,
            als_iterations: 12,
        }
    }
}

/// When a bought item comes back: items that customers re-buy return
/// after their typical interval; the rest stay out (see
/// `recommend::behaviour`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepurchaseSettings {
    /// Off: a bought item stays out for `purchase_exclusion_secs` only.
    pub enabled: bool,
    /// Share of an item's buyers who bought it again (a day or more
    /// later) above which it counts as re-bought.
    pub min_rate: f64,
    /// Fewest such repeat buyers before the item's own figures are
    /// trusted; below, its category's are used.
    pub min_repeaters: u32,
    /// An item comes back once this share of its typical interval has
    /// passed since the user's last purchase of it.
    pub due_share: f64,
}

impl Default for RepurchaseSettings {
    fn default() -> Self {
        RepurchaseSettings {
            enabled: true,
            min_rate: 0.2,
            min_repeaters: 2,
            due_share: 0.8,
        }
    }
}

/// iALS's shipped regularisation (BENCHMARKS.md, "Learned vectors").
pub const DEFAULT_ALS_LAMBDA: f64 = 20.0;
/// Most iALS iterations a training may run.
pub const MAX_ALS_ITERATIONS: u32 = 100;

/// Most items the EASE solve may take (a dense `n x n` f64 matrix: 3.2 GB
/// at 20,000, twice that while inverting).
pub const MAX_EASE_ITEMS: usize = 20_000;
/// Most neighbours per item a model may keep.
pub const MAX_NEIGHBOURS: usize = 10_000;

/// Cross-sell thresholds for bought-together candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossSellSettings {
    /// Fewest baskets a pair must share (support as a count).
    pub min_together: u32,
    /// Lowest lift: 1.0 means "bought together more often than chance".
    pub min_lift: f64,
}

/// A catalog's behaviour settings, validated. Durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BehaviourSettings {
    pub weights: EventWeights,
    pub session_half_life_ms: i64,
    pub long_term_half_life_ms: i64,
    pub popularity_half_life_ms: i64,
    /// Without a session id, events further apart than this start a new
    /// session.
    pub session_gap_ms: i64,
    /// How long a purchased item stays out of the buyer's recommendations;
    /// `None`: forever.
    pub purchase_exclusion_ms: Option<i64>,
    /// Most recent events a profile is computed from.
    pub profile_events: usize,
    pub blend: Blend,
    pub cross_sell: CrossSellSettings,
    /// Weight of the user's affinity next to similarity in upsell.
    pub upsell_affinity: f64,
    pub collaborative: CollaborativeSettings,
    pub repurchase: RepurchaseSettings,
    /// Personal picks leave out the items of the user's profile events
    /// they viewed, clicked or carted and did not buy (bought ones follow
    /// the purchase rules).
    pub exclude_seen: bool,
    pub feedback: FeedbackSettings,
    pub engagement: EngagementSettings,
}

/// What explicit feedback and returns do (see `recommend::rerank`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackSettings {
    /// How many of a disliked item's nearest neighbours are demoted for
    /// the user who disliked it (0: none, only the item is left out).
    pub dislike_neighbours: u32,
    /// Fewest purchases before an item's return rate is trusted.
    pub return_min_purchases: u32,
    /// Items whose returns / purchases exceed this are demoted in every
    /// surface (1: never).
    pub return_max_rate: f64,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        FeedbackSettings {
            dislike_neighbours: 10,
            return_min_purchases: 10,
            // Retail return rates run 5-30 % (fashion higher); an item
            // sent back more than a third of the time is a problem item
            // in most shops.
            return_max_rate: 0.33,
        }
    }
}

/// Most neighbours of a disliked item that may be demoted.
pub const MAX_DISLIKE_NEIGHBOURS: u32 = 100;

/// What orders an answer's hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankBy {
    /// The surface's own ranking (similarity, blend, bought-together).
    #[default]
    Score,
    /// The predicted engagement (`engagement`), best first.
    Engagement,
}

impl RankBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RankBy::Score => "score",
            RankBy::Engagement => "engagement",
        }
    }
}

/// How the engagement model is trained (see `engagement`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngagementSettings {
    /// How answers are ordered unless a request says otherwise.
    pub rank_by: RankBy,
    /// Fewest labelled hits (shown long enough ago for their outcome to be
    /// known) before a model replaces the prior.
    pub min_samples: u64,
    /// ...of which at least this many were engaged with.
    pub min_positives: u64,
    /// The model is retrained this often while new impressions arrive...
    pub retrain_ms: i64,
    /// ...and sooner once this many new engaged hits were attributed.
    pub retrain_min_outcomes: u64,
}

impl Default for EngagementSettings {
    fn default() -> Self {
        EngagementSettings {
            rank_by: RankBy::Score,
            min_samples: 2_000,
            min_positives: 100,
            retrain_ms: 3_600_000,
            retrain_min_outcomes: 1_000,
        }
    }
}

impl Default for BehaviourSettings {
    fn default() -> Self {
        BehaviourSettings {
            weights: EventWeights {
                view: 1.0,
                click: 2.0,
                add_to_cart: 4.0,
                purchase: 8.0,
                // A five-star rating says as much as a cart add; owning an
                // item as much as buying it. A dislike or a return pushes
                // as hard as a cart add pulls.
                rating: 4.0,
                dislike: 4.0,
                own: 8.0,
                return_: 4.0,
            },
            session_half_life_ms: 30 * MINUTE_MS,
            long_term_half_life_ms: 30 * DAY_MS,
            // 365 days scored a little higher on both replays, but within
            // noise of 30 (BENCHMARKS.md); 30 keeps "trending" responsive.
            popularity_half_life_ms: 30 * DAY_MS,
            session_gap_ms: 30 * MINUTE_MS,
            purchase_exclusion_ms: None,
            // 500, not 200: on the latent set with 260 events per user the
            // collaborative row of the newest 200 lost 3-5 points of hit@10
            // (BENCHMARKS.md, "Issue #17").
            profile_events: 500,
            blend: Blend {
                session: 1.0,
                long_term: 1.0,
                user_vector: 1.0,
                // Fitted with tools/replay --protocol offline (BENCHMARKS.md,
                // "Issue #17"): the best of the grid on both the
                // real Online Retail history and the synthetic latent-taste
                // one; z-units, so only the ratios matter.
                popularity: 0.2,
                category: 1.0,
                similarity: 0.8,
                collaborative: 1.0,
            },
            cross_sell: CrossSellSettings {
                min_together: 1,
                min_lift: 1.0,
            },
            upsell_affinity: 0.5,
            collaborative: CollaborativeSettings::default(),
            repurchase: RepurchaseSettings::default(),
            // Measured (BENCHMARKS.md, #17): with half of a history as
            // views, showing them again took hit@10 from 0.79 to 0.27.
            // Gorse leaves seen items out too; a shop that wants
            // "still interested?" turns it off.
            exclude_seen: true,
            feedback: FeedbackSettings::default(),
            engagement: EngagementSettings::default(),
        }
    }
}

/// Most events a profile may read.
pub const MAX_PROFILE_EVENTS: usize = 10_000;

impl BehaviourSettings {
    /// Checks every value; errors name the wire field (`settings.<name>`).
    pub fn validate(&self) -> Result<()> {
        let weight = |name: &str, w: f64| {
            if w.is_finite() && (0.0..=1e6).contains(&w) {
                Ok(())
            } else {
                Err(Error::invalid(
                    format!("settings.{name}"),
                    "must be a finite number in 0..=1000000",
                ))
            }
        };
        weight("event_weights.view", self.weights.view)?;
        weight("event_weights.click", self.weights.click)?;
        weight("event_weights.add_to_cart", self.weights.add_to_cart)?;
        weight("event_weights.purchase", self.weights.purchase)?;
        weight("event_weights.rating", self.weights.rating)?;
        weight("event_weights.dislike", self.weights.dislike)?;
        weight("event_weights.own", self.weights.own)?;
        weight("event_weights.return", self.weights.return_)?;
        weight("blend.session", self.blend.session)?;
        weight("blend.long_term", self.blend.long_term)?;
        weight("blend.user_vector", self.blend.user_vector)?;
        weight("blend.popularity", self.blend.popularity)?;
        weight("blend.category", self.blend.category)?;
        weight("blend.similarity", self.blend.similarity)?;
        weight("blend.collaborative", self.blend.collaborative)?;
        weight("upsell_affinity", self.upsell_affinity)?;
        let duration = |name: &str, ms: i64| {
            if (1..=MAX_DURATION_MS).contains(&ms) {
                Ok(())
            } else {
                Err(Error::invalid(
                    format!("settings.{name}"),
                    "must be between 1 millisecond and 100 years",
                ))
            }
        };
        duration("session_half_life_secs", self.session_half_life_ms)?;
        duration("long_term_half_life_secs", self.long_term_half_life_ms)?;
        duration("popularity_half_life_secs", self.popularity_half_life_ms)?;
        duration("session_gap_secs", self.session_gap_ms)?;
        if let Some(ms) = self.purchase_exclusion_ms {
            if !(0..=MAX_DURATION_MS).contains(&ms) {
                return Err(Error::invalid(
                    "settings.purchase_exclusion_secs",
                    "must be between 0 and 100 years, or null for forever",
                ));
            }
        }
        if !(1..=MAX_PROFILE_EVENTS).contains(&self.profile_events) {
            return Err(Error::invalid(
                "settings.profile_events",
                format!("must be in 1..={MAX_PROFILE_EVENTS}"),
            ));
        }
        let c = &self.collaborative;
        duration("collaborative.half_life_secs", c.half_life_ms)?;
        duration("collaborative.retrain_quiet_secs", c.retrain_quiet_ms)?;
        if !c.ease_lambda.is_finite()
            || !(0.0..=1e9).contains(&c.ease_lambda)
            || c.ease_lambda == 0.0
        {
            return Err(Error::invalid(
                "settings.collaborative.ease_lambda",
                "must be a finite number in (0, 1e9]",
            ));
        }
        if c.ease_max_items > MAX_EASE_ITEMS {
            return Err(Error::invalid(
                "settings.collaborative.ease_max_items",
                format!("must be in 0..={MAX_EASE_ITEMS} (0: never EASE, always item-kNN)"),
            ));
        }
        if !(1..=MAX_NEIGHBOURS).contains(&c.neighbours) {
            return Err(Error::invalid(
                "settings.collaborative.neighbours",
                format!("must be in 1..={MAX_NEIGHBOURS}"),
            ));
        }
        if !c.shrinkage.is_finite() || !(0.0..=1e9).contains(&c.shrinkage) {
            return Err(Error::invalid(
                "settings.collaborative.shrinkage",
                "must be a finite number in 0..=1e9",
            ));
        }
        if !c.als_lambda.is_finite() || !(0.0..=1e9).contains(&c.als_lambda) || c.als_lambda == 0.0
        {
            return Err(Error::invalid(
                "settings.collaborative.als_lambda",
                "must be a finite number in (0, 1e9]",
            ));
        }
        if !c.als_alpha.is_finite() || !(0.0..=1e9).contains(&c.als_alpha) {
            return Err(Error::invalid(
                "settings.collaborative.als_alpha",
                "must be a finite number in 0..=1e9",
            ));
        }
        if !(1..=MAX_ALS_ITERATIONS).contains(&c.als_iterations) {
            return Err(Error::invalid(
                "settings.collaborative.als_iterations",
                format!("must be in 1..={MAX_ALS_ITERATIONS}"),
            ));
        }
        if c.retrain_min_events == 0 {
            return Err(Error::invalid(
                "settings.collaborative.retrain_min_events",
                "must be at least 1",
            ));
        }
        if !c.retrain_share.is_finite() || !(0.0..=100.0).contains(&c.retrain_share) {
            return Err(Error::invalid(
                "settings.collaborative.retrain_share",
                "must be a finite number in 0..=100",
            ));
        }
        let f = &self.feedback;
        if f.dislike_neighbours > MAX_DISLIKE_NEIGHBOURS {
            return Err(Error::invalid(
                "settings.feedback.dislike_neighbours",
                format!("must be in 0..={MAX_DISLIKE_NEIGHBOURS}"),
            ));
        }
        if f.return_min_purchases == 0 {
            return Err(Error::invalid(
                "settings.feedback.return_min_purchases",
                "must be at least 1",
            ));
        }
        if !f.return_max_rate.is_finite() || !(0.0..=1.0).contains(&f.return_max_rate) {
            return Err(Error::invalid(
                "settings.feedback.return_max_rate",
                "must be a number in 0..=1",
            ));
        }
        let g = &self.engagement;
        duration("engagement.retrain_secs", g.retrain_ms)?;
        for (name, v) in [
            ("min_samples", g.min_samples),
            ("min_positives", g.min_positives),
            ("retrain_min_outcomes", g.retrain_min_outcomes),
        ] {
            if v == 0 || v > 1_000_000_000 {
                return Err(Error::invalid(
                    format!("settings.engagement.{name}"),
                    "must be in 1..=1000000000",
                ));
            }
        }
        let r = &self.repurchase;
        if !r.min_rate.is_finite() || !(0.0..=1.0).contains(&r.min_rate) {
            return Err(Error::invalid(
                "settings.repurchase.min_rate",
                "must be a number in 0..=1",
            ));
        }
        if r.min_repeaters == 0 {
            return Err(Error::invalid(
                "settings.repurchase.min_repeaters",
                "must be at least 1",
            ));
        }
        if !r.due_share.is_finite() || !(0.0..=100.0).contains(&r.due_share) {
            return Err(Error::invalid(
                "settings.repurchase.due_share",
                "must be a number in 0..=100",
            ));
        }
        if self.cross_sell.min_together == 0 {
            return Err(Error::invalid(
                "settings.cross_sell.min_together",
                "must be at least 1",
            ));
        }
        if !self.cross_sell.min_lift.is_finite() || self.cross_sell.min_lift < 0.0 {
            return Err(Error::invalid(
                "settings.cross_sell.min_lift",
                "must be a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// Where a recommendation answer was served: each `/recommend/*` route is
/// a surface, and `search` when a search asks to be logged. Experiments
/// and analytics are kept per surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Surface {
    User,
    Similar,
    Upsell,
    CrossSell,
    Trending,
    Search,
}

impl Surface {
    /// Every surface, in the order analytics lists them.
    pub const ALL: [Surface; 6] = [
        Surface::User,
        Surface::Similar,
        Surface::Upsell,
        Surface::CrossSell,
        Surface::Trending,
        Surface::Search,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::User => "user",
            Surface::Similar => "similar",
            Surface::Upsell => "upsell",
            Surface::CrossSell => "cross-sell",
            Surface::Trending => "trending",
            Surface::Search => "search",
        }
    }

    /// Parses a surface name; `field` names the input for the error.
    pub fn parse(field: &str, raw: &str) -> Result<Surface> {
        Surface::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "must be one of user, similar, upsell, cross-sell, trending, search",
                )
            })
    }

    /// The surface's one-byte code on disk (`storage::codec`).
    pub fn code(self) -> u8 {
        match self {
            Surface::User => 0,
            Surface::Similar => 1,
            Surface::Upsell => 2,
            Surface::CrossSell => 3,
            Surface::Trending => 4,
            Surface::Search => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<Surface> {
        Surface::ALL.into_iter().find(|s| s.code() == code)
    }
}
