//! A scenario's steps → the plan's steps: requests or templates, checks, extractions, pagination,
//! digests, registry flows.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn compile_step(
    cx: &Ctx,
    st: &Spanned<StepSpec>,
    default_name: Option<&str>,
    consts: &HashMap<String, String>,
    vars: &mut HashMap<String, usize>,
    var_names: &mut Vec<String>,
    tables: &HashMap<String, (usize, Vec<String>)>,
    env: &dyn Fn(&str) -> Option<String>,
    default_headers: &[(String, &Spanned<String>)],
    base: Option<&Target>,
    target: &mut Option<Target>,
    registry: &FlowAuth,
) -> Result<Step, ScenarioError> {
    let spec = st.get_ref();
    let name = match (&spec.name, default_name) {
        (Some(n), _) => n.get_ref().clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(cx.at(
                st.span(),
                "a [[scenario.step]] needs a name (its tag in reports)",
            ))
        }
    };
    // Templates see constants and what earlier steps extracted — not this step's own extractions.
    let scope = Scope {
        consts,
        vars,
        tables,
        env,
    };
    let kind = spec.kind.as_ref().map_or("http", |k| k.get_ref().as_str());
    let kind_span = spec.kind.as_ref().map_or(st.span(), |k| k.span());
    let allowed: &[&str] = match kind {
        "http" => &["method", "url", "headers", "body", "extract", "check", "paginate", "verify_digest"],
        "oci-pull" => &["image", "platform", "parallel", "range", "token"],
        "oci-push" => &["image", "layers", "layer_size", "chunk", "mount_from", "token"],
        "oci-catalog" => &["page_size", "max_pages", "token"],
        "oci-tags" => &["repo", "page_size", "max_pages", "token"],
        "service-list" => &["url", "limit", "max_pages", "headers", "extract", "check"],
        "service-get" => &["url", "server", "headers", "extract", "check"],
        "service-status" => &["url", "headers", "extract", "check"],
        "service-sync" => &["url", "headers", "body", "extract", "check"],
        "grpc" => &["call", "proto", "protoset", "message", "deadline", "headers"],
        "ws" => &["url", "headers", "message", "receive", "hold", "timestamp", "check"],
        "sse" => &["url", "headers", "events", "timestamp", "reconnects"],
        other => {
            return Err(cx.at(
                kind_span,
                format!("'{other}' is not a step type (expected http, grpc, ws, sse, oci-pull, oci-push, oci-catalog, oci-tags, service-list, service-get, service-status or service-sync)"),
            ))
        }
    };
    if let Some((key, span)) = spec.keys().into_iter().find(|(k, _)| !allowed.contains(k)) {
        return Err(cx.at(
            span,
            format!(
                "a step of type {kind} does not take '{key}' (it takes {})",
                allowed.join(", ")
            ),
        ));
    }
    let think = match &spec.think {
        Some(t) => cx.duration(t, "think")?,
        None => Duration::ZERO,
    };
    if kind.starts_with("oci-") {
        let base = base.ok_or_else(|| {
            cx.at(
                kind_span.clone(),
                format!("an {kind} step needs [defaults] base_url: the registry's URL"),
            )
        })?;
        if target.is_none() {
            *target = Some(base.clone());
        }
        let flow = compile_flow(cx, spec, kind, kind_span, &scope, registry)?;
        let mut step = Step::new(RequestSpec::get(&name, "/v2/"));
        step.think = think;
        step.flow = Some(Arc::new(flow));
        return Ok(step);
    }
    if kind == "sse" {
        let mut step = compile_sse(cx, st, &name, base, target, default_headers)?;
        step.think = think;
        return Ok(step);
    }
    if kind == "ws" {
        let mut step = compile_ws(cx, st, &name, &scope, base, target, default_headers)?;
        step.think = think;
        return Ok(step);
    }
    if kind == "grpc" {
        let mut step = compile_grpc(cx, st, &name, &scope, base, target, default_headers)?;
        step.think = think;
        return Ok(step);
    }
    let method = match (&spec.method, kind) {
        (Some(m), _) => {
            plan::parse_method(m.get_ref()).map_err(|e| cx.at(m.span(), e.to_string()))?
        }
        (None, "service-sync") => "POST".to_string(),
        (None, _) => "GET".to_string(),
    };
    // Service-registry calls are HTTP steps with the registry's conventions filled in.
    let service_url = |default: &str| {
        spec.url
            .clone()
            .unwrap_or_else(|| Spanned::new(kind_span.clone(), default.to_string()))
    };
    let url_spec: Spanned<String> = match kind {
        "service-list" => {
            let u = service_url("/v1/registry");
            let limit = positive(cx, spec.limit.as_ref(), 50, "limit")?;
            let sep = if u.get_ref().contains('?') { '&' } else { '?' };
            Spanned::new(u.span(), format!("{}{sep}limit={limit}", u.get_ref()))
        }
        "service-get" => {
            let u = service_url("/v1/registry");
            let server = spec.server.as_ref().ok_or_else(|| {
                cx.at(
                    kind_span.clone(),
                    "a service-get step needs server = \"ID or NAME\"",
                )
            })?;
            // Checked on its own so an error points inside `server`.
            cx.template(server, &scope)?;
            Spanned::new(
                u.span(),
                format!("{}/{}", u.get_ref().trim_end_matches('/'), server.get_ref()),
            )
        }
        "service-status" => service_url("/registry/status"),
        "service-sync" => service_url("/registry/sync"),
        _ => spec
            .url
            .clone()
            .ok_or_else(|| cx.at(st.span(), "an http step needs url"))?,
    };

    // The URL: a path joined to base_url, or an absolute URL on the same origin.
    let url = url_spec.get_ref();
    let path_src: Spanned<String>;
    let path_spanned = if url.starts_with("{{") {
        // A URL that is a placeholder (a Location an earlier step extracted): used as rendered; it
        // must render to a path on the same origin.
        &url_spec
    } else if url.starts_with('/') {
        let base =
            base.ok_or_else(|| cx.at(url_spec.span(), "a relative URL needs [defaults] base_url"))?;
        let prefix = base.path.trim_end_matches('/');
        path_src = Spanned::new(url_spec.span(), format!("{prefix}{url}"));
        // Errors inside the prefix cannot happen (base_url is static); keep offsets of the step's URL.
        if prefix.is_empty() {
            &url_spec
        } else {
            &path_src
        }
    } else {
        let origin_end = url
            .find("://")
            .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(url.len());
        let origin =
            Target::parse(&url[..origin_end]).map_err(|e| cx.at(url_spec.span(), e.to_string()))?;
        match target {
            Some(t) if (t.host.as_str(), t.port) != (origin.host.as_str(), origin.port) => {
                return Err(cx.at(
                    url_spec.span(),
                    format!(
                        "every step targets one origin ({}:{}); this URL goes to {}:{}",
                        t.host, t.port, origin.host, origin.port
                    ),
                ))
            }
            Some(_) => {}
            None => *target = Some(origin),
        }
        let rest = &url[origin_end..];
        path_src = Spanned::new(
            url_spec.span(),
            if rest.is_empty() {
                "/".into()
            } else {
                rest.to_string()
            },
        );
        &path_src
    };
    let path = cx.template(path_spanned, &scope)?;

    let mut headers: Vec<(String, Template)> = Vec::new();
    for (hname, value) in default_headers
        .iter()
        .map(|(n, v)| (n, *v))
        .chain(spec.headers.iter())
    {
        plan::parse_header(&format!("{hname}: x"))
            .map_err(|e| cx.at(value.span(), e.to_string()))?;
        let t = cx.template(value, &scope)?;
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(hname));
        headers.push((hname.clone(), t));
    }
    let body = match &spec.body {
        Some(b) => cx.template(b, &scope)?,
        None => Template::default(),
    };
    let verify_digest = match &spec.verify_digest {
        Some(d) => Some(cx.template(d, &scope)?),
        None => None,
    };
    let mut checks = Vec::new();
    if let Some(c) = &spec.check {
        checks = compile_checks(cx, c)?;
    } else if kind.starts_with("service-") {
        let ok: Vec<u16> = if kind == "service-sync" {
            vec![200, 202]
        } else {
            vec![200]
        };
        checks.push(Check {
            name: format!("status in {ok:?}"),
            kind: CheckKind::Status(ok),
        });
    }
    // Extractions become variables for the following steps.
    let mut extracts = Vec::new();
    for (var, ex) in &spec.extract {
        if consts.contains_key(var) {
            return Err(cx.at(ex.span(), format!("'{var}' is already a constant ([defaults.vars] or -e); extract into another name")));
        }
        let e = ex.get_ref();
        let from = match (&e.json, &e.header, &e.regex) {
            (Some(p), None, None) => {
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(cx.at(
                        ex.span(),
                        format!("'{p}' is not a JSON pointer (they start with '/', e.g. /token)"),
                    ));
                }
                Source::Json(p.clone())
            }
            (None, Some(h), None) => Source::Header(h.clone()),
            (None, None, Some(r)) => Source::Regex(
                Regex::new(r).map_err(|err| cx.at(ex.span(), format!("bad regex: {err}")))?,
            ),
            _ => {
                return Err(cx.at(
                    ex.span(),
                    "an extraction takes exactly one of json, header or regex",
                ))
            }
        };
        let index = *vars.entry(var.clone()).or_insert_with(|| {
            var_names.push(var.clone());
            var_names.len() - 1
        });
        extracts.push(Extract {
            name: var.clone(),
            var: index,
            from,
        });
    }

    let paginate = match &spec.paginate {
        None if kind == "service-list" => Some(plan::Paginate {
            next: plan::NextPage::Cursor {
                pointers: plan::AUTO_CURSOR.iter().map(|s| s.to_string()).collect(),
                param: "cursor".into(),
            },
            max_pages: positive(cx, spec.max_pages.as_ref(), 1000, "max_pages")? as u32,
        }),
        None => None,
        Some(p) => {
            let ps = p.get_ref();
            let next =
                match (ps.link, &ps.cursor) {
                    (true, None) => plan::NextPage::Link,
                    (false, Some(c)) => plan::NextPage::Cursor {
                        pointers: if c == "auto" {
                            plan::AUTO_CURSOR.iter().map(|s| s.to_string()).collect()
                        } else if c.starts_with('/') {
                            vec![c.clone()]
                        } else {
                            return Err(cx.at(
                                p.span(),
                                format!("cursor '{c}' is not a JSON pointer or \"auto\""),
                            ));
                        },
                        param: ps.param.clone().unwrap_or_else(|| "cursor".into()),
                    },
                    _ => return Err(cx.at(
                        p.span(),
                        "paginate takes either link = true or cursor = \"POINTER\" (or \"auto\")",
                    )),
                };
            let max_pages = ps.max_pages.unwrap_or(1000);
            if max_pages == 0 {
                return Err(cx.at(p.span(), "max_pages must be at least 1"));
            }
            Some(plan::Paginate { next, max_pages })
        }
    };
    let all_static =
        path.is_static() && body.is_static() && headers.iter().all(|(_, t)| t.is_static());
    let request = RequestSpec {
        name: name.clone(),
        method,
        path: path.static_text().unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(n, t)| (n.clone(), t.static_text().unwrap_or_default()))
            .collect(),
        body: Bytes::from(body.static_text().unwrap_or_default()),
    };
    // A paginated step renders every page through its template (later pages change the path), so
    // it keeps one even when every part is literal.
    let template = (!all_static || paginate.is_some()).then(|| {
        Arc::new(RequestTemplate {
            path,
            headers,
            body,
        })
    });
    Ok(Step {
        name,
        request,
        template,
        think,
        checks,
        extracts,
        paginate,
        verify_digest,
        flow: None,
        grpc: None,
        ws: None,
        sse: None,
    })
}

