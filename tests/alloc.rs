//! The static-request path allocates nothing per request (issue: measurement core), over HTTP/1.1
//! and HTTP/2. Its own test binary
//! because it installs a counting global allocator, and a single test so nothing else allocates
//! alongside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[path = "util/h2c.rs"]
mod h2c;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A keep-alive server that allocates nothing per request: fixed buffer, static response.
fn static_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 8192];
                let mut tail = 0u32; // rolling window of the last 4 bytes, to find "\r\n\r\n"
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    for &b in &buf[..n] {
                        tail = (tail << 8) | u32::from(b);
                        if tail == 0x0d0a_0d0a
                            && s.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n",
                            )
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn allocations_for(url: &str, n: u64, extra: &[&str]) -> u64 {
    allocations_of(url, n, extra, "status_codes", "200")
}

/// Allocations of a run of `n` requests, which must all end with `key` under `counts` in the
/// report.
fn allocations_of(url: &str, n: u64, extra: &[&str], counts: &str, key: &str) -> u64 {
    let before = ALLOCATIONS.load(Relaxed);
    let mut out = Vec::with_capacity(1 << 20);
    let n = n.to_string();
    let mut args = vec![
        "regbench",
        "run",
        url,
        "-c",
        "4",
        "--threads",
        "2",
        "-n",
        &n,
    ];
    args.extend_from_slice(&["--quiet", "-o", "json"]);
    args.extend_from_slice(extra);
    let code = regbench::app::run(
        args,
        &mut out,
        regbench::app::Options {
            handle_signals: false,
        },
    );
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        report["overall"][counts][key]
            .as_u64()
            .unwrap_or(0)
            .to_string(),
        n,
        "{}",
        report["overall"]
    );
    ALLOCATIONS.load(Relaxed) - before
}

/// Allocations of a run of the scenario file `f`, which must exit 0.
fn allocations_of_file(f: &str) -> u64 {
    let before = ALLOCATIONS.load(Relaxed);
    let mut out = Vec::with_capacity(1 << 20);
    let args = [
        "regbench",
        "run",
        f,
        "--threads",
        "2",
        "--quiet",
        "-o",
        "json",
    ];
    let code = regbench::app::run(
        args,
        &mut out,
        regbench::app::Options {
            handle_signals: false,
        },
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
    ALLOCATIONS.load(Relaxed) - before
}

#[test]
fn allocations_do_not_grow_with_requests() {
    let addr = static_server();
    let url = format!("http://{addr}/");
    // Closed model, then the open model (its pacer, precise timer and connection pool) at 40k/s.
    for (model, extra) in [("closed", &[][..]), ("open", &["--rate", "40000"][..])] {
        allocations_for(&url, 100, extra); // warm-up: lazy statics, first-use allocations
        let small = allocations_for(&url, 2_000, extra);
        let large = allocations_for(&url, 20_000, extra);
        // 18 000 more requests; per-second interval hand-overs and report rendering may differ a
        // little.
        let more = large.saturating_sub(small);
        assert!(
            more < 2_000,
            "{model} model: {small} allocations for 2 000 requests, {large} for 20 000: {more} extra, \
             so something allocates per request"
        );
        eprintln!("{model} model: {small} allocations for 2 000 requests, {large} for 20 000");
    }

    // HTTP/2 with prior knowledge: 4 connections × 8 streams.
    let h2c = format!("http://{}/", h2c::server().0);
    let extra = &["--h2c", "--streams", "8"][..];
    allocations_for(&h2c, 100, extra);
    let small = allocations_for(&h2c, 2_000, extra);
    let large = allocations_for(&h2c, 20_000, extra);
    let more = large.saturating_sub(small);
    assert!(
        more < 2_000,
        "HTTP/2: {small} allocations for 2 000 requests, {large} for 20 000: {more} extra"
    );
    eprintln!("HTTP/2: {small} allocations for 2 000 requests, {large} for 20 000");

    // gRPC unary with a static message (encoded once from JSON): 4 connections × 8 streams.
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/registry.proto");
    let grpc = format!(
        "grpc://{}/regbench.demo.v1.Registry/Lookup",
        h2c::grpc_server()
    );
    let extra = &["--proto", proto, "-d", r#"{"name":"a"}"#, "--streams", "8"][..];
    let calls = |n| allocations_of(&grpc, n, extra, "grpc_status", "OK");
    calls(100);
    let (small, large) = (calls(2_000), calls(20_000));
    let more = large.saturating_sub(small);
    assert!(
        more < 2_000,
        "gRPC unary: {small} allocations for 2 000 calls, {large} for 20 000: {more} extra"
    );
    eprintln!("gRPC unary: {small} allocations for 2 000 calls, {large} for 20 000");

    // A templated gRPC message: rendered to JSON and encoded per call (a dynamic message each time,
    // so it allocates; measured, and bounded so a regression shows).
    let dir = tempfile::tempdir().unwrap();
    let grpc_file = |n: u64| {
        let path = dir.path().join(format!("g{n}.toml"));
        let text = format!(
            "[defaults]\nbase_url = \"grpc://{addr}\"\n\n\
             [[scenario]]\nname = \"g\"\nexecutor = \"shared-iterations\"\nvus = 4\niterations = {n}\n\n\
             [[scenario.step]]\nname = \"lookup\"\ntype = \"grpc\"\ncall = \"regbench.demo.v1.Registry/Lookup\"\n\
             proto = \"{proto}\"\nmessage = '{{\"name\": \"server-{{{{iteration}}}}\"}}'\n",
            addr = grpc.trim_start_matches("grpc://").split('/').next().unwrap(),
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (warm, g2k, g20k) = (grpc_file(100), grpc_file(2_000), grpc_file(20_000));
    allocations_of_file(&warm);
    let (small, large) = (allocations_of_file(&g2k), allocations_of_file(&g20k));
    let per_call = large.saturating_sub(small) as f64 / 18_000.0;
    eprintln!("templated gRPC messages: {per_call:.1} allocations per call");
    assert!(
        per_call < 100.0,
        "templated gRPC: {per_call:.1} allocations per call ({small} for 2 000, {large} for 20 000)"
    );

    // A scenario file whose path and header are templates: rendered per request into reused buffers.
    let dir = tempfile::tempdir().unwrap();
    let file = |n: u64| {
        let path = dir.path().join(format!("t{n}.toml"));
        let text = format!(
            "[defaults]\nbase_url = \"{url}\"\n[defaults.vars]\nregion = \"eu\"\n\n\
             [[scenario]]\nname = \"t\"\nexecutor = \"shared-iterations\"\nvus = 4\niterations = {n}\n\
             [scenario.request]\nurl = \"/{{{{region}}}}/{{{{iteration}}}}/{{{{random.int(1,99)}}}}\"\n\
             headers = {{ X-Id = \"{{{{random.uuid}}}}-{{{{vu}}}}\" }}\n"
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (warm, f2k, f20k) = (file(100), file(2_000), file(20_000));
    allocations_of_file(&warm);
    let (small, large) = (allocations_of_file(&f2k), allocations_of_file(&f20k));
    let more = large.saturating_sub(small);
    assert!(
        more < 2_000,
        "templated requests: {small} allocations for 2 000, {large} for 20 000: {more} extra"
    );
    eprintln!("templated scenario: {small} allocations for 2 000 requests, {large} for 20 000");
}
