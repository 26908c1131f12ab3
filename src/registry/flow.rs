//! Registry flows on a slot's connections: `oci-pull`, `oci-push`, `oci-catalog`, `oci-tags`.
//!
//! Each request is a sample of its phase (`STEP/ping`, `STEP/token`, `STEP/layer`, …), intended when
//! the request before it in the same lane was done; the whole operation is one more sample under the
//! step's own tag, from the step's intended time to its last response. A flow stops at its first
//! failed request, and the whole operation fails with that request's outcome.

mod push;

use push::*;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::auth::{same_origin_path, Auth, AuthError};
use crate::engine::http1::{self, Capture};
use crate::engine::step::{FlowRunner, Iteration, StepFuture};
use crate::engine::Io;
use crate::plan::flow::{split_image, Flow, Platform, Pull, Push, Walk};
use crate::plan::NextPage;
use crate::sample::{ErrorKind, Outcome, Sample};
use crate::util::{sha256_digest, sha256_is, Rng};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a pull accepts, as docker and containerd send it: images and indexes, OCI and Docker.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Headers a flow request sets itself (Authorization comes on top).
const MAX_HEADERS: usize = 3;

/// Manifests (and token answers) are kept up to this size to be parsed.
const MAX_KEPT: usize = 4 << 20;

// Phase tags, as offsets from the step's own tag, in the order `Flow::phases` lists them.
const PING: usize = 1;
const TOKEN: usize = 2;
const PULL_HEAD: usize = 3;
const PULL_MANIFEST: usize = 4;
const PULL_CONFIG: usize = 5;
const PULL_LAYER: usize = 6;
const PUSH_UPLOAD: usize = 3;
const PUSH_CHUNK: usize = 4;
const PUSH_COMMIT: usize = 5;
const PUSH_MOUNT: usize = 6;
const PUSH_MANIFEST: usize = 7;
const WALK_PAGE: usize = 3;

/// One connection's worth of buffers: a pull runs up to `parallel` lanes at once.
#[derive(Default)]
struct Lane {
    cap: Capture,
    buf: Vec<u8>,
}

/// A virtual user's state for one flow step, kept across its iterations.
pub struct FlowState {
    auth: Auth,
    lanes: Vec<Lane>,
    /// Push: the bytes of the layer being uploaded.
    data: Vec<u8>,
    /// Push with a mount: the base layer is already in the source repository.
    base_pushed: bool,
}

impl FlowState {
    pub fn new(flow: &Flow) -> FlowState {
        let n_lanes = match flow {
            Flow::Pull(p) => p.parallel.max(1),
            _ => 1,
        };
        FlowState {
            auth: Auth::new(flow.auth().user.as_ref()),
            lanes: (0..n_lanes)
                .map(|_| Lane {
                    cap: Capture {
                        want_head: true,
                        max_body: MAX_KEPT,
                        ..Capture::default()
                    },
                    buf: Vec::new(),
                })
                .collect(),
            data: Vec::new(),
            base_pushed: false,
        }
    }
}

/// Registry flows as the engine's flow steps.
pub struct Runner;

impl FlowRunner for Runner {
    fn state(&self, flow: &Flow) -> Box<dyn Any> {
        Box::new(FlowState::new(flow))
    }

    fn run<'a>(
        &'a self,
        flow: &'a Flow,
        io: &'a Io<'a>,
        tag: usize,
        state: &'a mut dyn Any,
        args: &'a [String],
        it: Iteration,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            match state.downcast_mut::<FlowState>() {
                Some(st) => run(flow, io, tag, st, args, &it).await,
                // invariant: the engine passes back the state `state` made for this flow.
                None => Sample::dropped(tag as u16, it.intended, it.intended),
            }
        })
    }
}

