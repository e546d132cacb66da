//! The customization service the surfaces call: datasets registered and validated, models created and
//! trained by a background runner (one job at a time, next to the analyze workers), evaluations,
//! cancel and delete, and trained heads handed to analyze (loaded once, cached until the model
//! changes). Every record lives sealed in the [`Registry`], so a restart or another replica on the
//! same Redis sees it; a job this replica was running when it stopped is run again from the start
//! (training is deterministic), never left stuck.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::coco::{self, AnnotationKind, LabelledSet};
use super::lock;
use super::products::ProductResult;
use super::records::{
    cancel_id, child_id, DatasetRecord, EvaluationRecord, EvaluationStatus, Failure, JobProgress,
    ModelKind, ModelRecord, ModelStatus, Registry, RunRecord,
};
use super::sources::{
    image_location, is_url, Access, BlockingLoader, Sources, MAX_ANNOTATION_BYTES,
};
use super::train::{Data, Observer, Progress, Stage, TrainError, Trainer};
use crate::metrics::{TRAINING_JOBS, TRAINING_PROGRESS};
use crate::models::custom_head::{CustomHead, FEATURE_RECIPE};
use crate::pipeline::Pipeline;
use crate::store::{now, spawn_sweeper, Table, Vault};

/// At most this many annotation files a dataset (Azure's limit).
const MAX_FILES: usize = 10;
/// At most this many custom properties a dataset.
const MAX_PROPERTIES: usize = 10;
/// Images checked for reachability at once when a dataset is registered.
const CHECK_AT_ONCE: usize = 8;
/// How often a running job writes its progress and looks for a cancel (a store round trip each).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often a training replica looks for jobs accepted by a replica that does not train.
const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// The training budget's bounds in hours (Spec: 1..1344).
pub const BUDGET_HOURS: std::ops::RangeInclusive<u32> = 1..=1344;

