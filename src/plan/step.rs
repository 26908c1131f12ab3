//! What one step of a scenario sends and checks: its request (static, or a template rendered per
//! iteration), think time, checks, extractions, pagination, digest check, or a registry flow.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::check::{Check, Extract};
use super::template::Template;
use super::{flow, PlanError};

/// One request the generator sends, before protocol encoding. Its `name` is its tag in every report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    pub name: String,
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Extra headers in the order given; `Host` is derived from the target.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RequestSpec {
    /// A request with no body and no extra headers.
    pub fn get(name: &str, path: &str) -> RequestSpec {
        RequestSpec {
            name: name.into(),
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// True for methods whose response never has a body.
    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

/// Validates an HTTP method token (RFC 9110 `token`).
pub fn parse_method(m: &str) -> Result<String, PlanError> {
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) {
        // A valid token, but no method: k6's `-m 10` (--max VUs) would otherwise run as method "10".
        return Err(PlanError::NumericMethod(m.into()));
    }
    if !m.is_empty() && m.bytes().all(is_tchar) {
        Ok(m.to_ascii_uppercase())
    } else {
        Err(PlanError::BadMethod(m.into()))
    }
}

/// Parses `Name: value` (curl/hey/oha `-H` syntax).
pub fn parse_header(h: &str) -> Result<(String, String), PlanError> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| PlanError::BadHeader(h.into()))?;
    let name = name.trim();
    let value = value.trim();
    if name.is_empty()
        || !name.bytes().all(is_tchar)
        || value.bytes().any(|b| b == b'\r' || b == b'\n')
    {
        return Err(PlanError::BadHeader(h.into()));
    }
    Ok((name.to_string(), value.to_string()))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One request of a flow. Its name is its tag in every report.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    /// The request; when `template` is set, only its method is used.
    pub request: RequestSpec,
    /// A request with placeholders, rendered per iteration.
    pub template: Option<Arc<RequestTemplate>>,
    /// Pause after this step's response before the flow goes on (or the iteration ends).
    pub think: Duration,
    pub checks: Vec<Check>,
    pub extracts: Vec<Extract>,
    /// Follow the response to further pages, each page a request of this step.
    pub paginate: Option<Paginate>,
    /// The body must hash to this digest (`sha256:…`, a template); otherwise the request is the
    /// `digest-mismatch` error. Hashed while streaming.
    pub verify_digest: Option<Template>,
    /// A registry workflow run instead of `request` (which then only names the step).
    pub flow: Option<Arc<flow::Flow>>,
    /// A gRPC call: `request` is its HTTP/2 POST (framed message, gRPC headers), encoded once.
    pub grpc: Option<super::grpc::Call>,
    /// A WebSocket step, run instead of `request` (which then only names the step).
    pub ws: Option<Arc<super::ws::Ws>>,
    /// A Server-Sent Events step, run instead of `request` (which then only names the step).
    pub sse: Option<Arc<super::sse::Sse>>,
}

/// How a step walks pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paginate {
    pub next: NextPage,
    /// A walk stops after this many pages even if the target offers more.
    pub max_pages: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextPage {
    /// `Link: <URL>; rel="next"` (OCI catalog and tags lists).
    Link,
    /// A cursor in the JSON body, at the first of these pointers that exists, sent back as `param`.
    Cursor {
        pointers: Vec<String>,
        param: String,
    },
}

/// The JSON pointers `cursor = "auto"` tries: both spellings registries use.
pub const AUTO_CURSOR: [&str; 4] = [
    "/metadata/nextCursor",
    "/metadata/next_cursor",
    "/nextCursor",
    "/next_cursor",
];

