//! Fetches an image URL that a caller asked for, and nothing else. Addresses that are not globally
//! reachable are refused unless the deployment allows them: the not-globally-reachable rows of IANA's
//! IPv4 and IPv6 special-purpose registries, multicast, and IPv6 addresses that embed a refused IPv4
//! address (IPv4-mapped, NAT64, 6to4; IPv4-compatible and Teredo ranges are refused whole). The check
//! runs on the addresses DNS returns (so a public name that resolves privately is caught) and again on
//! every redirect. A URL is only ever logged as scheme, host and path: query strings carry credentials
//! (SAS tokens).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

/// Redirects followed after the first request (so four requests at most).
const MAX_REDIRECTS: usize = 3;

/// IPv4 networks never fetched: IANA's IPv4 special-purpose registry rows that are not globally
/// reachable, plus multicast and the reserved 240/4.
const REFUSED_V4: [(Ipv4Addr, u8); 16] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link local (cloud metadata: 169.254.169.254)
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved, and the limited broadcast address
    (Ipv4Addr::new(255, 255, 255, 255), 32), // limited broadcast
];

/// IPv6 networks never fetched, whatever they hold: IANA's IPv6 special-purpose registry rows that are
/// not globally reachable, deprecated site-local, and multicast.
const REFUSED_V6: [(Ipv6Addr, u8); 11] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // unspecified, loopback, IPv4-compatible (deprecated)
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, Teredo included
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The reason is for logs (it never holds the URL's query); callers show Azure's fixed message.
    #[error("the image url is not accessible: {0}")]
    NotAccessible(String),
    #[error("the image at the url is larger than {0} bytes")]
    TooLarge(usize),
}

pub struct UrlFetcher {
    client: reqwest::Client,
    allow_private: bool,
}

/// An error with its whole chain of causes: reqwest's own message alone hides the reason. reqwest names
/// the URL in its errors; callers strip it (`without_url`) before this, since it may hold a SAS token.
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

/// A URL as it may be logged: scheme, host, port and path, without query, fragment or credentials.
pub fn redacted(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}{}", url.scheme(), url.path())
}

fn v4_in(ip: Ipv4Addr, (network, prefix): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(network) & mask
}

fn v6_in(ip: Ipv6Addr, (network, prefix): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64's well-known prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let last_32 = Ipv4Addr::from(bits as u32);
    let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        Some(mapped)
    } else if v6_in(ip, (nat64, 96)) {
        Some(last_32)
    } else if ip.segments()[0] == 0x2002 {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !REFUSED_V4.iter().any(|&net| v4_in(v4, net)),
        IpAddr::V6(v6) => {
            !REFUSED_V6.iter().any(|&net| v6_in(v6, net))
                && embedded_v4(v6).is_none_or(|v4| is_public(IpAddr::V4(v4)))
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
            // `previous` holds every URL already requested, the original included.
            if attempt.previous().len() > MAX_REDIRECTS {
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
        let shown = redacted(&parsed);
        let failed = |e: reqwest::Error| {
            FetchError::NotAccessible(format!("{shown}: {}", describe(&e.without_url())))
        };
        url_allowed(&parsed, self.allow_private)
            .map_err(|reason| FetchError::NotAccessible(format!("{shown}: {reason}")))?;
        let response = self
            .client
            .get(parsed.clone())
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(FetchError::NotAccessible(format!(
                "{shown}: status {}",
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
            let chunk = chunk.map_err(failed)?;
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

    /// One row per refused range of the tables above, plus the IPv6 forms that embed a refused IPv4
    /// address (the SSRF reports: NAT64, IPv4-compatible, 6to4, site-local, Teredo).
    #[test]
    fn every_special_purpose_range_and_embedding_is_refused() {
        for ip in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn logged_urls_keep_no_query_or_credentials() {
        let url = reqwest::Url::parse(
            "https://user:pw@acct.blob.core.windows.net:8443/c/a.jpg?sv=1&sig=SECRET#frag",
        )
        .unwrap();
        assert_eq!(
            redacted(&url),
            "https://acct.blob.core.windows.net:8443/c/a.jpg"
        );
    }

    /// A loopback server where `/rN` redirects to `/r(N-1)` and `/r0` answers "image".
    async fn redirect_chain_server() -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 1024];
                let n = socket.read(&mut request).await.unwrap();
                let line = String::from_utf8_lossy(&request[..n]).to_string();
                let hops: usize = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/r"))
                    .and_then(|n| n.parse().ok())
                    .unwrap();
                let reply = if hops == 0 {
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nimage"
                        .to_string()
                } else {
                    format!("HTTP/1.1 302 Found\r\nlocation: /r{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", hops - 1)
                };
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn three_redirects_are_followed_and_a_fourth_is_refused() {
        let addr = redirect_chain_server().await;
        let fetcher = UrlFetcher::new(true).unwrap();
        let body = fetcher
            .fetch(&format!("http://{addr}/r3"), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"image");
        let err = fetcher
            .fetch(&format!("http://{addr}/r4"), 1024)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("too many redirects"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_fetch_never_reports_the_query_string() {
        let fetcher = UrlFetcher::new(true).unwrap();
        // Port 9 (discard) on loopback refuses the connection.
        let err = fetcher
            .fetch("http://127.0.0.1:9/a.jpg?sig=SECRET", 1024)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("127.0.0.1:9/a.jpg"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
        let err = fetcher
            .fetch("http://no-such-host.invalid/a.jpg?sig=SECRET", 1024)
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRET"), "{err}");
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
