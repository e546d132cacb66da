//! Google's errors: `google.rpc.Status` codes, the whole-call REST envelope
//! `{"error": {code, message, status, details}}` with the HTTP status each code maps to, and the bare
//! per-image status (`{code, message}`) that sits inside a 200.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::fetch::FetchError;
use crate::http::intake::IntakeError;
use crate::pipeline::decode::DecodeError;
use crate::pipeline::workers::SubmitError;
use crate::pipeline::PipelineError;

/// The `google.rpc.Code`s vista answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument = 3,
    PermissionDenied = 7,
    FailedPrecondition = 9,
    NotFound = 5,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
    DeadlineExceeded = 4,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::NotFound => "NOT_FOUND",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        }
    }

    /// The HTTP status of `google/rpc/code.proto`'s mapping.
    pub fn http(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// An error of one image (inside a 200) or of the whole call (rendered as the REST envelope).
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub code: Code,
    pub message: String,
    /// `google.rpc.ErrorInfo.reason`, for the whole-call envelope.
    pub reason: Option<&'static str>,
}

/// Seconds a client is asked to wait after a 503.
const SECONDS_TO_RETRY: u64 = 1;

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
            reason: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Status::new(Code::InvalidArgument, message)
    }

    /// The per-image form: `{code, message}`.
    pub fn to_json(&self) -> Value {
        json!({"code": self.code as i32, "message": self.message})
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code.http().as_u16(), "message": self.message,
                               "status": self.code.name()});
        if let Some(reason) = self.reason {
            error["details"] = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason, "domain": "googleapis.com",
                "metadata": {"service": "vision.googleapis.com"}}]);
        }
        let mut response = (self.code.http(), Json(json!({ "error": error }))).into_response();
        if self.code == Code::Unavailable {
            response
                .headers_mut()
                .insert("retry-after", SECONDS_TO_RETRY.into());
        }
        response
    }
}

impl From<PipelineError> for Status {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Decode(DecodeError::InvalidFormat) => Status::invalid("Bad image data."),
            PipelineError::Decode(e) => Status::invalid(format!("Bad image data: {e}")),
            PipelineError::Pdf(e) => Status::invalid(format!("Bad file data: {e}")),
            PipelineError::Unavailable { feature, reason } => Status::new(
                Code::Unimplemented,
                format!("vista: '{feature}' is not available: {reason}"),
            ),
            PipelineError::TimedOut(_) => Status::new(Code::DeadlineExceeded, e.to_string()),
            PipelineError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "analysis failed");
                Status::new(Code::Internal, "Internal error.")
            }
        }
    }
}

impl From<SubmitError> for Status {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => {
                Status::new(Code::Unavailable, "The service is busy; retry the request.")
            }
            SubmitError::Crashed => {
                tracing::error!("an analysis job panicked; the worker recovered");
                Status::new(Code::Internal, "Internal error.")
            }
        }
    }
}

impl From<FetchError> for Status {
    fn from(e: FetchError) -> Self {
        tracing::info!(reason = %e, "image url refused or failed");
        match e {
            FetchError::NotAccessible(_) => Status::invalid(
                "We can not access the URL currently. Please download the content and pass it in.",
            ),
            FetchError::TooLarge(max) => {
                Status::invalid(format!("The image is larger than {max} bytes."))
            }
        }
    }
}

impl From<IntakeError> for Status {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::InvalidByteSize { max } => Status::invalid(format!(
                "Request payload size exceeds the limit: {max} bytes."
            )),
            other => Status::invalid(other.to_string()),
        }
    }
}
