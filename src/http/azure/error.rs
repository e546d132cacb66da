//! Azure's error envelope: `{"error": {"code", "message", "innererror": {"code", "message"}}}` with the
//! `x-ms-error-code` header, and the mapping from pipeline errors to it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::fetch::FetchError;
use crate::http::intake::IntakeError;
use crate::pipeline::decode::DecodeError;
use crate::pipeline::workers::SubmitError;
use crate::pipeline::PipelineError;

/// The message Azure uses when a query parameter is wrong; the inner error says which.
pub const INVALID_QUERY: &str = "Analyze query is invalid";
const SECONDS_TO_RETRY: u64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub inner: Option<(String, String)>,
    /// Seconds sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    innererror: Option<Inner<'a>>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            inner: None,
            retry_after: (status == StatusCode::TOO_MANY_REQUESTS).then_some(SECONDS_TO_RETRY),
        }
    }

    /// The same error, telling the client to wait `seconds` before trying again.
    pub fn retry_after(self, seconds: u64) -> Self {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// 400 InvalidRequest with `message` and no inner error.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// 400 InvalidRequest with an inner error naming the precise problem.
    pub fn invalid(
        message: impl Into<String>,
        inner_code: &str,
        inner_message: impl Into<String>,
    ) -> Self {
        ApiError {
            inner: Some((inner_code.into(), inner_message.into())),
            ..Self::invalid_request(message)
        }
    }

    pub fn bad_argument(inner_message: impl Into<String>) -> Self {
        Self::invalid(INVALID_QUERY, "BadArgument", inner_message)
    }

    pub fn unauthorized(missing: bool) -> Self {
        let message = if missing {
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."
        } else {
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
        };
        Self::new(StatusCode::UNAUTHORIZED, "401", message)
    }

    /// A bearer token that does not prove who is calling (401), or proves a caller without the
    /// required role (403), in the words Azure uses for Entra ID tokens.
    pub fn token_refused(forbidden: bool) -> Self {
        if forbidden {
            Self::new(
                StatusCode::FORBIDDEN,
                "PermissionDenied",
                "Principal does not have access to API/Operation.",
            )
        } else {
            Self::new(
                StatusCode::UNAUTHORIZED,
                "401",
                format!(
                    "Unauthorized. Access token is missing, invalid, audience is incorrect ({}), \
                     or have expired.",
                    crate::http::token::AZURE_AUDIENCE
                ),
            )
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "404", "Resource not found")
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal error occurred; it has been logged.",
        )
    }
}

impl ApiError {
    /// The JSON body, as the API sends it and the CLI prints it.
    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            error: Body {
                code: &self.code,
                message: &self.message,
                innererror: self
                    .inner
                    .as_ref()
                    .map(|(code, message)| Inner { code, message }),
            },
        };
        serde_json::to_string(&envelope).expect("error envelope serializes")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Ok(code) = HeaderValue::from_str(&self.code) {
            headers.insert("x-ms-error-code", code);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        let message = e.to_string();
        match e {
            DecodeError::InvalidFormat => {
                ApiError::invalid(message.clone(), "InvalidImageFormat", message)
            }
            DecodeError::InvalidSize { .. } | DecodeError::TooManyPixels { .. } => {
                ApiError::invalid(message.clone(), "InvalidImageSize", message)
            }
            DecodeError::InvalidByteSize { .. } => ApiError::invalid_request(message),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Decode(e) => e.into(),
            PipelineError::Unavailable { feature, reason } => ApiError::invalid(
                INVALID_QUERY,
                "NotSupportedVisualFeature",
                format!("The feature '{feature}' is not supported by this server: {reason}"),
            ),
            PipelineError::Pdf(e) => {
                let message = e.to_string();
                ApiError::invalid(message.clone(), "InvalidImageFormat", message)
            }
            PipelineError::TimedOut(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Timeout", e.to_string())
            }
            PipelineError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "analysis failed");
                ApiError::internal()
            }
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "429",
                format!("Rate limit is exceeded. Try again in {SECONDS_TO_RETRY} seconds."),
            ),
            SubmitError::Crashed => {
                tracing::error!("an analysis job panicked; the worker recovered");
                ApiError::internal()
            }
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Fetch(e) => e.into(),
            IntakeError::InvalidByteSize { max } => DecodeError::InvalidByteSize { max }.into(),
            IntakeError::MalformedUrlBody => ApiError::invalid(
                e.to_string(),
                "InvalidImageUrl",
                "Image URL is badly formatted or not accessible",
            ),
            IntakeError::Unreadable
            | IntakeError::MalformedMultipart
            | IntakeError::UnsupportedContentType(_) => ApiError::invalid_request(e.to_string()),
        }
    }
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        tracing::info!(reason = %e, "image url refused or failed");
        match e {
            FetchError::NotAccessible(_) => ApiError::invalid(
                "The provided image url is not accessible.",
                "InvalidImageUrl",
                "Image URL is badly formatted or not accessible.",
            ),
            FetchError::TooLarge(max) => ApiError::from(DecodeError::InvalidByteSize { max }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn envelope_carries_code_message_inner_error_and_header() {
        let response = ApiError::bad_argument("ratio out of range").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-ms-error-code"], "InvalidRequest");
        assert_eq!(
            body_json(response).await,
            serde_json::json!({"error": {"code": "InvalidRequest", "message": "Analyze query is invalid",
                "innererror": {"code": "BadArgument", "message": "ratio out of range"}}})
        );
    }

    #[tokio::test]
    async fn queue_full_is_429_with_retry_after_and_no_inner_error() {
        let response = ApiError::from(SubmitError::QueueFull).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "429");
        assert!(body["error"].get("innererror").is_none());
    }

    #[test]
    fn url_failures_carry_azures_inner_code() {
        let error = ApiError::from(FetchError::NotAccessible("dns".into()));
        assert_eq!(error.code, "InvalidRequest");
        assert_eq!(error.inner.unwrap().0, "InvalidImageUrl");
    }

    #[test]
    fn decode_errors_map_to_azure_inner_codes() {
        let format = ApiError::from(DecodeError::InvalidFormat);
        assert_eq!(format.inner.unwrap().0, "InvalidImageFormat");
        let size = ApiError::from(DecodeError::InvalidSize {
            width: 10,
            height: 10,
            min: 50,
            max: 16000,
        });
        assert_eq!(size.inner.unwrap().0, "InvalidImageSize");
        let bytes = ApiError::from(DecodeError::InvalidByteSize { max: 20971520 });
        assert_eq!(
            bytes.message,
            "The image size is not allowed to be zero or larger than 20971520 bytes"
        );
    }
}
