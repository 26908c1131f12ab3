//! Checks (assertions on a response, counted pass/fail per step) and extractions (values a response
//! gives to the virtual user's variables for later steps). Compiled when the file loads; evaluated on
//! the captured head and body of one response.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::time::Duration;

use regex::bytes::Regex;
use serde_json::Value;

/// One assertion. Its `name` identifies it in reports (`status in [200]`, `json /id exists`, …).
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
}

#[derive(Clone, Debug)]
pub enum CheckKind {
    Status(Vec<u16>),
    BodyContains(String),
    BodyMatches(Regex),
    JsonEquals(String, Value),
    JsonExists(String),
    HeaderPresent(String),
    /// Latency (done − intended) below this.
    DurationBelow(Duration),
}

/// Where an extracted value comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A JSON pointer into the body (strings as they are, other values as JSON text).
    Json(String),
    Header(String),
    /// The first capture group (or the whole match) of a regex over the body.
    Regex(Regex),
}

/// Sets variable `var` (index into the scenario's variable table) from a response.
#[derive(Clone, Debug)]
pub struct Extract {
    pub name: String,
    pub var: usize,
    pub from: Source,
}

/// A response as checks and extractions see it.
pub struct Response<'a> {
    /// `None` when the request failed without a response.
    pub status: Option<u16>,
    pub head: &'a [u8],
    pub body: &'a [u8],
    pub latency: Duration,
    json: OnceCell<Option<Value>>,
}

impl<'a> Response<'a> {
    pub fn new(status: Option<u16>, head: &'a [u8], body: &'a [u8], latency: Duration) -> Self {
        Response {
            status,
            head,
            body,
            latency,
            json: OnceCell::new(),
        }
    }

    /// A header's value (first occurrence, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        crate::headers::header_values(self.head, name)
            .first()
            .copied()
    }

    /// The body parsed as JSON, once.
    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }
}

impl Check {
    pub fn passes(&self, r: &Response) -> bool {
        if r.status.is_none() {
            return false;
        }
        match &self.kind {
            CheckKind::Status(set) => r.status.is_some_and(|s| set.contains(&s)),
            CheckKind::BodyContains(needle) => memfind(r.body, needle.as_bytes()),
            CheckKind::BodyMatches(re) => re.is_match(r.body),
            CheckKind::JsonEquals(ptr, want) => r.json().and_then(|v| v.pointer(ptr)) == Some(want),
            CheckKind::JsonExists(ptr) => r.json().and_then(|v| v.pointer(ptr)).is_some(),
            CheckKind::HeaderPresent(name) => r.header(name).is_some(),
            CheckKind::DurationBelow(limit) => r.latency < *limit,
        }
    }

    /// Whether evaluating it needs the response body / head captured.
    pub fn needs(&self) -> (bool, bool) {
        match self.kind {
            CheckKind::Status(_) | CheckKind::DurationBelow(_) => (false, false),
            CheckKind::HeaderPresent(_) => (false, true),
            _ => (true, false),
        }
    }
}

impl Extract {
    pub fn value<'r>(&self, r: &Response<'r>) -> Option<Cow<'r, str>> {
        match &self.from {
            Source::Json(ptr) => {
                // The parsed body lives in the response; copy the value out.
                let v = r.json()?.pointer(ptr)?;
                Some(Cow::Owned(match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }))
            }
            Source::Header(name) => r.header(name).map(Cow::Borrowed),
            Source::Regex(re) => {
                let caps = re.captures(r.body)?;
                let m = caps.get(1).or_else(|| caps.get(0))?;
                Some(String::from_utf8_lossy(m.as_bytes()))
            }
        }
    }

    pub fn needs(&self) -> (bool, bool) {
        match self.from {
            Source::Header(_) => (false, true),
            _ => (true, false),
        }
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Token: abc\r\n\r\n";
    const BODY: &[u8] = br#"{"token":"t-42","servers":[{"id":"s1"}],"n":3}"#;

    fn resp() -> Response<'static> {
        Response::new(Some(200), HEAD, BODY, Duration::from_millis(5))
    }

    fn check(kind: CheckKind) -> bool {
        Check {
            name: String::new(),
            kind,
        }
        .passes(&resp())
    }

    #[test]
    fn checks() {
        assert!(check(CheckKind::Status(vec![200, 201])));
        assert!(!check(CheckKind::Status(vec![404])));
        assert!(check(CheckKind::BodyContains("t-42".into())));
        assert!(!check(CheckKind::BodyContains("nope".into())));
        assert!(check(CheckKind::BodyMatches(
            Regex::new(r#""n":\d"#).unwrap()
        )));
        assert!(check(CheckKind::JsonEquals(
            "/servers/0/id".into(),
            Value::from("s1")
        )));
        assert!(check(CheckKind::JsonEquals("/n".into(), Value::from(3))));
        assert!(!check(CheckKind::JsonEquals("/n".into(), Value::from(4))));
        assert!(check(CheckKind::JsonExists("/servers".into())));
        assert!(!check(CheckKind::JsonExists("/missing".into())));
        assert!(check(CheckKind::HeaderPresent("x-token".into())));
        assert!(check(CheckKind::DurationBelow(Duration::from_millis(10))));
        assert!(!check(CheckKind::DurationBelow(Duration::from_millis(5))));
        let failed = Response::new(None, b"", b"", Duration::ZERO);
        let c = Check {
            name: String::new(),
            kind: CheckKind::DurationBelow(Duration::from_secs(1)),
        };
        assert!(
            !c.passes(&failed),
            "a request without a response fails every check"
        );
    }

    #[test]
    fn extractions() {
        let r = resp();
        let ex = |from| {
            Extract {
                name: String::new(),
                var: 0,
                from,
            }
            .value(&r)
            .map(|c| c.into_owned())
        };
        assert_eq!(ex(Source::Json("/token".into())).as_deref(), Some("t-42"));
        assert_eq!(ex(Source::Json("/n".into())).as_deref(), Some("3"));
        assert_eq!(ex(Source::Json("/nope".into())), None);
        assert_eq!(ex(Source::Header("X-Token".into())).as_deref(), Some("abc"));
        let re = Regex::new(r#""token":"([^"]+)""#).unwrap();
        assert_eq!(ex(Source::Regex(re)).as_deref(), Some("t-42"));
    }
}
