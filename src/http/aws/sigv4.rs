//! AWS Signature Version 4, verified the way AWS's own services check it (written from the
//! algorithm: canonical request, string to sign, derived key): the access key's secret signs the
//! request's method, path, query, signed headers and body hash; vista recomputes the signature and
//! compares in constant time. Secrets are never logged.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS's tolerance between the request's `X-Amz-Date` and the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// Everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded in canonical query strings.
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Access key ids and their secrets (`VISTA_AWS_CREDENTIALS`: `ID:SECRET,...`).
#[derive(Clone, Default)]
pub struct AwsCredentials {
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_ids", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AwsCredentials {
    /// Reads `ID:SECRET` pairs separated by commas or new lines (`#` starts a comment).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut secrets = HashMap::new();
        for pair in text
            .split([',', '\n'])
            .map(|p| p.split('#').next().unwrap_or("").trim())
            .filter(|p| !p.is_empty())
        {
            let (id, secret) = pair
                .split_once(':')
                .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
                .ok_or("AWS credentials must be ACCESS_KEY_ID:SECRET pairs")?;
            secrets.insert(id.trim().to_string(), secret.trim().to_string());
        }
        Ok(AwsCredentials { secrets })
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn extend(&mut self, other: AwsCredentials) {
        self.secrets.extend(other.secrets);
    }
}

/// Why a signature was refused, each answered with AWS's own exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("{0}")]
    Malformed(String),
    #[error(
        "Signature expired or not yet current: {0} is more than 5 min. from the server's time"
    )]
    Skewed(String),
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    Mismatch,
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    BodyHash,
}

/// What a request presents to be verified.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SignatureError> {
    let malformed = |what: &str| SignatureError::Malformed(format!("Authorization header: {what}"));
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| malformed("only AWS4-HMAC-SHA256 is supported"))?;
    let mut fields = HashMap::new();
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("bad field"))?;
        fields.insert(name.trim(), value.trim());
    }
    let field = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or_else(|| malformed(&format!("no {name}")))
    };
    let credential = field("Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(malformed(
            "Credential must be ID/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        key_id,
        date,
        region,
        service,
        signed_headers: field("SignedHeaders")?,
        signature: field("Signature")?,
    })
}

/// `yyyymmddThhmmssZ` as a time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

