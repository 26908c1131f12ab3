//! `[[event]]` and its `[[event.window]]`s → the plan's events.

use super::*;
use crate::plan::event::{Action, Event, Window, MAX_WINDOWS};
use crate::scenario::file::{EventRequestSpec, EventSpec, UntilSpec, WindowSpec};

/// Compiles every event; window names are unique across the file.
pub(super) fn compile_events(
    cx: &Ctx,
    specs: &[Spanned<EventSpec>],
    scope: &Scope,
    base: Option<&Target>,
    dir: &Path,
) -> Result<Vec<Event>, ScenarioError> {
    let mut events = Vec::new();
    let mut window_names: Vec<String> = Vec::new();
    for spec in specs {
        let e = event(cx, spec, scope, base, dir)?;
        if events.iter().any(|o: &Event| o.name == e.name) {
            return Err(cx.at(
                spec.get_ref().name.span(),
                format!("two events are named '{}'", e.name),
            ));
        }
        for (w, ws) in e.windows.iter().zip(&spec.get_ref().windows) {
            if window_names.contains(&w.name) {
                return Err(cx.at(
                    ws.span(),
                    format!(
                        "two windows are named '{}': name one with name = \"…\"",
                        w.name
                    ),
                ));
            }
            window_names.push(w.name.clone());
        }
        if window_names.len() > MAX_WINDOWS {
            return Err(cx.at(
                spec.span(),
                format!("at most {MAX_WINDOWS} windows in a plan"),
            ));
        }
        events.push(e);
    }
    Ok(events)
}

fn event(
    cx: &Ctx,
    spec: &Spanned<EventSpec>,
    scope: &Scope,
    base: Option<&Target>,
    dir: &Path,
) -> Result<Event, ScenarioError> {
    let e = spec.get_ref();
    let name = e.name.get_ref().clone();
    if name.is_empty() || name.contains([',', '{', '}', ':']) {
        return Err(cx.at(
            e.name.span(),
            "an event's name has no commas, colons or braces (thresholds name it)",
        ));
    }
    let at = match &e.at {
        Some(a) => cx.duration(a, "at")?,
        None => Duration::ZERO,
    };
    let every = match &e.every {
        Some(p) => {
            let d = cx.duration(p, "every")?;
            if d < Duration::from_millis(10) {
                return Err(cx.at(p.span(), "every: at least 10ms"));
            }
            Some(d)
        }
        None => None,
    };
    let text = |s: &Spanned<String>, what: &str| cx.constant_text(s, scope, what);
    let given = [e.request.is_some(), e.write.is_some(), e.command.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(cx.at(
            spec.span(),
            format!("event '{name}' needs exactly one of request, write or command"),
        ));
    }
    if e.timeout.is_some() && e.command.is_none() {
        return Err(cx.at(
            spec.span(),
            "timeout bounds a command; a request has [defaults] timeout",
        ));
    }
    let action = if let Some(r) = &e.request {
        let (request, checks) = request(cx, r, &name, scope, base)?;
        Action::Request { request, checks }
    } else if let Some(w) = &e.write {
        let w = w.get_ref();
        Action::Write {
            path: dir.join(text(&w.path, "path")?),
            content: match &w.content {
                Some(c) => text(c, "content")?,
                None => String::new(),
            },
        }
    } else {
        let argv = e
            .command
            .as_ref()
            .map_or(Vec::new(), |c| c.get_ref().clone());
        if argv.is_empty() {
            let at = e.command.as_ref().map_or(spec.span(), |c| c.span());
            return Err(cx.at(
                at,
                "command: a program and its arguments, e.g. [\"sh\", \"-c\", \"…\"]",
            ));
        }
        Action::Command {
            argv,
            timeout: match &e.timeout {
                Some(t) => cx.duration(t, "timeout")?,
                None => Duration::from_secs(60),
            },
        }
    };
    let mut windows = Vec::new();
    for w in &e.windows {
        windows.push(window(cx, w, &name, scope, base)?);
    }
    Ok(Event {
        name,
        at,
        every,
        action,
        windows,
    })
}