/// Runs one iteration of `flow` (its templates rendered into `args`) and records every request and
/// the whole operation, whose sample it returns.
pub async fn run(
    flow: &Flow,
    io: &Io<'_>,
    tag: usize,
    st: &mut FlowState,
    args: &[String],
    it: &Iteration,
) -> Sample {
    if flow.auth().token == crate::plan::flow::TokenMode::Cold {
        st.auth.forget_tokens();
    }
    let cx = Cx {
        io,
        tag,
        auth: RefCell::new(&mut st.auth),
        sum: RefCell::new(Sum::default()),
        failed: Cell::new(false),
    };
    let mut at = it.intended;
    let result = match flow {
        Flow::Pull(p) => {
            let image = &args[(it.number % args.len().max(1) as u64) as usize];
            pull(&cx, p, &mut st.lanes, image, &mut at).await
        }
        Flow::Push(p) => {
            let mut push_state = PushState {
                data: &mut st.data,
                base_pushed: &mut st.base_pushed,
            };
            let mount_from = args.get(1).map(String::as_str);
            push(
                &cx,
                p,
                &mut st.lanes[0],
                &mut push_state,
                &args[0],
                mount_from,
                it,
                &mut at,
            )
            .await
        }
        Flow::Catalog(w) => walk(&cx, w, &mut st.lanes[0], None, &mut at).await,
        Flow::Tags(w) => {
            walk(
                &cx,
                w,
                &mut st.lanes[0],
                args.first().map(String::as_str),
                &mut at,
            )
            .await
        }
    };
    let sum = cx.sum.into_inner();
    let whole = Sample {
        tag: tag as u16,
        intended: it.intended,
        sent: sum.sent.unwrap_or(it.intended),
        first_byte: None,
        done: at,
        outcome: match result {
            Ok(()) => Outcome::Status(200),
            Err(o) => o,
        },
        bytes_in: sum.bytes_in,
        body_bytes: sum.body_bytes,
        coding: crate::sample::Coding::Identity,
        decoded_bytes: sum.decoded_bytes,
        bytes_out: sum.bytes_out,
        connect: None,
        tls: None,
        reused: false,
    };
    io.record_whole(&whole);
    whole
}

#[derive(Default)]
struct Sum {
    sent: Option<Instant>,
    bytes_in: u64,
    body_bytes: u64,
    decoded_bytes: u64,
    bytes_out: u64,
}

/// One iteration's shared context: lanes running at once share the auth state and the sums.
struct Cx<'a, 'w> {
    io: &'a Io<'w>,
    tag: usize,
    auth: RefCell<&'a mut Auth>,
    sum: RefCell<Sum>,
    /// Set by the first failure, so parallel lanes start nothing new.
    failed: Cell<bool>,
}

/// A request of a flow, and the statuses that let the flow go on.
struct Req<'r> {
    method: &'r str,
    path: &'r str,
    headers: &'r [(&'r str, &'r str)],
    body: &'r [u8],
    expect: &'r [u16],
    /// Keep the body (to parse it).
    keep: bool,
}

impl<'r> Req<'r> {
    fn get(path: &'r str, headers: &'r [(&'r str, &'r str)]) -> Req<'r> {
        Req::new("GET", path, headers, b"", &[200])
    }

    fn new(
        method: &'r str,
        path: &'r str,
        headers: &'r [(&'r str, &'r str)],
        body: &'r [u8],
        expect: &'r [u16],
    ) -> Req<'r> {
        Req {
            method,
            path,
            headers,
            body,
            expect,
            keep: false,
        }
    }
}

/// A body being verified: the running hash (kept across Range pieces) and, on the last piece, the
/// digest it must come to.
struct Verify<'v> {
    hash: &'v mut Sha256,
    digest: &'v str,
    last: bool,
}

/// An auth problem fails the operation with the `auth` error kind; the reason is printed once per
/// process (it is a setup problem, the same for every virtual user).
fn auth_failed(e: AuthError) -> Outcome {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        eprintln!("regbench: registry auth: {e}");
    }
    Outcome::Error(ErrorKind::Auth)
}

fn header(head: &[u8], name: &str) -> Option<String> {
    crate::headers::header_value(head, name).map(str::to_string)
}