fn canonical_query(query: Option<&str>) -> String {
    let encode = |s: &str| {
        let decoded = percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        utf8_percent_encode(&decoded, QUERY_ENCODE).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks `request`'s signature against `credentials` for `service`, at time `now`.
pub fn verify(
    credentials: &AwsCredentials,
    service: &str,
    request: &SignedRequest,
    now: SystemTime,
) -> Result<(), SignatureError> {
    let headers = request.headers;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization").ok_or(SignatureError::Missing)?;
    let auth = parse_authorization(authorization)?;
    let secret = credentials
        .secrets
        .get(auth.key_id)
        .ok_or(SignatureError::UnknownKey)?;
    // Temporary credentials need STS, which vista does not have.
    if headers.contains_key("x-amz-security-token") {
        return Err(SignatureError::UnknownKey);
    }
    if auth.service != service {
        return Err(SignatureError::Malformed(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    let amz_date = header("x-amz-date")
        .ok_or_else(|| SignatureError::Malformed("X-Amz-Date is required".into()))?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        SignatureError::Malformed(format!("X-Amz-Date '{amz_date}' is not yyyymmddThhmmssZ"))
    })?;
    if !amz_date.starts_with(auth.date) {
        return Err(SignatureError::Malformed(
            "the Credential date does not match X-Amz-Date".into(),
        ));
    }
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(SignatureError::Skewed(amz_date.to_string()));
    }
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(SignatureError::Malformed(
            "SignedHeaders must include host and x-amz-date".into(),
        ));
    }
    let body_hash = sha256_hex(request.body);
    let payload_hash = match header("x-amz-content-sha256") {
        Some(claimed) if claimed != body_hash => return Err(SignatureError::BodyHash),
        _ => body_hash,
    };
    let mut canonical_headers = String::new();
    for name in &signed {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical_request = [
        request.method,
        request.path,
        &canonical_query(request.query),
        &canonical_headers,
        auth.signed_headers,
        &payload_hash,
    ]
    .join("\n");
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = [auth.date, auth.region, auth.service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |key, part| {
            hmac(&key, part)
        });
    let expected = hex::encode(hmac(&key, &string_to_sign));
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// The canonical request boto3 produced in the contract's verified capture, signed here with a
    /// known secret by the same steps botocore takes; then every tampering is refused.
    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let credentials =
            AwsCredentials::parse("AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        let body = br#"{"Image": {"Bytes": "aGk="}}"#;
        let amz_date = "20261202T011111Z";
        let now = parse_amz_date(amz_date).unwrap() + Duration::from_secs(30);
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8932"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert("x-amz-date", HeaderValue::from_static(amz_date));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("RekognitionService.DetectLabels"),
        );
        let signed_headers = "content-type;host;x-amz-date;x-amz-target";
        let canonical = format!(
            "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:8932\nx-amz-date:{amz_date}\nx-amz-target:RekognitionService.DetectLabels\n\n{signed_headers}\n{}",
            sha256_hex(body)
        );
        let scope = "20261202/us-east-1/rekognition/aws4_request";
        let to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20261202");
        for part in ["us-east-1", "rekognition", "aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex::encode(hmac(&key, &to_sign));
        let authorization = format!("{ALGORITHM} Credential=AKIDEXAMPLE/{scope}, SignedHeaders={signed_headers}, Signature={signature}");
        headers.insert(
            "authorization",
            HeaderValue::from_str(&authorization).unwrap(),
        );
        let request = |headers: &HeaderMap, body: &'static [u8]| {
            let signed = SignedRequest {
                method: "POST",
                path: "/",
                query: None,
                headers,
                body,
            };
            verify(&credentials, "rekognition", &signed, now)
        };
        let body: &'static [u8] = br#"{"Image": {"Bytes": "aGk="}}"#;
        assert_eq!(request(&headers, body), Ok(()));
        assert_eq!(
            request(&headers, br#"{"Image": {"Bytes": "aGl="}}"#),
            Err(SignatureError::Mismatch)
        );
        let mut other_host = headers.clone();
        other_host.insert("host", HeaderValue::from_static("proxy:80"));
        assert_eq!(request(&other_host, body), Err(SignatureError::Mismatch));
        let mut wrong_hash = headers.clone();
        wrong_hash.insert("x-amz-content-sha256", HeaderValue::from_static("00"));
        assert_eq!(request(&wrong_hash, body), Err(SignatureError::BodyHash));
        let mut unknown = headers.clone();
        let other = authorization.replace("AKIDEXAMPLE", "AKIDOTHER");
        unknown.insert("authorization", HeaderValue::from_str(&other).unwrap());
        assert_eq!(request(&unknown, body), Err(SignatureError::UnknownKey));
        let mut token = headers.clone();
        token.insert("x-amz-security-token", HeaderValue::from_static("t"));
        assert_eq!(request(&token, body), Err(SignatureError::UnknownKey));
        let mut none = headers.clone();
        none.remove("authorization");
        assert_eq!(request(&none, body), Err(SignatureError::Missing));
        let late = SignedRequest {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body,
        };
        let later = now + Duration::from_secs(6 * 60);
        assert!(matches!(
            verify(&credentials, "rekognition", &late, later),
            Err(SignatureError::Skewed(_))
        ));
    }

    #[test]
    fn query_strings_are_sorted_and_strictly_encoded() {
        assert_eq!(canonical_query(Some("b=2&a=x y&c=%7E")), "a=x%20y&b=2&c=~");
        assert_eq!(canonical_query(None), "");
        assert!(AwsCredentials::parse("no-colon").is_err());
        let two = AwsCredentials::parse("A:one, B:two # rotation").unwrap();
        assert_eq!(two.secrets.len(), 2);
        assert!(
            !format!("{two:?}").contains("one"),
            "secrets are not printed"
        );
    }
}
