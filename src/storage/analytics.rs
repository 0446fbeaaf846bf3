//! The storage side of experiments and analytics: experiment
//! definitions (client data, written durably through the commit thread),
//! the event log (written with the events), and the impressions and
//! counters the analytics recorder derives (written by the recorder alone,
//! through the WAL without an fsync: see `analytics`).

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::codec::analytics as codec;
use super::keys::{self, CF_ANALYTICS, CF_EVENT_LOG, CF_EXPERIMENTS, CF_IMPRESSIONS};
use super::{apply_op, Batch, Op, Store};
use crate::error::{Error, Result};
use crate::experiments::results::ArmStats;
use crate::experiments::Experiment;
use crate::model::analytics::{Bucket, ClickRecord, Exposure, Impression, OrderRecord};
use crate::model::Event;

impl Batch {
    pub fn put_experiment(&mut self, catalog_id: u32, experiment: &Experiment) {
        self.push(Op::Put {
            cf: CF_EXPERIMENTS,
            key: keys::experiment_key(catalog_id, experiment.name.as_str()),
            value: codec::encode_experiment(experiment),
        });
    }

    /// Logs the events of one write under its event-log number.
    pub fn log_events(&mut self, catalog_id: u32, number: u64, events: &[Event]) {
        self.push(Op::Put {
            cf: CF_EVENT_LOG,
            key: keys::event_log_key(catalog_id, number),
            value: codec::encode_event_batch(events),
        });
    }

    pub fn put_impression(&mut self, catalog_id: u32, impression: &Impression) {
        self.push(Op::Put {
            cf: CF_IMPRESSIONS,
            // Keyed by the time the id carries, so a lookup by id finds it.
            key: keys::impression_key_of(catalog_id, &impression.id).unwrap_or_else(|| {
                keys::impression_key(catalog_id, impression.at_ms, &impression.id)
            }),
            value: codec::encode_impression(impression),
        });
    }

    /// Deletes the impressions of `catalog_id` older than `before_ms`.
    pub fn expire_impressions(&mut self, catalog_id: u32, before_ms: i64) {
        let (from, to) = keys::impressions_before(catalog_id, before_ms);
        self.push(Op::DeleteRange {
            cf: CF_IMPRESSIONS,
            from,
            to,
        });
    }

    pub fn put_exposure(&mut self, catalog_id: u32, experiment: &str, unit: &str, e: &Exposure) {
        self.push(Op::Put {
            cf: CF_ANALYTICS,
            key: keys::exposure_key(catalog_id, experiment, unit),
            value: codec::encode_exposure(e),
        });
    }

    pub fn put_arm_stats(&mut self, catalog_id: u32, experiment: &str, arms: &[ArmStats]) {
        self.push(Op::Put {
            cf: CF_ANALYTICS,
            key: keys::arm_stats_key(catalog_id, experiment),
            value: codec::encode_arm_stats(arms),
        });
    }

    pub fn put_bucket(&mut self, catalog_id: u32, hour: i64, surface: Option<u8>, b: &Bucket) {
        self.push(Op::Put {
            cf: CF_ANALYTICS,
            key: keys::bucket_key(catalog_id, hour, surface),
            value: codec::encode_bucket(b),
        });
    }

    pub fn put_order(&mut self, catalog_id: u32, order: &str, o: &OrderRecord) {
        self.push(Op::Put {
            cf: CF_ANALYTICS,
            key: keys::order_key(catalog_id, order),
            value: codec::encode_order(o),
        });
    }

    pub fn put_click(&mut self, catalog_id: u32, user: &str, item: &str, c: &ClickRecord) {
        self.push(Op::Put {
            cf: CF_ANALYTICS,
            key: keys::click_key(catalog_id, user, item),
            value: codec::encode_click(c),
        });
    }

    pub fn delete_click(&mut self, catalog_id: u32, user: &str, item: &str) {
        self.push(Op::Delete {
            cf: CF_ANALYTICS,
            key: keys::click_key(catalog_id, user, item),
        });
    }

    /// Records that every event-log entry up to `number` is counted.
    pub fn set_analytics_watermark(&mut self, catalog_id: u32, number: u64) {
        self.push(Op::Put {
            cf: CF_ANALYTICS,
            key: keys::analytics_watermark_key(catalog_id),
            value: number.to_be_bytes().to_vec(),
        });
    }