/// An optional positive integer key, or its default.
pub(super) fn positive(
    cx: &Ctx,
    v: Option<&Spanned<i64>>,
    default: u64,
    what: &str,
) -> Result<u64, ScenarioError> {
    match v {
        None => Ok(default),
        Some(n) if *n.get_ref() >= 1 && *n.get_ref() <= u32::MAX as i64 => Ok(*n.get_ref() as u64),
        Some(n) => Err(cx.at(n.span(), format!("{what} must be a whole number ≥ 1"))),
    }
}

/// An optional size key (`4MiB`), or its default.
pub(super) fn size(
    cx: &Ctx,
    v: Option<&Spanned<String>>,
    what: &str,
) -> Result<Option<u64>, ScenarioError> {
    v.map(|s| match crate::util::parse_size(s.get_ref()) {
        Ok(0) => Err(cx.at(s.span(), format!("{what} must be at least 1 byte"))),
        Ok(n) => Ok(n),
        Err(e) => Err(cx.at(s.span(), format!("{what}: {e}"))),
    })
    .transpose()
}

/// `[defaults.registry]`: credentials (constants and env only) and the token mode.
pub(super) fn registry_auth(
    cx: &Ctx,
    spec: Option<&RegistrySpec>,
    scope: &Scope,
) -> Result<FlowAuth, ScenarioError> {
    let Some(spec) = spec else {
        return Ok(FlowAuth::default());
    };
    let text = |v: &Spanned<String>| cx.constant_text(v, scope, "registry credentials");
    let user = match (&spec.user, &spec.password) {
        (Some(u), p) => Some((
            text(u)?,
            p.as_ref().map(text).transpose()?.unwrap_or_default(),
        )),
        (None, Some(p)) => return Err(cx.at(p.span(), "a password needs a user")),
        (None, None) => None,
    };
    let token = match &spec.token {
        Some(t) => TokenMode::parse(t.get_ref()).map_err(|e| cx.at(t.span(), e))?,
        None => TokenMode::Warm,
    };
    Ok(FlowAuth { user, token })
}

