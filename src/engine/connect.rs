//! Connection set-up: DNS (once per run) and TCP connect.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::TcpStream;

use crate::plan::{Pin, Resolve, Target};

#[derive(Debug, Error)]
pub enum ResolveError {
    /// One line: the resolver's message repeats itself through its error chain, so only its own
    /// text is kept.
    #[error("could not resolve '{host}': {message} (check the name, or pin it with --resolve HOST:PORT:ADDR)")]
    Lookup { host: String, message: String },
    #[error("'{host}' resolved to no {family}address")]
    NoAddress { host: String, family: &'static str },
}

/// Which address family to connect with (`--ipv4`, `--ipv6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Any => "",
            Family::V4 => "IPv4 ",
            Family::V6 => "IPv6 ",
        }
    }
}

/// Where connections go, and what it cost to find out.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    pub addr: SocketAddr,
    /// Time the DNS lookup took; `None` when the host was an IP literal or pinned with `--resolve`.
    pub dns: Option<Duration>,
    /// `--proxy`: connections go to this HTTP proxy and tunnel to the target with CONNECT.
    pub proxy: Option<SocketAddr>,
}

/// Resolves the target once for the whole run. A `--resolve` or `--connect-to` entry for the same
/// host and port wins.
pub fn resolve(
    target: &Target,
    pins: &[Resolve],
    family: Family,
) -> Result<Resolved, ResolveError> {
    if target.unix_socket.is_some() {
        // Connections go to the socket; the address only stands in for reports.
        return Ok(Resolved {
            addr: SocketAddr::from(([127, 0, 0, 1], target.port)),
            dns: None,
            proxy: None,
        });
    }
    let pin = pins
        .iter()
        .find(|p| p.host.eq_ignore_ascii_case(&target.host) && p.port == target.port);
    let (addr, dns) = match pin.map(|p| &p.to) {
        Some(Pin::Addr(ip)) => (SocketAddr::new(*ip, target.port), None),
        Some(Pin::Host(host, port)) => lookup(host, *port, family)?,
        None => lookup(&target.host, target.port, family)?,
    };
    Ok(Resolved {
        addr,
        dns,
        proxy: None,
    })
}

/// One host and port to an address of `family`: an IP literal as it is, a name through the
/// system resolver (timed).
fn lookup(
    host: &str,
    port: u16,
    family: Family,
) -> Result<(SocketAddr, Option<Duration>), ResolveError> {
    let no_address = || ResolveError::NoAddress {
        host: host.to_string(),
        family: family.name(),
    };
    if let Ok(ip) = host.parse() {
        let addr = SocketAddr::new(ip, port);
        return match family.admits(&addr) {
            true => Ok((addr, None)),
            false => Err(no_address()),
        };
    }
    let t0 = Instant::now();
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| ResolveError::Lookup {
            host: host.to_string(),
            // getaddrinfo's text, without the "failed to lookup address information" wrapper.
            message: e
                .to_string()
                .rsplit(": ")
                .next()
                .unwrap_or("lookup failed")
                .to_string(),
        })?;
    let dns = t0.elapsed();
    let addr = addrs.find(|a| family.admits(a)).ok_or_else(no_address)?;
    Ok((addr, Some(dns)))
}

/// Opens a tunnel to `authority` (`host:port`) through the HTTP proxy at `proxy` (CONNECT, RFC 9110
/// §9.3.6): once per connection, never per request. A proxy that does not answer 2xx fails the
/// connection (`refused` for 403/407, as the proxy refused it; `protocol` for anything else).
pub async fn connect_via(
    proxy: SocketAddr,
    authority: &str,
) -> Result<TcpStream, crate::sample::ErrorKind> {
    use crate::sample::ErrorKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect(proxy).await.map_err(|e| ErrorKind::from_io(&e))?;
    let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| ErrorKind::from_io(&e))?;
    // Read the proxy's answer head byte by byte: nothing of the tunnel may be read past it.
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(ErrorKind::Protocol);
        }
        match s.read(&mut byte).await {
            Ok(0) => return Err(ErrorKind::Closed),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(ErrorKind::from_io(&e)),
        }
    }
    let status = head
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(s),
        Some(403 | 407) => Err(ErrorKind::Refused),
        _ => Err(ErrorKind::Protocol),
    }
}

/// Opens a TCP connection with Nagle off (requests are written whole; waiting would only add latency).
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
