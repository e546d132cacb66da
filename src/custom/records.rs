//! What customization keeps, typed: datasets (their validated annotations with them), models (their
//! status, parameters, performance; the trained head apart), evaluations and product-recognition runs,
//! each sealed in the [`Vault`] (the data directory, or Redis for replicas) and deleted with its owner.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::coco::{AnnotationKind, LabelledSet};
use super::metrics::Performance;
use super::products::ProductResult;
use super::sources::Access;
use super::train::{FeatureCache, HeadKind};
use crate::models::custom_head::CustomHead;
use crate::store::{now, Table, Vault};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub name: String,
    pub kind: AnnotationKind,
    pub files: Vec<String>,
    pub access: Access,
    pub properties: BTreeMap<String, String>,
    pub created: f64,
    pub updated: f64,
    /// Bumped by every change: the ETag.
    pub version: u64,
    /// The files' images and labels as validated at registration (training reads these).
    pub set: LabelledSet,
}

/// What a model is trained to be (Azure's `modelKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    #[serde(rename = "Generic-Classifier")]
    GenericClassifier,
    #[serde(rename = "Generic-Detector")]
    GenericDetector,
    #[serde(rename = "Product-Recognizer")]
    ProductRecognizer,
}

impl ModelKind {
    /// Azure's name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ModelKind::GenericClassifier,
            ModelKind::GenericDetector,
            ModelKind::ProductRecognizer,
        ]
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(text))
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::GenericClassifier => "Generic-Classifier",
            ModelKind::GenericDetector => "Generic-Detector",
            ModelKind::ProductRecognizer => "Product-Recognizer",
        }
    }

    pub fn head(self) -> HeadKind {
        match self {
            ModelKind::GenericClassifier => HeadKind::Classifier,
            _ => HeadKind::Detector,
        }
    }

    /// The kind a dataset trains by default.
    pub fn for_dataset(kind: AnnotationKind) -> Self {
        match kind {
            AnnotationKind::ImageClassification => ModelKind::GenericClassifier,
            AnnotationKind::ImageObjectDetection => ModelKind::GenericDetector,
        }
    }

    pub fn fits(self, kind: AnnotationKind) -> bool {
        (self == ModelKind::GenericClassifier) == (kind == AnnotationKind::ImageClassification)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelStatus {
    NotStarted,
    Training,
    Succeeded,
    Failed,
    Cancelling,
    Cancelled,
}

impl ModelStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ModelStatus::Succeeded | ModelStatus::Failed | ModelStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EvaluationStatus {
    NotStarted,
    Running,
    Succeeded,
    Failed,
}

/// Why a job failed: Azure's code and a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// How far a running job is (a vista extension of Azure's model object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub stage: String,
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub status: ModelStatus,
    pub created: f64,
    pub updated: f64,
    pub dataset: String,
    pub budget_hours: u32,
    pub kind: ModelKind,
    /// Whether the caller named the kind (it is echoed only then).
    pub kind_given: bool,
    pub test_dataset: Option<String>,
    /// The replica that trains it.
    pub owner: String,
    pub cost_minutes: Option<u64>,
    pub performance: Option<Performance>,
    pub error: Option<Failure>,
    /// While it trains (kept apart from the record; see `service`).
    #[serde(default, skip_serializing)]
    pub progress: Option<JobProgress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub name: String,
    pub model: String,
    pub status: EvaluationStatus,
    pub created: f64,
    pub updated: f64,
    pub test_dataset: String,
    pub owner: String,
    pub performance: Option<Performance>,
    pub error: Option<Failure>,
}

/// A product-recognition run. It is computed while its request waits, so a kept run has succeeded
/// (an image that cannot be analysed is refused instead) and never changes after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub name: String,
    pub model: String,
    pub created: f64,
    /// Unix seconds after which it is deleted.
    pub expires: f64,
    pub result: ProductResult,
}

/// A record that says when it last changed.
trait Stamped {
    fn stamp(&mut self, at: f64);
}

impl Stamped for ModelRecord {
    fn stamp(&mut self, at: f64) {
        self.updated = at;
    }
}

