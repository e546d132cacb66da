//! Reads the image a request carries: raw bytes (`application/octet-stream`, `image/*`), a JSON
//! `{"url": ...}` that is then fetched, or the first file of a `multipart/form-data` body. Bodies are
//! read as a stream with a cap, so an oversized upload is refused without buffering all of it.

use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::fetch::{FetchError, UrlFetcher};

/// A JSON body is tiny; anything longer is not a `{"url": ...}` document.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Why a request's image could not be taken in; each surface renders it in its protocol's words.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("The request body could not be read.")]
    Unreadable,
    #[error("The multipart body is malformed.")]
    MalformedMultipart,
    #[error("The request body must be JSON of the form {{\"url\": \"...\"}}.")]
    MalformedUrlBody,
    #[error("The provided image content type '{0}' is not supported.")]
    UnsupportedContentType(String),
    /// Empty, or larger than `max` bytes.
    #[error("the image is empty or larger than {max} bytes")]
    InvalidByteSize { max: usize },
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

#[derive(Deserialize)]
struct UrlBody {
    url: String,
}

pub async fn read_capped(body: Body, max: usize) -> Result<Bytes, IntakeError> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| IntakeError::Unreadable)?;
        if buffer.len() + chunk.len() > max {
            return Err(IntakeError::InvalidByteSize { max });
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// A multipart field's bytes, at most `max`: read a chunk at a time, refused as soon as it is longer.
pub async fn field_capped(field: &mut Field<'_>, max: usize) -> Result<Bytes, IntakeError> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|_| IntakeError::MalformedMultipart)?
    {
        if buffer.len() + chunk.len() > max {
            return Err(IntakeError::InvalidByteSize { max });
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

async fn first_multipart_file(request: Request, max: usize) -> Result<Bytes, IntakeError> {
    let malformed = |_| IntakeError::MalformedMultipart;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|_| IntakeError::MalformedMultipart)?;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let bytes = field_capped(&mut field, max).await?;
        if !bytes.is_empty() {
            return Ok(bytes);
        }
    }
    Err(IntakeError::InvalidByteSize { max })
}

/// The image bytes of a request, at most `max_bytes` and never empty.
pub async fn image_bytes(
    request: Request,
    fetcher: &UrlFetcher,
    max_bytes: usize,
) -> Result<Bytes, IntakeError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_ascii_lowercase();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let bytes = match mime.as_str() {
        // PDF is a document format of the Read API; elsewhere it fails to decode like any non-image.
        "application/octet-stream" | "application/pdf" => {
            read_capped(request.into_body(), max_bytes).await?
        }
        m if m.starts_with("image/") => read_capped(request.into_body(), max_bytes).await?,
        "application/json" => {
            let body = read_capped(request.into_body(), MAX_JSON_BYTES).await?;
            let UrlBody { url } =
                serde_json::from_slice(&body).map_err(|_| IntakeError::MalformedUrlBody)?;
            fetcher.fetch(&url, max_bytes).await?
        }
        "multipart/form-data" => first_multipart_file(request, max_bytes).await?,
        other => return Err(IntakeError::UnsupportedContentType(other.to_string())),
    };
    if bytes.is_empty() {
        return Err(IntakeError::InvalidByteSize { max: max_bytes });
    }
    Ok(bytes)
}
