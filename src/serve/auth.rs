//! Registry authentication for the demo target, as distribution does it: `Basic` credentials, or
//! `Bearer` tokens from a token server (`GET /token?service=…&scope=repository:NAME:pull,push`) with the
//! `WWW-Authenticate` challenge that tells clients where to get one.
//!
//! Tokens are `BASE64(scopes|expiry).MAC`, the MAC a sha256 over a per-process secret: stateless, so
//! validating one costs a hash, not a lock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};

pub const SERVICE: &str = "regbench-demo";

/// How `/v2/` is protected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// HTTP Basic with one user.
    Basic { user: String, password: String },
    /// Bearer tokens from `/token`; if `user` is set, the token server itself wants Basic credentials.
    Bearer {
        user: Option<(String, String)>,
        ttl: Duration,
        secret: [u8; 32],
    },
}

impl Auth {
    /// `basic:USER:PASS`, `bearer` (anonymous tokens) or `bearer:USER:PASS`.
    pub fn parse(s: &str) -> Result<Auth, String> {
        let creds = |rest: &str| -> Result<(String, String), String> {
            rest.split_once(':')
                .filter(|(u, _)| !u.is_empty())
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .ok_or_else(|| format!("'{s}': expected USER:PASSWORD after the scheme"))
        };
        match s.split_once(':') {
            None if s == "bearer" => Ok(Auth::bearer(None)),
            Some(("basic", rest)) => {
                let (user, password) = creds(rest)?;
                Ok(Auth::Basic { user, password })
            }
            Some(("bearer", rest)) => Ok(Auth::bearer(Some(creds(rest)?))),
            _ => Err(format!(
                "'{s}' is not an auth mode (expected basic:USER:PASS, bearer or bearer:USER:PASS)"
            )),
        }
    }

    fn bearer(user: Option<(String, String)>) -> Auth {
        let mut secret = [0u8; 32];
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        crate::util::Rng::new(seed ^ 0x5eed_7043).fill(&mut secret);
        Auth::Bearer {
            user,
            ttl: Duration::from_secs(300),
            secret,
        }
    }
}

/// What a request to `/v2/` needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
        }
    }
}

/// Why a request is refused: the `WWW-Authenticate` value to send with a 401.
pub type Challenge = String;

fn basic_ok(header: Option<&str>, user: &str, password: &str) -> bool {
    let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == format!("{user}:{password}").as_bytes()
}

fn mac(secret: &[u8; 32], payload: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(payload.as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks a `/v2/` request. `repo` is `None` for the base endpoint. `host` names the token realm.
pub fn check(
    auth: &Auth,
    authorization: Option<&str>,
    repo: Option<&str>,
    action: Action,
    host: &str,
) -> Result<(), Challenge> {
    match auth {
        Auth::None => Ok(()),
        Auth::Basic { user, password } => {
            if basic_ok(authorization, user, password) {
                Ok(())
            } else {
                Err(format!("Basic realm=\"{SERVICE}\""))
            }
        }
        Auth::Bearer { secret, .. } => {
            let granted = authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .and_then(|t| verify(secret, t.trim()));
            let needed = repo.map(|r| format!("repository:{r}:{}", action.name()));
            let ok = match (&granted, &needed) {
                (Some(_), None) => true,
                (Some(scopes), Some(need)) => covers(scopes, need),
                (None, _) => false,
            };
            if ok {
                return Ok(());
            }
            let mut c = format!("Bearer realm=\"http://{host}/token\",service=\"{SERVICE}\"");
            if let Some(need) = needed {
                c.push_str(&format!(",scope=\"{need}\""));
            }
            Err(c)
        }
    }
}

/// `repository:NAME:pull,push` granted covers `repository:NAME:pull`.
fn covers(granted: &str, needed: &str) -> bool {
    let Some((nrepo, naction)) = needed.rsplit_once(':') else {
        return false;
    };
    granted.split(' ').any(|g| {
        g.rsplit_once(':').is_some_and(|(repo, actions)| {
            repo == nrepo && actions.split(',').any(|a| a == naction || a == "*")
        })
    })
}

/// The scopes of a valid, unexpired token.
fn verify(secret: &[u8; 32], token: &str) -> Option<String> {
    let (payload_b64, tag) = token.split_once('.')?;
    let payload = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()?,
    )
    .ok()?;
    if mac(secret, &payload) != tag {
        return None;
    }
    let (scopes, expiry) = payload.rsplit_once('|')?;
    (expiry.parse::<u64>().ok()? > now_s()).then(|| scopes.to_string())
}

/// The token server: `GET /token?service=…&scope=…` (scope repeatable). Returns the JSON body, or the
/// Basic challenge if the token server wants credentials and they are wrong.
pub fn issue(
    auth: &Auth,
    authorization: Option<&str>,
    scopes: &[&str],
) -> Result<String, Option<Challenge>> {
    let Auth::Bearer { user, ttl, secret } = auth else {
        return Err(None);
    };
    if let Some((u, p)) = user {
        if !basic_ok(authorization, u, p) {
            return Err(Some(format!("Basic realm=\"{SERVICE} token server\"")));
        }
    }
    let granted: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| s.starts_with("repository:") && s.matches(':').count() >= 2)
        .collect();
    let expiry = now_s() + ttl.as_secs();
    let payload = format!("{}|{expiry}", granted.join(" "));
    let token = format!(
        "{}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&payload),
        mac(secret, &payload)
    );
    Ok(serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl.as_secs(),
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn basic_auth() {
        let a = Auth::parse("basic:alice:s3cret").unwrap();
        assert!(check(&a, Some(&basic("alice", "s3cret")), None, Action::Pull, "h").is_ok());
        let e = check(&a, Some(&basic("alice", "nope")), None, Action::Pull, "h").unwrap_err();
        assert!(e.starts_with("Basic realm="));
        assert!(check(&a, None, Some("x"), Action::Pull, "h").is_err());
    }

    #[test]
    fn bearer_tokens_carry_scopes() {
        let a = Auth::parse("bearer").unwrap();
        let e = check(
            &a,
            None,
            Some("demo/app-000"),
            Action::Pull,
            "127.0.0.1:5000",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Bearer realm=\"http://127.0.0.1:5000/token\",service=\"regbench-demo\",scope=\"repository:demo/app-000:pull\""
        );
        let body: serde_json::Value =
            serde_json::from_str(&issue(&a, None, &["repository:demo/app-000:pull"]).unwrap())
                .unwrap();
        let t = format!("Bearer {}", body["token"].as_str().unwrap());
        assert_eq!(body["expires_in"], 300);
        assert!(check(&a, Some(&t), Some("demo/app-000"), Action::Pull, "h").is_ok());
        assert!(
            check(&a, Some(&t), None, Action::Pull, "h").is_ok(),
            "any token opens /v2/"
        );
        assert!(
            check(&a, Some(&t), Some("demo/app-000"), Action::Push, "h").is_err(),
            "pull only"
        );
        assert!(
            check(&a, Some(&t), Some("demo/app-001"), Action::Pull, "h").is_err(),
            "another repository"
        );
        let forged = t.replace('.', ".0");
        assert!(check(&a, Some(&forged), Some("demo/app-000"), Action::Pull, "h").is_err());
        let a2 = Auth::parse("bearer:ci:pw").unwrap();
        assert!(
            matches!(issue(&a2, None, &[]), Err(Some(_))),
            "the token server wants credentials"
        );
        assert!(issue(&a2, Some(&basic("ci", "pw")), &[]).is_ok());
        assert!(Auth::parse("digest:x").is_err());
    }
}
