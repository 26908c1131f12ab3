//! A slot's loop: wait for the schedule's next tick, run one iteration of the scenario — each step
//! on a pooled (or new) connection, flow steps through the run's `FlowRunner` — record it, repeat.
//! The closed and open models differ only in their schedule.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http1::{self, Capture};
use super::{step, Io, Worker};
use crate::plan::check::{CheckKind, Response};
use crate::plan::template::Ctx;
use crate::sample::{Coding, ErrorKind, Outcome, Sample};
use crate::schedule::{Slot, Tick};
use crate::util::Rng;

/// Closed model: the first and the longest wait of a virtual user whose requests get no connection.
const MIN_CONNECT_BACKOFF: Duration = Duration::from_millis(1);

const MAX_CONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// Response bodies are kept for checks and extractions up to this size.
const MAX_CAPTURED_BODY: usize = 4 << 20;

/// A virtual user's own state: its variables and reusable buffers. Lives as long as its slot.
struct Vu {
    vars: Vec<String>,
    rng: Rng,
    /// Per data table, the row of the current iteration.
    rows: Vec<usize>,
    request: Vec<u8>,
    path: Vec<u8>,
    body: Vec<u8>,
    /// A templated gRPC message, encoded.
    framed: Vec<u8>,
    capture: Capture,
    /// A gzip body inflated for checks (swapped with the capture's body).
    inflated: Vec<u8>,
    /// Per step, a flow step's state (auth, tokens, buffers), and its templates rendered for the
    /// current iteration.
    flows: Vec<Option<FlowStep>>,
    /// Per step, a WebSocket step's open connection (echo keeps it across iterations).
    sockets: Vec<Option<super::ws::Socket>>,
}

/// A virtual user's flow step: the runner's state for it, and its rendered templates.
type FlowStep = (Box<dyn std::any::Any>, Vec<String>);

/// Whether the body just read hashes to the step's expected digest (rendered for this iteration).
fn digest_matches(
    vu: &mut Vu,
    expected: &crate::plan::template::Template,
    iteration: u64,
    vu_index: u64,
    data: &[Arc<crate::plan::data::DataTable>],
) -> bool {
    let Some(hasher) = vu.capture.hasher.take() else {
        return false;
    };
    let mut ctx = Ctx {
        vars: &vu.vars,
        iteration,
        vu: vu_index,
        data,
        rows: &vu.rows,
        rng: &mut vu.rng,
    };
    vu.body.clear();
    expected.render(&mut ctx, &mut vu.body);
    crate::util::sha256_is(hasher, &vu.body)
}

/// One iteration of a registry flow step: renders its templates, runs it on the slot's connections
/// (every request and the whole operation recorded), and returns the whole operation's sample.
#[allow(clippy::too_many_arguments)]
async fn run_flow(
    worker: &Worker,
    vu: &mut Vu,
    slot: &Slot,
    flow: &crate::plan::flow::Flow,
    step: usize,
    tag: usize,
    iteration: u64,
    intended: Instant,
) -> Sample {
    let plan = &worker.plan;
    let Vu {
        vars,
        rng,
        rows,
        body,
        flows,
        ..
    } = vu;
    // invariant: `flows` has a state for every flow step when the run has a runner (both built
    // from the same steps in run_slot).
    let (Some(Some((state, args))), Some(runner)) = (flows.get_mut(step), &worker.flows) else {
        return Sample::dropped(tag as u16, intended, intended);
    };
    let mut ctx = Ctx {
        vars,
        iteration,
        vu: slot.global,
        data: &plan.data,
        rows,
        rng,
    };
    for (t, arg) in flow.templates().into_iter().zip(args.iter_mut()) {
        body.clear();
        t.render(&mut ctx, body);
        arg.clear();
        arg.push_str(&String::from_utf8_lossy(body));
    }
    let io = Io {
        worker,
        slot: slot.id,
    };
    let it = step::Iteration {
        intended,
        number: iteration,
        vu: slot.global,
        seed: plan.seed,
    };
    runner.run(flow, &io, tag, state.as_mut(), args, it).await
}

