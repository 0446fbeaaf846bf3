//! A catalog's experiments: stored durably, held in memory as one
//! immutable list that requests read without a lock beyond an `Arc`
//! clone, and announced to the analytics recorder before they are served.

use std::sync::Arc;

use super::Catalog;
use crate::error::{Error, Result};
use crate::experiments::results::ArmStats;
use crate::experiments::{Experiment, ExperimentName, Status};
use crate::model::Surface;
use crate::storage::Batch;

/// Experiments one catalog keeps (running and stopped).
pub const MAX_EXPERIMENTS: usize = 1000;

impl Catalog {
    /// Every experiment of the catalog, by name.
    pub fn experiments(&self) -> Arc<Vec<Experiment>> {
        Arc::clone(&self.experiments.read())
    }

    pub fn experiment(&self, name: &str) -> Result<Experiment> {
        self.experiments()
            .iter()
            .find(|e| e.name.as_str() == name)
            .cloned()
            .ok_or_else(|| Error::ExperimentNotFound {
                name: name.to_string(),
            })
    }

    /// The running experiment of a surface, if any.
    pub fn running_experiment(&self, surface: Surface) -> Option<Experiment> {
        self.experiments()
            .iter()
            .find(|e| e.surface == surface && e.is_running())
            .cloned()
    }

    /// Stores a new experiment. `Ok(false)`: an identical one exists
    /// already (nothing changes). Another definition under the same name,
    /// or a second running experiment on the surface, is a conflict.
    pub fn put_experiment(&self, experiment: Experiment) -> Result<(Experiment, bool)> {
        let _admin = self.experiments_admin.lock();
        let current = self.experiments();
        if let Some(existing) = current.iter().find(|e| e.name == experiment.name) {
            if existing.same_definition(&experiment) {
                return Ok((existing.clone(), false));
            }
            return Err(Error::Conflict {
                field: "name".into(),
                reason: format!(
                    "experiment {:?} exists with another definition (an experiment cannot change: stop it and start one under a new name)",
                    experiment.name.as_str()
                ),
            });
        }
        if let Some(other) = current
            .iter()
            .find(|e| e.surface == experiment.surface && e.is_running())
        {
            return Err(Error::Conflict {
                field: "surface".into(),
                reason: format!(
                    "experiment {:?} is running on surface {}: stop it first",
                    other.name.as_str(),
                    experiment.surface.as_str()
                ),
            });
        }
        if current.len() >= MAX_EXPERIMENTS {
            return Err(Error::Conflict {
                field: "name".into(),
                reason: format!("a catalog keeps at most {MAX_EXPERIMENTS} experiments"),
            });
        }
        let mut batch = Batch::new();
        batch.put_experiment(self.id, &experiment);
        self.store.commit(batch)?;
        let mut next: Vec<Experiment> = current.iter().cloned().collect();
        next.push(experiment.clone());
        next.sort_by(|a, b| a.name.cmp(&b.name));
        self.publish_experiments(next);
        Ok((experiment, true))
    }

    /// Stops a running experiment (a stopped one stays as it is): it
    /// keeps its results and no longer assigns.
    pub fn stop_experiment(&self, name: &ExperimentName, now_ms: i64) -> Result<Experiment> {
        let _admin = self.experiments_admin.lock();
        let current = self.experiments();
        let mut stopped = current
            .iter()
            .find(|e| &e.name == name)
            .cloned()
            .ok_or_else(|| Error::ExperimentNotFound {
                name: name.as_str().to_string(),
            })?;
        if stopped.status == Status::Stopped {
            return Ok(stopped);
        }
        stopped.status = Status::Stopped;
        stopped.stopped_ms = Some(now_ms);
        let mut batch = Batch::new();
        batch.put_experiment(self.id, &stopped);
        self.store.commit(batch)?;
        let next: Vec<Experiment> = current
            .iter()
            .map(|e| {
                if &e.name == name {
                    stopped.clone()
                } else {
                    e.clone()
                }
            })
            .collect();
        self.publish_experiments(next);
        Ok(stopped)
    }

    /// Tells the recorder first, then serves: an impression naming the
    /// experiment can only be handed over after the recorder knows it.
    fn publish_experiments(&self, next: Vec<Experiment>) {
        self.analytics.experiments_changed(self.id, next.clone());
        *self.experiments.write() = Arc::new(next);
    }

    /// An experiment's per-arm counters, up to date.
    pub fn arm_stats(&self, experiment: &Experiment) -> Result<Vec<ArmStats>> {
        self.analytics.arm_stats(self.id, experiment)
    }

    /// The analytics recorder of this catalog.
    pub fn analytics(&self) -> &Arc<crate::analytics::Analytics> {
        &self.analytics
    }
}
