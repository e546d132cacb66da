//! AWS JSON errors: `{"__type": ..., "message": ...}` with the HTTP status AWS gives each exception.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::sigv4::SignatureError;
use crate::http::intake::IntakeError;
use crate::pipeline::decode::DecodeError;
use crate::pipeline::workers::SubmitError;
use crate::pipeline::PipelineError;

pub const JSON_1_1: &str = "application/x-amz-json-1.1";

#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        let status = match kind {
            "MissingAuthenticationTokenException" | "AccessDeniedException" => {
                StatusCode::FORBIDDEN
            }
            "InternalServerError" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        AwsError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        AwsError::new("InvalidParameterException", message)
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.kind, "message": self.message}).to_string();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
        response
    }
}

impl From<SignatureError> for AwsError {
    fn from(e: SignatureError) -> Self {
        let kind = match e {
            SignatureError::Missing => "MissingAuthenticationTokenException",
            SignatureError::UnknownKey => "UnrecognizedClientException",
            SignatureError::Malformed(_) => "IncompleteSignatureException",
            SignatureError::Skewed(_) | SignatureError::Mismatch | SignatureError::BodyHash => {
                "InvalidSignatureException"
            }
        };
        AwsError::new(kind, e.to_string())
    }
}

impl From<PipelineError> for AwsError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Decode(DecodeError::InvalidByteSize { .. }) => {
                AwsError::new("ImageTooLargeException", "Image size is too large.")
            }
            PipelineError::Decode(
                DecodeError::InvalidSize { .. } | DecodeError::TooManyPixels { .. },
            ) => AwsError::new("ImageTooLargeException", e.to_string()),
            PipelineError::Decode(DecodeError::InvalidFormat) | PipelineError::Pdf(_) => {
                AwsError::new(
                    "InvalidImageFormatException",
                    "Request has invalid image format",
                )
            }
            PipelineError::Unavailable { feature, reason } => AwsError::new(
                "AccessDeniedException",
                format!("vista: '{feature}' is not available: {reason}"),
            ),
            PipelineError::TimedOut(_) => AwsError::new("InternalServerError", e.to_string()),
            PipelineError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "analysis failed");
                AwsError::new("InternalServerError", "Internal server error")
            }
        }
    }
}

impl From<SubmitError> for AwsError {
    fn from(e: SubmitError) -> Self {
        match e {
            // In the SDKs' list of throttling errors, so they back off and retry.
            SubmitError::QueueFull => AwsError::new(
                "ProvisionedThroughputExceededException",
                "The server is busy; retry the request.",
            ),
            SubmitError::Crashed => {
                tracing::error!("an analysis job panicked; the worker recovered");
                AwsError::new("InternalServerError", "Internal server error")
            }
        }
    }
}

impl From<IntakeError> for AwsError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::InvalidByteSize { .. } => {
                AwsError::new("ImageTooLargeException", "Image size is too large.")
            }
            other => AwsError::invalid(other.to_string()),
        }
    }
}