impl NextPage {
    /// The path of the next page, from a response's head and body; `None` at the last page.
    pub fn next_path(&self, current: &str, head: &[u8], body: &[u8]) -> Option<String> {
        match self {
            NextPage::Link => {
                let links = crate::headers::header_values(head, "link");
                let link = links
                    .iter()
                    .flat_map(|v| v.split(','))
                    .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))?;
                let url = link.split_once('<')?.1.split_once('>')?.0;
                // Absolute links keep only their path.
                Some(
                    match url
                        .find("://")
                        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
                    {
                        Some(i) => url[i..].to_string(),
                        None => url.to_string(),
                    },
                )
            }
            NextPage::Cursor { pointers, param } => {
                let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
                let cursor = pointers
                    .iter()
                    .find_map(|p| doc.pointer(p))
                    .and_then(|v| v.as_str())?;
                if cursor.is_empty() {
                    return None;
                }
                // Replace the parameter if the current path has it, else append it.
                let (base, query) = current.split_once('?').unwrap_or((current, ""));
                let mut parts: Vec<String> = query
                    .split('&')
                    .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(param.as_str()))
                    .map(str::to_string)
                    .collect();
                parts.push(format!("{param}={cursor}"));
                Some(format!("{base}?{}", parts.join("&")))
            }
        }
    }
}

/// The header a step sends unless told not to (`--disable-compression`, `[defaults] compression =
/// false`): gzip only, because its decoded size is in its trailer, so counting it costs nothing.
pub const ACCEPT_ENCODING: (&str, &str) = ("Accept-Encoding", "gzip");

/// A request whose path, header values or body have placeholders.
#[derive(Clone, Debug)]
pub struct RequestTemplate {
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Template,
}

impl Step {
    /// A step sending `request`, named after it.
    pub fn new(request: RequestSpec) -> Step {
        Step {
            name: request.name.clone(),
            request,
            template: None,
            think: Duration::ZERO,
            checks: Vec::new(),
            extracts: Vec::new(),
            paginate: None,
            verify_digest: None,
            flow: None,
            grpc: None,
            ws: None,
            sse: None,
        }
    }

    /// Asks for a gzip-compressed response (`Accept-Encoding: gzip`), as hey, oha and k6 do by
    /// default — unless the step sets its own Accept-Encoding, or verifies a digest (which is over
    /// the body as stored, not as compressed), or is a registry flow (flows verify digests too).
    pub fn ask_compressed(&mut self) {
        let named = |n: &str| n.eq_ignore_ascii_case("accept-encoding");
        let own = self.request.headers.iter().any(|(n, _)| named(n))
            || self
                .template
                .as_ref()
                .is_some_and(|t| t.headers.iter().any(|(n, _)| named(n)));
        let not_http =
            self.flow.is_some() || self.grpc.is_some() || self.ws.is_some() || self.sse.is_some();
        if own || self.verify_digest.is_some() || not_http {
            return;
        }
        self.request
            .headers
            .push((ACCEPT_ENCODING.0.into(), ACCEPT_ENCODING.1.into()));
        if let Some(t) = self.template.as_mut() {
            Arc::make_mut(t).headers.push((
                ACCEPT_ENCODING.0.into(),
                Template::literal(ACCEPT_ENCODING.1),
            ));
        }
    }

    /// Its tags: its own, then one per phase of a flow.
    pub fn n_tags(&self) -> usize {
        1 + self.phases().len()
    }

    /// The tags recorded beside the step's own: a flow's requests by phase, a gRPC server stream's
    /// messages.
    pub fn phases(&self) -> &'static [&'static str] {
        match (&self.flow, &self.grpc, &self.ws) {
            (Some(f), _, _) => f.phases(),
            (None, Some(call), _) if call.server_streaming => &[super::grpc::MESSAGE_PHASE],
            (None, _, Some(_)) => &super::ws::PHASES,
            _ if self.sse.is_some() => &super::sse::PHASES,
            _ => &[],
        }
    }

    /// Whether its checks and extractions need the response (body, head) captured.
    pub fn needs_capture(&self) -> (bool, bool) {
        let pages = self.paginate.as_ref().map(|p| match p.next {
            NextPage::Link => (false, true),
            NextPage::Cursor { .. } => (true, false),
        });
        let needs = self
            .checks
            .iter()
            .map(Check::needs)
            .chain(self.extracts.iter().map(Extract::needs))
            .chain(pages)
            // A server stream's messages are timed as they arrive (handed over with the capture).
            .chain(
                self.grpc
                    .as_ref()
                    .filter(|c| c.server_streaming)
                    .map(|_| (false, true)),
            );
        needs.fold((false, false), |(b, h), (nb, nh)| (b || nb, h || nh))
    }
}
