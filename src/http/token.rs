//! Bearer tokens (JWTs), validated offline as an OIDC resource server does: the signature against the
//! issuer's public keys (a JWKS file the operator downloads and refreshes; vista never fetches keys at
//! request time), then `iss`, `aud`, `exp` and `nbf`, then an optional role or scope. Only asymmetric
//! algorithms are accepted (RS*, PS*, ES*): `none` does not parse, and HS* is refused before any key is
//! tried, so a public key can never be used as an HMAC secret. Protocol-neutral: each surface that has
//! a bearer form asks it and answers a refusal in its own words.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The audience Azure's SDKs ask Entra ID for (scope `https://cognitiveservices.azure.com/.default`).
pub const AZURE_AUDIENCE: &str = "https://cognitiveservices.azure.com";

/// How often the JWKS file's modification time is checked for a reload.
const JWKS_POLL: Duration = Duration::from_secs(2);

/// The algorithms a token may be signed with.
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Accepted `iss` values (e.g. `https://login.microsoftonline.com/<tenant>/v2.0`).
    pub issuers: Vec<String>,
    pub audience: String,
    /// The issuers' public keys, as a JWKS document.
    pub jwks: PathBuf,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// A value the token's `roles` or `scp` claim must hold.
    pub required_role: Option<String>,
}

/// Why a token was refused (logged; never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("no token issuer is configured (--token-issuer)")]
    NotConfigured,
    #[error("the token is not a JWT, or names an unknown algorithm")]
    Malformed,
    #[error("the token's algorithm {0:?} is not accepted (only RS*, PS*, ES*)")]
    Algorithm(Algorithm),
    #[error("no key of the JWKS matches the token's key id and algorithm")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the issuer is not accepted")]
    Issuer,
    #[error("the audience is not this server's")]
    Audience,
    #[error("the token has no '{0}' claim")]
    MissingClaim(String),
    #[error("the token lacks the required role or scope")]
    MissingRole,
}

impl TokenRefusal {
    /// Authenticated, but not allowed (the other refusals mean "not authenticated").
    pub fn is_forbidden(&self) -> bool {
        matches!(self, TokenRefusal::MissingRole)
    }
}

/// One verifying key of the JWKS.
struct VerifyingKey {
    kid: Option<String>,
    rsa: bool,
    key: DecodingKey,
}

/// The claims beyond the registered ones that vista reads.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    roles: Vec<String>,
    /// Delegated scopes, space-separated.
    #[serde(default)]
    scp: String,
}

pub struct TokenVerifier {
    config: TokenConfig,
    keys: RwLock<Vec<VerifyingKey>>,
    /// The JWKS file's modification time when it was last read, loaded or not (a broken file is not
    /// read again until it changes).
    read_at: RwLock<Option<SystemTime>>,
    /// Why the last reload failed (the keys before it stay in use); None once one succeeds.
    reload_error: RwLock<Option<String>>,
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The signing keys of a JWKS file: RSA and EC keys not marked for encryption; symmetric keys are
/// skipped, since tokens signed with a shared secret are never accepted.
fn read_keys(path: &std::path::Path) -> Result<Vec<VerifyingKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JWKS document", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let rsa = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(_) => false,
            AlgorithmParameters::OctetKey(_) | AlgorithmParameters::OctetKeyPair(_) => continue,
        };
        let key = DecodingKey::from_jwk(jwk)
            .with_context(|| format!("key {:?} of {}", jwk.common.key_id, path.display()))?;
        keys.push(VerifyingKey {
            kid: jwk.common.key_id.clone(),
            rsa,
            key,
        });
    }
    if keys.is_empty() {
        bail!("{} holds no RSA or EC signing key", path.display());
    }
    Ok(keys)
}

impl TokenVerifier {
    /// Loads the JWKS; an error if it cannot be read or holds no signing key.
    pub fn load(config: TokenConfig) -> Result<Self> {
        if config.issuers.is_empty() {
            bail!("token authentication needs at least one --token-issuer");
        }
        let read_at = modified(&config.jwks);
        let keys = read_keys(&config.jwks)?;
        Ok(TokenVerifier {
            config,
            keys: RwLock::new(keys),
            read_at: RwLock::new(read_at),
            reload_error: RwLock::new(None),
        })
    }

