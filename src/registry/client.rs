//! A registry client on the engine's connection (connect, TLS, HTTP/1.1 exchange): one request at a
//! time, answering auth challenges with [`Auth`] and retrying once.

use std::net::SocketAddr;
use std::time::Instant;

use thiserror::Error;

use super::auth::Auth;
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
    /// The response head as received.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn header(&self, name: &str) -> Option<String> {
        crate::headers::header_value(&self.head, name).map(str::to_string)
    }
}

pub struct Client {
    target: Target,
    addr: SocketAddr,
    tls: Option<TlsClient>,
    conn: Option<Conn>,
    capture: Capture,
    auth: Auth,
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
            auth: Auth::new(user.as_ref()),
            keepalive: true,
            n_token_fetches: 0,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
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
        let n_given = hs.len();
        for attempt in 0..2 {
            hs.truncate(n_given);
            self.fetch_token(scope).await?;
            if let Some(auth) = self.auth.header(scope, Instant::now()) {
                hs.push(("Authorization".into(), auth.to_string()));
            }
            let reply = self.exchange(method, path, &hs, body).await?;
            if reply.status != 401 || attempt == 1 {
                return Ok(reply);
            }
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            self.auth.forget(scope);
            self.auth
                .learn(&challenge, &self.target)
                .map_err(|e| ClientError::Auth(format!("{path}: {e}")))?;
        }
        Err(ClientError::Auth(format!(
            "{path}: still 401 after authenticating"
        )))
    }

    /// Fetches a Bearer token for `scope` if the registry wants one and none is cached.
    async fn fetch_token(&mut self, scope: &str) -> Result<(), ClientError> {
        let Some((url, basic)) = self.auth.token_request(scope, Instant::now()) else {
            return Ok(());
        };
        let hs: Vec<(String, String)> = basic
            .map(|b| ("Authorization".to_string(), b.to_string()))
            .into_iter()
            .collect();
        self.n_token_fetches += 1;
        let reply = self.exchange("GET", &url, &hs, b"").await?;
        if reply.status == 401 {
            return Err(ClientError::Auth(format!(
                "the token server {url} refused the credentials (give --user and --password-env)"
            )));
        }
        if reply.status != 200 {
            return Err(ClientError::Auth(format!(
                "token server {url} answered {}",
                reply.status
            )));
        }
        self.auth
            .accept_token(scope, &reply.body, Instant::now())
            .map_err(|e| ClientError::Auth(format!("token server {url}: {e}")))
    }
}
