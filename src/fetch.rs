//! Fetches an image URL that a caller asked for, and nothing else. Private, loopback, link-local and
//! multicast targets are refused unless the deployment allows them; the check runs on the addresses
//! DNS returns (so a public name that resolves privately is caught) and again on every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The reason is for logs; callers show Azure's fixed message.
    #[error("the image url is not accessible: {0}")]
    NotAccessible(String),
    #[error("the image at the url is larger than {0} bytes")]
    TooLarge(usize),
}

pub struct UrlFetcher {
    client: reqwest::Client,
    allow_private: bool,
}

/// An error with its whole chain of causes: reqwest's own message alone hides the reason.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link local
        }
    }
}

/// Resolves names and drops every address the policy forbids.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{} resolves only to non-public addresses", name.as_str()).into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Scheme and literal-IP checks; names are checked by the resolver.
fn url_allowed(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme '{}' is not allowed", url.scheme()));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err("the url has no host".into()),
    };
    match literal {
        Some(ip) if !allow_private && !is_public(ip) => {
            Err(format!("{ip} is not a public address"))
        }
        _ => Ok(()),
    }
}

impl UrlFetcher {
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(reason) = url_allowed(attempt.url(), allow_private) {
                attempt.error(reason)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(policy)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("vista/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(UrlFetcher {
            client,
            allow_private,
        })
    }

    /// Downloads the body, stopping as soon as it exceeds `max_bytes` (the caller's API's limit: 20 MB
    /// for an image, more for a Read document).
    pub async fn fetch(&self, url: &str, max_bytes: usize) -> Result<Bytes, FetchError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| FetchError::NotAccessible(format!("bad url: {e}")))?;
        url_allowed(&parsed, self.allow_private).map_err(FetchError::NotAccessible)?;
        let response = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| FetchError::NotAccessible(describe(&e)))?;
        if !response.status().is_success() {
            return Err(FetchError::NotAccessible(format!(
                "status {}",
                response.status()
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > max_bytes)
        {
            return Err(FetchError::TooLarge(max_bytes));
        }
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::NotAccessible(describe(&e)))?;
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_private_urls_and_odd_schemes_are_refused_unless_allowed() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(url_allowed(&url("http://127.0.0.1:5000/x.jpg"), false).is_err());
        assert!(url_allowed(&url("http://[::1]/x.jpg"), false).is_err());
        assert!(url_allowed(&url("http://127.0.0.1:5000/x.jpg"), true).is_ok());
        assert!(url_allowed(&url("file:///etc/passwd"), true).is_err());
        assert!(url_allowed(&url("https://example.com/x.jpg"), false).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let fetcher = UrlFetcher::new(false).unwrap();
        let err = fetcher
            .fetch("http://localhost:9/x.jpg", 1024)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("non-public"), "{err}");
    }
}
