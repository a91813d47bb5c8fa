//! Outbound HTTP on behalf of plugins: the allow-list and the client.

use crate::bindings::host::HttpError;
use crate::bindings::types::{HttpHeader, OutboundRequest, OutboundResponse};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// How one outbound request may go out.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    pub timeout: Duration,
    /// Whether private, loopback and link-local addresses may be reached (a supplier on the
    /// shop's own network). Off, a plugin cannot reach internal services or cloud metadata.
    pub allow_private_network: bool,
    /// The largest answer body taken: a larger one (announced or streamed) fails the request
    /// as `unreachable` without being read further, so a peer cannot fill the gateway's memory.
    pub max_response_bytes: usize,
}

/// Performs plugins' outbound requests. The gateway uses [`ReqwestHttp`]; tests may script
/// answers with [`crate::harness::ScriptedHttp`].
pub trait OutboundHttp: Send + Sync + 'static {
    fn fetch(
        &self,
        url: Url,
        request: OutboundRequest,
        options: FetchOptions,
    ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, HttpError>> + Send + '_>>;
}

/// Whether an address is on the public internet: not private, loopback, link-local (cloud
/// metadata lives at 169.254.169.254), shared, documentation, multicast or reserved space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if nat64 {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::UNSPECIFIED)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Refuses any URL whose host is not allowed for the connection. Only `http` and `https`; an
/// IP-literal host must be public unless the connection allows private addresses (host names are
/// checked on every address they resolve to, by [`ReqwestHttp`]'s resolver).
pub(crate) fn check_allowed(
    url: &str,
    allowed_hosts: &[String],
    allow_private_network: bool,
) -> Result<Url, HttpError> {
    let parsed = Url::parse(url)
        .map_err(|e| HttpError::InvalidRequest(format!("invalid url `{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HttpError::InvalidRequest(format!(
            "scheme `{}` is not allowed",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| HttpError::InvalidRequest(format!("url `{url}` has no host")))?
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default();
    if !allowed_hosts
        .iter()
        .any(|entry| host_matches(entry, &host, port))
    {
        return Err(HttpError::NotAllowed(format!(
            "host `{host}` is not in the connection's allowed hosts"
        )));
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal
        && !allow_private_network
        && !is_public(ip)
    {
        return Err(HttpError::NotAllowed(format!(
            "address {ip} is private, loopback or link-local and the connection does not allow private addresses"
        )));
    }
    Ok(parsed)
}

fn host_matches(entry: &str, host: &str, port: Option<u16>) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    let (entry_host, entry_port) = match entry.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.to_string(), p.parse::<u16>().ok())
        }
        _ => (entry.clone(), None),
    };
    if entry_port.is_some() && entry_port != port {
        return false;
    }
    match entry_host.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => entry_host == host,
    }
}

/// Parses `Retry-After` (delay in seconds or an HTTP date).
pub(crate) fn retry_after(headers: &[HttpHeader], now: SystemTime) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("retry-after"))?
        .value
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// A resolver that drops every non-public address a name resolves to, and fails when none is
/// left. It runs at connect time, so the address checked is the address connected to.
struct PublicOnly;

