//! API keys: `Ocp-Apim-Subscription-Key` (or the `subscription-key` query parameter, an APIM
//! convention) compared in constant time with every configured key, so two keys can be rotated.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::azure::error::ApiError;
use super::query::QueryParams;

pub const KEY_HEADER: &str = "ocp-apim-subscription-key";

/// The accepted keys, kept only as SHA-256 digests: comparing fixed-length digests in constant time
/// reveals neither the keys nor their lengths.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        let digests = keys
            .into_iter()
            .map(|k| k.as_ref().trim().to_string())
            .filter(|k| !k.is_empty())
            .map(|k| digest(&k))
            .collect();
        ApiKeys { digests }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn accepts(&self, candidate: &str) -> bool {
        let candidate = digest(candidate);
        // Check every key without stopping early.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&candidate)
            })
            .into()
    }
}

/// Middleware: rejects the request with Azure's 401 unless it carries an accepted key.
pub async fn require_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let presented = header.or_else(|| {
        QueryParams::parse(request.uri().query())
            .get("subscription-key")
            .map(str::to_string)
    });
    match presented {
        None => ApiError::unauthorized(true).into_response(),
        Some(key) if keys.accepts(&key) => next.run(request).await,
        Some(_) => ApiError::unauthorized(false).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_configured_key_is_accepted_and_nothing_else() {
        let keys = ApiKeys::new(["primary-key", " secondary-key ", ""]);
        assert!(keys.accepts("primary-key"));
        assert!(keys.accepts("secondary-key"));
        assert!(!keys.accepts("primary-ke"));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::new(Vec::<String>::new()).is_empty());
    }
}