impl Stamped for EvaluationRecord {
    fn stamp(&mut self, at: f64) {
        self.updated = at;
    }
}

/// The sealed records of customization, for one replica.
pub struct Registry {
    vault: Arc<Vault>,
    pub replica: String,
}

/// Ids of children (evaluations, runs, cached features) are `parent/child`.
pub fn child_id(parent: &str, child: &str) -> String {
    format!("{parent}/{child}")
}

/// Where a request to cancel a model's training is kept, beside its record.
pub fn cancel_id(model: &str) -> String {
    child_id(model, "cancel")
}

impl Registry {
    pub fn new(vault: Arc<Vault>, replica: &str) -> Self {
        Registry {
            vault,
            replica: replica.to_string(),
        }
    }

    pub fn get<T: serde::de::DeserializeOwned>(&self, table: Table, id: &str) -> Result<Option<T>> {
        self.vault.get_json(table, id)
    }

    pub fn put<T: Serialize>(&self, table: Table, id: &str, value: &T) -> Result<()> {
        self.vault.put_json(table, id, value)
    }

    /// Keeps a new record unless `id` is taken (atomically, also across replicas): false if taken.
    pub fn create<T: Serialize>(
        &self,
        table: Table,
        id: &str,
        value: &T,
        expires: f64,
    ) -> Result<bool> {
        self.vault
            .put_new(table, id, &serde_json::to_vec(value)?, expires)
    }

    /// Every record of `table` (under `parent/` when given), oldest first; records that cannot be
    /// opened are skipped and logged.
    pub fn list<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        parent: Option<&str>,
        created: impl Fn(&T) -> f64,
    ) -> Result<Vec<T>> {
        let mut found = Vec::new();
        for id in self.vault.ids(table)? {
            let direct = match parent {
                Some(parent) => id
                    .strip_prefix(parent)
                    .is_some_and(|rest| rest.starts_with('/')),
                None => !id.contains('/'),
            };
            if !direct {
                continue;
            }
            match self.get::<T>(table, &id) {
                Ok(Some(record)) => found.push(record),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    "skipped a {} record that cannot be opened: {e:#}",
                    table.name()
                ),
            }
        }
        found.sort_by(|a, b| created(a).total_cmp(&created(b)));
        Ok(found)
    }

    pub fn ids(&self, table: Table) -> Result<Vec<String>> {
        self.vault.ids(table)
    }

    pub fn remove(&self, table: Table, id: &str) -> Result<()> {
        self.vault.remove(table, id)
    }

    /// Deletes every value of `table` under `parent/`.
    pub fn remove_children(&self, table: Table, parent: &str) -> Result<()> {
        let prefix = format!("{parent}/");
        for id in self.vault.ids(table)? {
            if id.starts_with(&prefix) {
                self.vault.remove(table, &id)?;
            }
        }
        Ok(())
    }

    /// The model, `cancelling` while a cancel asked of it has not stopped it yet.
    pub fn model(&self, name: &str) -> Result<Option<ModelRecord>> {
        let Some(mut model) = self.get::<ModelRecord>(Table::Models, name)? else {
            return Ok(None);
        };
        if !model.status.is_final() && self.get::<bool>(Table::Models, &cancel_id(name))?.is_some()
        {
            model.status = ModelStatus::Cancelling;
        }
        Ok(Some(model))
    }

    /// Every model, and every model's evaluations: what the job runner looks through.
    pub fn jobs(&self) -> Result<(Vec<ModelRecord>, Vec<EvaluationRecord>)> {
        let models: Vec<ModelRecord> =
            self.list(Table::Models, None, |m: &ModelRecord| m.created)?;
        let mut evaluations = Vec::new();
        for model in &models {
            evaluations.extend(self.list(
                Table::Evaluations,
                Some(&model.name),
                |e: &EvaluationRecord| e.created,
            )?);
        }
        Ok((models, evaluations))
    }

    /// Whether someone asked to cancel the model's training (or deleted it).
    pub fn cancel_requested(&self, model: &str) -> Result<bool> {
        let marker = self.get::<bool>(Table::Models, &cancel_id(model))?;
        let gone = self
            .get::<serde_json::Value>(Table::Models, model)?
            .is_none();
        Ok(marker.is_some() || gone)
    }

    pub fn head(&self, model: &str) -> Result<Option<CustomHead>> {
        self.get(Table::Heads, model)
    }

    /// The record `id` of `table` changed by `change` and stamped; None if it is gone.
    fn update<T: Serialize + serde::de::DeserializeOwned + Stamped>(
        &self,
        table: Table,
        id: &str,
        change: impl FnOnce(&mut T),
    ) -> Result<Option<T>> {
        let Some(mut record) = self.get::<T>(table, id)? else {
            return Ok(None);
        };
        change(&mut record);
        record.stamp(now());
        self.put(table, id, &record)?;
        Ok(Some(record))
    }

    pub fn update_model(
        &self,
        name: &str,
        change: impl FnOnce(&mut ModelRecord),
    ) -> Result<Option<ModelRecord>> {
        self.update(Table::Models, name, change)
    }

    pub fn update_evaluation(
        &self,
        id: &str,
        change: impl FnOnce(&mut EvaluationRecord),
    ) -> Result<Option<EvaluationRecord>> {
        self.update(Table::Evaluations, id, change)
    }

    /// The feature cache of one dataset.
    pub fn features<'a>(&'a self, dataset: &'a str) -> DatasetFeatures<'a> {
        DatasetFeatures {
            registry: self,
            dataset,
        }
    }
}

