//! What recommendation analytics records: impressions (what was shown)
//! and the counters derived from them and from the events (see
//! `analytics`). Domain types only: `storage::codec` decides their bytes.

use std::sync::Arc;

use super::Surface;

/// Milliseconds since the Unix epoch, now (the server's clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A recommendation answer as it was shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    /// The answer's `recommendation_id`.
    pub id: String,
    pub surface: Surface,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// The experiment and arm that served it, and the unit that was
    /// assigned (absent when the request had no unit: it was served the
    /// control and is not counted).
    pub experiment: Option<ExperimentExposure>,
    /// The request's anchor item(s): the item of similar and upsell, the
    /// cart of cross-sell; empty otherwise.
    pub anchor: Vec<String>,
    /// The item ids shown, in order (position 1 first).
    pub items: Vec<Arc<str>>,
    /// Milliseconds since the epoch (the server's clock).
    pub at_ms: i64,
    /// Server-side time to compute the answer, in microseconds.
    pub latency_us: u32,
    /// Each hit's engagement features as served (`engagement::features`),
    /// row-major, `feature_count` per hit; empty when not computed.
    pub feature_version: u16,
    pub feature_count: u16,
    pub features: Vec<f32>,
    /// The engagement score served with each hit (empty: none).
    pub engagement: Vec<f32>,
    /// Positions (0-based, ascending) engaged with (a click or better
    /// citing this answer within the attribution window): the labels the
    /// engagement model learns from. Set by the recorder.
    pub engaged: Vec<u32>,
}

impl Impression {
    /// The unit the impression counts for: the user, else the session.
    pub fn unit(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.session_id.as_deref())
    }

    /// The 1-based position at which `item` was shown.
    pub fn position_of(&self, item: &str) -> Option<u32> {
        self.items
            .iter()
            .position(|i| &**i == item)
            .map(|p| p as u32 + 1)
    }
}

/// An impression's experiment: name, arm and the unit assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentExposure {
    pub name: String,
    pub arm: String,
    pub unit: String,
}

/// Where an attributed event came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    pub recommendation_id: String,
    pub surface: Surface,
    pub position: u32,
    pub experiment: Option<ExperimentExposure>,
}

/// A click from a recommendation, kept per (user, item) so that a later
/// purchase without a `recommendation_id` within the attribution window is
/// attributed to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickRecord {
    pub at_ms: i64,
    pub attribution: Attribution,
}

/// One unit's part in one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Exposure {
    pub arm: u32,
    /// The first impression's time: what counts comes after it.
    pub first_ms: i64,
    pub impressions: u64,
    /// Attributed clicks on the experiment's impressions.
    pub clicks: u64,
    /// Bought anything after `first_ms`.
    pub converted: bool,
    /// Revenue of every purchase after `first_ms`.
    pub revenue: f64,
}

/// An order seen by analytics (lines grouped by `order_id`, else by user
/// and timestamp), so that it is counted once and classified by whether
/// any line was a recommended item.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OrderRecord {
    /// The hour bucket it was counted in.
    pub hour: i64,
    pub revenue: f64,
    pub with_recommendation: bool,
}

/// Latency histogram bins: 8 per doubling from 1 us (about 9 % wide), up
/// to 2^24 us (17 s); the last bin holds everything slower.
pub const LATENCY_BINS: usize = 8 * 24 + 1;

/// The bin of a latency in microseconds.
pub fn latency_bin(us: u32) -> usize {
    if us <= 1 {
        return 0;
    }
    let bin = ((us as f64).log2() * 8.0).floor() as usize;
    bin.min(LATENCY_BINS - 1)
}

/// The upper bound of a latency bin, in microseconds.
pub fn latency_bin_upper(bin: usize) -> f64 {
    2f64.powf((bin + 1) as f64 / 8.0)
}

/// Counters of one hour: per surface (shown and what followed), or
/// catalog-wide (`surface: None`: all revenue and orders).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bucket {
    pub impressions: u64,
    pub clicks: u64,
    pub add_to_carts: u64,
    pub purchases: u64,
    pub attributed_revenue: f64,
    /// Latency of the surface's answers: counts per [`latency_bin`];
    /// empty until the first one.
    pub latency: Vec<u64>,
    // Catalog-wide only:
    /// Revenue of every purchase.
    pub revenue: f64,
    pub orders_with_recommendation: u64,
    pub revenue_with_recommendation: f64,
    pub orders_without_recommendation: u64,
    pub revenue_without_recommendation: f64,
    /// Events that carried a `recommendation_id` that was unknown or did
    /// not show the item.
    pub unattributed: u64,
    /// Explicit feedback of the hour (catalog-wide).
    pub ratings: u64,
    pub dislikes: u64,
    pub owns: u64,
    pub returns: u64,
}

impl Bucket {
    /// Adds another bucket's counts.
    pub fn merge(&mut self, other: &Bucket) {
        self.impressions += other.impressions;
        self.clicks += other.clicks;
        self.add_to_carts += other.add_to_carts;
        self.purchases += other.purchases;
        self.attributed_revenue += other.attributed_revenue;
        self.ratings += other.ratings;
        self.dislikes += other.dislikes;
        self.owns += other.owns;
        self.returns += other.returns;
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
        }
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
        self.revenue += other.revenue;
        self.orders_with_recommendation += other.orders_with_recommendation;
        self.revenue_with_recommendation += other.revenue_with_recommendation;
        self.orders_without_recommendation += other.orders_without_recommendation;
        self.revenue_without_recommendation += other.revenue_without_recommendation;
        self.unattributed += other.unattributed;
    }

    pub fn record_latency(&mut self, us: u32) {
        if self.latency.is_empty() {
            self.latency = vec![0; LATENCY_BINS];
        }
        self.latency[latency_bin(us)] += 1;
    }

    /// The `q` quantile (0..=1) of the recorded latencies, in
    /// milliseconds (a bin's upper bound); `None` without any.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bin, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(latency_bin_upper(bin) / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_the_bins() {
        let mut b = Bucket::default();
        assert_eq!(b.latency_quantile_ms(0.5), None);
        for _ in 0..99 {
            b.record_latency(1000);
        }
        b.record_latency(50_000);
        let p50 = b.latency_quantile_ms(0.5).unwrap();
        // 1 ms, within a bin's width (9 %).
        assert!((1.0..1.1).contains(&p50), "{p50}");
        let p99 = b.latency_quantile_ms(0.99).unwrap();
        assert!((1.0..1.1).contains(&p99), "{p99}");
        let max = b.latency_quantile_ms(1.0).unwrap();
        assert!((50.0..55.0).contains(&max), "{max}");
        assert_eq!(latency_bin(u32::MAX), LATENCY_BINS - 1);
        assert_eq!(latency_bin(0), 0);
    }
}