/// A registry flow step (`oci-*`): its keys checked and its templates compiled.
pub(super) fn compile_flow(
    cx: &Ctx,
    spec: &StepSpec,
    kind: &str,
    kind_span: Range<usize>,
    scope: &Scope,
    registry: &FlowAuth,
) -> Result<Flow, ScenarioError> {
    let mut auth = registry.clone();
    if let Some(t) = &spec.token {
        auth.token = TokenMode::parse(t.get_ref()).map_err(|e| cx.at(t.span(), e))?;
    }
    let required = |v: &Option<Spanned<String>>, key: &str, example: &str| {
        v.as_ref()
            .ok_or_else(|| {
                cx.at(
                    kind_span.clone(),
                    format!("an {kind} step needs {key} = \"{example}\""),
                )
            })
            .and_then(|v| cx.template(v, scope))
    };
    let walk = |repo: Option<Template>| -> Result<Walk, ScenarioError> {
        Ok(Walk {
            repo,
            page_size: positive(cx, spec.page_size.as_ref(), 100, "page_size")? as u32,
            max_pages: positive(cx, spec.max_pages.as_ref(), 1000, "max_pages")? as u32,
            auth: auth.clone(),
        })
    };
    Ok(match kind {
        "oci-pull" => Flow::Pull(Pull {
            images: vec![required(&spec.image, "image", "REPO:TAG")?],
            platform: match &spec.platform {
                Some(p) => Platform::parse(p.get_ref()).map_err(|e| cx.at(p.span(), e))?,
                None => Platform::default(),
            },
            parallel: positive(cx, spec.parallel.as_ref(), 3, "parallel")?.min(64) as usize,
            range: size(cx, spec.range.as_ref(), "range")?,
            auth,
        }),
        "oci-push" => {
            let layer_size = size(cx, spec.layer_size.as_ref(), "layer_size")?.unwrap_or(1 << 20);
            if layer_size > 1 << 30 {
                if let Some(s) = &spec.layer_size {
                    return Err(cx.at(
                        s.span(),
                        "layer_size is at most 1GiB (each virtual user holds one layer in memory)",
                    ));
                }
            }
            Flow::Push(Push {
                image: required(&spec.image, "image", "REPO:TAG")?,
                layers: positive(cx, spec.layers.as_ref(), 2, "layers")?.min(128) as usize,
                layer_size,
                chunk: size(cx, spec.chunk.as_ref(), "chunk")?,
                mount_from: spec
                    .mount_from
                    .as_ref()
                    .map(|m| cx.template(m, scope))
                    .transpose()?,
                auth,
            })
        }
        "oci-catalog" => Flow::Catalog(walk(None)?),
        _ => Flow::Tags(walk(Some(required(&spec.repo, "repo", "REPO")?))?),
    })
}