/// Cached features of one dataset's images, sealed like everything else, deleted with the dataset.
pub struct DatasetFeatures<'a> {
    registry: &'a Registry,
    dataset: &'a str,
}

impl FeatureCache for DatasetFeatures<'_> {
    fn get(&self, key: &str) -> Option<Array2<f32>> {
        let id = child_id(self.dataset, key);
        let bytes = self.registry.vault.get(Table::Features, &id).ok()??;
        decode_rows(&bytes)
    }

    fn put(&self, key: &str, rows: &Array2<f32>) {
        let id = child_id(self.dataset, key);
        if let Err(e) =
            self.registry
                .vault
                .put(Table::Features, &id, &encode_rows(rows), f64::INFINITY)
        {
            tracing::warn!("caching features failed (they are computed again next time): {e:#}");
        }
    }
}

/// Rows as bytes: their count and width (u32 little-endian), then the values (f32 little-endian).
fn encode_rows(rows: &Array2<f32>) -> Vec<u8> {
    let (n, width) = rows.dim();
    let mut bytes = Vec::with_capacity(8 + n * width * 4);
    bytes.extend((n as u32).to_le_bytes());
    bytes.extend((width as u32).to_le_bytes());
    for value in rows.iter() {
        bytes.extend(value.to_le_bytes());
    }
    bytes
}

fn decode_rows(bytes: &[u8]) -> Option<Array2<f32>> {
    let n = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let width = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let values: Vec<f32> = bytes
        .get(8..)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Array2::from_shape_vec((n, width), values).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_rows_survive_their_encoding() {
        let rows =
            Array2::from_shape_vec((2, 3), vec![1.0, -2.5, 3.0, 0.0, f32::MIN_POSITIVE, 7.25])
                .unwrap();
        assert_eq!(decode_rows(&encode_rows(&rows)), Some(rows));
        assert_eq!(decode_rows(&[1, 0, 0]), None);
    }

    #[test]
    fn model_kinds_follow_azure_names_and_datasets() {
        assert_eq!(
            ModelKind::parse("Generic-Detector"),
            Some(ModelKind::GenericDetector)
        );
        assert_eq!(
            ModelKind::parse("generic-detector"),
            Some(ModelKind::GenericDetector)
        );
        assert_eq!(ModelKind::parse("Detector"), None);
        assert!(ModelKind::ProductRecognizer.fits(AnnotationKind::ImageObjectDetection));
        assert!(!ModelKind::GenericClassifier.fits(AnnotationKind::ImageObjectDetection));
    }
}
