//! Where requests go and how they travel: the target URL (with its credentials), TLS and HTTP
//! options, and `--resolve` pins. Plain data, parsed once.

use base64::Engine as _;

use super::PlanError;

/// Where requests go: parsed once from the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as the user gave it (for reports).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Value of the `Host` header: `host` or `host:port` when the port is not the default.
    pub authority: String,
    /// Path and query of the URL (at least `/`).
    pub path: String,
    /// `https://` (or `grpcs://`): connections speak TLS.
    pub tls: bool,
    /// `grpc://` or `grpcs://`: the path names a gRPC method, and connections speak HTTP/2.
    pub grpc: bool,
    /// `ws://` or `wss://`: a WebSocket endpoint (connections are upgraded from HTTP/1.1).
    pub ws: bool,
    /// `Basic …` from credentials in the URL (`http://user:pass@host/`), sent as the Authorization
    /// header of requests that set none. `url` shows them as `user:***@`.
    pub basic_auth: Option<String>,
    /// Connect to this Unix socket instead of host:port (`--unix-socket`); the URL still gives the
    /// Host header and the path.
    pub unix_socket: Option<std::path::PathBuf>,
}

impl Target {
    /// Parses an `http://`, `https://`, `grpc://`, `grpcs://`, `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<Target, PlanError> {
        if !url.contains("://") {
            return Err(PlanError::BadUrl(
                url.into(),
                "it has no scheme: add http:// or https://".into(),
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| PlanError::BadUrl(url.into(), e.to_string()))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme.is_empty() {
            return Err(PlanError::BadUrl(
                url.into(),
                "it has no scheme (http://…)".into(),
            ));
        }
        let (tls, default_port) = match scheme {
            "http" | "grpc" | "ws" => (false, 80),
            "https" | "grpcs" | "wss" => (true, 443),
            _ => return Err(PlanError::UnsupportedScheme(url.into(), scheme.into())),
        };
        let host = uri.host().ok_or_else(|| PlanError::NoHost(url.into()))?;
        let (shown, basic_auth) = match uri
            .authority()
            .map(|a| a.as_str())
            .and_then(|a| a.rsplit_once('@'))
        {
            Some((userinfo, _)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let shown = url.replacen(userinfo, &format!("{user}:***"), 1);
                let (user, pass) = (percent_decode(user), percent_decode(pass));
                let credentials = [user.as_slice(), b":", pass.as_slice()].concat();
                let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
                (shown, Some(format!("Basic {encoded}")))
            }
            None => (url.to_string(), None),
        };
        // `http::Uri` reads a port it cannot fit in 16 bits as no port at all (so, 80): read it here.
        let host_port = uri.authority().map_or("", |a| a.as_str());
        let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, hp)| hp);
        let port = match host_port
            .rsplit_once(':')
            .filter(|(h, _)| !h.ends_with(':'))
        {
            Some((_, p)) if !p.ends_with(']') && !p.is_empty() => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(PlanError::BadUrl(
                        shown,
                        format!("port {p} is out of range (1–65535)"),
                    ))
                }
            },
            _ => default_port,
        };
        let authority = if uri.port_u16().is_some() && port != default_port {
            format!("{host}:{port}")
        } else {
            host.to_string()
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_string();
        // `http::Uri` keeps the brackets of an IPv6 literal in host(); the resolver wants them off.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Target {
            url: shown,
            host,
            port,
            authority,
            path,
            tls,
            grpc: scheme.starts_with("grpc"),
            ws: scheme.starts_with("ws"),
            basic_auth,
            unix_socket: None,
        })
    }
}

/// Decodes `%XX` escapes (URL userinfo may escape `:`, `@` and `/`); anything else is kept as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// TLS protocol versions the user can bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        match s {
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            _ => Err(format!("'{s}' is not a TLS version (expected 1.2 or 1.3)")),
        }
    }
}

/// What the user asked of TLS (used when the target is `https://`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// Accept any server certificate (self-signed test targets).
    pub insecure: bool,
    /// Trust these CA certificates (PEM) instead of the system's.
    pub cacert: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Server name to send and verify (default: the URL's host).
    pub sni: Option<String>,
    pub min: Option<TlsVersion>,
    pub max: Option<TlsVersion>,
    /// Offer session resumption on new connections.
    pub resumption: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            insecure: false,
            cacert: None,
            client_cert: None,
            sni: None,
            min: None,
            max: None,
            resumption: true,
        }
    }
}