impl Cx<'_, '_> {
    fn account(&self, s: &Sample) {
        let mut sum = self.sum.borrow_mut();
        sum.sent.get_or_insert(s.sent);
        sum.bytes_in += s.bytes_in;
        sum.body_bytes += s.body_bytes;
        sum.decoded_bytes += s.decoded_bytes;
        sum.bytes_out += s.bytes_out;
    }

    /// Encodes `req` into the lane's buffer, with `Authorization: auth` if given. A flow request has
    /// at most [`MAX_HEADERS`] headers of its own, so the list lives on the stack.
    fn encode(&self, lane: &mut Lane, req: &Req, auth: Option<&str>) {
        lane.buf.clear();
        let mut headers = [("", ""); MAX_HEADERS + 1];
        let mut n = 0;
        for h in req.headers.iter().take(MAX_HEADERS) {
            headers[n] = *h;
            n += 1;
        }
        if let Some(a) = auth {
            headers[n] = ("Authorization", a);
            n += 1;
        }
        http1::encode_into(
            &mut lane.buf,
            req.method,
            req.path.as_bytes(),
            self.io.target(),
            &headers[..n],
            |v: &&str, out| out.extend_from_slice(v.as_bytes()),
            req.body,
            self.io.keepalive(),
        );
    }

    /// `GET /v2/` without credentials, as docker does: a 401 tells how to authenticate (and counts
    /// as the expected challenge, not a failure).
    async fn ping(&self, lane: &mut Lane, at: &mut Instant) -> Result<(), Outcome> {
        lane.cap.want_body = false;
        lane.cap.hasher = None;
        self.encode(lane, &Req::get("/v2/", &[]), None);
        let s = self
            .io
            .send(self.tag + PING, &lane.buf, false, *at, &mut lane.cap)
            .await;
        self.io.record(&s, true);
        self.account(&s);
        *at = s.done;
        match s.outcome {
            Outcome::Status(200) => Ok(()),
            Outcome::Status(401) => {
                let challenge = header(&lane.cap.head, "www-authenticate").unwrap_or_default();
                self.auth
                    .borrow_mut()
                    .learn(&challenge, self.io.target())
                    .map_err(auth_failed)
            }
            other => Err(other.as_failure()),
        }
    }

    /// A Bearer token for `scope` from the realm, unless one is cached (or the scheme is not Bearer).
    async fn token(&self, lane: &mut Lane, scope: &str, at: &mut Instant) -> Result<(), Outcome> {
        let request = self
            .auth
            .borrow()
            .token_request(scope, Instant::now())
            .map(|(path, basic)| (path, basic.map(str::to_string)));
        let Some((path, basic)) = request else {
            return Ok(());
        };
        lane.cap.want_body = true;
        lane.cap.hasher = None;
        self.encode(lane, &Req::get(&path, &[]), basic.as_deref());
        let s = self
            .io
            .send(self.tag + TOKEN, &lane.buf, false, *at, &mut lane.cap)
            .await;
        self.io.record(&s, false);
        self.account(&s);
        *at = s.done;
        match s.outcome {
            Outcome::Status(200) => self
                .auth
                .borrow_mut()
                .accept_token(scope, &lane.cap.body, Instant::now())
                .map_err(auth_failed),
            other => Err(other.as_failure()),
        }
    }