#[derive(Debug, thiserror::Error)]
#[error("`{0}` resolves only to private, loopback or link-local addresses")]
struct PrivateDestination(String);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(
                    Box::new(PrivateDestination(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The real client. Redirects are not followed: a plugin sees the 3xx and must ask again, so
/// the allow-list is checked for every hop. No proxy is used: a proxy would resolve names itself,
/// past the address check.
#[derive(Clone)]
pub struct ReqwestHttp {
    public_only: reqwest::Client,
    any_address: reqwest::Client,
}

impl ReqwestHttp {
    pub fn new() -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("daifa/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Self {
            public_only: builder().dns_resolver(PublicOnly).build()?,
            any_address: builder().build()?,
        })
    }
}

impl OutboundHttp for ReqwestHttp {
    fn fetch(
        &self,
        url: Url,
        request: OutboundRequest,
        options: FetchOptions,
    ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, HttpError>> + Send + '_>> {
        let client = if options.allow_private_network {
            &self.any_address
        } else {
            &self.public_only
        };
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
                HttpError::InvalidRequest(format!("invalid method `{}`", request.method))
            })?;
            let mut builder = client
                .request(method, url)
                .timeout(options.timeout)
                .body(request.body);
            for h in &request.headers {
                builder = builder.header(h.name.as_str(), h.value.as_str());
            }
            let response = builder.send().await.map_err(|e| {
                if e.is_builder() {
                    HttpError::InvalidRequest(e.to_string())
                } else if let Some(private) = find_cause::<PrivateDestination>(&e) {
                    HttpError::NotAllowed(private.to_string())
                } else {
                    HttpError::Unreachable(error_chain(&e))
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| HttpHeader {
                    name: n.as_str().to_string(),
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
                .collect();
            let too_large = |n: u64| {
                HttpError::Unreachable(format!(
                    "the answer is larger than the {} bytes a plugin call takes (at least {n})",
                    options.max_response_bytes
                ))
            };
            let max = options.max_response_bytes as u64;
            if let Some(n) = response.content_length().filter(|n| *n > max) {
                return Err(too_large(n));
            }
            let mut response = response;
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| HttpError::Unreachable(error_chain(&e)))?
            {
                let read = (body.len() + chunk.len()) as u64;
                if read > max {
                    return Err(too_large(read));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(OutboundResponse {
                status,
                headers,
                body,
            })
        })
    }
}

fn find_cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        let allowed = vec![
            "shop.example.com".to_string(),
            "127.0.0.1:8080".to_string(),
            "*.myshopify.com".to_string(),
        ];
        let ok = |u: &str| check_allowed(u, &allowed, true).is_ok();
        assert!(ok("https://shop.example.com/admin"));
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(!ok("http://127.0.0.1:8081/x"));
        assert!(ok("https://a.myshopify.com/admin"));
        assert!(!ok("https://myshopify.com/admin"));
        assert!(!ok("https://evil.com/?shop.example.com"));
        assert!(!ok("https://shop.example.com.evil.com/"));
        assert!(!ok("file:///etc/passwd"));
        assert!(matches!(
            check_allowed("http://169.254.169.254/", &allowed, true),
            Err(HttpError::NotAllowed(_))
        ));
        // Listed, but loopback: only with the connection's explicit permission.
        assert!(
            matches!(check_allowed("http://127.0.0.1:8080/x", &allowed, false), Err(HttpError::NotAllowed(m)) if m.contains("private"))
        );
        let metadata = vec![
            "169.254.169.254".to_string(),
            "[fd00::1]".to_string(),
            "10.0.0.5".to_string(),
        ];
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]/",
            "http://10.0.0.5/",
        ] {
            assert!(
                matches!(
                    check_allowed(url, &metadata, false),
                    Err(HttpError::NotAllowed(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn public_and_private_addresses() {
        let cases = [
            ("8.8.8.8", true),
            ("23.227.38.65", true),
            ("2606:4700::6810:85e5", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("127.0.0.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("::1", false),
            ("fe80::1", false),
            ("fd12:3456::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a9fe:a9fe", false),
            ("2001:db8::1", false),
        ];
        for (ip, public) in cases {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses() {
        let http = ReqwestHttp::new().unwrap();
        let request = OutboundRequest {
            method: "GET".into(),
            url: String::new(),
            headers: vec![],
            body: vec![],
        };
        let strict = FetchOptions {
            timeout: Duration::from_secs(2),
            allow_private_network: false,
            max_response_bytes: 1 << 20,
        };
        let url = Url::parse("http://localhost:9/").unwrap();
        match http.fetch(url.clone(), request.clone(), strict).await {
            Err(HttpError::NotAllowed(m)) => assert!(m.contains("localhost"), "{m}"),
            other => panic!("expected not-allowed, got {other:?}"),
        }
        // Allowed, the same name is tried (and port 9 refuses the connection).
        let open = FetchOptions {
            allow_private_network: true,
            ..strict
        };
        assert!(matches!(
            http.fetch(url, request, open).await,
            Err(HttpError::Unreachable(_))
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let h = |v: &str| {
            vec![HttpHeader {
                name: "Retry-After".into(),
                value: v.into(),
            }]
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after(&h("120"), now), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&h(&date), now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&h("soon"), now), None);
        assert_eq!(retry_after(&[], now), None);
    }

    /// A peer on loopback that answers every connection with `head`, then writes `chunk`
    /// `times` times, `pause` apart.
    async fn hostile_peer(head: &'static str, chunk: usize, times: usize, pause: Duration) -> Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    socket.write_all(head.as_bytes()).await?;
                    let bytes = vec![b'x'; chunk];
                    for _ in 0..times {
                        socket.write_all(&bytes).await?;
                        tokio::time::sleep(pause).await;
                    }
                    std::io::Result::Ok(())
                });
            }
        });
        url
    }

    fn get() -> OutboundRequest {
        OutboundRequest {
            method: "GET".into(),
            url: String::new(),
            headers: vec![],
            body: vec![],
        }
    }

    fn loopback(timeout: Duration) -> FetchOptions {
        FetchOptions {
            timeout,
            allow_private_network: true,
            max_response_bytes: 1 << 20,
        }
    }

    #[tokio::test]
    async fn a_peer_answering_gigabytes_is_cut_off_at_the_limit() {
        let http = ReqwestHttp::new().unwrap();
        // Announced: 2 GB in `content-length`, refused before the body is read.
        let announced = hostile_peer(
            "HTTP/1.1 200 OK\r\ncontent-length: 2147483648\r\n\r\n",
            64 << 10,
            4,
            Duration::ZERO,
        )
        .await;
        match http
            .fetch(announced, get(), loopback(Duration::from_secs(5)))
            .await
        {
            Err(HttpError::Unreachable(m)) => {
                assert!(m.contains("larger than the 1048576 bytes"), "{m}")
            }
            other => panic!("expected the answer refused, got {other:?}"),
        }
        // Streamed without a length (until the peer closes): read up to the limit, then cut.
        let streamed = hostile_peer(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            64 << 10,
            32_768,
            Duration::ZERO,
        )
        .await;
        let started = std::time::Instant::now();
        match http
            .fetch(streamed, get(), loopback(Duration::from_secs(5)))
            .await
        {
            Err(HttpError::Unreachable(m)) => assert!(m.contains("larger than"), "{m}"),
            other => panic!("expected the answer cut off, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "cut at the limit, not read to the end"
        );
    }

    #[tokio::test]
    async fn a_peer_trickling_its_answer_is_given_up_at_the_timeout() {
        let http = ReqwestHttp::new().unwrap();
        // One byte every 100 ms of a 10,000-byte body: 1,000 s if waited for.
        let trickle = hostile_peer(
            "HTTP/1.1 200 OK\r\ncontent-length: 10000\r\n\r\n",
            1,
            10_000,
            Duration::from_millis(100),
        )
        .await;
        let started = std::time::Instant::now();
        let result = http
            .fetch(trickle, get(), loopback(Duration::from_millis(800)))
            .await;
        assert!(
            matches!(result, Err(HttpError::Unreachable(_))),
            "{result:?}"
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    }
}