/// Which HTTP version the engine speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// `http://`: HTTP/1.1. `https://`: whatever ALPN picks, h2 or http/1.1.
    Auto,
    /// HTTP/1.1 only (ALPN offers only http/1.1).
    Http1,
    /// HTTP/2 only: ALPN h2 over TLS (a server that declines it is an error), prior knowledge (h2c)
    /// on `http://`.
    Http2,
}

impl HttpVersion {
    /// ALPN protocols to offer over TLS, most preferred first.
    pub fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
        }
    }
}

/// HTTP settings of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    pub version: HttpVersion,
    /// Concurrent streams per HTTP/2 connection: a scenario's slots (virtual users, or in-flight
    /// requests) share `ceil(slots / streams)` connections. 1 unless HTTP/2 is required.
    pub streams: usize,
    /// A TCP connect (and TLS handshake) not done within this fails as a timeout; `None`: only
    /// the request's own timeout bounds it.
    pub connect_timeout: Option<std::time::Duration>,
    /// Same-origin redirects (301, 302, 303, 307, 308) a step follows, at most; 0: none, a 3xx is
    /// the result.
    pub redirects: u32,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            version: HttpVersion::Auto,
            streams: 1,
            connect_timeout: None,
            redirects: 0,
        }
    }
}

impl HttpOptions {
    /// The version the run speaks on a target, as reports show it.
    pub fn describe(&self, target: &Target) -> String {
        match (self.version, target.tls) {
            (HttpVersion::Http2, false) => format!(
                "HTTP/2 (h2c, prior knowledge), {} stream{} per connection; bytes are DATA payload",
                self.streams,
                if self.streams == 1 { "" } else { "s" }
            ),
            (HttpVersion::Http2, true) => format!(
                "HTTP/2 (ALPN h2 required), {} stream{} per connection; bytes are DATA payload",
                self.streams,
                if self.streams == 1 { "" } else { "s" }
            ),
            (HttpVersion::Auto, true) => {
                "ALPN: h2 or HTTP/1.1, as the server picks (over h2, bytes are DATA payload)".into()
            }
            (HttpVersion::Auto | HttpVersion::Http1, _) => "HTTP/1.1".into(),
        }
    }

    /// HTTP/2 connections for `slots` concurrent requests.
    pub fn h2_connections(&self, slots: u64) -> u64 {
        slots.div_ceil(self.streams.max(1) as u64)
    }
}

/// Where connections for a host and port go instead of where DNS says: `--resolve
/// HOST:PORT:ADDRESS` (curl) pins an address; `--connect-to HOST:PORT:HOST2:PORT2` (oha, curl)
/// sends them to another host and port. Either way the Host header and TLS name stay the URL's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub to: Pin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pin {
    /// This address, at the URL's port; no lookup.
    Addr(std::net::IpAddr),
    /// This host (resolved once, as the target would be) and port.
    Host(String, u16),
}

/// Parses `host:port:addr`; the address may be IPv6, bracketed or not.
pub fn parse_resolve(s: &str) -> Result<Resolve, PlanError> {
    let bad = || PlanError::BadResolve(s.into());
    let mut parts = s.splitn(3, ':');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let addr = parts.next().ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let addr = addr.parse().map_err(|_| bad())?;
    Ok(Resolve {
        host: host.into(),
        port,
        to: Pin::Addr(addr),
    })
}

/// Parses `host:port:host2:port2`; `host2` may be a bracketed IPv6 literal.
pub fn parse_connect_to(s: &str) -> Result<Resolve, PlanError> {
    let bad = || PlanError::BadConnectTo(s.into());
    let mut parts = s.splitn(3, ':');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let (to_host, to_port) = parts
        .next()
        .and_then(|r| r.rsplit_once(':'))
        .ok_or_else(bad)?;
    let to_port = to_port.parse().map_err(|_| bad())?;
    let to_host = to_host.trim_start_matches('[').trim_end_matches(']');
    if to_host.is_empty() {
        return Err(bad());
    }
    Ok(Resolve {
        host: host.into(),
        port,
        to: Pin::Host(to_host.into(), to_port),
    })
}