    /// Sends `req` as a request of phase `phase` for `scope`, authenticated (a token is fetched
    /// first when one is needed). A 401 that brings a challenge is learnt from and the request sent
    /// once more. Keeps the body when `keep`; hashes it into `verify` and, on the last piece, turns
    /// a wrong digest into the `digest-mismatch` error of this request.
    async fn call(
        &self,
        lane: &mut Lane,
        phase: usize,
        scope: &str,
        req: &Req<'_>,
        mut verify: Option<Verify<'_>>,
        at: &mut Instant,
    ) -> Result<u16, Outcome> {
        for attempt in 0..2 {
            self.token(lane, scope, at).await?;
            // The borrow ends before the send's first await.
            {
                let auth = self.auth.borrow();
                self.encode(lane, req, auth.header(scope, Instant::now()));
            }
            lane.cap.want_body = req.keep;
            // A retried piece must not hash the 401's body: each attempt starts from a copy.
            lane.cap.hasher = verify.as_ref().map(|v| v.hash.clone());
            let mut s = self
                .io
                .send(
                    self.tag + phase,
                    &lane.buf,
                    req.method == "HEAD",
                    *at,
                    &mut lane.cap,
                )
                .await;
            let hashed = lane.cap.hasher.take();
            match s.outcome {
                Outcome::Status(401) if attempt == 0 => {
                    self.io.record(&s, false);
                    self.account(&s);
                    *at = s.done;
                    let challenge = header(&lane.cap.head, "www-authenticate").unwrap_or_default();
                    let mut auth = self.auth.borrow_mut();
                    auth.forget(scope);
                    auth.learn(&challenge, self.io.target())
                        .map_err(auth_failed)?;
                    continue;
                }
                Outcome::Status(c) if req.expect.contains(&c) => {
                    if let (Some(v), Some(h)) = (verify.as_mut(), hashed) {
                        *v.hash = h;
                        // A 200 to a Range request is the whole blob: the last piece too.
                        if (v.last || c == 200) && !sha256_is(v.hash.clone(), v.digest.as_bytes()) {
                            s.outcome = Outcome::Error(ErrorKind::DigestMismatch);
                        }
                    }
                }
                _ => {}
            }
            self.io.record(&s, false);
            self.account(&s);
            *at = s.done;
            return match s.outcome {
                Outcome::Status(c) if req.expect.contains(&c) => Ok(c),
                other => Err(other.as_failure()),
            };
        }
        Err(Outcome::Status(401))
    }

    /// A blob, verified against its digest: one GET, or `Range` pieces of `range` bytes.
    #[allow(clippy::too_many_arguments)]
    async fn blob(
        &self,
        lane: &mut Lane,
        phase: usize,
        repo: &str,
        scope: &str,
        digest: &str,
        size: Option<u64>,
        range: Option<u64>,
        at: &mut Instant,
    ) -> Result<(), Outcome> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let mut hash = Sha256::new();
        let (Some(piece), Some(size)) = (range, size.filter(|&s| s > 0)) else {
            let v = Verify {
                hash: &mut hash,
                digest,
                last: true,
            };
            self.call(lane, phase, scope, &Req::get(&path, &[]), Some(v), at)
                .await?;
            return Ok(());
        };
        let mut start = 0;
        while start < size {
            let end = (start + piece).min(size) - 1;
            let range = format!("bytes={start}-{end}");
            let v = Verify {
                hash: &mut hash,
                digest,
                last: end + 1 == size,
            };
            let headers = [("Range", range.as_str())];
            let req = Req::new("GET", &path, &headers, b"", &[200, 206]);
            let status = self.call(lane, phase, scope, &req, Some(v), at).await?;
            if status == 200 {
                // The registry ignored Range and sent the whole blob.
                break;
            }
            start = end + 1;
        }
        Ok(())
    }

    /// GET a manifest (by digest when known, verified), parsed.
    async fn manifest(
        &self,
        lane: &mut Lane,
        repo: &str,
        scope: &str,
        reference: &str,
        at: &mut Instant,
    ) -> Result<serde_json::Value, Outcome> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let mut hash = Sha256::new();
        let verify = reference.starts_with("sha256:").then_some(Verify {
            hash: &mut hash,
            digest: reference,
            last: true,
        });
        let headers = [("Accept", ACCEPT)];
        let req = Req {
            keep: true,
            ..Req::get(&path, &headers)
        };
        self.call(lane, PULL_MANIFEST, scope, &req, verify, at)
            .await?;
        serde_json::from_slice(&lane.cap.body).map_err(|_| Outcome::Error(ErrorKind::BadManifest))
    }
}