    /// Reads the JWKS again; on failure the keys before stay in use and the error is kept for
    /// `/ready`.
    pub fn reload(&self) {
        *self.read_at.write().unwrap_or_else(|e| e.into_inner()) = modified(&self.config.jwks);
        match read_keys(&self.config.jwks) {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "token keys (JWKS) reloaded");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
                *self.reload_error.write().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the JWKS failed to load; keeping the keys before");
                *self.reload_error.write().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{e:#}"));
            }
        }
    }

    /// The state of the keys for `/ready`: how many are in use, and why the last reload failed.
    pub fn status(&self) -> (usize, Option<String>) {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).len();
        let error = self
            .reload_error
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (keys, error)
    }

    /// Whether the JWKS file changed since it was last read.
    fn jwks_changed(&self) -> bool {
        modified(&self.config.jwks) != *self.read_at.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads the JWKS on SIGHUP and whenever the file changes, for as long as the server runs.
    pub fn watch(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut hangups =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(signal) => Some(signal),
                    Err(e) => {
                        tracing::warn!("no SIGHUP reload of the JWKS: {e}");
                        None
                    }
                };
            loop {
                let hangup = async {
                    match &mut hangups {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = hangup => self.reload(),
                    _ = tokio::time::sleep(JWKS_POLL) => {
                        if self.jwks_changed() {
                            self.reload();
                        }
                    }
                }
            }
        });
    }

    /// Checks a bearer token (the part after `Bearer `).
    pub fn verify(&self, token: &str) -> Result<(), TokenRefusal> {
        let header = decode_header(token).map_err(|_| TokenRefusal::Malformed)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(TokenRefusal::Algorithm(header.alg));
        }
        let rsa = !matches!(header.alg, Algorithm::ES256 | Algorithm::ES384);
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&self.config.issuers);
        validation.set_audience(&[&self.config.audience]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.required_spec_claims = HashSet::from(["exp", "iss", "aud"].map(str::to_string));
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let candidates = keys.iter().filter(|k| {
            k.rsa == rsa && (header.kid.is_none() || k.kid.as_deref() == header.kid.as_deref())
        });
        let mut refusal = TokenRefusal::UnknownKey;
        for candidate in candidates {
            match decode::<Claims>(token, &candidate.key, &validation) {
                Ok(data) => return self.check_role(&data.claims),
                Err(e) => match e.kind() {
                    // Another key of the set may have signed it.
                    ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => {
                        refusal = TokenRefusal::Signature
                    }
                    ErrorKind::ExpiredSignature => return Err(TokenRefusal::Expired),
                    ErrorKind::ImmatureSignature => return Err(TokenRefusal::NotYetValid),
                    ErrorKind::InvalidIssuer => return Err(TokenRefusal::Issuer),
                    ErrorKind::InvalidAudience => return Err(TokenRefusal::Audience),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        return Err(TokenRefusal::MissingClaim(claim.clone()))
                    }
                    _ => return Err(TokenRefusal::Malformed),
                },
            }
        }
        Err(refusal)
    }

    fn check_role(&self, claims: &Claims) -> Result<(), TokenRefusal> {
        let Some(required) = &self.config.required_role else {
            return Ok(());
        };
        let scopes = claims.scp.split_whitespace();
        let has = claims
            .roles
            .iter()
            .map(String::as_str)
            .chain(scopes)
            .any(|r| r == required);
        if has {
            Ok(())
        } else {
            Err(TokenRefusal::MissingRole)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn verifier(jwks: &str, required_role: Option<&str>) -> Result<TokenVerifier> {
        let dir = std::env::temp_dir().join(format!("vista-jwks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks)?;
        TokenVerifier::load(TokenConfig {
            issuers: vec!["https://issuer.test".into()],
            audience: AZURE_AUDIENCE.into(),
            jwks: path,
            leeway: Duration::from_secs(5),
            required_role: required_role.map(str::to_string),
        })
    }

    /// An EC key (its point is not checked until a signature is) and a shared secret, which is skipped.
    const JWKS: &str = r#"{"keys": [
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn only_asymmetric_signing_keys_are_loaded() {
        let tokens = verifier(JWKS, None).unwrap();
        assert_eq!(tokens.status(), (1, None));
        let only_secret = r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#;
        assert!(verifier(only_secret, None).is_err());
        assert!(verifier("{", None).is_err());
    }

    #[test]
    fn shared_secret_and_malformed_tokens_are_refused_before_any_key_is_tried() {
        let tokens = verifier(JWKS, None).unwrap();
        let claims = serde_json::json!({"iss": "https://issuer.test", "aud": AZURE_AUDIENCE,
            "exp": 4_000_000_000u64});
        let secret = EncodingKey::from_secret(b"secret");
        let hs256 = encode(&Header::new(Algorithm::HS256), &claims, &secret).unwrap();
        assert_eq!(
            tokens.verify(&hs256),
            Err(TokenRefusal::Algorithm(Algorithm::HS256))
        );
        assert_eq!(tokens.verify("a.b"), Err(TokenRefusal::Malformed));
        assert_eq!(tokens.verify(""), Err(TokenRefusal::Malformed));
    }

    #[test]
    fn the_required_role_may_be_an_app_role_or_a_delegated_scope() {
        let tokens = verifier(JWKS, Some("Vision.Analyze")).unwrap();
        let claims = |roles: &[&str], scp: &str| Claims {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scp: scp.into(),
        };
        assert_eq!(tokens.check_role(&claims(&["Vision.Analyze"], "")), Ok(()));
        assert_eq!(
            tokens.check_role(&claims(&[], "openid Vision.Analyze")),
            Ok(())
        );
        assert_eq!(
            tokens.check_role(&claims(&["Other"], "Vision.Analyzer")),
            Err(TokenRefusal::MissingRole)
        );
        assert!(TokenRefusal::MissingRole.is_forbidden());
        assert!(!TokenRefusal::Expired.is_forbidden());
    }
}
