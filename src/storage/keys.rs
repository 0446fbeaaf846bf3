//! Key layout. Every record of a catalog is prefixed by the catalog's
//! numeric id (big-endian, so a catalog's records are contiguous and
//! ordered), never by its name: dropping a catalog is one range delete, and
//! a catalog re-created under the same name gets a fresh id, so stale
//! records of the old one can never leak into it.

/// Column family holding store-wide values (the next catalog id).
pub const CF_META: &str = "meta";
/// Column family: catalog name -> catalog record.
pub const CF_CATALOGS: &str = "catalogs";
/// Column family: catalog id ++ item id -> item record.
pub const CF_ITEMS: &str = "items";
/// Column family: catalog id ++ user id -> user record.
pub const CF_USERS: &str = "users";
/// Column family: catalog id ++ change number (big-endian u64) -> the item
/// ids one write changed. The change log lets a start replay only what
/// happened after the index snapshot; it is trimmed once a snapshot covers it.
pub const CF_CHANGES: &str = "changes";

/// Column family: catalog id ++ user id (u16 length-prefixed) ++ time
/// (ms, big-endian, sign-flipped) ++ a unique suffix -> event record, so a
/// user's events are one contiguous range in time order.
pub const CF_EVENTS: &str = "events";
/// Column family: catalog id ++ client event id -> nothing (deduplication).
pub const CF_EVENT_IDS: &str = "event_ids";

/// Column family: catalog id ++ experiment name -> experiment definition.
pub const CF_EXPERIMENTS: &str = "experiments";
/// Column family: catalog id ++ time (ms, big-endian u64) ++
/// recommendation id -> impression. Time-ordered, so retention is one
/// range delete per catalog; the id carries its time (see
/// [`impression_key_of`]), so a lookup by id is a point read.
pub const CF_IMPRESSIONS: &str = "impressions";
/// Column family: catalog id ++ event-log number (big-endian u64) -> the
/// events of one write, for analytics to replay what it had not counted
/// before a crash; trimmed up to the analytics watermark.
pub const CF_EVENT_LOG: &str = "event_log";
/// Column family: catalog id ++ a tag byte ++ ... -> what analytics
/// derives (see the `analytics_*` key functions). Derived state: the
/// recorder is its only writer.
pub const CF_ANALYTICS: &str = "analytics";

/// Every column family, in the order they are opened.
pub const ALL_CFS: [&str; 11] = [
    CF_META,
    CF_CATALOGS,
    CF_ITEMS,
    CF_USERS,
    CF_CHANGES,
    CF_EVENTS,
    CF_EVENT_IDS,
    CF_EXPERIMENTS,
    CF_IMPRESSIONS,
    CF_EVENT_LOG,
    CF_ANALYTICS,
];

/// Column families whose every key starts with the catalog id.
pub const CATALOG_CFS: [&str; 9] = [
    CF_ITEMS,
    CF_USERS,
    CF_CHANGES,
    CF_EVENTS,
    CF_EVENT_IDS,
    CF_EXPERIMENTS,
    CF_IMPRESSIONS,
    CF_EVENT_LOG,
    CF_ANALYTICS,
];