    /// Drops the event-log entries up to `number` (counted ones: at or
    /// below the watermark). One range tombstone: the recorder sends it
    /// every few minutes, not with every watermark, because RocksDB
    /// fragments all of a memtable's range tombstones on each flush and
    /// read, and thousands of them stalled every write for minutes.
    pub fn trim_event_log(&mut self, catalog_id: u32, number: u64) {
        self.push(Op::DeleteRange {
            cf: CF_EVENT_LOG,
            from: keys::event_log_key(catalog_id, 0),
            to: keys::event_log_key(catalog_id, number.saturating_add(1)),
        });
    }
}

impl Store {
    /// Copies a catalog's experiments, impressions, event log and analytics
    /// records to another catalog id (a `recstore load` generation), in
    /// batches written without the WAL (the loader flushes before it
    /// switches).
    pub fn copy_analytics(&self, from_id: u32, to_id: u32) -> Result<()> {
        for cf in [CF_EXPERIMENTS, CF_IMPRESSIONS, CF_EVENT_LOG, CF_ANALYTICS] {
            let (from, to) = keys::catalog_range(from_id);
            let mut batch = Batch::new();
            let iter = self
                .db
                .iterator_cf(&self.cf(cf), IteratorMode::From(&from, Direction::Forward));
            for entry in iter {
                let (key, value) = entry?;
                if key.as_ref() >= to.as_slice() {
                    break;
                }
                let mut moved = to_id.to_be_bytes().to_vec();
                moved.extend_from_slice(&key[4..]);
                batch.push(Op::Put {
                    cf,
                    key: moved,
                    value: value.to_vec(),
                });
                if batch.bytes() >= 8 << 20 {
                    self.write_without_wal(std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                self.write_without_wal(batch)?;
            }
        }
        Ok(())
    }

    /// Writes `batch` through the WAL without waiting for an fsync and
    /// without the commit thread: for the analytics recorder, whose
    /// records are derived (or, for impressions, best-effort) and which is
    /// the only writer of its keys. A process crash keeps them (the WAL is
    /// in the OS's cache); a power loss may lose the last ones, watermark
    /// included, and the event log then replays what they counted.
    pub fn write_unsynced(&self, batch: Batch) -> Result<()> {
        self.writable()?;
        let mut write = WriteBatch::default();
        for op in &batch.ops {
            apply_op(&self.db, &mut write, op);
        }
        self.db.write_opt(write, &WriteOptions::default())?;
        Ok(())
    }

    /// The experiments of a catalog, by name.
    pub fn experiments(&self, catalog_id: u32) -> Result<Vec<Experiment>> {
        let mut out = Vec::new();
        self.for_each_record(CF_EXPERIMENTS, catalog_id, |name, value| {
            out.push(codec::decode_experiment(name, value)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The highest event-log number of a catalog, if any entry is left.
    pub fn last_event_log_number(&self, catalog_id: u32) -> Result<Option<u64>> {
        self.last_numbered(CF_EVENT_LOG, catalog_id)
    }

    /// Calls `f` with each event-log entry of a catalog numbered above
    /// `after`, in order.
    pub fn for_each_logged_events(
        &self,
        catalog_id: u32,
        after: u64,
        mut f: impl FnMut(u64, Vec<Event>) -> Result<()>,
    ) -> Result<()> {
        let from = keys::event_log_key(catalog_id, after.saturating_add(1));
        let (_, to) = keys::catalog_range(catalog_id);
        let iter = self.db.iterator_cf(
            &self.cf(CF_EVENT_LOG),
            IteratorMode::From(&from, Direction::Forward),
        );
        for entry in iter {
            let (key, value) = entry?;
            if key.as_ref() >= to.as_slice() {
                break;
            }
            let (_, number) = keys::split_change_key(&key).ok_or_else(|| Error::Corruption {
                what: "event log".into(),
                reason: "bad key".into(),
            })?;
            f(number, codec::decode_event_batch(&value)?)?;
        }
        Ok(())
    }

    /// Calls `f` with each stored impression of a catalog shown in
    /// `[from_ms, before_ms)`, oldest first. A value that does not decode
    /// is skipped and counted (the training that reads them must not stop
    /// at one bad record); the count is returned.
    pub fn for_each_impression(
        &self,
        catalog_id: u32,
        from_ms: i64,
        before_ms: i64,
        mut f: impl FnMut(Impression),
    ) -> Result<u64> {
        let from = keys::impression_key(catalog_id, from_ms, "");
        let (_, to) = keys::impressions_before(catalog_id, before_ms);
        let iter = self.db.iterator_cf(
            &self.cf(CF_IMPRESSIONS),
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut bad = 0;
        for entry in iter {
            let (key, value) = entry?;
            if key.as_ref() >= to.as_slice() {
                break;
            }
            let id = key.get(12..).and_then(|k| std::str::from_utf8(k).ok());
            match id.map(|id| codec::decode_impression(id, &value)) {
                Some(Ok(i)) => f(i),
                _ => bad += 1,
            }
        }
        Ok(bad)
    }

    /// The stored impression with this recommendation id.
    pub fn impression(&self, catalog_id: u32, id: &str) -> Result<Option<Impression>> {
        let Some(key) = keys::impression_key_of(catalog_id, id) else {
            return Ok(None);
        };
        match self.db.get_pinned_cf(&self.cf(CF_IMPRESSIONS), key)? {
            Some(v) => Ok(Some(codec::decode_impression(id, &v)?)),
            None => Ok(None),
        }
    }

    fn analytics_get(&self, key: Vec<u8>) -> Result<Option<rocksdb::DBPinnableSlice<'_>>> {
        Ok(self.db.get_pinned_cf(&self.cf(CF_ANALYTICS), key)?)
    }

    pub fn exposure(
        &self,
        catalog_id: u32,
        experiment: &str,
        unit: &str,
    ) -> Result<Option<Exposure>> {
        self.analytics_get(keys::exposure_key(catalog_id, experiment, unit))?
            .map(|v| codec::decode_exposure(&v))
            .transpose()
    }

    pub fn arm_stats(&self, catalog_id: u32, experiment: &str) -> Result<Option<Vec<ArmStats>>> {
        self.analytics_get(keys::arm_stats_key(catalog_id, experiment))?
            .map(|v| codec::decode_arm_stats(&v))
            .transpose()
    }

    pub fn bucket(
        &self,
        catalog_id: u32,
        hour: i64,
        surface: Option<u8>,
    ) -> Result<Option<Bucket>> {
        self.analytics_get(keys::bucket_key(catalog_id, hour, surface))?
            .map(|v| codec::decode_bucket(&v))
            .transpose()
    }

    pub fn order(&self, catalog_id: u32, order: &str) -> Result<Option<OrderRecord>> {
        self.analytics_get(keys::order_key(catalog_id, order))?
            .map(|v| codec::decode_order(&v))
            .transpose()
    }

    pub fn click(&self, catalog_id: u32, user: &str, item: &str) -> Result<Option<ClickRecord>> {
        self.analytics_get(keys::click_key(catalog_id, user, item))?
            .map(|v| codec::decode_click(&v))
            .transpose()
    }

    /// The recorder's watermark of a catalog (0: nothing counted).
    pub fn analytics_watermark(&self, catalog_id: u32) -> Result<u64> {
        match self.analytics_get(keys::analytics_watermark_key(catalog_id))? {
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| Error::Corruption {
                    what: "analytics watermark".into(),
                    reason: format!("{} bytes", v.len()),
                })?;
                Ok(u64::from_be_bytes(bytes))
            }
            None => Ok(0),
        }
    }

    /// The hour buckets of a catalog from `from_hour` to `to_hour`
    /// (inclusive), in hour order: `(hour, surface code or u8::MAX, bucket)`.
    pub fn buckets(
        &self,
        catalog_id: u32,
        from_hour: i64,
        to_hour: i64,
        mut f: impl FnMut(i64, u8, Bucket),
    ) -> Result<()> {
        let from = keys::bucket_key(catalog_id, from_hour, Some(0));
        let to = keys::bucket_key(catalog_id, to_hour, None);
        let iter = self.db.iterator_cf(
            &self.cf(CF_ANALYTICS),
            IteratorMode::From(&from, Direction::Forward),
        );
        for entry in iter {
            let (key, value) = entry?;
            if key.as_ref() > to.as_slice() {
                break;
            }
            if let Some((hour, surface)) = keys::split_bucket_key(&key) {
                f(hour, surface, codec::decode_bucket(&value)?);
            }
        }
        Ok(())
    }
}