pub(super) fn compile_checks(
    cx: &Ctx,
    c: &Spanned<CheckSpec>,
) -> Result<Vec<Check>, ScenarioError> {
    let spec = c.get_ref();
    let mut out = Vec::new();
    let mut add = |name: String, kind| out.push(Check { name, kind });
    if let Some(set) = &spec.status {
        let list: Vec<String> = set.iter().map(u16::to_string).collect();
        add(
            format!("status in [{}]", list.join(", ")),
            CheckKind::Status(set.clone()),
        );
    }
    if let Some(s) = &spec.body_contains {
        add(
            format!("body contains {s:?}"),
            CheckKind::BodyContains(s.clone()),
        );
    }
    if let Some(r) = &spec.body_matches {
        let re =
            Regex::new(r).map_err(|e| cx.at(c.span(), format!("body_matches: bad regex: {e}")))?;
        add(format!("body matches /{r}/"), CheckKind::BodyMatches(re));
    }
    for (ptr, want) in &spec.json {
        let want: serde_json::Value =
            serde_json::to_value(want).map_err(|e| cx.at(c.span(), format!("json {ptr}: {e}")))?;
        add(
            format!("json {ptr} == {want}"),
            CheckKind::JsonEquals(ptr.clone(), want),
        );
    }
    for ptr in &spec.json_exists {
        add(
            format!("json {ptr} exists"),
            CheckKind::JsonExists(ptr.clone()),
        );
    }
    for h in &spec.header {
        add(
            format!("header {h} present"),
            CheckKind::HeaderPresent(h.clone()),
        );
    }
    if let Some(d) = &spec.duration_below {
        let limit =
            parse_duration(d).map_err(|e| cx.at(c.span(), format!("duration_below: {e}")))?;
        add(format!("duration < {d}"), CheckKind::DurationBelow(limit));
    }
    for ch in &out {
        if let CheckKind::JsonEquals(p, _) | CheckKind::JsonExists(p) = &ch.kind {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err(cx.at(
                    c.span(),
                    format!("'{p}' is not a JSON pointer (they start with '/')"),
                ));
            }
        }
    }
    Ok(out)
}

