//! What a request may prove itself with: API keys, compared in constant time with every configured
//! key (so two keys can be rotated), and bearer tokens (see [`super::token`]). Each surface reads them
//! where its protocol carries them and answers a refusal in its own words.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::query::QueryParams;
use super::token::{TokenRefusal, TokenVerifier};

/// The key and bearer token a request offers: the key from `key_header`, or from the `key_param`
/// query parameter when that header is absent (the query is parsed only then), and the token of
/// `Authorization: Bearer`.
pub struct Offered {
    pub key: Option<String>,
    pub bearer: Option<String>,
}

impl Offered {
    pub fn read(request: &Request, key_header: &str, key_param: &str) -> Self {
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = header(AUTHORIZATION.as_str()).and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
        let key = header(key_header).map(str::to_string).or_else(|| {
            QueryParams::parse(request.uri().query())
                .get(key_param)
                .map(str::to_string)
        });
        Offered { key, bearer }
    }
}

/// The configured ways in: keys, tokens, or both (`--no-auth` configures neither and installs no check).
#[derive(Clone, Default)]
pub struct Credentials {
    pub keys: ApiKeys,
    pub tokens: Option<Arc<TokenVerifier>>,
}

/// What a request presented.
pub enum Presented<'a> {
    Nothing,
    Key(&'a str),
    Bearer(&'a str),
}

/// The outcome of checking what a request presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    MissingCredential,
    InvalidKey,
    RefusedToken(TokenRefusal),
}

impl Credentials {
    pub fn check(&self, presented: Presented) -> Verdict {
        match presented {
            Presented::Nothing => Verdict::MissingCredential,
            Presented::Key(key) if self.keys.accepts(key) => Verdict::Accepted,
            Presented::Key(_) => Verdict::InvalidKey,
            Presented::Bearer(token) => {
                let Some(tokens) = &self.tokens else {
                    return Verdict::RefusedToken(TokenRefusal::NotConfigured);
                };
                match tokens.verify(token) {
                    Ok(()) => Verdict::Accepted,
                    Err(refusal) => Verdict::RefusedToken(refusal),
                }
            }
        }
    }
}

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

    #[test]
    fn keys_and_bearer_tokens_are_checked_by_what_is_configured() {
        let keys_only = Credentials {
            keys: ApiKeys::new(["primary-key"]),
            tokens: None,
        };
        assert_eq!(
            keys_only.check(Presented::Key("primary-key")),
            Verdict::Accepted
        );
        assert_eq!(
            keys_only.check(Presented::Key("other")),
            Verdict::InvalidKey
        );
        assert_eq!(
            keys_only.check(Presented::Nothing),
            Verdict::MissingCredential
        );
        // Without token issuers configured, no bearer token is accepted, however it looks.
        assert_eq!(
            keys_only.check(Presented::Bearer("a.b.c")),
            Verdict::RefusedToken(TokenRefusal::NotConfigured)
        );
        let nothing = Credentials::default();
        assert_eq!(nothing.check(Presented::Key("")), Verdict::InvalidKey);
    }
}
