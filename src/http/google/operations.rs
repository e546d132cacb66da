//! Google's asynchronous files: `files:asyncBatchAnnotate` reads a PDF or TIFF from a `gs://` URI
//! mapped under `--google-storage-root`, as a Read operation in the encrypted store with its TTL, and
//! `GET .../operations/{id}` tells its state. When the read has finished, the poll that first sees it
//! writes Google's output files (`<prefix>output-<first>-to-<last>.json`, `batchSize` pages each)
//! under the destination URI, then reports the operation done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{RawPathParams, RawQuery, Request, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{Code, Status};
use super::render::{self, Wire};
use super::request::{self, FeatureRequest, ImageContext, Sent};
use super::storage::{mapped, read_object};
use super::{body_of, file_page, is_text, wire};
use crate::http::AppState;
use crate::pipeline::decode::READ;
use crate::read_jobs::{JobError, PageRanges, ReadRequest};
use crate::store::Status as JobStatus;

/// Pages per output file when the request does not say (Google's default).
const DEFAULT_BATCH_SIZE: usize = 20;
const METADATA_TYPE: &str = "type.googleapis.com/google.cloud.vision.v1.OperationMetadata";
const RESPONSE_TYPE: &str =
    "type.googleapis.com/google.cloud.vision.v1.AsyncBatchAnnotateFilesResponse";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AsyncFileRequest {
    #[serde(default, alias = "input_config")]
    input_config: Option<GcsInput>,
    #[serde(default)]
    features: Vec<FeatureRequest>,
    #[serde(default, alias = "image_context")]
    image_context: Option<ImageContext>,
    #[serde(default, alias = "output_config")]
    output_config: Option<OutputConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GcsInput {
    #[serde(default, alias = "gcs_source")]
    gcs_source: Option<GcsUri>,
    #[serde(default, alias = "mime_type")]
    mime_type: String,
}

#[derive(Debug, Deserialize, Serialize, Default, Clone)]
struct GcsUri {
    #[serde(default)]
    uri: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OutputConfig {
    #[serde(default, alias = "gcs_destination")]
    gcs_destination: Option<GcsUri>,
    #[serde(default, alias = "batch_size")]
    batch_size: Option<i64>,
}

/// What the Google surface keeps with its operation.
#[derive(Debug, Serialize, Deserialize)]
struct Delivery {
    google: GoogleJob,
}

#[derive(Debug, Serialize, Deserialize)]
struct GoogleJob {
    input: String,
    mime_type: String,
    output: String,
    batch_size: usize,
    /// `projects/P/` when the call named a project, else empty: operation names are `{parent}operations/{id}`.
    parent: String,
}

fn param<'a>(params: &'a RawPathParams, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
}

impl From<JobError> for Status {
    fn from(e: JobError) -> Self {
        match e {
            JobError::BacklogFull => Status::new(
                Code::Unavailable,
                "Too many files are waiting to be read; retry later.",
            ),
            JobError::StoreUnavailable(e) => {
                tracing::error!("operation store unavailable: {e:#}");
                Status::new(
                    Code::Unavailable,
                    "The operation store is unavailable; retry later.",
                )
            }
        }
    }
}

/// `POST .../files:asyncBatchAnnotate`: one file read for text, an operation to poll.
pub async fn annotate_files_async(
    State(state): State<Arc<AppState>>,
    params: RawPathParams,
    request: Request,
) -> Result<Json<Value>, Status> {
    let batch = request::parse::<AsyncFileRequest>(&body_of(request).await?)?;
    let [file] = &batch.requests[..] else {
        return Err(Status::invalid(
            "vista takes one file per asynchronous request.",
        ));
    };
    let input = file
        .input_config
        .as_ref()
        .ok_or_else(|| Status::invalid("inputConfig is required."))?;
    let input_uri = input
        .gcs_source
        .as_ref()
        .map(|g| g.uri.clone())
        .unwrap_or_default();
    if !["application/pdf", "image/tiff"].contains(&input.mime_type.as_str()) {
        return Err(Status::invalid(
            "mimeType must be application/pdf or image/tiff.",
        ));
    }
    let output = file
        .output_config
        .as_ref()
        .and_then(|o| o.gcs_destination.clone())
        .unwrap_or_default();
    let batch_size = file
        .output_config
        .as_ref()
        .and_then(|o| o.batch_size)
        .filter(|b| *b > 0);
    let batch_size = batch_size.map_or(DEFAULT_BATCH_SIZE, |b| b.min(100) as usize);
    let text_only = !file.features.is_empty()
        && file
            .features
            .iter()
            .all(|f| matches!(f.kind, Sent::Known(kind) if is_text(kind)));
    if !text_only {
        return Err(Status::new(
            Code::Unimplemented,
            "vista reads files asynchronously for TEXT_DETECTION and DOCUMENT_TEXT_DETECTION only.",
        ));
    }
    let root = state.google.storage_root.as_deref();
    let source = mapped(root, &input_uri)?;
    mapped(root, &output.uri)?;
    let counted = read_object(&source, READ.max_bytes, &input_uri).await?;
    let pipeline = Arc::clone(&state.pipeline);
    let check = counted.clone();
    state
        .workers
        .run(move || pipeline.count_pages(&check))
        .await?
        .map_err(Status::from)?;
    let language = file
        .image_context
        .as_ref()
        .and_then(|c| c.language_hints.first().cloned());
    if let Some(unreadable) = language
        .as_deref()
        .and_then(|l| state.pipeline.check_reading(l).err())
    {
        return Err(Status::invalid(format!(
            "Invalid language hint: {unreadable}"
        )));
    }
    let parent = param(&params, "project").map_or_else(String::new, |p| format!("projects/{p}/"));
    let delivery = Delivery {
        google: GoogleJob {
            input: input_uri,
            mime_type: input.mime_type.clone(),
            output: output.uri,
            batch_size,
            parent: parent.clone(),
        },
    };
    let read = ReadRequest {
        pages: PageRanges::all(),
        language,
        natural_order: false,
        surface: Some(
            serde_json::to_value(&delivery)
                .map_err(|e| Status::new(Code::Internal, e.to_string()))?,
        ),
    };
    let id = state.reads.submit(counted, &read).await?;
    let name = format!("{parent}operations/{id}");
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    Ok(Json(
        json!({"name": name, "metadata": {"@type": METADATA_TYPE, "state": "CREATED", "createTime": created}}),
    ))
}

/// `GET .../operations/{id}`: the operation's state; done once its output files are written.
pub async fn get_operation(
    State(state): State<Arc<AppState>>,
    params: RawPathParams,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, Status> {
    let id = param(&params, "id").unwrap_or_default().to_string();
    let wire = wire(query.as_deref(), &state.google);
    let not_found = || Status::new(Code::NotFound, format!("Operation '{id}' not found."));
    let operation = state
        .reads
        .operation(id.clone())
        .await?
        .ok_or_else(not_found)?;
    let job = operation
        .request
        .surface
        .clone()
        .and_then(|s| serde_json::from_value::<Delivery>(s).ok())
        .ok_or_else(not_found)?
        .google;
    let name = format!("{}operations/{id}", job.parent);
    let time = |unix: f64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0)))
            .to_string()
    };
    let (created, updated) = (time(operation.created), time(operation.updated));
    let metadata = |state: &str| json!({"@type": METADATA_TYPE, "state": state, "createTime": created, "updateTime": updated});
    let body = match (operation.status, operation.pages) {
        (JobStatus::NotStarted, _) => json!({"name": name, "metadata": metadata("CREATED")}),
        (JobStatus::Running, _) => json!({"name": name, "metadata": metadata("RUNNING")}),
        (JobStatus::Succeeded, Some(pages)) => {
            write_outputs(
                &state,
                &job,
                pages,
                operation.request.language.as_deref(),
                &wire,
            )
            .await?;
            json!({"name": name, "done": true, "metadata": metadata("DONE"),
                   "response": {"@type": RESPONSE_TYPE, "responses": [{"outputConfig":
                       {"gcsDestination": {"uri": job.output}, "batchSize": job.batch_size}}]}})
        }
        _ => {
            let message = operation
                .error
                .unwrap_or_else(|| "The file could not be read.".into());
            json!({"name": name, "done": true, "metadata": metadata("DONE"),
                   "error": Status::invalid(message).to_json()})
        }
    };
    Ok(Json(render::without_defaults(body)))
}