/// A `type = "grpc"` step: `call` on the `grpc://` base URL, its descriptors from `proto` or
/// `protoset` (paths relative to the scenario file), `message` as JSON, `headers` as metadata.
fn compile_grpc(
    cx: &Ctx,
    st: &Spanned<StepSpec>,
    name: &str,
    scope: &Scope,
    base: Option<&Target>,
    target: &mut Option<Target>,
    default_headers: &[(String, &Spanned<String>)],
) -> Result<Step, ScenarioError> {
    let spec = st.get_ref();
    protocol_base(
        cx,
        st,
        base,
        target,
        |b| b.grpc,
        "a grpc step",
        "grpc://HOST:PORT\" (or grpcs://)",
    )?;
    let call = spec.call.as_ref().ok_or_else(|| {
        cx.at(
            st.span(),
            "a grpc step needs call = \"package.Service/Method\"",
        )
    })?;
    let dir = Path::new(&cx.file).parent().unwrap_or(Path::new("."));
    let protos = crate::scenario::grpc::Protos {
        files: spec
            .proto
            .as_ref()
            .map(|p| p.get_ref().items().iter().map(|f| dir.join(f)).collect())
            .unwrap_or_default(),
        includes: spec.import_paths.iter().map(|d| dir.join(d)).collect(),
        protoset: spec.protoset.as_ref().map(|p| dir.join(p.get_ref())),
    };
    if protos.is_empty() {
        return Err(cx.at(
            st.span(),
            "a grpc step needs its method's descriptors: proto = \"api.proto\" (or protoset = \"api.pb\")",
        ));
    }
    let at_descriptors = spec
        .proto
        .as_ref()
        .map(|p| p.span())
        .or_else(|| spec.protoset.as_ref().map(|p| p.span()))
        .unwrap_or(st.span());
    let pool = protos.load().map_err(|e| cx.at(at_descriptors, e))?;
    let deadline = match &spec.deadline {
        Some(d) => Some(cx.duration(d, "deadline")?),
        None => None,
    };
    let metadata = plain_headers(spec, default_headers);
    // A message with placeholders is rendered and encoded per iteration.
    if let Some(m) = spec.message.as_ref() {
        let t = cx.template(m, scope)?;
        if !t.is_static() {
            return crate::scenario::grpc::templated_step(
                &pool,
                name,
                call.get_ref(),
                t,
                &metadata,
                deadline,
            )
            .map_err(|e| cx.at(call.span(), e));
        }
    }
    let message = spec.message.as_ref().map_or("{}", |m| m.get_ref().as_str());
    crate::scenario::grpc::step(
        &pool,
        Some(name),
        call.get_ref(),
        message,
        &metadata,
        deadline,
    )
    .map_err(|e| {
        let at = match e.starts_with("the message") {
            true => spec.message.as_ref().map_or(call.span(), |m| m.span()),
            false => call.span(),
        };
        cx.at(at, e)
    })
}