/// One slot's loop: wait for the schedule, run one iteration of the scenario's flow — each step on a
/// pooled (or new) connection, recorded under its own tag — and repeat. The closed and open models
/// differ only in their schedule.
pub(super) async fn run_slot(worker: Rc<Worker>, mine: usize, mut slot: Slot) {
    let scenario = &worker.scenarios[mine];
    let plan = &worker.plan;
    let spec = &plan.scenarios[scenario.index];
    let steps = &spec.steps;
    let mut vu = Vu {
        vars: vec![String::new(); spec.vars.len()],
        rng: Rng::new(plan.seed ^ slot.global.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        rows: vec![0; plan.data.len()],
        request: Vec::new(),
        path: Vec::new(),
        body: Vec::new(),
        framed: Vec::new(),
        capture: Capture {
            max_body: MAX_CAPTURED_BODY,
            ..Capture::default()
        },
        inflated: Vec::new(),
        flows: steps
            .iter()
            .map(|st| {
                let flow = st.flow.as_deref()?;
                let runner = worker.flows.as_ref()?;
                Some((
                    runner.state(flow),
                    vec![String::new(); flow.templates().len()],
                ))
            })
            .collect(),
        sockets: steps.iter().map(|_| None).collect(),
    };
    // Only the open model drops late ticks: a closed-model user's next request is intended after its
    // previous one, so it is never late by more than the wake-up, and dropping it would leave that
    // intended time in the past for ever (a livelock).
    let max_lag = plan.max_lag.filter(|_| spec.model.is_open());
    let mut n_dropped_in_a_row = 0u32;
    // Closed model: a user whose requests get no connection waits before its next iteration,
    // doubling up to MAX_CONNECT_BACKOFF, so failing users do not hot-loop and starve working ones.
    let backs_off = !spec.model.is_open();
    let follows = plan.http.redirects > 0;
    let mut backoff = Duration::ZERO;
    while let Some(Tick {
        intended,
        n,
        overdue,
    }) = scenario.schedule.wait_next(&mut slot, &worker.waiter).await
    {
        worker.recorder.borrow_mut().record_tick(scenario.drop_tag);
        if let Some(max) = max_lag {
            let now = Instant::now();
            if now.saturating_duration_since(intended) > max {
                let dropped = Sample::dropped(scenario.drop_tag as u16, intended, now);
                worker.recorder.borrow_mut().record(&dropped);
                // A schedule far behind drops without ever waiting: let the other slots, the
                // ticker and the stop signal run.
                n_dropped_in_a_row += 1;
                if n_dropped_in_a_row.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
                continue;
            }
        }
        n_dropped_in_a_row = 0;
        if overdue {
            worker
                .recorder
                .borrow_mut()
                .record_queued(scenario.drop_tag);
        }
        for (row, table) in vu.rows.iter_mut().zip(&plan.data) {
            *row = table.pick_row(n, slot.global, &mut vu.rng);
        }
        // Each step is intended when the previous one is done plus its think time.
        let started = intended;
        let mut intended = intended;
        let mut totals = Totals::default();
        let mut unconnected = false;
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                worker.waiter.sleep_until(slot.id, intended).await;
            }
            if let Some(flow) = &step.flow {
                let sample = run_flow(
                    &worker,
                    &mut vu,
                    &slot,
                    flow,
                    i,
                    scenario.step_tags[i],
                    n,
                    intended,
                )
                .await;
                totals.add(
                    &sample,
                    matches!(sample.outcome, Outcome::Status(100..=399)),
                );
                intended = sample.done + step.think;
                continue;
            }
            if let Some(sse) = &step.sse {
                let sample = super::sse::run(&worker, sse, scenario.step_tags[i], intended).await;
                unconnected |= sample.got_no_connection();
                totals.add(&sample, !sample.outcome.is_failure());
                intended = sample.done + step.think;
                continue;
            }
            if let Some(ws) = &step.ws {
                let tag = scenario.step_tags[i];
                let Vu {
                    vars,
                    rng,
                    rows,
                    body,
                    capture,
                    sockets,
                    ..
                } = &mut vu;
                body.clear();
                if let Some(t) = ws.template() {
                    let mut ctx = Ctx {
                        vars,
                        iteration: n,
                        vu: slot.global,
                        data: &plan.data,
                        rows,
                        rng,
                    };
                    t.render(&mut ctx, body);
                }
                let sample = super::ws::run(
                    &worker,
                    &mut sockets[i],
                    ws,
                    tag,
                    body,
                    intended,
                    &mut capture.body,
                )
                .await;
                unconnected |= sample.got_no_connection();
                // An echo's checks judge its reply.
                let mut ok = !sample.outcome.is_failure();
                if !step.checks.is_empty() {
                    // A reply came on a connection the server upgraded (101); no reply, no response.
                    let status = (sample.outcome == Outcome::Delivered).then_some(101);
                    let resp = Response::new(status, &[], &vu.capture.body, sample.latency());
                    let mut recorder = worker.recorder.borrow_mut();
                    for (ci, check) in step.checks.iter().enumerate() {
                        let passed = check.passes(&resp);
                        recorder.record_check(tag, ci, passed);
                        ok &= passed;
                    }
                }
                totals.add(&sample, ok);
                intended = sample.done + step.think;
                continue;
            }
            // A paginated step repeats with the next page's path until the target offers none;
            // a redirected one with the redirect's, up to --redirect hops.
            let mut page = 0u32;
            let mut hops = 0u32;
            loop {
                let Vu {
                    vars,
                    rng,
                    rows,
                    request,
                    path,
                    body,
                    framed,
                    capture,
                    ..
                } = &mut vu;
                let mut unencodable = None;
                let bytes: &[u8] = match (&scenario.requests[i], &step.template, page) {
                    (Some(encoded), _, 0) => encoded,
                    (_, Some(t), _) => {
                        let mut ctx = Ctx {
                            vars,
                            iteration: n,
                            vu: slot.global,
                            data: &plan.data,
                            rows,
                            rng,
                        };
                        // Page 0 renders the step's path; later pages keep the one set below.
                        if page == 0 {
                            path.clear();
                            t.path.render(&mut ctx, path);
                        }
                        body.clear();
                        t.body.render(&mut ctx, body);
                        // A templated gRPC message: the rendered JSON, encoded and framed.
                        if let Some(input) = step.grpc.as_ref().and_then(|c| c.input.as_ref()) {
                            if let Err(e) = super::grpc::encode_json(input, body, framed) {
                                unencodable = Some(e);
                            }
                            std::mem::swap(body, framed);
                        }
                        request.clear();
                        http1::encode_into(
                            request,
                            &step.request.method,
                            path,
                            &plan.target,
                            &t.headers,
                            |v, out| v.render(&mut ctx, out),
                            body,
                            plan.keepalive,
                        );
                        request
                    }
                    // A static step sent again to another path: a redirect's target.
                    (Some(_), None, _) => {
                        request.clear();
                        http1::encode_into(
                            request,
                            &step.request.method,
                            path,
                            &plan.target,
                            &step.request.headers,
                            |v: &String, out| out.extend_from_slice(v.as_bytes()),
                            &step.request.body,
                            plan.keepalive,
                        );
                        request
                    }
                    // invariant: a step without an encoded request has a template (see
                    // Worker::new and the scenario loader).
                    (None, None, _) => &[],
                };
                let tag = scenario.step_tags[i];
                // After a step's first failure, its next responses are kept until one fails too:
                // that one is the step's example for the diagnosis.
                let wants_example = worker.examples.wants(tag);
                let (want_body, want_head) = scenario.captures[i];
                capture.want_body = want_body || wants_example;
                capture.want_head = want_head || wants_example || follows;
                let verify = step.verify_digest.is_some();
                capture.hasher = verify.then(<sha2::Sha256 as sha2::Digest>::new);
                let captured = capture.want_body || capture.want_head || verify;
                let capture = captured.then_some(capture);
                let head_only = step.request.is_head();
                let h2 = match page {
                    0 => scenario.h2_requests[i].as_ref(),
                    _ => None,
                };
                let mut sample = match unencodable {
                    // Nothing to send: the failure is the plan's, named in the example.
                    Some(why) => {
                        let now = Instant::now();
                        worker.recorder.borrow_mut().started(now);
                        let mut s = Sample::dropped(tag as u16, intended, now);
                        s.outcome = Outcome::Error(ErrorKind::BadMessage);
                        if !worker.examples.done(tag) {
                            let example = worker.examples.unencodable(tag, &step.request.path, why);
                            worker.recorder.borrow_mut().record_example(tag, example);
                        }
                        s
                    }
                    None => {
                        worker
                            .send(slot.id, tag, bytes, h2, head_only, intended, capture)
                            .await
                    }
                };
                if let (Some(expected), Outcome::Status(200..=299)) =
                    (&step.verify_digest, sample.outcome)
                {
                    if !digest_matches(&mut vu, expected, n, slot.global, &plan.data) {
                        sample.outcome = Outcome::Error(ErrorKind::DigestMismatch);
                    }
                }
                if sample.coding == Coding::Gzip && !vu.capture.body.is_empty() {
                    // Checks, extractions, pages and the failure example read the body as the
                    // server meant it, not as it was compressed.
                    super::coding::gunzip(&vu.capture.body, &mut vu.inflated, MAX_CAPTURED_BODY);
                    std::mem::swap(&mut vu.capture.body, &mut vu.inflated);
                }
                unconnected |= sample.got_no_connection();
                let mut recorder = worker.recorder.borrow_mut();
                recorder.record(&sample);
                if step.grpc.as_ref().is_some_and(|c| c.server_streaming) {
                    record_messages(&mut recorder, tag + 1, &sample, &vu.capture.messages);
                }
                if sample.outcome.is_failure() && !worker.examples.done(tag) {
                    // A failure without a response has nothing more to capture.
                    let complete = captured || matches!(sample.outcome, Outcome::Error(_));
                    match complete {
                        true => {
                            let path = match (&scenario.requests[i], page) {
                                (Some(_), 0) => step.request.path.as_bytes(),
                                _ => vu.path.as_slice(),
                            };
                            let example = worker.examples.example(
                                tag,
                                &step.request.method,
                                path,
                                sample.outcome,
                                &vu.capture,
                            );
                            recorder.record_example(tag, example);
                        }
                        false => worker.examples.want(tag),
                    }
                }
                let status = match sample.outcome {
                    Outcome::Status(code) => Some(code),
                    _ => None,
                };
                // A step succeeds when its status check passes, or, without one, on a 2xx/3xx (or
                // gRPC OK).
                let mut ok = matches!(
                    sample.outcome,
                    Outcome::Status(100..=399) | Outcome::Grpc(0)
                );
                if !step.checks.is_empty() || !step.extracts.is_empty() {
                    let resp =
                        Response::new(status, &vu.capture.head, &vu.capture.body, sample.latency());
                    for (ci, check) in step.checks.iter().enumerate() {
                        let passed = check.passes(&resp);
                        recorder.record_check(tag, ci, passed);
                        if matches!(check.kind, CheckKind::Status(_)) {
                            ok = passed;
                        }
                    }
                    for ex in &step.extracts {
                        let var = &mut vu.vars[ex.var];
                        var.clear();
                        if let Some(v) = ex.value(&resp) {
                            var.push_str(&v);
                        }
                    }
                }
                drop(recorder);
                totals.add(&sample, ok);
                intended = sample.done;
                page += 1;
                let next = match &step.paginate {
                    Some(p) if status == Some(200) && page < p.max_pages => {
                        let current = if page == 1 && scenario.requests[i].is_some() {
                            step.request.path.as_str()
                        } else {
                            std::str::from_utf8(&vu.path).unwrap_or("")
                        };
                        p.next
                            .next_path(current, &vu.capture.head, &vu.capture.body)
                    }
                    _ => None,
                };
                let next = match (next, status) {
                    (None, Some(301 | 302 | 303 | 307 | 308)) if hops < plan.http.redirects => {
                        let to = crate::headers::header_value(&vu.capture.head, "location")
                            .and_then(|l| same_origin_path(l, &plan.target));
                        if to.is_some() {
                            hops += 1;
                            worker.recorder.borrow_mut().record_redirect(tag);
                        }
                        to
                    }
                    (next, _) => next,
                };
                match next {
                    Some(next) => {
                        vu.path.clear();
                        vu.path.extend_from_slice(next.as_bytes());
                    }
                    None => break,
                }
            }
            intended += step.think;
        }
        if let Some(tag) = scenario.iteration_tag {
            let last_done = intended - steps.last().map_or(Duration::ZERO, |s| s.think);
            let whole = totals.iteration(tag, started, last_done);
            worker.recorder.borrow_mut().record_iteration(&whole);
        }
        backoff = match (backs_off, unconnected) {
            (true, true) => (backoff * 2).clamp(MIN_CONNECT_BACKOFF, MAX_CONNECT_BACKOFF),
            _ => Duration::ZERO,
        };
        // The closed model's next iteration is intended when this one ended (its last think
        // included), plus any back-off.
        slot.prev_done = Some(intended + backoff);
    }
    // The schedule is done: echo connections still open are closed as a client should (their
    // ends counted by code).
    for (i, socket) in vu.sockets.iter_mut().enumerate() {
        if let Some(sock) = socket.take() {
            super::ws::close(&worker, scenario.step_tags[i], sock).await;
        }
    }
}

