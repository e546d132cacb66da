//! `vista analyze`: one image file or URL, answered as the 4.0 API would.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::engine::{tasks_of, EngineArgs};
use super::serve::StoreArgs;
use super::train::trained_head;
use vista::fetch::UrlFetcher;
use vista::http::azure::error::ApiError;
use vista::http::azure::v4::{AnalyzeRequest, AnalyzeResponse, MODEL_VERSION};
use vista::pipeline::decode::ANALYZE_V4;
use vista::pipeline::{AnalysisOptions, Feature, PipelineError};

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Image file or http(s) URL.
    pub input: String,
    /// Comma-separated 4.0 features.
    #[arg(long, default_value = "objects,people")]
    pub features: String,
    /// A model trained with `vista train` or the REST API (its answer is `customModelResult`; with
    /// it, `--features` may be empty).
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn analyze(args: AnalyzeArgs) -> Result<ExitCode> {
    let features = args
        .features
        .split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| Feature::parse(f).with_context(|| format!("unknown feature '{f}'")))
        .collect::<Result<Vec<_>>>()?;
    let custom = match &args.model {
        Some(name) => Some(std::sync::Arc::new(trained_head(&args.store, name)?)),
        None => None,
    };
    let more: &[&'static str] = if custom.is_some() {
        &["tags", "objects"]
    } else {
        &[]
    };
    let pipeline = args.engine.pipeline(Some(tasks_of(&features, more)))?;
    let bytes = if args.input.starts_with("http://") || args.input.starts_with("https://") {
        let fetcher = UrlFetcher::new(args.engine.allow_private_urls)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        match runtime.block_on(fetcher.fetch(&args.input, ANALYZE_V4.max_bytes)) {
            Ok(bytes) => bytes.to_vec(),
            Err(e) => return Ok(print_error(ApiError::from(e))),
        }
    } else {
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input))?
    };
    let options = AnalysisOptions {
        custom,
        ..AnalysisOptions::default()
    };
    let request = AnalyzeRequest {
        api_version: MODEL_VERSION,
        features: features.clone(),
        model_name: args.model.clone(),
        language: "en".into(),
        gender_neutral_caption: false,
        smart_crop_ratios: Vec::new(),
    };
    match pipeline.analyze(&bytes, &ANALYZE_V4, &features, &options) {
        Ok(analysis) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&AnalyzeResponse::new(analysis, &request))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ PipelineError::Internal(_)) => Err(e.into()),
        Err(e) => Ok(print_error(ApiError::from(e))),
    }
}

fn print_error(error: ApiError) -> ExitCode {
    eprintln!("{}", error.to_json());
    ExitCode::FAILURE
}