/// A request to the target on a relative URL, with constants only.
fn request(
    cx: &Ctx,
    r: &Spanned<EventRequestSpec>,
    name: &str,
    scope: &Scope,
    base: Option<&Target>,
) -> Result<(RequestSpec, Vec<Check>), ScenarioError> {
    let r = r.get_ref();
    let spec = probe_spec(
        cx, &r.method, &r.url, &r.headers, &r.body, name, scope, base,
    )?;
    let checks = match &r.check {
        Some(c) => super::steps::compile_checks(cx, c)?,
        None => Vec::new(),
    };
    Ok((spec, checks))
}

#[allow(clippy::too_many_arguments)]
fn probe_spec(
    cx: &Ctx,
    method: &Option<Spanned<String>>,
    url: &Spanned<String>,
    headers: &BTreeMap<String, Spanned<String>>,
    body: &Option<Spanned<String>>,
    name: &str,
    scope: &Scope,
    base: Option<&Target>,
) -> Result<RequestSpec, ScenarioError> {
    let text = |s: &Spanned<String>, what: &str| cx.constant_text(s, scope, what);
    let path = text(url, "url")?;
    if !path.starts_with('/') {
        return Err(cx.at(
            url.span(),
            "an event's url is a path on the target (joined to [defaults] base_url)",
        ));
    }
    let base = base.ok_or_else(|| cx.at(url.span(), "a relative URL needs [defaults] base_url"))?;
    let method = match method {
        Some(m) => plan::parse_method(m.get_ref()).map_err(|e| cx.at(m.span(), e.to_string()))?,
        None => "GET".to_string(),
    };
    let mut hs = Vec::new();
    for (k, v) in headers {
        plan::parse_header(&format!("{k}: x")).map_err(|e| cx.at(v.span(), e.to_string()))?;
        hs.push((k.clone(), text(v, "a header")?));
    }
    Ok(RequestSpec {
        name: name.to_string(),
        method,
        path: format!("{}{path}", base.path.trim_end_matches('/')),
        headers: hs,
        body: match body {
            Some(b) => Bytes::from(text(b, "body")?),
            None => Bytes::new(),
        },
    })
}

fn window(
    cx: &Ctx,
    w: &Spanned<WindowSpec>,
    event: &str,
    scope: &Scope,
    base: Option<&Target>,
) -> Result<Window, ScenarioError> {
    let spec = w.get_ref();
    let name = match &spec.name {
        Some(n) => n.get_ref().clone(),
        None => event.to_string(),
    };
    if name.is_empty() || name.contains([',', '{', '}', ':']) {
        return Err(cx.at(
            spec.name.as_ref().map_or(w.span(), |n| n.span()),
            "a window's name has no commas, colons or braces (thresholds name it in {during:NAME})",
        ));
    }
    let probe = probe_spec(
        cx,
        &spec.method,
        &spec.url,
        &spec.headers,
        &None,
        &name,
        scope,
        base,
    )?;
    let u: &UntilSpec = spec.until.get_ref();
    let as_check = CheckSpec {
        status: u.status.clone(),
        body_contains: u.body_contains.clone(),
        json: u.json.clone(),
        json_exists: u.json_exists.clone(),
        header: u.header.clone(),
        ..CheckSpec::default()
    };
    let until = super::steps::compile_checks(cx, &Spanned::new(spec.until.span(), as_check))?;
    for ptr in &u.changed {
        if !ptr.is_empty() && !ptr.starts_with('/') {
            return Err(cx.at(
                spec.until.span(),
                format!("changed: '{ptr}' is not a JSON pointer (e.g. /config_version)"),
            ));
        }
    }
    if until.is_empty() && u.changed.is_empty() && !u.body_changed && u.header_changed.is_empty() {
        return Err(cx.at(
            spec.until.span(),
            "until needs a condition: json, status, body_contains, json_exists, header, changed, body_changed or header_changed",
        ));
    }
    let dur = |d: &Option<Spanned<String>>, what: &str, default: Duration| match d {
        Some(s) => cx.duration(s, what),
        None => Ok(default),
    };
    let interval = dur(&spec.interval, "interval", Duration::from_millis(50))?;
    if interval < Duration::from_millis(1) {
        let at = spec.interval.as_ref().map_or(w.span(), |i| i.span());
        return Err(cx.at(at, "interval: at least 1ms"));
    }
    Ok(Window {
        name,
        probe,
        interval,
        timeout: dur(&spec.timeout, "timeout", Duration::from_secs(60))?,
        until,
        changed: u.changed.clone(),
        body_changed: u.body_changed,
        header_changed: u.header_changed.clone(),
    })
}