/// What an iteration's steps add up to: their bytes, and its outcome — its first failing step's.
#[derive(Default)]
struct Totals {
    failure: Option<Outcome>,
    bytes_in: u64,
    body_bytes: u64,
    decoded_bytes: u64,
    bytes_out: u64,
}

impl Totals {
    /// Adds a step's sample; `ok` says whether the step succeeded (its checks included).
    fn add(&mut self, s: &Sample, ok: bool) {
        self.bytes_in += s.bytes_in;
        self.body_bytes += s.body_bytes;
        self.decoded_bytes += s.decoded_bytes;
        self.bytes_out += s.bytes_out;
        if !ok {
            self.failure.get_or_insert(s.outcome.as_failure());
        }
    }

    /// The whole iteration's sample under `tag`, from `started` to `done`.
    fn iteration(&self, tag: usize, started: Instant, done: Instant) -> Sample {
        Sample {
            done,
            outcome: self.failure.unwrap_or(Outcome::Status(200)),
            bytes_in: self.bytes_in,
            body_bytes: self.body_bytes,
            decoded_bytes: self.decoded_bytes,
            bytes_out: self.bytes_out,
            ..Sample::new(tag as u16, started)
        }
    }
}

/// A gRPC server stream's messages, each timed from the one before it (the first from the send)
/// under the step's `message` tag: their latency is the gap the client waited for each.
fn record_messages(
    recorder: &mut crate::aggregate::Recorder,
    tag: usize,
    call: &Sample,
    arrivals: &[Instant],
) {
    let mut prev = call.sent;
    for &at in arrivals {
        recorder.record_iteration(&Sample {
            done: at,
            outcome: Outcome::Delivered,
            ..Sample::new(tag as u16, prev)
        });
        prev = at;
    }
}

/// The path of a redirect's `Location` when it stays on the target's origin (a path, or an absolute
/// URL with the target's scheme and authority); `None` for another origin, which is not followed.
fn same_origin_path(location: &str, target: &crate::plan::Target) -> Option<String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location.to_string());
    }
    let scheme = if target.tls { "https://" } else { "http://" };
    let rest = location.strip_prefix(scheme)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let default_port = if target.tls { 443 } else { 80 };
    let same = authority.eq_ignore_ascii_case(&target.authority)
        || authority.eq_ignore_ascii_case(&format!("{}:{}", target.host, target.port))
        || (target.port == default_port && authority.eq_ignore_ascii_case(&target.host));
    same.then(|| path.to_string())
}
