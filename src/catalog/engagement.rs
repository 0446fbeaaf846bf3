//! A catalog's engagement scorer: the model in use, when it is due for a
//! training, and the training scan over the catalog's impressions (see
//! `engagement` for the model, `analytics` for the labels).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Catalog;
use crate::engagement::file::{self, FILE_NAME};
use crate::engagement::train::{train, NotEnough, Sample, MAX_SAMPLES};
use crate::engagement::{slot, Prior, Scorer, FEATURE_COUNT, FEATURE_VERSION, POSITIONS};
use crate::error::Result;
use crate::model::analytics::now_ms;
use crate::model::Surface;

/// What one training did.
#[derive(Debug, Clone)]
pub struct EngagementTraining {
    pub scorer: Arc<Scorer>,
    /// Why the prior is still in use, when no model came out.
    pub not_enough: Option<NotEnough>,
    /// Impressions read, and those skipped as undecodable.
    pub impressions: u64,
    pub unreadable: u64,
}

impl Catalog {
    /// Reads the stored scorer at open: a missing or unusable file is the
    /// default prior (and a training at the first check).
    pub(super) fn read_engagement(
        models: &crate::collaborative::file::ModelDir,
        id: u32,
        name: &crate::model::CatalogName,
    ) -> Scorer {
        match models
            .read_file(id, FILE_NAME)
            .and_then(|bytes| bytes.map(|b| file::decode(&b)).transpose())
        {
            Ok(Some(scorer)) => scorer,
            Ok(None) => Scorer::default(),
            Err(reason) => {
                tracing::warn!(catalog = %name, %reason, "engagement model unusable; it is trained again from the impressions");
                Scorer::default()
            }
        }
    }

    /// The scorer in use.
    pub fn engagement(&self) -> Arc<Scorer> {
        Arc::clone(&self.engagement.read())
    }

    /// Whether a training is running now.
    pub fn engagement_training(&self) -> bool {
        self.engagement_lock.try_lock().is_none()
    }

    /// Whether the scorer should be trained now: never trained since the
    /// catalog was created; or `engagement.retrain_min_outcomes` new
    /// engaged hits since the last training; or the last one is
    /// `engagement.retrain_secs` old and impressions arrived since.
    pub fn engagement_due(&self) -> bool {
        let settings = self.behaviour_settings.read().engagement;
        let scorer = self.engagement();
        if scorer.trained_at_ms == 0 {
            return true;
        }
        let (impressions, engaged) = self.analytics.activity(self.id);
        let [last_impressions, last_engaged] = *self.engagement_marks.lock();
        if engaged.saturating_sub(last_engaged) >= settings.retrain_min_outcomes {
            return true;
        }
        now_ms().saturating_sub(scorer.trained_at_ms) >= settings.retrain_ms
            && impressions > last_impressions
    }

    /// Trains the scorer from the stored impressions now, puts it in use
    /// and persists it; waits for a training already running. Blocking:
    /// call it from a background or blocking thread.
    ///
    /// Reads the impressions shown before `now - attribution window`
    /// (their outcomes are final), fits the prior from all of them and the
    /// model from the newest [`MAX_SAMPLES`] hits that carry features of
    /// this build's layout.
    pub fn train_engagement(&self) -> Result<EngagementTraining> {
        let _training = self.engagement_lock.lock();
        let settings = self.behaviour_settings().engagement;
        let now = now_ms();
        let watermark = now - self.analytics.window_ms();
        let marks = {
            let (impressions, engaged) = self.analytics.activity(self.id);
            [impressions, engaged]
        };
        let surfaces = Surface::ALL.len();
        let mut shown = vec![[0u64; POSITIONS]; surfaces];
        let mut engaged = vec![[0u64; POSITIONS]; surfaces];
        let mut samples: std::collections::VecDeque<Sample> = std::collections::VecDeque::new();
        // Items by index, for the item-record features.
        let mut interned: std::collections::HashMap<Arc<str>, u32> =
            std::collections::HashMap::new();
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut impressions = 0u64;
        let unreadable = self.store.for_each_impression(self.id, 0, watermark, |i| {
            impressions += 1;
            let code = i.surface.code() as usize;
            let usable = i.surface != Surface::Search
                && i.feature_version == FEATURE_VERSION
                && usize::from(i.feature_count) == FEATURE_COUNT;
            for p in 0..i.items.len() {
                let hit = i.engaged.binary_search(&(p as u32)).is_ok();
                shown[code][slot(p)] += 1;
                engaged[code][slot(p)] += u64::from(hit);
                if !usable {
                    continue;
                }
                let mut x = [0f32; FEATURE_COUNT];
                x.copy_from_slice(&i.features[p * FEATURE_COUNT..(p + 1) * FEATURE_COUNT]);
                if samples.len() == MAX_SAMPLES {
                    samples.pop_front();
                }
                let item = *interned.entry(Arc::clone(&i.items[p])).or_insert_with(|| {
                    names.push(Arc::clone(&i.items[p]));
                    (names.len() - 1) as u32
                });
                samples.push_back(Sample {
                    at_ms: i.at_ms,
                    item,
                    surface: i.surface,
                    position: p,
                    x,
                    engaged: hit,
                });
            }
        })?;
        let prior = Prior::fit(&shown, &engaged);
        // What served hits see: every labelled hit up to the watermark.
        let items = crate::engagement::train::item_counts(samples.make_contiguous())
            .into_iter()
            .map(|(i, c)| (names[i as usize].to_string(), c))
            .collect();
        let trained = train(
            samples.into(),
            &prior,
            settings.min_samples,
            settings.min_positives,
            now,
            watermark,
        );
        let (model, not_enough) = match trained {
            Ok(m) => (Some(m), None),
            Err(why) => (None, Some(why)),
        };
        let scorer = Arc::new(Scorer {
            prior,
            model,
            watermark_ms: watermark,
            trained_at_ms: now,
            items,
        });
        match (&scorer.model, &not_enough) {
            (Some(m), _) => tracing::info!(
                catalog = %self.name,
                samples = m.info.samples,
                held_out = m.info.held_out,
                auc = m.info.quality.auc.unwrap_or(f64::NAN),
                ece = m.info.quality.ece,
                seconds = m.info.seconds,
                "engagement model trained"
            ),
            (None, Some(why)) => {
                tracing::info!(catalog = %self.name, reason = %why, "engagement: the prior stays in use")
            }
            (None, None) => {}
        }
        if self.store.read_only().is_none() {
            if let Err(e) = self
                .models
                .write_file(self.id, FILE_NAME, &file::encode(&scorer))
            {
                tracing::warn!(catalog = %self.name, error = %e, "could not persist the engagement model (it is trained again at the next start)");
            }
        }
        *self.engagement_marks.lock() = marks;
        *self.engagement.write() = Arc::clone(&scorer);
        self.engagement_trainings.fetch_add(1, Ordering::Relaxed);
        Ok(EngagementTraining {
            scorer,
            not_enough,
            impressions,
            unreadable,
        })
    }

    /// Trainings since the catalog opened.
    pub fn engagement_trainings(&self) -> u64 {
        self.engagement_trainings.load(Ordering::Relaxed)
    }
}