/// Writes the pages as `AnnotateFileResponse`s, `batch_size` pages a file.
async fn write_outputs(
    state: &AppState,
    job: &GoogleJob,
    pages: Vec<crate::pipeline::ReadPage>,
    language: Option<&str>,
    wire: &Wire,
) -> Result<(), Status> {
    let destination = mapped(state.google.storage_root.as_deref(), &job.output)?;
    let input_config = json!({"gcsSource": {"uri": job.input}, "mimeType": job.mime_type});
    for chunk in pages.chunks(job.batch_size) {
        let (first, last) = (chunk[0].number, chunk[chunk.len() - 1].number);
        let responses: Vec<Value> = chunk
            .iter()
            .cloned()
            .map(|page| {
                let number = page.number;
                let page = file_page(page);
                let text = render::text(&page.text, page.units, language, wire);
                render::without_defaults(json!({"fullTextAnnotation": text.full,
                    "context": {"uri": job.input, "pageNumber": number}}))
            })
            .collect();
        let body = json!({"inputConfig": input_config, "responses": responses});
        // A prefix ending in '/' names a folder; otherwise the file name is appended to it.
        let mut target = destination.clone().into_os_string();
        if job.output.ends_with('/') {
            target.push("/");
        }
        target.push(format!("output-{first}-to-{last}.json"));
        let target = PathBuf::from(target);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Status::new(Code::Internal, format!("writing the output: {e}")))?;
        }
        tokio::fs::write(&target, body.to_string())
            .await
            .map_err(|e| Status::new(Code::Internal, format!("writing the output: {e}")))?;
    }
    Ok(())
}
