//! Multimodal search vectors: `POST /computervision/retrieval:vectorizeImage` and
//! `retrieval:vectorizeText` → `{"modelVersion", "vector"}`. vista's vectors are its own (Azure's
//! cannot be reproduced), so its `modelVersion` names say so, and a model version it does not have is
//! refused rather than answered with vectors that would not compare.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{RawQuery, Request, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::http::intake::image_bytes;
use crate::http::query::QueryParams;
use crate::http::AppState;
use crate::pipeline::decode::ANALYZE_V4;

pub const API_VERSIONS: [&str; 4] = [
    "2024-02-01",
    "2023-10-01",
    "2023-04-01-preview",
    "2023-02-01-preview",
];
/// Azure's limit on a text query, in words.
const MAX_WORDS: usize = 70;
/// vista's limit in characters, for text without spaces (CJK) and single runaway "words": 70 long
/// words fit, and the encoder's cost stays within two of its 512-token windows.
pub const MAX_TEXT_CHARS: usize = 1000;
const MAX_TEXT_BYTES: usize = 64 * 1024;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorResponse {
    pub model_version: String,
    pub vector: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct TextBody {
    text: String,
}

/// Checks the api-version, and that a requested model version is the one `model` this server has.
fn check_query(params: &QueryParams, model: &str) -> Result<(), ApiError> {
    match params.get("api-version") {
        Some(v) if API_VERSIONS.contains(&v) => {}
        other => {
            return Err(ApiError::invalid(
                format!(
                    "The api-version '{}' is not supported.",
                    other.unwrap_or("")
                ),
                "UnsupportedApiVersion",
                format!("Supported api-versions: {}", API_VERSIONS.join(", ")),
            ))
        }
    }
    match params.get("model-version") {
        None | Some("latest") => Ok(()),
        Some(v) if v == model => Ok(()),
        Some(v) => Err(ApiError::bad_argument(format!(
            "'model-version' '{v}' is not available: this server's vectors come from \
             '{model}' (use it or 'latest'); vectors of different models do not compare"
        ))),
    }
}

/// The model the vectors come from, once the query is valid and vectors can be made here (checked
/// before the body is read).
fn vector_model(state: &AppState, query: Option<&str>) -> Result<String, ApiError> {
    let model = state.pipeline.vector_model();
    check_query(&QueryParams::parse(query), &model)?;
    state.pipeline.check_vectors()?;
    Ok(model)
}

/// 1 to 70 words, at most `MAX_TEXT_CHARS` characters.
fn check_text(text: &str) -> Result<(), ApiError> {
    let words = text.split_whitespace().count();
    if words == 0 || words > MAX_WORDS {
        return Err(ApiError::invalid_request(format!(
            "The text must have 1 to {MAX_WORDS} words; it has {words}"
        )));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::invalid_request(format!(
            "The text must have at most {MAX_TEXT_CHARS} characters; it has {chars}"
        )));
    }
    Ok(())
}

pub async fn vectorize_image(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<VectorResponse>, ApiError> {
    let model = vector_model(&state, query.as_deref())?;
    let bytes = image_bytes(request, &state.fetcher, ANALYZE_V4.max_bytes).await?;
    let pipeline = Arc::clone(&state.pipeline);
    let vector = state
        .workers
        .run(move || pipeline.vectorize_image(&bytes, &ANALYZE_V4))
        .await??;
    Ok(Json(VectorResponse {
        model_version: model,
        vector,
    }))
}

pub async fn vectorize_text(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<VectorResponse>, ApiError> {
    let model = vector_model(&state, query.as_deref())?;
    let body = to_bytes(request.into_body(), MAX_TEXT_BYTES)
        .await
        .map_err(|_| ApiError::invalid_request("The text body is too large or unreadable"))?;
    let text = serde_json::from_slice::<TextBody>(&body)
        .map_err(|e| {
            ApiError::invalid_request(format!("The body must be {{\"text\": \"...\"}}: {e}"))
        })?
        .text;
    check_text(&text)?;
    let pipeline = Arc::clone(&state.pipeline);
    let vector = state
        .workers
        .run(move || pipeline.vectorize_text(&text))
        .await??;
    Ok(Json(VectorResponse {
        model_version: model,
        vector,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_models_are_checked() {
        let model = "vista-e5-small-tags-2";
        let check = |q: &str| check_query(&QueryParams::parse(Some(q)), model);
        assert!(check("api-version=2024-02-01").is_ok());
        assert!(check("api-version=2023-04-01-preview&model-version=latest").is_ok());
        assert!(check(&format!("api-version=2024-02-01&model-version={model}")).is_ok());
        assert!(check("api-version=2024-02-01&model-version=2023-04-15").is_err());
        assert!(check("api-version=2022-01-01").is_err());
        assert!(check("").is_err());
    }

    #[test]
    fn texts_are_limited_in_words_and_characters() {
        assert!(check_text("a cat on a sofa").is_ok());
        assert!(check_text("  ").is_err());
        assert!(check_text(&"word ".repeat(71)).is_err());
        assert!(check_text(&"猫".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(check_text(&"a".repeat(60_000)).is_err(), "one runaway word");
    }
}
