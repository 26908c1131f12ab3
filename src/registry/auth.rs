//! Registry authentication without I/O: what a client learns from `WWW-Authenticate` challenges and
//! the tokens it holds. The seed client and the load flows share it and do their own requests.
//!
//! Basic answers with the given credentials. Bearer fetches a token from the challenge's realm for a
//! scope (`repository:NAME:pull`), sending the credentials to the token server if there are any, and
//! caches it per scope until `expires_in` (less a margin, so a token never expires in flight).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use thiserror::Error;

use crate::plan::Target;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the registry wants Basic credentials and none were given (--user and --password-env, or [defaults.registry] user/password)")]
    NoCredentials,
    #[error("token realm '{0}' is not a URL")]
    BadRealm(String),
    #[error("token realm '{0}' is on another origin than the registry; regbench fetches tokens from the registry's own scheme, host and port only")]
    CrossOrigin(String),
    #[error("the token server's answer has no token: {0}")]
    BadToken(String),
    #[error("unsupported challenge '{0}' (expected Basic or Bearer)")]
    Unsupported(String),
}

/// How the registry wants requests authenticated, as learnt from its last challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    /// No challenge seen yet: requests go without credentials.
    None,
    Basic,
    /// Tokens come from `path` (the realm, same origin) for `service`.
    Bearer {
        path: String,
        service: String,
    },
}

#[derive(Clone, Debug)]
pub struct Auth {
    basic: Option<String>,
    scheme: Scheme,
    tokens: HashMap<String, (String, Instant)>,
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

/// The path (and query) of a same-origin URL, or of a path as given.
pub fn same_origin_path(url: &str, target: &Target) -> Result<String, AuthError> {
    if url.starts_with('/') {
        return Ok(url.to_string());
    }
    let t = Target::parse(url).map_err(|_| AuthError::BadRealm(url.into()))?;
    if t.host != target.host || t.port != target.port || t.tls != target.tls {
        return Err(AuthError::CrossOrigin(url.into()));
    }
    Ok(t.path)
}

impl Auth {
    pub fn new(user: Option<&(String, String)>) -> Auth {
        Auth {
            basic: user.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            scheme: Scheme::None,
            tokens: HashMap::new(),
        }
    }

    /// Learns the scheme from a 401's `WWW-Authenticate`.
    pub fn learn(&mut self, challenge: &str, target: &Target) -> Result<(), AuthError> {
        let scheme = challenge.split(' ').next().unwrap_or("");
        if scheme.eq_ignore_ascii_case("basic") {
            if self.basic.is_none() {
                return Err(AuthError::NoCredentials);
            }
            self.scheme = Scheme::Basic;
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Unsupported(challenge.into()));
        }
        let p = challenge_params(challenge);
        let realm = p.get("realm").cloned().unwrap_or_default();
        self.scheme = Scheme::Bearer {
            path: same_origin_path(&realm, target)?,
            service: p.get("service").cloned().unwrap_or_default(),
        };
        Ok(())
    }

    /// The `Authorization` value for a request of `scope`, if one is known and valid at `now`.
    pub fn header(&self, scope: &str, now: Instant) -> Option<&str> {
        match &self.scheme {
            Scheme::None => None,
            Scheme::Basic => self.basic.as_deref(),
            Scheme::Bearer { .. } => match self.tokens.get(scope) {
                Some((t, until)) if now < *until => Some(t),
                _ => None,
            },
        }
    }

    /// Bearer without a valid token for `scope`: the token request's path, and the Basic
    /// credentials to send with it (if any).
    pub fn token_request(&self, scope: &str, now: Instant) -> Option<(String, Option<&str>)> {
        let Scheme::Bearer { path, service } = &self.scheme else {
            return None;
        };
        if self.header(scope, now).is_some() {
            return None;
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        Some((
            format!("{path}{sep}service={service}&scope={scope}"),
            self.basic.as_deref(),
        ))
    }

    /// Takes a token server's 200 body for `scope`.
    pub fn accept_token(
        &mut self,
        scope: &str,
        body: &[u8],
        now: Instant,
    ) -> Result<(), AuthError> {
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| AuthError::BadToken(e.to_string()))?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::BadToken("neither token nor access_token".into()))?;
        // The spec's default lifetime is 60 s.
        let ttl = v["expires_in"].as_u64().unwrap_or(60);
        let until = now + Duration::from_secs(ttl.saturating_sub(5).max(1));
        self.tokens
            .insert(scope.to_string(), (format!("Bearer {token}"), until));
        Ok(())
    }

    /// Drops every token (cold-token mode starts each iteration without one).
    pub fn forget_tokens(&mut self) {
        self.tokens.clear();
    }

    /// Drops the token of `scope` (the registry refused it).
    pub fn forget(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::parse("http://127.0.0.1:5000/").unwrap()
    }

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

    #[test]
    fn bearer_tokens_are_fetched_once_per_scope_until_they_expire() {
        let mut a = Auth::new(None);
        let t0 = Instant::now();
        assert_eq!(a.header("s", t0), None);
        assert_eq!(a.token_request("s", t0), None);
        a.learn(
            r#"Bearer realm="http://127.0.0.1:5000/token",service="reg""#,
            &target(),
        )
        .unwrap();
        let (path, basic) = a.token_request("repository:x:pull", t0).unwrap();
        assert_eq!(path, "/token?service=reg&scope=repository:x:pull");
        assert_eq!(basic, None);
        a.accept_token("repository:x:pull", br#"{"token":"T","expires_in":60}"#, t0)
            .unwrap();
        assert_eq!(a.header("repository:x:pull", t0), Some("Bearer T"));
        assert!(a.token_request("repository:x:pull", t0).is_none());
        // Another scope needs its own token; an expired one is fetched again.
        assert!(a.token_request("repository:y:pull", t0).is_some());
        let later = t0 + Duration::from_secs(56);
        assert!(a.token_request("repository:x:pull", later).is_some());
        a.forget_tokens();
        assert!(a.token_request("repository:x:pull", t0).is_some());
        assert!(a.accept_token("s", b"{}", t0).is_err());
    }

    #[test]
    fn basic_needs_credentials_and_realms_must_be_same_origin() {
        let mut a = Auth::new(None);
        assert_eq!(
            a.learn(r#"Basic realm="r""#, &target()),
            Err(AuthError::NoCredentials)
        );
        let mut a = Auth::new(Some(&("u".into(), "p".into())));
        a.learn(r#"Basic realm="r""#, &target()).unwrap();
        assert_eq!(a.header("any", Instant::now()), Some("Basic dTpw"));
        assert!(matches!(
            a.learn(r#"Bearer realm="http://127.0.0.1:5001/token""#, &target()),
            Err(AuthError::CrossOrigin(_))
        ));
        a.learn(r#"Bearer realm="/token""#, &target()).unwrap();
        // With credentials the token request carries them.
        assert_eq!(
            a.token_request("s", Instant::now()).unwrap().1,
            Some("Basic dTpw")
        );
    }
}