/// Key of an impression: see [`CF_IMPRESSIONS`].
pub fn impression_key(catalog_id: u32, at_ms: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(12 + id.len());
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The time a recommendation id was made at: ids are `r-<ms hex>-...`
/// (`api::recommend`). `None` for anything else: no impression has it.
pub fn recommendation_time(id: &str) -> Option<i64> {
    let hex = id.strip_prefix("r-")?.split('-').next()?;
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    i64::from_str_radix(hex, 16).ok()
}

/// Key of the impression with recommendation id `id`, if `id` is one.
pub fn impression_key_of(catalog_id: u32, id: &str) -> Option<Vec<u8>> {
    recommendation_time(id).map(|at| impression_key(catalog_id, at, id))
}

/// The impressions of `catalog_id` made before `before_ms`: `[from, to)`.
pub fn impressions_before(catalog_id: u32, before_ms: i64) -> (Vec<u8>, Vec<u8>) {
    let from = catalog_id.to_be_bytes().to_vec();
    let mut to = from.clone();
    to.extend_from_slice(&(before_ms.max(0) as u64).to_be_bytes());
    (from, to)
}

/// Key of an experiment definition.
pub fn experiment_key(catalog_id: u32, name: &str) -> Vec<u8> {
    record_key(catalog_id, name)
}

/// Key of an event-log entry: see [`CF_EVENT_LOG`].
pub fn event_log_key(catalog_id: u32, number: u64) -> Vec<u8> {
    change_key(catalog_id, number)
}

const TAG_ARM_STATS: u8 = b'a';
const TAG_EXPOSURE: u8 = b'u';
const TAG_BUCKET: u8 = b'h';
const TAG_ORDER: u8 = b'o';
/// Click records: the compaction filter drops expired ones by this tag.
pub const TAG_CLICK: u8 = b'c';
const TAG_WATERMARK: u8 = b'w';

fn analytics_prefix(catalog_id: u32, tag: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key.push(tag);
    key
}

fn push_str(key: &mut Vec<u8>, s: &str) {
    key.extend_from_slice(&(s.len() as u16).to_be_bytes());
    key.extend_from_slice(s.as_bytes());
}

/// The per-arm counters of an experiment.
pub fn arm_stats_key(catalog_id: u32, experiment: &str) -> Vec<u8> {
    let mut key = analytics_prefix(catalog_id, TAG_ARM_STATS);
    key.extend_from_slice(experiment.as_bytes());
    key
}

/// All exposure records of an experiment sort under this prefix.
pub fn exposures_prefix(catalog_id: u32, experiment: &str) -> Vec<u8> {
    let mut key = analytics_prefix(catalog_id, TAG_EXPOSURE);
    push_str(&mut key, experiment);
    key
}

/// One unit's exposure record in an experiment.
pub fn exposure_key(catalog_id: u32, experiment: &str, unit: &str) -> Vec<u8> {
    let mut key = exposures_prefix(catalog_id, experiment);
    key.extend_from_slice(unit.as_bytes());
    key
}

/// An hour's counters of a surface (`None`: catalog-wide).
pub fn bucket_key(catalog_id: u32, hour: i64, surface: Option<u8>) -> Vec<u8> {
    let mut key = analytics_prefix(catalog_id, TAG_BUCKET);
    key.extend_from_slice(&((hour as u64) ^ (1 << 63)).to_be_bytes());
    key.push(surface.unwrap_or(u8::MAX));
    key
}

/// Splits a bucket key into hour and surface code (`u8::MAX`: catalog-wide).
pub fn split_bucket_key(key: &[u8]) -> Option<(i64, u8)> {
    if key.len() != 14 || key[4] != TAG_BUCKET {
        return None;
    }
    let hour = (u64::from_be_bytes(key[5..13].try_into().ok()?) ^ (1 << 63)) as i64;
    Some((hour, key[13]))
}

/// An order's record.
pub fn order_key(catalog_id: u32, order: &str) -> Vec<u8> {
    let mut key = analytics_prefix(catalog_id, TAG_ORDER);
    key.extend_from_slice(order.as_bytes());
    key
}

/// The click record of (user, item).
pub fn click_key(catalog_id: u32, user_id: &str, item_id: &str) -> Vec<u8> {
    let mut key = analytics_prefix(catalog_id, TAG_CLICK);
    push_str(&mut key, user_id);
    key.extend_from_slice(item_id.as_bytes());
    key
}

/// Whether an analytics key is a click record.
pub fn is_click_key(key: &[u8]) -> bool {
    key.get(4) == Some(&TAG_CLICK)
}

/// The recorder's watermark of a catalog: the event-log number up to
/// which every event is counted.
pub fn analytics_watermark_key(catalog_id: u32) -> Vec<u8> {
    analytics_prefix(catalog_id, TAG_WATERMARK)
}

/// Key of an event: see [`CF_EVENTS`]. `unique` tells apart events of one
/// user in the same millisecond.
pub fn event_key(catalog_id: u32, user_id: &str, timestamp_ms: i64, unique: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + 2 + user_id.len() + 16);
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key.extend_from_slice(&(user_id.len() as u16).to_be_bytes());
    key.extend_from_slice(user_id.as_bytes());
    // Flipping the sign bit makes big-endian byte order match numeric order.
    key.extend_from_slice(&((timestamp_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(&unique.to_be_bytes());
    key
}

/// The key range of one user's events: every [`event_key`] of `user_id`
/// in `catalog_id` sorts within `[from, to)`.
pub fn user_events_range(catalog_id: u32, user_id: &str) -> (Vec<u8>, Vec<u8>) {
    let mut from = Vec::with_capacity(4 + 2 + user_id.len());
    from.extend_from_slice(&catalog_id.to_be_bytes());
    from.extend_from_slice(&(user_id.len() as u16).to_be_bytes());
    from.extend_from_slice(user_id.as_bytes());
    let mut to = from.clone();
    // Times and suffixes follow the prefix: 16 bytes of 0xff bound them all.
    to.extend_from_slice(&[0xff; 17]);
    (from, to)
}

/// Key in `meta` of a catalog's behaviour settings.
pub fn behaviour_key(catalog_id: u32) -> Vec<u8> {
    let mut key = b"behaviour/".to_vec();
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key
}

/// Key in `meta` of the next catalog id to hand out.
pub const NEXT_CATALOG_ID: &[u8] = b"next_catalog_id";

/// Key in `meta` of the change number the catalog's current index snapshot
/// reflects (its watermark).
pub fn watermark_key(catalog_id: u32) -> Vec<u8> {
    let mut key = b"watermark/".to_vec();
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key
}

/// Key of change `change` of catalog `catalog_id` in `changes`.
pub fn change_key(catalog_id: u32, change: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(12);
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key.extend_from_slice(&change.to_be_bytes());
    key
}

/// The change number of a key in `changes`.
pub fn split_change_key(key: &[u8]) -> Option<(u32, u64)> {
    let catalog_id = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let change = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    (key.len() == 12).then_some((catalog_id, change))
}

/// Key of a record (item or user) `id` in catalog `catalog_id`.
pub fn record_key(catalog_id: u32, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + id.len());
    key.extend_from_slice(&catalog_id.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The half-open key range holding all records of `catalog_id`.
pub fn catalog_range(catalog_id: u32) -> (Vec<u8>, Vec<u8>) {
    let from = catalog_id.to_be_bytes().to_vec();
    let to = match catalog_id.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        // The last id: everything from its prefix on belongs to it.
        None => vec![0xff; 5],
    };
    (from, to)
}

/// Splits a record key into catalog id and record id.
pub fn split_record_key(key: &[u8]) -> Option<(u32, &str)> {
    if key.len() < 4 {
        return None;
    }
    let catalog_id = u32::from_be_bytes(key[..4].try_into().ok()?);
    let id = std::str::from_utf8(&key[4..]).ok()?;
    Some((catalog_id, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_group_by_user_and_sort_by_time() {
        let a = event_key(3, "u1", -5, 0);
        let b = event_key(3, "u1", 7, 0);
        let c = event_key(3, "u1", 7, 1);
        let other = event_key(3, "u10", -100, 0);
        assert!(a < b && b < c);
        // A longer user id never interleaves with a shorter one's events.
        assert!(c < other || other < a);
        let (from, to) = catalog_range(3);
        assert!(from <= a && c < to);
        let (from, to) = user_events_range(3, "u1");
        assert!(from <= a && c < to && !(from <= other && other < to));
        let last = event_key(3, "u1", i64::MAX, u64::MAX);
        assert!(last < to);
    }

    #[test]
    fn record_keys_round_trip_and_sort_by_catalog() {
        let k = record_key(7, "SKU-1");
        assert_eq!(split_record_key(&k), Some((7, "SKU-1")));
        let (from, to) = catalog_range(7);
        assert!(from.as_slice() <= k.as_slice() && k.as_slice() < to.as_slice());
        assert!(record_key(8, "").as_slice() >= to.as_slice());
        let (_, last) = catalog_range(u32::MAX);
        assert!(record_key(u32::MAX, "\u{10FFFF}").as_slice() < last.as_slice());
    }

    #[test]
    fn impression_keys_sort_by_time_and_come_from_the_id() {
        assert_eq!(recommendation_time("r-18c-0a0b0c0d-1f"), Some(0x18c));
        assert_eq!(recommendation_time("x-18c"), None);
        assert_eq!(recommendation_time("r-zz-1"), None);
        assert_eq!(recommendation_time("r-"), None);
        let k = impression_key_of(2, "r-18c-0a-1").unwrap();
        assert_eq!(k, impression_key(2, 0x18c, "r-18c-0a-1"));
        let (from, to) = impressions_before(2, 0x18d);
        assert!(from <= k && k < to);
        let (_, to) = impressions_before(2, 0x18c);
        assert!(k >= to);
        let (from, to) = catalog_range(2);
        assert!(from <= k && k < to);
        let b = bucket_key(2, -3, Some(1));
        assert_eq!(split_bucket_key(&b), Some((-3, 1)));
        assert!(bucket_key(2, -3, None) < bucket_key(2, 4, Some(0)));
        assert!(is_click_key(&click_key(2, "u", "i")));
        assert!(!is_click_key(&order_key(2, "o")));
    }

    #[test]
    fn change_keys_round_trip_and_sort_by_number() {
        let k = change_key(7, 300);
        assert_eq!(split_change_key(&k), Some((7, 300)));
        assert!(change_key(7, 299) < k && k < change_key(7, 301));
        let (from, to) = catalog_range(7);
        assert!(from.as_slice() <= k.as_slice() && k.as_slice() < to.as_slice());
        assert!(change_key(7, u64::MAX).as_slice() < to.as_slice());
        assert_eq!(split_change_key(&k[..11]), None);
    }
}
