//! `vista train`: a model from a COCO file on disk, with the server's own trainer and store (the model
//! is then served by `vista serve` and `vista analyze --model` on the same data directory), and a
//! progress bar.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::engine::EngineArgs;
use super::serve::StoreArgs;
use vista::custom::coco::AnnotationKind;
use vista::custom::records::{ModelKind, ModelRecord, ModelStatus, Registry};
use vista::custom::service::{CustomError, Customization, DatasetSpec, ModelSpec, Settings};
use vista::custom::sources::Sources;
use vista::fetch::UrlFetcher;
use vista::models::custom_head::CustomHead;
use vista::store::{Table, Vault};

/// The store a one-shot command shares with the server.
fn open_store(store: &StoreArgs) -> Result<Arc<Vault>> {
    store.open().context(
        "opening the data directory's store (a running `vista serve` holds it: stop it, or use \
         the REST API, or share a Redis)",
    )
}

#[derive(Args)]
pub struct TrainArgs {
    /// The COCO annotation file; its images are named by `file_name` next to it (or by URL).
    pub coco: PathBuf,
    /// The model's name.
    #[arg(long)]
    pub name: String,
    /// Generic-Classifier, Generic-Detector or Product-Recognizer (default: from the file: boxes
    /// make a detector).
    #[arg(long)]
    pub kind: Option<String>,
    /// A COCO file to measure the model on instead of a held-out part of the training images.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// The most hours training may take.
    #[arg(long, default_value_t = 1)]
    pub budget_hours: u32,
    /// Images whose features are computed at once.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A dataset name for a file: the model's name and what the file is for.
fn register(path: &Path, model: &str, role: &str) -> Result<(PathBuf, String, String)> {
    let absolute = path
        .canonicalize()
        .with_context(|| format!("reading {}", path.display()))?;
    let folder = absolute
        .parent()
        .context("the COCO file has no folder")?
        .to_path_buf();
    let file = absolute
        .file_name()
        .context("the COCO file has no name")?
        .to_string_lossy()
        .into_owned();
    Ok((folder, file, format!("{model}-{role}")))
}

fn annotation_kind(path: &Path) -> Result<AnnotationKind> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let root: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let boxed = root["annotations"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.get("bbox").is_some()));
    Ok(if boxed {
        AnnotationKind::ImageObjectDetection
    } else {
        AnnotationKind::ImageClassification
    })
}

pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let kind = args
        .kind
        .as_deref()
        .map(|k| ModelKind::parse(k).with_context(|| format!("unknown model kind '{k}'")))
        .transpose()?;
    let annotation = annotation_kind(&args.coco)?;
    let (folder, file, dataset) = register(&args.coco, &args.name, "train")?;
    let test = args
        .test
        .as_deref()
        .map(|t| register(t, &args.name, "test"))
        .transpose()?;
    if test.as_ref().is_some_and(|(f, ..)| *f != folder) {
        bail!("--test must lie in the training file's folder (both are read from it)");
    }
    let vault = open_store(&args.store)?;
    let pipeline = Arc::new(args.engine.pipeline(Some(vec!["tags", "objects"]))?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let replica = vista::store::replica_file(&args.store.data_dir.join("replica.id"))?;
    runtime.block_on(async {
        let service = Customization::start(
            vault,
            &replica,
            pipeline,
            Sources {
                fetcher: Arc::new(UrlFetcher::new(args.engine.allow_private_urls)?),
                datasets_dir: Some(folder),
            },
            Settings {
                training_threads: args.threads.max(1),
                resume: false,
                run_ttl: Duration::from_secs(60),
                shared: args.store.redis_url.is_some(),
            },
        );
        let spec = |file: String| DatasetSpec {
            kind: Some(annotation),
            files: Some(vec![file]),
            ..DatasetSpec::default()
        };
        for (file, name) in std::iter::once((file.clone(), dataset.clone()))
            .chain(test.clone().map(|(_, f, n)| (f, n)))
        {
            match service.register_dataset(&name, spec(file.clone())).await {
                Err(CustomError::AlreadyExists { .. }) => service
                    .update_dataset(&name, spec(file), None)
                    .await
                    .map(drop),
                other => other.map(drop),
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let model = ModelSpec {
            dataset,
            budget_hours: args.budget_hours,
            kind,
            test_dataset: test.map(|(_, _, name)| name),
        };
        service
            .create_model(&args.name, model)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let bar = ProgressBar::new(1);
        bar.set_style(ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} {elapsed}",
        )?);
        let done = loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let model = service
                .model(&args.name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(progress) = &model.progress {
                bar.set_length(progress.total as u64);
                bar.set_position(progress.done as u64);
                bar.set_message(progress.stage.clone());
            }
            if model.status.is_final() {
                break model;
            }
        };
        bar.finish_and_clear();
        report(&done)
    })
}

fn report(model: &ModelRecord) -> Result<ExitCode> {
    if model.status != ModelStatus::Succeeded {
        let error = model.error.as_ref().map_or("cancelled".to_string(), |e| {
            format!("{}: {}", e.code, e.message)
        });
        eprintln!("training '{}' failed: {error}", model.name);
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "name": model.name,
            "status": "succeeded",
            "trainingCostInMinutes": model.cost_minutes,
            "modelPerformance": model.performance,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

/// The trained head of `name` in the store, for `vista analyze --model`.
pub fn trained_head(store: &StoreArgs, name: &str) -> Result<CustomHead> {
    let registry = Registry::new(open_store(store)?, "cli");
    let Some(model) = registry.get::<ModelRecord>(Table::Models, name)? else {
        bail!("no model '{name}' in {}", store.data_dir.display());
    };
    if model.status != ModelStatus::Succeeded {
        bail!("the model '{name}' is not trained");
    }
    registry
        .head(name)?
        .with_context(|| format!("the model '{name}' has no trained head"))
}
