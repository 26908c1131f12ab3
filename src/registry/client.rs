//! A registry client on the engine's connection (connect, TLS, HTTP/1.1 exchange): one request at a
//! time, answering auth challenges — Basic with the given credentials, Bearer by fetching a token
//! from the challenge's realm (same origin) for its scope, cached per scope until it expires, and
//! retrying once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use thiserror::Error;

use crate::engine::http1::{self, Capture, Conn, Stream};
use crate::engine::{connect, tls::TlsClient};
use crate::plan::Target;
use crate::sample::ErrorKind;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{method} {path}: {kind:?} (no response)")]
    Transport {
        method: String,
        path: String,
        kind: ErrorKind,
    },
    #[error("{0}")]
    Auth(String),
}

/// A response, head and body kept.
pub struct Reply {
    pub status: u16,
    head: Vec<u8>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.head, name)
    }
}

fn header(head: &[u8], name: &str) -> Option<String> {
    http1::header_values(head, name)
        .first()
        .map(|v| v.to_string())
}

/// `key="value"` parameters of a `WWW-Authenticate` challenge.
pub fn challenge_params(c: &str) -> HashMap<String, String> {
    let rest = c.split_once(' ').map_or("", |(_, r)| r);
    let mut out = HashMap::new();
    let mut s = rest;
    while let Some((k, after)) = s.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, tail) = match after.strip_prefix('"') {
            Some(q) => match q.split_once('"') {
                Some((v, t)) => (v, t),
                None => (q, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.insert(k, v.to_string());
        s = tail.trim_start_matches(',');
    }
    out
}

pub struct Client {
    target: Target,
    addr: SocketAddr,
    tls: Option<TlsClient>,
    conn: Option<Conn>,
    capture: Capture,
    basic: Option<String>,
    tokens: HashMap<String, (String, Instant)>,
    keepalive: bool,
    /// Token fetches made (cold-token cost shows here).
    pub n_token_fetches: u64,
}

impl Client {
    pub fn new(
        target: Target,
        addr: SocketAddr,
        tls: Option<TlsClient>,
        user: Option<(String, String)>,
    ) -> Client {
        Client {
            target,
            addr,
            tls,
            conn: None,
            capture: Capture {
                want_head: true,
                want_body: true,
                max_body: 64 << 20,
                ..Capture::default()
            },
            basic: user.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            tokens: HashMap::new(),
            keepalive: true,
            n_token_fetches: 0,
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, ClientError> {
        let mut request = Vec::with_capacity(256 + body.len());
        http1::encode_into(
            &mut request,
            method,
            path.as_bytes(),
            &self.target,
            headers,
            |v: &String, out| out.extend_from_slice(v.as_bytes()),
            body,
            self.keepalive,
        );
        let fail = |kind| ClientError::Transport {
            method: method.into(),
            path: path.into(),
            kind,
        };
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            if self.conn.is_none() {
                let tcp = connect::connect(self.addr)
                    .await
                    .map_err(|e| fail(ErrorKind::from_io(&e)))?;
                let stream = match &self.tls {
                    Some(t) => Stream::Tls(Box::new(
                        t.handshake(tcp).await.map_err(|_| fail(ErrorKind::Tls))?.0,
                    )),
                    None => Stream::Plain(tcp),
                };
                self.conn = Some(Conn::new(stream));
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match conn
                .exchange(&request, method == "HEAD", Some(&mut self.capture))
                .await
            {
                Ok(r) => {
                    if !r.reusable {
                        self.conn = None;
                    }
                    return Ok(Reply {
                        status: r.status,
                        head: std::mem::take(&mut self.capture.head),
                        body: std::mem::take(&mut self.capture.body),
                    });
                }
                Err(f) => {
                    self.conn = None;
                    // A kept-alive connection the server closed while idle: retry once.
                    if reused && attempt == 0 && f.first_byte.is_none() {
                        continue;
                    }
                    return Err(fail(f.kind));
                }
            }
        }
        Err(fail(ErrorKind::Closed))
    }

    /// Sends a request for `scope` (`repository:NAME:pull,push`), answering one auth challenge.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        scope: &str,
    ) -> Result<Reply, ClientError> {
        let mut hs: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        if let Some(auth) = self.authorization(scope) {
            hs.push(("Authorization".into(), auth));
        }
        let reply = self.exchange(method, path, &hs, body).await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        let auth = if challenge.starts_with("Basic") {
            self.basic.clone().ok_or_else(|| {
                ClientError::Auth(format!(
                    "{path}: the registry wants Basic credentials (--user, --password-env)"
                ))
            })?
        } else if challenge.starts_with("Bearer") {
            self.fetch_token(&challenge, scope).await?
        } else {
            return Ok(reply);
        };
        hs.retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        hs.push(("Authorization".into(), auth));
        self.exchange(method, path, &hs, body).await
    }

    fn authorization(&self, scope: &str) -> Option<String> {
        match self.tokens.get(scope) {
            Some((t, until)) if Instant::now() < *until => Some(format!("Bearer {t}")),
            _ => None,
        }
        .or_else(|| self.basic.clone().filter(|_| self.tokens.is_empty()))
    }

    async fn fetch_token(&mut self, challenge: &str, scope: &str) -> Result<String, ClientError> {
        let p = challenge_params(challenge);
        let realm = p.get("realm").cloned().unwrap_or_default();
        let path = match realm
            .find("://")
            .and_then(|i| realm[i + 3..].find('/').map(|j| i + 3 + j))
        {
            Some(i) => realm[i..].to_string(),
            None if realm.starts_with('/') => realm.clone(),
            None => {
                return Err(ClientError::Auth(format!(
                    "token realm '{realm}' is not a URL"
                )))
            }
        };
        let service = p.get("service").cloned().unwrap_or_default();
        let url = format!("{path}?service={service}&scope={scope}");
        let mut hs = Vec::new();
        if let Some(b) = &self.basic {
            hs.push(("Authorization".to_string(), b.clone()));
        }
        self.n_token_fetches += 1;
        let reply = self.exchange("GET", &url, &hs, b"").await?;
        if reply.status == 401 {
            return Err(ClientError::Auth(format!(
                "the token server {path} refused the credentials (give --user and --password-env)"
            )));
        }
        if reply.status != 200 {
            return Err(ClientError::Auth(format!(
                "token server {path} answered {}",
                reply.status
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| ClientError::Auth(format!("token server {path}: {e}")))?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .unwrap_or_default()
            .to_string();
        let ttl = v["expires_in"].as_u64().unwrap_or(60);
        // Refresh a little early so a token never expires in flight.
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(5).max(1));
        self.tokens
            .insert(scope.to_string(), (token.clone(), until));
        Ok(format!("Bearer {token}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let p = challenge_params(
            r#"Bearer realm="http://127.0.0.1:5000/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "http://127.0.0.1:5000/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(
            challenge_params(r#"Basic realm="regbench""#)["realm"],
            "regbench"
        );
    }
}
