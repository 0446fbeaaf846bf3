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

/// Every column family, in the order they are opened.
pub const ALL_CFS: [&str; 7] = [
    CF_META,
    CF_CATALOGS,
    CF_ITEMS,
    CF_USERS,
    CF_CHANGES,
    CF_EVENTS,
    CF_EVENT_IDS,
];

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
