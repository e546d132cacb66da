//! Azure's model customization routes (2023-02-01-preview and 2023-04-01-preview): datasets,
//! models (training, cancel), evaluations. Request keys are matched case-insensitively (Microsoft's
//! samples send PascalCase, its docs camelCase); responses are camelCase, with `createdDateTime` and
//! `updatedDateTime` always present, as the sample client requires.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api_version;
use super::error::ApiError;
use super::timestamp;
use crate::custom::coco::AnnotationKind;
use crate::custom::metrics::Performance;
use crate::custom::records::{
    DatasetRecord, EvaluationRecord, Failure, JobProgress, ModelKind, ModelRecord, ModelStatus,
};
use crate::custom::service::{etag, CustomError, DatasetSpec, ModelSpec};
use crate::custom::sources::Access;
use crate::http::intake::{read_capped, IntakeError};
use crate::http::query::QueryParams;
use crate::http::AppState;

/// The api-versions of the customization routes.
pub const API_VERSIONS: [&str; 2] = ["2023-02-01-preview", "2023-04-01-preview"];
const MAX_BODY: usize = 1024 * 1024;
/// List pages (Spec): `top` 1..30, 10 by default.
const PAGE_DEFAULT: usize = 10;
const PAGE_MAX: usize = 30;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/computervision/datasets", get(list_datasets))
        .route(
            "/computervision/datasets/{name}",
            get(get_dataset)
                .put(register_dataset)
                .patch(update_dataset)
                .delete(delete_dataset),
        )
        .route("/computervision/models", get(list_models))
        .route(
            "/computervision/models/{name}",
            get(get_model)
                .put(create_model)
                .delete(delete_model)
                .post(cancel_model),
        )
        .route(
            "/computervision/models/{name}/evaluations",
            get(list_evaluations),
        )
        .route(
            "/computervision/models/{name}/evaluations/{evaluation}",
            get(get_evaluation)
                .put(create_evaluation)
                .delete(delete_evaluation),
        )
}

impl From<CustomError> for ApiError {
    fn from(e: CustomError) -> Self {
        let message = e.to_string();
        match e {
            CustomError::Invalid(_) => ApiError::invalid_request(message),
            CustomError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "NotFound", message),
            CustomError::AlreadyExists { what, .. } => ApiError::new(
                StatusCode::CONFLICT,
                &format!("{what}AlreadyExists"),
                message,
            ),
            CustomError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "InvalidRequest", message)
            }
            CustomError::PreconditionFailed(_) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                message,
            ),
            CustomError::Unavailable(e) => {
                tracing::error!("customization store: {e:#}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The customization store is unavailable; try again later.",
                )
                .retry_after(5)
            }
        }
    }
}

/// The query of a call that must carry one of `versions` (every customization call does).
pub fn versioned(
    query: &Option<String>,
    versions: &[&'static str],
) -> Result<QueryParams, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    api_version(&params, versions)?;
    Ok(params)
}

fn version(query: &Option<String>) -> Result<QueryParams, ApiError> {
    versioned(query, &API_VERSIONS)
}

/// Lower-cases every key of `value` (not the user's own keys under `customProperties`).
fn lower_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let key = key.to_ascii_lowercase();
                    let value = if key == "customproperties" {
                        value
                    } else {
                        lower_keys(value)
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// A JSON body, keys in any case, as `T` (whose fields are named in lower case).
pub async fn json_body<T: DeserializeOwned>(request: Request) -> Result<T, ApiError> {
    let bytes = read_capped(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| match e {
            IntakeError::InvalidByteSize { max } => {
                ApiError::invalid_request(format!("The request body must be at most {max} bytes"))
            }
            other => other.into(),
        })?;
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    let value: Value = serde_json::from_slice(text).map_err(|e| {
        ApiError::invalid_request(format!("The request body is not valid JSON: {e}"))
    })?;
    serde_json::from_value(lower_keys(value))
        .map_err(|e| ApiError::invalid_request(format!("The request body is not valid: {e}")))
}

/// `{value, nextLink?}` for one page of `items`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    value: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

/// The page `skip`/`top` of `items`, with the link to the next one when more remain.
pub fn page<T, W>(
    items: Vec<T>,
    params: &QueryParams,
    headers: &HeaderMap,
    path: &str,
    scheme: &str,
    render: impl Fn(T) -> W,
) -> Result<Page<W>, ApiError> {
    let number = |key: &str, default: usize| match params.get(key) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::invalid_request(format!("'{key}' must be a whole number, found '{v}'"))
        }),
    };
    let skip = number("skip", 0)?;
    let top = number("top", PAGE_DEFAULT)?;
    if !(1..=PAGE_MAX).contains(&top) {
        return Err(ApiError::invalid_request(format!(
            "'top' must be from 1 to {PAGE_MAX}"
        )));
    }
    let total = items.len();
    let value = items.into_iter().skip(skip).take(top).map(render).collect();
    let next_link = (skip + top < total).then(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let version = params.get("api-version").unwrap_or_default();
        format!(
            "{scheme}://{host}{path}?api-version={version}&skip={}&top={top}",
            skip + top
        )
    });
    Ok(Page { value, next_link })
}