/// A `type = "ws"` step on a `ws://` base URL: echo `message` (the default), subscribe
/// (`receive = N`, optionally sending `message` first) or hold (`hold = "30s"`); `check` judges an
/// echo's reply.
fn compile_ws(
    cx: &Ctx,
    st: &Spanned<StepSpec>,
    name: &str,
    scope: &Scope,
    base: Option<&Target>,
    target: &mut Option<Target>,
    default_headers: &[(String, &Spanned<String>)],
) -> Result<Step, ScenarioError> {
    use crate::plan::ws::{Mode, Ws};
    let spec = st.get_ref();
    let base = protocol_base(
        cx,
        st,
        base,
        target,
        // Cleartext http:// too, so one file can mix a registry's HTTP API, its event stream and
        // its WebSocket; over https:// the TLS handshake could pick HTTP/2 by ALPN, so wss://.
        |b| b.ws || (!b.tls && !b.grpc),
        "a ws step",
        "ws://HOST:PORT\" (or wss://; or a cleartext http:// one)",
    )?;
    let url = spec
        .url
        .as_ref()
        .ok_or_else(|| cx.at(st.span(), "a ws step needs url = \"/PATH\" (on base_url)"))?;
    if !url.get_ref().starts_with('/') {
        return Err(cx.at(
            url.span(),
            "a ws step's url is a path on base_url (/ws/echo)",
        ));
    }
    let path = format!("{}{}", base.path.trim_end_matches('/'), url.get_ref());
    let message = match &spec.message {
        Some(m) => Some(cx.template(m, scope)?),
        None => None,
    };
    let mode = match (&spec.receive, &spec.hold) {
        (Some(r), None) => Mode::Subscribe {
            send: message,
            receive: u32::try_from(*r.get_ref())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| cx.at(r.span(), "receive is a number of messages, at least 1"))?,
            timestamp: match &spec.timestamp {
                Some(p) if !p.get_ref().starts_with('/') => {
                    return Err(cx.at(p.span(), "timestamp is a JSON pointer (/sent_unix_nanos)"))
                }
                p => p.as_ref().map(|p| p.get_ref().clone()),
            },
        },
        (None, Some(h)) => Mode::Hold {
            hold: cx.duration(h, "hold")?,
        },
        (Some(_), Some(h)) => {
            return Err(cx.at(h.span(), "a ws step either receives messages or holds: not both"))
        }
        (None, None) => Mode::Echo {
            message: message.ok_or_else(|| {
                cx.at(
                    st.span(),
                    "a ws echo step sends a message: add message = \"…\" (or receive = N, or hold = \"30s\")",
                )
            })?,
        },
    };
    if let (Some(t), false) = (&spec.timestamp, matches!(mode, Mode::Subscribe { .. })) {
        return Err(cx.at(
            t.span(),
            "timestamp times received messages: it needs receive = N",
        ));
    }
    if let (Some(c), false) = (&spec.check, matches!(mode, Mode::Echo { .. })) {
        return Err(cx.at(
            c.span(),
            "check judges an echo's reply: a ws step with message and neither receive nor hold",
        ));
    }
    let headers = plain_headers(spec, default_headers);
    let mut step = Step::new(RequestSpec::get(name, &path));
    if let Some(c) = &spec.check {
        step.checks = compile_checks(cx, c)?;
    }
    step.ws = Some(Arc::new(Ws {
        path,
        headers,
        mode,
    }));
    Ok(step)
}