#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// `what` is "Dataset", "Model" or "Evaluation".
    #[error("the {} '{name}' already exists", what.to_ascii_lowercase())]
    AlreadyExists { what: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("the customization store is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

impl From<anyhow::Error> for CustomError {
    fn from(error: anyhow::Error) -> Self {
        CustomError::Unavailable(error)
    }
}

/// A dataset as a caller registers or changes it (every part optional on a change).
#[derive(Debug, Clone, Default)]
pub struct DatasetSpec {
    pub kind: Option<AnnotationKind>,
    pub files: Option<Vec<String>>,
    pub access: Option<Access>,
    pub properties: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub dataset: String,
    pub budget_hours: u32,
    pub kind: Option<ModelKind>,
    pub test_dataset: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Images whose features a training computes at once (0: this replica does not train).
    pub training_threads: usize,
    /// Whether to run again the jobs this replica left unfinished (the server does; the one-shot
    /// `vista train` leaves them to it).
    pub resume: bool,
    /// How long a product-recognition run is kept (the Read operations' time to live).
    pub run_ttl: Duration,
    /// Whether other replicas share the store (Redis): only then can a job be accepted by a
    /// replica that does not train, and need claiming.
    pub shared: bool,
}

enum Job {
    Train(String),
    Evaluate(String),
}

pub struct Customization {
    registry: Arc<Registry>,
    /// Whether this replica trains (`--training-threads` above 0); jobs accepted by one that does
    /// not are left unowned, for a replica that does to claim.
    trains: bool,
    run_ttl: Duration,
    sources: Sources,
    jobs: mpsc::UnboundedSender<Job>,
    heads: Mutex<HashMap<String, (f64, Arc<CustomHead>)>>,
}

/// Names of datasets, models, evaluations and runs (Spec): `^[a-zA-Z0-9][a-zA-Z0-9._-]*$`, at most 255.
pub fn check_name(name: &str, what: &str) -> Result<(), CustomError> {
    let mut chars = name.chars();
    let valid = name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(CustomError::Invalid(format!(
            "the {what} name '{name}' is not valid: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 255 characters"
        )))
    }
}

impl Customization {
    /// Starts the runner (unless `training_threads` is 0) and queues the jobs this replica left
    /// unfinished. Call inside the server's runtime.
    pub fn start(
        vault: Arc<Vault>,
        replica: &str,
        pipeline: Arc<Pipeline>,
        sources: Sources,
        settings: Settings,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry::new(vault, replica));
        let (jobs, mut pending) = mpsc::unbounded_channel::<Job>();
        let service = Arc::new(Customization {
            registry: Arc::clone(&registry),
            trains: settings.training_threads > 0,
            run_ttl: settings.run_ttl,
            sources: sources.clone(),
            jobs,
            heads: Mutex::new(HashMap::new()),
        });
        spawn_sweeper(
            Arc::clone(&registry),
            "product-recognition runs",
            Self::sweep_runs,
        );
        if settings.training_threads == 0 {
            return service;
        }
        let runtime = tokio::runtime::Handle::current();
        tokio::spawn(async move {
            while let Some(job) = pending.recv().await {
                let context = JobContext {
                    registry: Arc::clone(&registry),
                    pipeline: Arc::clone(&pipeline),
                    sources: sources.clone(),
                    runtime: runtime.clone(),
                    threads: settings.training_threads,
                };
                let outcome = tokio::task::spawn_blocking(move || context.run(job)).await;
                TRAINING_JOBS.dec();
                TRAINING_PROGRESS.set(0.0);
                match outcome {
                    Ok(Err(e)) => {
                        tracing::error!("a training job could not record its outcome: {e:#}")
                    }
                    Err(e) => tracing::error!("a training job panicked: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        });
        if !settings.resume {
            return service;
        }
        let resumer = Arc::clone(&service);
        tokio::spawn(async move {
            if let Err(e) = resumer.resume().await {
                tracing::error!("looking for unfinished training jobs failed: {e}");
            }
            if !settings.shared {
                return;
            }
            let mut every = tokio::time::interval(CLAIM_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = resumer.claim_unowned().await {
                    tracing::warn!("looking for training jobs to claim failed: {e}");
                }
            }
        });
        service
    }

    /// Takes the jobs that a replica which does not train accepted: each is claimed by writing this
    /// replica's name into it, and queued if the name stuck.
    async fn claim_unowned(&self) -> Result<(), CustomError> {
        let replica = self.registry.replica.clone();
        let claimed = self
            .blocking(move |registry| {
                let mut claimed = Vec::new();
                let (models, evaluations) = registry.jobs()?;
                let unowned = models
                    .iter()
                    .filter(|m| m.owner.is_empty() && m.status == ModelStatus::NotStarted);
                for model in unowned {
                    let taken = registry.update_model(&model.name, |m| {
                        if m.owner.is_empty() {
                            m.owner = replica.clone();
                        }
                    })?;
                    if taken.is_some_and(|m| m.owner == replica) {
                        claimed.push(Job::Train(model.name.clone()));
                    }
                }
                let unowned = evaluations
                    .iter()
                    .filter(|e| e.owner.is_empty() && e.status == EvaluationStatus::NotStarted);
                for evaluation in unowned {
                    let id = child_id(&evaluation.model, &evaluation.name);
                    let taken = registry.update_evaluation(&id, |e| {
                        if e.owner.is_empty() {
                            e.owner = replica.clone();
                        }
                    })?;
                    if taken.is_some_and(|e| e.owner == replica) {
                        claimed.push(Job::Evaluate(id));
                    }
                }
                Ok(claimed)
            })
            .await?;
        for job in claimed {
            self.queue(job);
        }
        Ok(())
    }

    /// The name jobs this replica accepts are owned by: its own when it trains, none otherwise.
    fn job_owner(&self) -> String {
        if self.trains {
            self.registry.replica.clone()
        } else {
            String::new()
        }
    }

    fn queue(&self, job: Job) {
        TRAINING_JOBS.inc();
        if self.jobs.send(job).is_err() {
            TRAINING_JOBS.dec();
        }
    }

    /// Queues again what this replica accepted and did not finish (a model cancelled meanwhile ends
    /// `cancelled` when its job starts).
    async fn resume(&self) -> Result<(), CustomError> {
        let replica = self.registry.replica.clone();
        let (models, evaluations) = self.blocking(|registry| registry.jobs()).await?;
        for model in models.into_iter().filter(|m| m.owner == replica) {
            if !model.status.is_final() {
                tracing::info!(model = %model.name, "training again a model a restart interrupted");
                self.queue(Job::Train(model.name));
            }
        }
        for evaluation in evaluations.into_iter().filter(|e| e.owner == replica) {
            if matches!(
                evaluation.status,
                EvaluationStatus::NotStarted | EvaluationStatus::Running
            ) {
                self.queue(Job::Evaluate(child_id(&evaluation.model, &evaluation.name)));
            }
        }
        Ok(())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Registry) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, CustomError> {
        crate::store::off_thread(Arc::clone(&self.registry), work)
            .await
            .map_err(CustomError::Unavailable)
    }

    /// The record `id` of `table`, if there is one.
    async fn get<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
        id: String,
    ) -> Result<Option<T>, CustomError> {
        self.blocking(move |registry| registry.get(table, &id))
            .await
    }

    /// Checks that `name` is a valid name that nothing in `table` (under `parent`) has yet.
    async fn ensure_new(
        &self,
        table: Table,
        parent: Option<&str>,
        name: &str,
        what: &'static str,
    ) -> Result<(), CustomError> {
        check_name(name, &what.to_ascii_lowercase())?;
        let id = parent.map_or_else(|| name.to_string(), |p| child_id(p, name));
        let taken = self
            .blocking(move |registry| Ok(registry.get::<serde_json::Value>(table, &id)?.is_some()))
            .await?;
        if taken {
            return Err(CustomError::AlreadyExists {
                what,
                name: name.to_string(),
            });
        }
        Ok(())
    }

    // ----- datasets -----

    /// Reads and validates the annotation files, checks every image answers, and keeps the dataset.
    pub async fn register_dataset(
        &self,
        name: &str,
        spec: DatasetSpec,
    ) -> Result<DatasetRecord, CustomError> {
        self.ensure_new(Table::Datasets, None, name, "Dataset")
            .await?;
        let kind = spec.kind.ok_or_else(|| {
            CustomError::Invalid(
                "annotationKind is required: imageClassification or imageObjectDetection".into(),
            )
        })?;
        let files = spec
            .files
            .ok_or_else(|| CustomError::Invalid("annotationFileUris is required".into()))?;
        let access = spec.access.unwrap_or_default();
        let properties = spec.properties.unwrap_or_default();
        check_properties(&properties)?;
        let set = self.read_set(kind, &files, &access).await?;
        let at = now();
        let record = DatasetRecord {
            name: name.to_string(),
            kind,
            files,
            access,
            properties,
            created: at,
            updated: at,
            version: 1,
            set,
        };
        self.create(
            Table::Datasets,
            name.to_string(),
            &record,
            "Dataset",
            name,
            f64::INFINITY,
        )
        .await?;
        Ok(record)
    }

    /// Keeps a new record, or answers `AlreadyExists` when another request took the name meanwhile.
    async fn create<T: serde::Serialize + Clone + Send + 'static>(
        &self,
        table: Table,
        id: String,
        record: &T,
        what: &'static str,
        name: &str,
        expires: f64,
    ) -> Result<(), CustomError> {
        let stored = record.clone();
        let fresh = self
            .blocking(move |r| r.create(table, &id, &stored, expires))
            .await?;
        if !fresh {
            return Err(CustomError::AlreadyExists {
                what,
                name: name.to_string(),
            });
        }
        Ok(())
    }

    async fn read_set(
        &self,
        kind: AnnotationKind,
        files: &[String],
        access: &Access,
    ) -> Result<LabelledSet, CustomError> {
        if files.is_empty() || files.len() > MAX_FILES {
            return Err(CustomError::Invalid(format!(
                "annotationFileUris must list 1 to {MAX_FILES} files, found {}",
                files.len()
            )));
        }
        if access.kind.eq_ignore_ascii_case("sas") && access.sas_token.is_none() {
            return Err(CustomError::Invalid(
                "authentication kind 'sas' needs a sasToken".into(),
            ));
        }
        let mut set = LabelledSet::default();
        for file in files {
            let bytes = self
                .sources
                .read(file, access, MAX_ANNOTATION_BYTES)
                .await
                .map_err(|e| {
                    CustomError::Invalid(format!("annotation file '{file}' cannot be read: {e}"))
                })?;
            let first = set.images.len();
            coco::add_file(&mut set, &bytes, kind, !is_url(file))
                .map_err(|e| CustomError::Invalid(format!("annotation file '{file}': {e}")))?;
            for image in &mut set.images[first..] {
                image.location = image_location(file, &image.location);
            }
        }
        coco::check_set(&set, kind).map_err(CustomError::Invalid)?;
        // Owned futures: each check holds its own handles (a borrowed stream is not `Send` here).
        let checks = set.images.iter().map(|image| {
            let (sources, access) = (self.sources.clone(), access.clone());
            let (location, file_name) = (image.location.clone(), image.file_name.clone());
            async move {
                sources
                    .reachable(&location, &access)
                    .await
                    .map_err(|e| format!("image '{file_name}': {e}"))
            }
        });
        let checks = futures_util::stream::iter(checks.collect::<Vec<_>>())
            .buffered(CHECK_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        if let Some(Err(problem)) = checks.into_iter().find(Result::is_err) {
            return Err(CustomError::Invalid(problem));
        }
        Ok(set)
    }

    pub async fn dataset(&self, name: &str) -> Result<DatasetRecord, CustomError> {
        self.get(Table::Datasets, name.to_string())
            .await?
            .ok_or_else(|| CustomError::NotFound(format!("the dataset '{name}' does not exist")))
    }

    pub async fn datasets(&self) -> Result<Vec<DatasetRecord>, CustomError> {
        self.blocking(|r| r.list(Table::Datasets, None, |d: &DatasetRecord| d.created))
            .await
    }

    /// Replaces what `spec` gives; files are read and validated again when they or the kind change.
    pub async fn update_dataset(
        &self,
        name: &str,
        spec: DatasetSpec,
        if_match: Option<&str>,
    ) -> Result<DatasetRecord, CustomError> {
        let mut record = self.dataset(name).await?;
        check_etag(&record, if_match)?;
        let reread = spec.files.is_some()
            || spec.kind.is_some_and(|k| k != record.kind)
            || spec.access.is_some();
        record.kind = spec.kind.unwrap_or(record.kind);
        record.files = spec.files.unwrap_or(record.files);
        record.access = spec.access.unwrap_or(record.access);
        record.properties = spec.properties.unwrap_or(record.properties);
        check_properties(&record.properties)?;
        if reread {
            record.set = self
                .read_set(record.kind, &record.files, &record.access)
                .await?;
        }
        record.updated = now();
        record.version += 1;
        let stored = record.clone();
        let id = name.to_string();
        self.blocking(move |r| r.put(Table::Datasets, &id, &stored))
            .await?;
        Ok(record)
    }

    /// Deletes the dataset and its cached features.
    pub async fn delete_dataset(
        &self,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), CustomError> {
        let record = self.dataset(name).await?;
        check_etag(&record, if_match)?;
        let id = name.to_string();
        self.blocking(move |r| {
            r.remove_children(Table::Features, &id)?;
            r.remove(Table::Datasets, &id)
        })
        .await
    }

    // ----- models -----

    pub async fn create_model(
        &self,
        name: &str,
        spec: ModelSpec,
    ) -> Result<ModelRecord, CustomError> {
        self.ensure_new(Table::Models, None, name, "Model").await?;
        if !BUDGET_HOURS.contains(&spec.budget_hours) {
            return Err(CustomError::Invalid(format!(
                "timeBudgetInHours must be an integer from {} to {}",
                BUDGET_HOURS.start(),
                BUDGET_HOURS.end()
            )));
        }
        let dataset = self.dataset(&spec.dataset).await.map_err(|_| {
            CustomError::Invalid(format!(
                "the training dataset '{}' does not exist",
                spec.dataset
            ))
        })?;
        let kind = spec.kind.unwrap_or(ModelKind::for_dataset(dataset.kind));
        if !kind.fits(dataset.kind) {
            return Err(CustomError::Invalid(format!(
                "modelKind {} cannot be trained on the {} dataset '{}'",
                kind.name(),
                match dataset.kind {
                    AnnotationKind::ImageClassification => "imageClassification",
                    AnnotationKind::ImageObjectDetection => "imageObjectDetection",
                },
                dataset.name
            )));
        }
        if let Some(test) = &spec.test_dataset {
            let test_set = self.dataset(test).await.map_err(|_| {
                CustomError::Invalid(format!("the test dataset '{test}' does not exist"))
            })?;
            if test_set.kind != dataset.kind {
                return Err(CustomError::Invalid(format!(
                    "the test dataset '{test}' is not of the training dataset's kind"
                )));
            }
        }
        let at = now();
        let record = ModelRecord {
            name: name.to_string(),
            status: ModelStatus::NotStarted,
            created: at,
            updated: at,
            dataset: spec.dataset,
            budget_hours: spec.budget_hours,
            kind,
            kind_given: spec.kind.is_some(),
            test_dataset: spec.test_dataset,
            owner: self.job_owner(),
            cost_minutes: None,
            performance: None,
            error: None,
            progress: None,
        };
        self.create(
            Table::Models,
            name.to_string(),
            &record,
            "Model",
            name,
            f64::INFINITY,
        )
        .await?;
        self.queue(Job::Train(name.to_string()));
        Ok(record)
    }

    /// The model, with its progress while it trains.
    pub async fn model(&self, name: &str) -> Result<ModelRecord, CustomError> {
        let id = name.to_string();
        let mut model = self
            .blocking(move |r| r.model(&id))
            .await?
            .ok_or_else(|| CustomError::NotFound(format!("the model '{name}' does not exist")))?;
        if model.status == ModelStatus::Training {
            model.progress = self.get(Table::Models, progress_id(name)).await?;
        }
        Ok(model)
    }

    pub async fn models(&self) -> Result<Vec<ModelRecord>, CustomError> {
        self.blocking(|r| {
            let stored = r.list(Table::Models, None, |m: &ModelRecord| m.created)?;
            let names = stored.into_iter().map(|m| m.name);
            names
                .filter_map(|name| r.model(&name).transpose())
                .collect()
        })
        .await
    }

    /// Asks a queued or training model to stop; it is `cancelling`, then `cancelled`. The request is
    /// a marker beside the record, not a change of it: no job writing the record at the same moment
    /// can undo it (the job stops on it and ends `cancelled`).
    pub async fn cancel_model(&self, name: &str) -> Result<(), CustomError> {
        let model = self.model(name).await?;
        if model.status.is_final() {
            return Ok(());
        }
        let id = cancel_id(name);
        self.blocking(move |r| r.put(Table::Models, &id, &true))
            .await
    }

    /// Deletes a model in a final state, its head and its evaluations.
    pub async fn delete_model(&self, name: &str) -> Result<(), CustomError> {
        let model = self.model(name).await?;
        if !model.status.is_final() {
            return Err(CustomError::Conflict(format!(
                "the model '{name}' is {}; cancel training first and wait for it to stop",
                status_name(&model.status)
            )));
        }
        let id = name.to_string();
        self.blocking(move |r| {
            r.remove_children(Table::Evaluations, &id)?;
            r.remove_children(Table::Models, &id)?;
            r.remove(Table::Heads, &id)?;
            r.remove(Table::Models, &id)
        })
        .await?;
        lock(&self.heads).remove(name);
        Ok(())
    }

    /// The trained head of a succeeded model, loaded once and kept until the model changes.
    pub async fn trained_head(&self, name: &str) -> Result<Arc<CustomHead>, CustomError> {
        let model = self.model(name).await?;
        if model.status != ModelStatus::Succeeded {
            return Err(CustomError::Conflict(format!(
                "the model '{name}' is not trained (its status is {})",
                status_name(&model.status)
            )));
        }
        if let Some((updated, head)) = lock(&self.heads).get(name) {
            if *updated == model.updated {
                return Ok(Arc::clone(head));
            }
        }
        let head = self
            .get::<CustomHead>(Table::Heads, name.to_string())
            .await?
            .ok_or_else(|| {
                CustomError::NotFound(format!("the model '{name}' has no trained head"))
            })?;
        if head.recipe() != FEATURE_RECIPE {
            return Err(CustomError::Conflict(format!(
                "the model '{name}' was trained by an earlier version of vista on other features; train it again"
            )));
        }
        let head = Arc::new(head);
        lock(&self.heads).insert(name.to_string(), (model.updated, Arc::clone(&head)));
        Ok(head)
    }

    // ----- evaluations -----

    pub async fn create_evaluation(
        &self,
        model: &str,
        name: &str,
        test_dataset: &str,
    ) -> Result<EvaluationRecord, CustomError> {
        self.ensure_new(Table::Evaluations, Some(model), name, "Evaluation")
            .await?;
        let trained = self.model(model).await?;
        if trained.status != ModelStatus::Succeeded {
            return Err(CustomError::Conflict(format!(
                "the model '{model}' is not trained"
            )));
        }
        let id = child_id(model, name);
        self.dataset(test_dataset).await.map_err(|_| {
            CustomError::Invalid(format!("the test dataset '{test_dataset}' does not exist"))
        })?;
        let at = now();
        let record = EvaluationRecord {
            name: name.to_string(),
            model: model.to_string(),
            status: EvaluationStatus::NotStarted,
            created: at,
            updated: at,
            test_dataset: test_dataset.to_string(),
            owner: self.job_owner(),
            performance: None,
            error: None,
        };
        self.create(
            Table::Evaluations,
            id.clone(),
            &record,
            "Evaluation",
            name,
            f64::INFINITY,
        )
        .await?;
        self.queue(Job::Evaluate(id));
        Ok(record)
    }

    pub async fn evaluation(
        &self,
        model: &str,
        name: &str,
    ) -> Result<EvaluationRecord, CustomError> {
        self.get(Table::Evaluations, child_id(model, name))
            .await?
            .ok_or_else(|| {
                CustomError::NotFound(format!(
                    "the evaluation '{name}' of model '{model}' does not exist"
                ))
            })
    }

    pub async fn evaluations(&self, model: &str) -> Result<Vec<EvaluationRecord>, CustomError> {
        self.model(model).await?;
        let parent = model.to_string();
        self.blocking(move |r| {
            r.list(Table::Evaluations, Some(&parent), |e: &EvaluationRecord| {
                e.created
            })
        })
        .await
    }

    pub async fn delete_evaluation(&self, model: &str, name: &str) -> Result<(), CustomError> {
        let evaluation = self.evaluation(model, name).await?;
        if !matches!(
            evaluation.status,
            EvaluationStatus::Succeeded | EvaluationStatus::Failed
        ) {
            return Err(CustomError::Conflict(format!(
                "the evaluation '{name}' is still running"
            )));
        }
        let id = child_id(model, name);
        self.blocking(move |r| r.remove(Table::Evaluations, &id))
            .await
    }

    // ----- product recognition runs -----

    /// Refuses a run name that is taken (or invalid) before the image is analysed.
    pub async fn check_new_run(&self, model: &str, name: &str) -> Result<(), CustomError> {
        self.ensure_new(Table::Runs, Some(model), name, "Run").await
    }

    /// Keeps a finished run (it expires like a Read operation: it describes a customer's photo).
    pub async fn save_run(
        &self,
        model: &str,
        name: &str,
        result: ProductResult,
    ) -> Result<RunRecord, CustomError> {
        let at = now();
        let record = RunRecord {
            name: name.to_string(),
            model: model.to_string(),
            created: at,
            expires: at + self.run_ttl.as_secs_f64(),
            result,
        };
        self.create(
            Table::Runs,
            child_id(model, name),
            &record,
            "Run",
            name,
            record.expires,
        )
        .await?;
        Ok(record)
    }

    pub async fn run(&self, model: &str, name: &str) -> Result<RunRecord, CustomError> {
        let record: Option<RunRecord> = self.get(Table::Runs, child_id(model, name)).await?;
        record.filter(|run| run.expires > now()).ok_or_else(|| {
            CustomError::NotFound(format!(
                "the run '{name}' of model '{model}' does not exist"
            ))
        })
    }

    pub async fn runs(&self, model: &str) -> Result<Vec<RunRecord>, CustomError> {
        let parent = model.to_string();
        let runs = self
            .blocking(move |r| r.list(Table::Runs, Some(&parent), |run: &RunRecord| run.created))
            .await?;
        Ok(runs.into_iter().filter(|run| run.expires > now()).collect())
    }

    /// Deletes the runs whose time is up (Redis drops them itself; the embedded store needs this).
    fn sweep_runs(registry: &Registry) -> anyhow::Result<usize> {
        let mut removed = 0;
        for id in registry.ids(Table::Runs)? {
            if let Ok(Some(run)) = registry.get::<RunRecord>(Table::Runs, &id) {
                if run.expires <= now() {
                    registry.remove(Table::Runs, &id)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub async fn delete_run(&self, model: &str, name: &str) -> Result<(), CustomError> {
        self.run(model, name).await?;
        let id = child_id(model, name);
        self.blocking(move |r| r.remove(Table::Runs, &id)).await
    }
}

pub fn status_name(status: &ModelStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn check_properties(properties: &BTreeMap<String, String>) -> Result<(), CustomError> {
    if properties.len() > MAX_PROPERTIES {
        return Err(CustomError::Invalid(format!(
            "customProperties may hold at most {MAX_PROPERTIES} pairs"
        )));
    }
    Ok(())
}

/// The dataset's ETag.
pub fn etag(record: &DatasetRecord) -> String {
    format!("\"{}\"", record.version)
}

fn check_etag(record: &DatasetRecord, if_match: Option<&str>) -> Result<(), CustomError> {
    match if_match {
        Some(tag) if tag.trim() != "*" && tag.trim() != etag(record) => {
            Err(CustomError::PreconditionFailed(format!(
                "If-Match {tag} does not match the dataset's ETag {}",
                etag(record)
            )))
        }
        _ => Ok(()),
    }
}

/// What one job needs on its blocking thread.
struct JobContext {
    registry: Arc<Registry>,
    pipeline: Arc<Pipeline>,
    sources: Sources,
    runtime: tokio::runtime::Handle,
    threads: usize,
}

/// A cancel check that reads the store at most every [`CHECK_EVERY`]: another replica may cancel.
struct Watch<'a> {
    registry: &'a Registry,
    model: Option<&'a str>,
    last: Mutex<Checked>,
}

/// What the last look at the store found, and the progress to write at the next one.
struct Checked {
    at: Instant,
    stop: bool,
    unwritten: Option<Progress>,
}

impl<'a> Watch<'a> {
    /// Follows `model` (None: an evaluation, which is not cancelled).
    fn new(registry: &'a Registry, model: Option<&'a str>) -> Self {
        Watch {
            registry,
            model,
            last: Mutex::new(Checked {
                at: Instant::now(),
                stop: false,
                unwritten: None,
            }),
        }
    }
}

impl Observer for Watch<'_> {
    fn stop_requested(&self) -> bool {
        let Some(model) = self.model else {
            return false;
        };
        let mut last = lock(&self.last);
        if last.at.elapsed() < CHECK_EVERY {
            return last.stop;
        }
        // Progress is kept apart from the record: writing the record here could undo a cancel
        // written by another request between this read and this write.
        if let Some(progress) = last.unwritten.take() {
            let id = progress_id(model);
            if let Err(e) = self
                .registry
                .put(Table::Models, &id, &progress_of(progress))
            {
                tracing::warn!("recording training progress failed: {e:#}");
            }
        }
        // The store down: keep training, and look again at the next check.
        last.stop = self.registry.cancel_requested(model).unwrap_or_default();
        last.at = Instant::now();
        last.stop
    }

    fn report(&self, progress: Progress) {
        if progress.total > 0 {
            TRAINING_PROGRESS.set(progress.done as f64 / progress.total as f64);
        }
        lock(&self.last).unwritten = Some(progress);
    }
}

/// Where a training model's progress is kept (a child of its record, never listed as a model).
fn progress_id(model: &str) -> String {
    child_id(model, "progress")
}

fn progress_of(p: Progress) -> JobProgress {
    JobProgress {
        stage: match p.stage {
            Stage::Features => "features",
            Stage::Fitting => "fitting",
            Stage::Evaluating => "evaluating",
        }
        .to_string(),
        done: p.done,
        total: p.total,
    }
}

impl JobContext {
    fn run(&self, job: Job) -> anyhow::Result<()> {
        match job {
            Job::Train(name) => self.train(&name),
            Job::Evaluate(id) => self.evaluate(&id),
        }
    }

    fn dataset(&self, name: &str) -> Result<DatasetRecord, TrainError> {
        match self.registry.get::<DatasetRecord>(Table::Datasets, name) {
            Ok(Some(dataset)) => Ok(dataset),
            Ok(None) => Err(TrainError::DatasetNotFound(format!(
                "the dataset '{name}' was deleted"
            ))),
            Err(e) => Err(TrainError::Unknown(e)),
        }
    }

    fn trainer<'a>(
        &'a self,
        loader: &'a BlockingLoader,
        watch: &'a Watch<'a>,
        budget: Duration,
    ) -> Trainer<'a> {
        Trainer {
            pipeline: &self.pipeline,
            loader,
            observer: watch,
            threads: self.threads,
            budget,
            started: Instant::now(),
        }
    }

    fn loader(&self, access: Access) -> BlockingLoader {
        BlockingLoader {
            sources: self.sources.clone(),
            access,
            runtime: self.runtime.clone(),
        }
    }

    fn train(&self, name: &str) -> anyhow::Result<()> {
        let Some(model) = self.registry.get::<ModelRecord>(Table::Models, name)? else {
            return Ok(());
        };
        if self.registry.cancel_requested(name)? {
            self.registry
                .update_model(name, |m| m.status = ModelStatus::Cancelled)?;
            return Ok(());
        }
        if model.status.is_final() {
            return Ok(());
        }
        self.registry.update_model(name, |m| {
            m.status = ModelStatus::Training;
            m.error = None;
        })?;
        let started = Instant::now();
        let outcome = self.fit_model(&model);
        let minutes = started.elapsed().as_secs().div_ceil(60).max(1);
        let mut head = None;
        let outcome = outcome.map(|trained| {
            head = Some(trained.head);
            trained.performance
        });
        if let Some(head) = &head {
            self.registry.put(Table::Heads, name, head)?;
        }
        self.registry.remove(Table::Models, &progress_id(name))?;
        let cancelled = self.registry.cancel_requested(name)?;
        self.registry.update_model(name, |m| {
            m.cost_minutes = Some(minutes);
            match outcome {
                _ if cancelled => m.status = ModelStatus::Cancelled,
                Ok(performance) => {
                    m.status = ModelStatus::Succeeded;
                    m.performance = Some(performance);
                }
                Err(TrainError::Cancelled) => m.status = ModelStatus::Cancelled,
                Err(error) => {
                    m.status = ModelStatus::Failed;
                    m.error = Some(failure(&error));
                }
            }
        })?;
        Ok(())
    }

    fn fit_model(&self, model: &ModelRecord) -> Result<super::train::Trained, TrainError> {
        let training = self.dataset(&model.dataset)?;
        let test = model
            .test_dataset
            .as_deref()
            .map(|t| self.dataset(t))
            .transpose()?;
        let watch = Watch::new(&self.registry, Some(&model.name));
        let loader = self.loader(training.access.clone());
        let budget = Duration::from_secs(u64::from(model.budget_hours) * 3600);
        let trainer = self.trainer(&loader, &watch, budget);
        let cache = self.registry.features(&training.name);
        let data = Data {
            set: &training.set,
            cache: &cache,
        };
        match &test {
            Some(test) => {
                let test_cache = self.registry.features(&test.name);
                let test_data = Data {
                    set: &test.set,
                    cache: &test_cache,
                };
                trainer.train(model.kind.head(), &data, Some(&test_data))
            }
            None => trainer.train(model.kind.head(), &data, None),
        }
    }

    fn evaluate(&self, id: &str) -> anyhow::Result<()> {
        let Some(evaluation) = self
            .registry
            .get::<EvaluationRecord>(Table::Evaluations, id)?
        else {
            return Ok(());
        };
        self.registry
            .update_evaluation(id, |e| e.status = EvaluationStatus::Running)?;
        let outcome = self.measure(&evaluation);
        self.registry.update_evaluation(id, |e| match outcome {
            Ok(performance) => {
                e.status = EvaluationStatus::Succeeded;
                e.performance = Some(performance);
            }
            Err((code, message)) => {
                e.status = EvaluationStatus::Failed;
                e.error = Some(Failure {
                    code: code.into(),
                    message,
                });
            }
        })?;
        Ok(())
    }

    fn measure(
        &self,
        evaluation: &EvaluationRecord,
    ) -> Result<super::metrics::Performance, (&'static str, String)> {
        let head = match self.registry.head(&evaluation.model) {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Err((
                    "modelNotFound",
                    format!("the model '{}' has no trained head", evaluation.model),
                ))
            }
            Err(e) => return Err(("internalServerError", format!("{e:#}"))),
        };
        let test = self.dataset(&evaluation.test_dataset).map_err(|_| {
            (
                "datasetNotFound",
                format!("the dataset '{}' does not exist", evaluation.test_dataset),
            )
        })?;
        let is_classifier = matches!(head, CustomHead::Classifier(_));
        if is_classifier != (test.kind == AnnotationKind::ImageClassification) {
            return Err((
                "incorrectModelKind",
                "the model and the test dataset are of different kinds".into(),
            ));
        }
        let watch = Watch::new(&self.registry, None);
        let loader = self.loader(test.access.clone());
        let trainer = self.trainer(&loader, &watch, Duration::MAX);
        let cache = self.registry.features(&test.name);
        trainer
            .evaluate(
                &head,
                &Data {
                    set: &test.set,
                    cache: &cache,
                },
            )
            .map_err(|e| match e {
                TrainError::DatasetCorrupt(m) => ("datasetCorrupt", m),
                other => ("internalServerError", other.to_string()),
            })
    }
}

/// Azure's code and message of a failed training.
fn failure(error: &TrainError) -> Failure {
    Failure {
        code: error.code().into(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_azure_rules() {
        for good in [
            "pets-train",
            "a",
            "A1._-b",
            "0c2d5f5e-8a4b-4a69-9c1e-6e3c2b1f0a11",
        ] {
            assert!(check_name(good, "dataset").is_ok(), "{good}");
        }
        for bad in ["", "-lead", ".x", "has space", "slash/x", &"x".repeat(256)] {
            assert!(check_name(bad, "dataset").is_err(), "{bad}");
        }
    }
}
