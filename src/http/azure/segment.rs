//! Background removal: `POST /computervision/imageanalysis:segment?mode=backgroundRemoval|foregroundMatting`
//! (api-version 2023-02-01-preview / 2023-04-01-preview). Answers a PNG, errors in the 4.0 envelope.

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::http::intake::image_bytes;
use crate::http::query::QueryParams;
use crate::http::AppState;
use crate::pipeline::decode::ANALYZE_V4;
use crate::pipeline::SegmentMode;

pub const API_VERSIONS: [&str; 2] = ["2023-02-01-preview", "2023-04-01-preview"];

fn parse_mode(params: &QueryParams) -> Result<SegmentMode, ApiError> {
    match params.get("api-version") {
        Some(v) if API_VERSIONS.contains(&v) => {}
        other => {
            return Err(ApiError::invalid_request(format!(
                "The api-version '{}' is not supported for segment; use one of {}",
                other.unwrap_or(""),
                API_VERSIONS.join(", ")
            )))
        }
    }
    let mode = params.get("mode").unwrap_or("");
    let modes = [
        ("backgroundRemoval", SegmentMode::BackgroundRemoval),
        ("foregroundMatting", SegmentMode::ForegroundMatting),
    ];
    let named = modes
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(mode.trim()));
    named.map(|(_, mode)| mode).ok_or_else(|| {
        ApiError::bad_argument(format!(
            "'mode' must be backgroundRemoval or foregroundMatting, not '{mode}'"
        ))
    })
}

pub async fn segment(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let mode = parse_mode(&QueryParams::parse(query.as_deref()))?;
    let bytes = image_bytes(request, &state.fetcher, ANALYZE_V4.max_bytes).await?;
    let pipeline = Arc::clone(&state.pipeline);
    let png = state
        .workers
        .run(move || pipeline.segment(&bytes, &ANALYZE_V4, mode))
        .await??;
    Ok(([(CONTENT_TYPE, "image/png")], png).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_versions_are_checked() {
        let parse = |q: &str| parse_mode(&QueryParams::parse(Some(q)));
        assert_eq!(
            parse("api-version=2023-02-01-preview&mode=backgroundRemoval"),
            Ok(SegmentMode::BackgroundRemoval)
        );
        assert_eq!(
            parse("mode=FOREGROUNDMATTING&api-version=2023-04-01-preview"),
            Ok(SegmentMode::ForegroundMatting)
        );
        assert_eq!(
            parse("api-version=2023-02-01-preview&mode=blur")
                .unwrap_err()
                .inner
                .unwrap()
                .0,
            "BadArgument"
        );
        assert_eq!(
            parse("api-version=2023-02-01-preview")
                .unwrap_err()
                .inner
                .unwrap()
                .0,
            "BadArgument"
        );
        assert!(parse("api-version=2023-10-01&mode=backgroundRemoval")
            .unwrap_err()
            .inner
            .is_none());
    }
}