/// A `type = "sse"` step: `url` (a path on base_url) read as an event stream, `events` per
/// iteration.
fn compile_sse(
    cx: &Ctx,
    st: &Spanned<StepSpec>,
    name: &str,
    base: Option<&Target>,
    target: &mut Option<Target>,
    default_headers: &[(String, &Spanned<String>)],
) -> Result<Step, ScenarioError> {
    let spec = st.get_ref();
    let base = protocol_base(
        cx,
        st,
        base,
        target,
        |b| !b.ws && !b.grpc,
        "an sse step",
        "http://HOST:PORT\" (or https://)",
    )?;
    let url = spec
        .url
        .as_ref()
        .ok_or_else(|| cx.at(st.span(), "an sse step needs url = \"/PATH\" (on base_url)"))?;
    if !url.get_ref().starts_with('/') {
        return Err(cx.at(
            url.span(),
            "an sse step's url is a path on base_url (/events)",
        ));
    }
    let count = |v: Option<&Spanned<i64>>, key: &str, default: u32, min: u32| match v {
        None => Ok(default),
        Some(v) => u32::try_from(*v.get_ref())
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| {
                cx.at(
                    v.span(),
                    format!("{key} must be a whole number of at least {min}"),
                )
            }),
    };
    let events = spec
        .events
        .as_ref()
        .ok_or_else(|| cx.at(st.span(), "an sse step reads events = N per iteration"))?;
    let events = count(Some(events), "events", 1, 1)?;
    let max_reconnects = count(spec.reconnects.as_ref(), "reconnects", 10, 0)?;
    let timestamp = match &spec.timestamp {
        Some(p) if !p.get_ref().starts_with('/') => {
            return Err(cx.at(p.span(), "timestamp is a JSON pointer (/sent_unix_nanos)"))
        }
        p => p.as_ref().map(|p| p.get_ref().clone()),
    };
    let headers = plain_headers(spec, default_headers);
    let path = format!("{}{}", base.path.trim_end_matches('/'), url.get_ref());
    let mut step = Step::new(RequestSpec::get(name, &path));
    step.sse = Some(Arc::new(crate::plan::sse::Sse {
        path,
        headers,
        events,
        timestamp,
        max_reconnects,
    }));
    Ok(step)
}

/// The base URL a protocol's step needs (`accepts` it), which becomes the plan's target when none
/// is set yet; otherwise an error saying which URL `what` needs.
fn protocol_base<'b>(
    cx: &Ctx,
    st: &Spanned<StepSpec>,
    base: Option<&'b Target>,
    target: &mut Option<Target>,
    accepts: fn(&Target) -> bool,
    what: &str,
    url: &str,
) -> Result<&'b Target, ScenarioError> {
    let base = base.filter(|b| accepts(b)).ok_or_else(|| {
        cx.at(
            st.span(),
            format!("{what} needs [defaults] base_url = \"{url}"),
        )
    })?;
    if target.is_none() {
        *target = Some(base.clone());
    }
    Ok(base)
}

/// The step's `headers` over `[defaults]`' ones, as sent (a gRPC step's metadata, a WebSocket's or
/// an event stream's request headers: never templates).
fn plain_headers(
    spec: &StepSpec,
    default_headers: &[(String, &Spanned<String>)],
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = default_headers
        .iter()
        .map(|(n, v)| (n.clone(), v.get_ref().clone()))
        .collect();
    for (n, v) in &spec.headers {
        headers.retain(|(m, _)| !m.eq_ignore_ascii_case(n));
        headers.push((n.clone(), v.get_ref().clone()));
    }
    headers
}
