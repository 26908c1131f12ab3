//! The OCI distribution read API the target serves: token server, catalog and tags (paginated),
//! manifests and blobs (with ranges).

use super::*;

/// The token server (`--auth bearer`).
pub(super) fn token(state: &State, req: &Request<()>) -> Resp {
    let query = req.uri().query().unwrap_or("");
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .map(|(_, v)| {
            v.replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2F", "/")
                .replace("%2f", "/")
                .replace("%2C", ",")
                .replace("%2c", ",")
        })
        .collect();
    let scopes: Vec<&str> = scopes.iter().flat_map(|s| s.split(' ')).collect();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth::issue(&state.config.auth, authorization, &scopes) {
        Ok(body) => json_resp(StatusCode::OK, Bytes::from(body)),
        Err(Some(challenge)) => {
            let mut r = plain_error(
                StatusCode::UNAUTHORIZED,
                "token server: credentials required",
            );
            set(&mut r, header::WWW_AUTHENTICATE, &challenge);
            r
        }
        Err(None) => plain_error(
            StatusCode::NOT_FOUND,
            "no token server (start with --auth bearer)",
        ),
    }
}

/// `n`/`last` pagination over a sorted list, with the `Link` header of the next page.
pub(super) fn paginate<'a>(
    items: &'a [String],
    query: &str,
    base: &str,
) -> (&'a [String], Option<String>) {
    let from = match query_param(query, "last") {
        Some(last) => items.partition_point(|x| x.as_str() <= last),
        None => 0,
    };
    let n = query_param(query, "n").and_then(|n| n.parse::<usize>().ok());
    let to = match n {
        Some(n) => (from + n).min(items.len()),
        None => items.len(),
    };
    let page = &items[from..to];
    let link = match (n, page.last()) {
        (Some(n), Some(last)) if to < items.len() => {
            Some(format!("<{base}?last={last}&n={n}>; rel=\"next\""))
        }
        _ => None,
    };
    (page, link)
}

pub(super) fn catalog(state: &State, query: &str) -> Resp {
    let mut names: BTreeSet<String> = state.content.repos.iter().map(|r| r.name.clone()).collect();
    names.extend(state.store.repos());
    let names: Vec<String> = names.into_iter().collect();
    let (page, link) = paginate(&names, query, "/v2/_catalog");
    let body = json!({ "repositories": page }).to_string();
    with_link(
        with_api_version(json_resp(StatusCode::OK, Bytes::from(body))),
        link,
    )
}

pub(super) fn tags(state: &State, name: &str, query: &str) -> Resp {
    let mut tags: BTreeSet<String> = state.store.tags(name).into_iter().collect();
    match state.content.repo(name) {
        Some(repo) => tags.extend(repo.tags.iter().cloned()),
        None if tags.is_empty() => return name_unknown(name),
        None => {}
    }
    let tags: Vec<String> = tags.into_iter().collect();
    let (page, link) = paginate(&tags, query, &format!("/v2/{name}/tags/list"));
    let body = json!({ "name": name, "tags": page }).to_string();
    with_link(
        with_api_version(json_resp(StatusCode::OK, Bytes::from(body))),
        link,
    )
}

pub(super) fn manifest(
    state: &State,
    req: &Request<()>,
    name: &str,
    reference: &str,
    head: bool,
) -> Resp {
    let generated = state.content.repo(name);
    let pushed = state.store.manifest(name, reference);
    if generated.is_none() && pushed.is_none() && !state.store.repos().contains(name) {
        return name_unknown(name);
    }
    let m = match (
        generated.and_then(|r| state.content.manifest(r, reference)),
        pushed,
    ) {
        (Some(m), _) => Some(push::Pushed {
            media_type: m.media_type.to_string(),
            digest: m.digest.clone(),
            body: m.body.clone(),
        }),
        (None, p) => p,
    };
    let Some(m) = m else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
            json!({ "tag": reference }),
        );
    };
    // As real registries do, a tag is only served in a media type the client says it accepts.
    let by_digest = reference.starts_with("sha256:");
    let accepted = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().split(';').next() == Some(m.media_type.as_str()))
        });
    if !by_digest && !accepted {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            &format!(
                "manifest is stored as {}, which the Accept header does not list",
                m.media_type
            ),
            json!({ "tag": reference }),
        );
    }
    let mut resp = if head {
        let mut r = Response::new(Full::new(Bytes::new()));
        set(&mut r, header::CONTENT_LENGTH, &m.body.len().to_string());
        r
    } else {
        Response::new(Full::new(m.body.clone()))
    };
    set(&mut resp, header::CONTENT_TYPE, &m.media_type);
    set_named(&mut resp, "docker-content-digest", &m.digest);
    set(&mut resp, header::ETAG, &format!("\"{}\"", m.digest));
    with_api_version(resp)
}

pub(super) fn blob(state: &State, req: &Request<()>, name: &str, digest: &str, head: bool) -> Resp {
    let data = state
        .content
        .blob(digest)
        .cloned()
        .or_else(|| state.store.blob(digest));
    if data.is_none() && state.content.repo(name).is_none() && !state.store.repos().contains(name) {
        return name_unknown(name);
    }
    let Some(data) = data else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
            json!({ "digest": digest }),
        );
    };
    let total = data.len() as u64;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, total));
    let (status, slice) = match range {
        None => (StatusCode::OK, data.clone()),
        Some(Some((a, b))) => (
            StatusCode::PARTIAL_CONTENT,
            data.slice(a as usize..=b as usize),
        ),
        Some(None) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(&mut r, header::CONTENT_RANGE, &format!("bytes */{total}"));
            return r;
        }
    };
    let len = slice.len();
    let mut resp = Response::new(Full::new(if head { Bytes::new() } else { slice }));
    *resp.status_mut() = status;
    if head {
        set(&mut resp, header::CONTENT_LENGTH, &len.to_string());
    }
    if let Some(Some((a, b))) = range {
        set(
            &mut resp,
            header::CONTENT_RANGE,
            &format!("bytes {a}-{b}/{total}"),
        );
    }
    set(&mut resp, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    set_named(&mut resp, "docker-content-digest", digest);
    with_api_version(resp)
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range → inclusive bounds; `None` if unsatisfiable.
pub(super) fn parse_range(h: &str, total: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.checked_sub(n.min(total))?, total - 1)
        }
        (a, "") => (a.parse().ok()?, total - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(total - 1)),
    };
    (a <= b && a < total).then_some((a, b))
}

pub(super) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}