/// Whether a manifest is an index (OCI image index or Docker manifest list).
fn is_index(m: &serde_json::Value, content_type: Option<&str>) -> bool {
    let media = m["mediaType"].as_str().or(content_type).unwrap_or("");
    media.starts_with(OCI_INDEX)
        || media.starts_with(DOCKER_LIST)
        || (media.is_empty() && m["manifests"].is_array())
}

/// The digest of the index entry for `p` (a variant must match when one is asked for).
pub fn pick_platform(index: &serde_json::Value, p: &Platform) -> Option<String> {
    index["manifests"].as_array()?.iter().find_map(|m| {
        let plat = &m["platform"];
        let matches = plat["os"].as_str() == Some(&p.os)
            && plat["architecture"].as_str() == Some(&p.architecture)
            && p.variant
                .as_deref()
                .is_none_or(|v| plat["variant"].as_str() == Some(v));
        matches
            .then(|| m["digest"].as_str().map(str::to_string))
            .flatten()
    })
}

/// Polls every future until all are done (a pull's lanes: a handful, so polling each on a wake is
/// cheap), and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

async fn pull(
    cx: &Cx<'_, '_>,
    p: &Pull,
    lanes: &mut [Lane],
    image: &str,
    at: &mut Instant,
) -> Result<(), Outcome> {
    let (repo, reference) = split_image(image);
    let scope = format!("repository:{repo}:pull");
    let Some((first, _)) = lanes.split_first_mut() else {
        return Err(Outcome::Error(ErrorKind::Other));
    };
    cx.ping(first, at).await?;
    // HEAD: which digest the tag points at now; the GET then asks for exactly that.
    let path = format!("/v2/{repo}/manifests/{reference}");
    let headers = [("Accept", ACCEPT)];
    let head = Req::new("HEAD", &path, &headers, b"", &[200]);
    cx.call(first, PULL_HEAD, &scope, &head, None, at).await?;
    let digest = header(&first.cap.head, "docker-content-digest")
        .filter(|d| d.starts_with("sha256:"))
        .unwrap_or_else(|| reference.to_string());
    let mut manifest = cx.manifest(first, repo, &scope, &digest, at).await?;
    let content_type = header(&first.cap.head, "content-type");
    if is_index(&manifest, content_type.as_deref()) {
        let Some(child) = pick_platform(&manifest, &p.platform) else {
            return Err(Outcome::Error(ErrorKind::BadManifest));
        };
        manifest = cx.manifest(first, repo, &scope, &child, at).await?;
    }
    let blob_ref = |v: &serde_json::Value| -> Option<(String, Option<u64>)> {
        Some((v["digest"].as_str()?.to_string(), v["size"].as_u64()))
    };
    let (Some(config), Some(layers)) = (
        blob_ref(&manifest["config"]),
        manifest["layers"]
            .as_array()
            .map(|ls| ls.iter().map(blob_ref).collect::<Option<Vec<_>>>()),
    ) else {
        return Err(Outcome::Error(ErrorKind::BadManifest));
    };
    let Some(layers) = layers else {
        return Err(Outcome::Error(ErrorKind::BadManifest));
    };
    cx.blob(
        first,
        PULL_CONFIG,
        repo,
        &scope,
        &config.0,
        config.1,
        p.range,
        at,
    )
    .await?;

    // Layers: each lane takes the next one not yet started, as dockerd's download manager does.
    let next = Cell::new(0);
    let start = *at;
    let n_lanes = p.parallel.clamp(1, layers.len().max(1));
    let lane_runs = lanes.iter_mut().take(n_lanes).map(|lane| {
        let (next, layers, scope) = (&next, &layers, &scope);
        async move {
            let mut at = start;
            while !cx.failed.get() {
                let i = next.get();
                let Some((digest, size)) = layers.get(i) else {
                    break;
                };
                next.set(i + 1);
                if let Err(o) = cx
                    .blob(
                        lane, PULL_LAYER, repo, scope, digest, *size, p.range, &mut at,
                    )
                    .await
                {
                    cx.failed.set(true);
                    return (Err(o), at);
                }
            }
            (Ok(()), at)
        }
    });
    let results = join_all(lane_runs.collect()).await;
    let mut outcome = Ok(());
    for (r, done) in results {
        *at = (*at).max(done);
        if outcome.is_ok() {
            outcome = r;
        }
    }
    outcome
}