// ----- datasets -----

#[derive(Deserialize)]
struct AuthenticationBody {
    kind: Option<String>,
    #[serde(rename = "sastoken")]
    sas_token: Option<String>,
}

#[derive(Deserialize)]
struct DatasetBody {
    #[serde(rename = "annotationkind")]
    kind: Option<String>,
    #[serde(rename = "annotationfileuris")]
    files: Option<Vec<String>>,
    authentication: Option<AuthenticationBody>,
    #[serde(rename = "customproperties")]
    properties: Option<BTreeMap<String, String>>,
}

impl DatasetBody {
    fn spec(self) -> Result<DatasetSpec, ApiError> {
        let kind = self
            .kind
            .map(|k| {
                if k.eq_ignore_ascii_case("imageClassification") {
                    Ok(AnnotationKind::ImageClassification)
                } else if k.eq_ignore_ascii_case("imageObjectDetection") {
                    Ok(AnnotationKind::ImageObjectDetection)
                } else {
                    Err(ApiError::invalid_request(format!(
                        "annotationKind '{k}' is not valid: imageClassification or imageObjectDetection"
                    )))
                }
            })
            .transpose()?;
        let access = self
            .authentication
            .map(|a| {
                let kind = a.kind.unwrap_or_else(|| "none".into());
                if !["none", "managedIdentity", "sas"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&kind))
                {
                    return Err(ApiError::invalid_request(format!(
                        "authentication kind '{kind}' is not valid: none, managedIdentity or sas"
                    )));
                }
                Ok(Access {
                    kind,
                    sas_token: a.sas_token,
                })
            })
            .transpose()?;
        Ok(DatasetSpec {
            kind,
            files: self.files,
            access,
            properties: self.properties,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DatasetView {
    name: String,
    annotation_kind: AnnotationKind,
    annotation_file_uris: Vec<String>,
    authentication: AuthenticationView,
    custom_properties: BTreeMap<String, String>,
    created_date_time: String,
    updated_date_time: String,
    e_tag: String,
}

/// The dataset's authentication without its token (a secret is never echoed).
#[derive(Serialize)]
struct AuthenticationView {
    kind: String,
}

impl From<DatasetRecord> for DatasetView {
    fn from(d: DatasetRecord) -> Self {
        DatasetView {
            e_tag: etag(&d),
            name: d.name,
            annotation_kind: d.kind,
            annotation_file_uris: d.files,
            authentication: AuthenticationView {
                kind: if d.access.kind.is_empty() {
                    "none".into()
                } else {
                    d.access.kind
                },
            },
            custom_properties: d.properties,
            created_date_time: timestamp(d.created),
            updated_date_time: timestamp(d.updated),
        }
    }
}

fn with_etag(status: StatusCode, dataset: DatasetRecord) -> Response {
    let tag = HeaderValue::from_str(&etag(&dataset)).ok();
    let mut response = (status, Json(DatasetView::from(dataset))).into_response();
    if let Some(tag) = tag {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn register_dataset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    version(&query)?;
    let spec = json_body::<DatasetBody>(request).await?.spec()?;
    let dataset = state.custom.register_dataset(&name, spec).await?;
    Ok(with_etag(StatusCode::CREATED, dataset))
}

async fn get_dataset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    version(&query)?;
    Ok(with_etag(
        StatusCode::OK,
        state.custom.dataset(&name).await?,
    ))
}

async fn update_dataset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    version(&query)?;
    let spec = json_body::<DatasetBody>(request).await?.spec()?;
    let dataset = state
        .custom
        .update_dataset(&name, spec, if_match(&headers).as_deref())
        .await?;
    Ok(with_etag(StatusCode::OK, dataset))
}

async fn delete_dataset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    version(&query)?;
    state
        .custom
        .delete_dataset(&name, if_match(&headers).as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_datasets(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Page<DatasetView>>, ApiError> {
    let params = version(&query)?;
    let all = state.custom.datasets().await?;
    Ok(Json(page(
        all,
        &params,
        &headers,
        "/computervision/datasets",
        state.scheme,
        DatasetView::from,
    )?))
}

// ----- models -----

#[derive(Deserialize)]
struct TrainingBody {
    #[serde(rename = "trainingdatasetname")]
    dataset: Option<String>,
    #[serde(rename = "timebudgetinhours")]
    budget: Option<Value>,
    #[serde(rename = "modelkind")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct EvaluationParametersBody {
    #[serde(rename = "testdatasetname")]
    test_dataset: Option<String>,
}

#[derive(Deserialize)]
struct ModelBody {
    #[serde(rename = "trainingparameters")]
    training: Option<TrainingBody>,
    #[serde(rename = "evaluationparameters")]
    evaluation: Option<EvaluationParametersBody>,
}

impl ModelBody {
    fn spec(self) -> Result<ModelSpec, ApiError> {
        let training = self
            .training
            .ok_or_else(|| ApiError::invalid_request("trainingParameters is required"))?;
        let dataset = training.dataset.ok_or_else(|| {
            ApiError::invalid_request("trainingParameters.trainingDatasetName is required")
        })?;
        let budget_hours = match training.budget {
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .and_then(|h| u32::try_from(h).ok()),
            None => None,
            Some(_) => None,
        }
        .ok_or_else(|| {
            ApiError::invalid_request(
                "trainingParameters.timeBudgetInHours is required: a whole number of hours",
            )
        })?;
        let kind = training
            .kind
            .map(|k| {
                ModelKind::parse(&k).ok_or_else(|| {
                    ApiError::invalid_request(format!(
                        "modelKind '{k}' is not valid: Generic-Classifier, Generic-Detector or Product-Recognizer"
                    ))
                })
            })
            .transpose()?;
        Ok(ModelSpec {
            dataset,
            budget_hours,
            kind,
            test_dataset: self.evaluation.and_then(|e| e.test_dataset),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrainingView {
    training_dataset_name: String,
    time_budget_in_hours: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_kind: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EvaluationParametersView {
    test_dataset_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelView {
    name: String,
    status: ModelStatus,
    created_date_time: String,
    updated_date_time: String,
    training_parameters: TrainingView,
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluation_parameters: Option<EvaluationParametersView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    training_cost_in_minutes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_performance: Option<Performance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
    /// vista's extension: how far a running training is.
    #[serde(skip_serializing_if = "Option::is_none")]
    training_progress: Option<JobProgress>,
}

impl From<ModelRecord> for ModelView {
    fn from(m: ModelRecord) -> Self {
        ModelView {
            name: m.name,
            status: m.status,
            created_date_time: timestamp(m.created),
            updated_date_time: timestamp(m.updated),
            training_parameters: TrainingView {
                training_dataset_name: m.dataset,
                time_budget_in_hours: m.budget_hours,
                model_kind: Some(m.kind.name()),
            },
            evaluation_parameters: m
                .test_dataset
                .map(|test_dataset_name| EvaluationParametersView { test_dataset_name }),
            training_cost_in_minutes: m.cost_minutes,
            model_performance: m.performance,
            error: m.error,
            training_progress: m.progress,
        }
    }
}

async fn create_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    version(&query)?;
    let spec = json_body::<ModelBody>(request).await?.spec()?;
    let model = state.custom.create_model(&name, spec).await?;
    Ok((StatusCode::CREATED, Json(model.into())))
}

async fn get_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ModelView>, ApiError> {
    version(&query)?;
    Ok(Json(state.custom.model(&name).await?.into()))
}

async fn delete_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    version(&query)?;
    state.custom.delete_model(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST models/{name}:cancel` (the only POST on a model).
async fn cancel_model(
    State(state): State<Arc<AppState>>,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    version(&query)?;
    let name = segment
        .strip_suffix(":cancel")
        .ok_or_else(ApiError::not_found)?;
    state.custom.cancel_model(name).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn list_models(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Page<ModelView>>, ApiError> {
    let params = version(&query)?;
    let all = state.custom.models().await?;
    Ok(Json(page(
        all,
        &params,
        &headers,
        "/computervision/models",
        state.scheme,
        ModelView::from,
    )?))
}

// ----- evaluations -----

#[derive(Deserialize)]
struct EvaluationBody {
    #[serde(rename = "evaluationparameters")]
    evaluation: Option<EvaluationParametersBody>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EvaluationView {
    name: String,
    model_name: String,
    created_date_time: String,
    updated_date_time: String,
    status: crate::custom::records::EvaluationStatus,
    evaluation_parameters: EvaluationParametersView,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_performance: Option<Performance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
}

impl From<EvaluationRecord> for EvaluationView {
    fn from(e: EvaluationRecord) -> Self {
        EvaluationView {
            name: e.name,
            model_name: e.model,
            created_date_time: timestamp(e.created),
            updated_date_time: timestamp(e.updated),
            status: e.status,
            evaluation_parameters: EvaluationParametersView {
                test_dataset_name: e.test_dataset,
            },
            model_performance: e.performance,
            error: e.error,
        }
    }
}

async fn create_evaluation(
    State(state): State<Arc<AppState>>,
    Path((model, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<(StatusCode, Json<EvaluationView>), ApiError> {
    version(&query)?;
    let body = json_body::<EvaluationBody>(request).await?;
    let test = body
        .evaluation
        .and_then(|e| e.test_dataset)
        .ok_or_else(|| {
            ApiError::invalid_request("evaluationParameters.testDatasetName is required")
        })?;
    let evaluation = state.custom.create_evaluation(&model, &name, &test).await?;
    Ok((StatusCode::CREATED, Json(evaluation.into())))
}

async fn get_evaluation(
    State(state): State<Arc<AppState>>,
    Path((model, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<EvaluationView>, ApiError> {
    version(&query)?;
    Ok(Json(state.custom.evaluation(&model, &name).await?.into()))
}

async fn delete_evaluation(
    State(state): State<Arc<AppState>>,
    Path((model, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    version(&query)?;
    state.custom.delete_evaluation(&model, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_evaluations(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Page<EvaluationView>>, ApiError> {
    let params = version(&query)?;
    let all = state.custom.evaluations(&model).await?;
    let path = format!("/computervision/models/{model}/evaluations");
    Ok(Json(page(
        all,
        &params,
        &headers,
        &path,
        state.scheme,
        EvaluationView::from,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_in_any_case_but_custom_properties_keep_theirs() {
        let body = serde_json::json!({
            "AnnotationKind": "imageClassification",
            "AnnotationFileUris": ["a.json"],
            "authentication": {"Kind": "managedIdentity"},
            "CustomProperties": {"Owner": "Team-A"}
        });
        let parsed: DatasetBody = serde_json::from_value(lower_keys(body)).unwrap();
        let spec = parsed.spec().unwrap();
        assert_eq!(spec.kind, Some(AnnotationKind::ImageClassification));
        assert_eq!(spec.files.unwrap(), ["a.json"]);
        assert_eq!(spec.access.unwrap().kind, "managedIdentity");
        assert_eq!(spec.properties.unwrap()["Owner"], "Team-A");
    }

    #[test]
    fn model_bodies_need_a_dataset_and_a_whole_budget() {
        let parse = |v: Value| {
            serde_json::from_value::<ModelBody>(lower_keys(v))
                .unwrap()
                .spec()
        };
        let spec = parse(serde_json::json!({"TrainingParameters": {"TrainingDatasetName": "d", "TimeBudgetInHours": 1, "ModelKind": "Generic-Detector"},
            "EvaluationParameters": {"TestDatasetName": "t"}}))
        .unwrap();
        assert_eq!(
            (spec.dataset.as_str(), spec.budget_hours, spec.kind),
            ("d", 1, Some(ModelKind::GenericDetector))
        );
        assert_eq!(spec.test_dataset.as_deref(), Some("t"));
        assert!(parse(serde_json::json!({"trainingParameters": {"trainingDatasetName": "d", "timeBudgetInHours": 0.5}})).is_err());
        assert!(
            parse(serde_json::json!({"trainingParameters": {"timeBudgetInHours": 1}})).is_err()
        );
        assert!(parse(serde_json::json!({"trainingParameters": {"trainingDatasetName": "d", "timeBudgetInHours": 1, "modelKind": "Fancy"}})).is_err());
    }
}