/// Every page of the catalog (`repo` None) or of a repository's tags, following `Link` headers.
async fn walk(
    cx: &Cx<'_, '_>,
    w: &Walk,
    lane: &mut Lane,
    repo: Option<&str>,
    at: &mut Instant,
) -> Result<(), Outcome> {
    cx.ping(lane, at).await?;
    let (scope, mut path) = match repo {
        Some(r) => (
            format!("repository:{r}:pull"),
            format!("/v2/{r}/tags/list?n={}", w.page_size),
        ),
        None => (
            "registry:catalog:*".to_string(),
            format!("/v2/_catalog?n={}", w.page_size),
        ),
    };
    for _ in 0..w.max_pages {
        cx.call(lane, WALK_PAGE, &scope, &Req::get(&path, &[]), None, at)
            .await?;
        match NextPage::Link.next_path(&path, &lane.cap.head, b"") {
            Some(next) => path = next,
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_offsets_match_the_phase_names() {
        let walk = Walk {
            repo: None,
            page_size: 1,
            max_pages: 1,
            auth: Default::default(),
        };
        let pull = Flow::Pull(Pull {
            images: Vec::new(),
            platform: Platform::default(),
            parallel: 3,
            range: None,
            auth: Default::default(),
        });
        let push = Flow::Push(Push {
            image: Default::default(),
            layers: 1,
            layer_size: 1,
            chunk: None,
            mount_from: None,
            auth: Default::default(),
        });
        let at = |f: &Flow, i: usize| f.phases()[i - 1];
        for f in [
            &pull,
            &push,
            &Flow::Catalog(walk.clone()),
            &Flow::Tags(walk),
        ] {
            assert_eq!((at(f, PING), at(f, TOKEN)), ("ping", "token"));
        }
        assert_eq!(
            [PULL_HEAD, PULL_MANIFEST, PULL_CONFIG, PULL_LAYER].map(|i| at(&pull, i)),
            ["head", "manifest", "config", "layer"]
        );
        assert_eq!(
            [
                PUSH_UPLOAD,
                PUSH_CHUNK,
                PUSH_COMMIT,
                PUSH_MOUNT,
                PUSH_MANIFEST
            ]
            .map(|i| at(&push, i)),
            ["upload", "chunk", "commit", "mount", "manifest"]
        );
        assert_eq!(
            at(
                &Flow::Catalog(Walk {
                    repo: None,
                    page_size: 1,
                    max_pages: 1,
                    auth: Default::default()
                }),
                WALK_PAGE
            ),
            "page"
        );
    }

    #[test]
    fn indexes_resolve_to_the_platform() {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                { "digest": "sha256:a", "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
                { "digest": "sha256:b", "platform": { "os": "linux", "architecture": "amd64" } },
            ],
        });
        assert!(is_index(&index, None));
        assert_eq!(
            pick_platform(&index, &Platform::default()).as_deref(),
            Some("sha256:b")
        );
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(pick_platform(&index, &arm).as_deref(), Some("sha256:a"));
        let s390 = Platform::parse("linux/s390x").unwrap();
        assert_eq!(pick_platform(&index, &s390), None);
        // A Docker list known only by its Content-Type.
        let list = serde_json::json!({ "schemaVersion": 2, "manifests": [] });
        assert!(is_index(&list, Some(DOCKER_LIST)));
        assert!(!is_index(
            &serde_json::json!({ "mediaType": OCI_MANIFEST }),
            None
        ));
    }
}
