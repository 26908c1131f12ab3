use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::Reason;
use regbench::serve::{LatencyModel, ServeConfig};

use crate::util::*;

/// What the scripted HTTP/2 server does with a connection's `n`th stream (1-based).
#[derive(Clone, Copy, Debug)]
enum Act {
    Ok,
    /// RST_STREAM with this code, no response.
    Reset(Reason),
    /// Respond, then start a graceful shutdown (GOAWAY NO_ERROR; in-flight streams finish).
    OkThenGoAway,
    /// GOAWAY with INTERNAL_ERROR at once, without responding: the stream was processed.
    FatalGoAway,
    /// Respond after this long, without holding up other streams.
    Late(Duration),
    /// Respond with a header of this many bytes: the block arrives in CONTINUATION frames.
    BigHead(usize),
}

/// An independent HTTP/2 server (the `h2` crate's server side) on 127.0.0.1:0, scripted per stream.
/// Counts the streams it saw. Serves until the test process ends.
fn h2_server(script: fn(u64) -> Act) -> (SocketAddr, Arc<AtomicU64>) {
    h2_server_with(None, script)
}

/// [`h2_server`] announcing SETTINGS_MAX_CONCURRENT_STREAMS when given.
fn h2_server_with(
    max_streams: Option<u32>,
    script: fn(u64) -> Act,
) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let seen = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut builder = h2::server::Builder::new();
                    if let Some(n) = max_streams {
                        builder.max_concurrent_streams(n);
                    }
                    let Ok(mut conn) = builder.handshake::<_, Bytes>(sock).await else {
                        return;
                    };
                    let mut n = 0;
                    while let Some(Ok((_req, mut respond))) = conn.accept().await {
                        n += 1;
                        seen.fetch_add(1, Ordering::SeqCst);
                        let ok = |respond: &mut h2::server::SendResponse<Bytes>| {
                            let resp = http::Response::builder().status(200).body(()).unwrap();
                            if let Ok(mut body) = respond.send_response(resp, false) {
                                let _ = body.send_data(Bytes::from_static(b"ok"), true);
                            }
                        };
                        match script(n) {
                            Act::Ok => ok(&mut respond),
                            Act::Reset(reason) => respond.send_reset(reason),
                            Act::OkThenGoAway => {
                                ok(&mut respond);
                                conn.graceful_shutdown();
                            }
                            Act::FatalGoAway => conn.abrupt_shutdown(Reason::INTERNAL_ERROR),
                            Act::Late(after) => {
                                tokio::spawn(async move {
                                    tokio::time::sleep(after).await;
                                    ok(&mut respond);
                                });
                            }
                            Act::BigHead(n) => {
                                let resp = http::Response::builder()
                                    .status(200)
                                    .header("x-big", "b".repeat(n))
                                    .header("x-after", "still-here")
                                    .body(())
                                    .unwrap();
                                if let Ok(mut body) = respond.send_response(resp, false) {
                                    let _ = body.send_data(Bytes::from_static(b"ok"), true);
                                }
                            }
                        }
                    }
                    // Linger before closing, as real servers do, so the client reads the GOAWAY
                    // before any reset the close would cause.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    drop(conn);
                });
            }
        });
    });
    (addr, seen)
}

#[test]
fn h2c_multiplexes_many_requests_over_few_connections() {
    // 20 ms per response: 16 in flight finish 320 requests in ~0.4 s; 2 (one per connection, as
    // HTTP/1.1 would) would take 3.2 s.
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(20)),
        ..ServeConfig::default()
    });
    let url = format!("http://{}/v2/", t.addr());
    let started = Instant::now();
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "--h2c",
        "-c",
        "2",
        "--streams",
        "8",
        "-n",
        "320",
        "--threads",
        "2",
    ]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{r}");
    assert_valid(&r);
    assert_eq!(r["overall"]["status_codes"]["200"], 320, "{}", r["overall"]);
    assert_eq!(
        r["overall"]["connections"]["new"], 2,
        "2 connections carry 16 streams: {}",
        r["overall"]["connections"]
    );
    let sc = &r["run"]["scenarios"][0];
    assert_eq!(sc["connections"], 2);
    assert_eq!(sc["slots"], 16);
    assert_eq!(r["run"]["http"]["version"], "2");
    assert_eq!(r["run"]["http"]["streams"], 8);
    assert!(
        took < Duration::from_millis(1600),
        "16 requests in flight, not 2: took {took:?}"
    );
    let (_, text) = regbench(&[
        "run",
        &url,
        "--h2c",
        "-c",
        "2",
        "--streams",
        "8",
        "-n",
        "32",
    ]);
    assert!(
        text.contains("2 connections × 8 streams") && text.contains("h2c, prior knowledge"),
        "{text}"
    );
}

#[test]
fn the_open_model_keeps_connections_times_streams_in_flight() {
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(50)),
        ..ServeConfig::default()
    });
    let url = format!("http://{}/v2/", t.addr());
    // 200/s with 50 ms responses needs ~10 in flight: one connection with 16 streams carries it.
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "--h2c",
        "-c",
        "1",
        "--streams",
        "16",
        "--rate",
        "200",
        "-z",
        "1s",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["overall"]["status_codes"]["200"], 200, "{}", r["overall"]);
    assert_eq!(r["overall"]["connections"]["new"], 1);
    assert_eq!(r["run"]["queued"], 0, "no request waited for a slot");
    assert!(ns(&r["overall"]["lag"]["p99_ns"]) < Duration::from_millis(10));
}

#[test]
fn a_graceful_goaway_reconnects_without_losing_requests() {
    // Every connection goes away after 25 streams; requests it did not take are sent again.
    let (addr, seen) = h2_server(|n| if n == 25 { Act::OkThenGoAway } else { Act::Ok });
    let url = format!("http://{addr}/");
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "--h2c",
        "-c",
        "1",
        "--streams",
        "4",
        "-n",
        "200",
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{}", r["overall"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 200, "{}", r["overall"]);
    assert!(
        r["overall"]["errors"].as_object().unwrap().is_empty(),
        "{}",
        r["overall"]["errors"]
    );
    let new = r["overall"]["connections"]["new"].as_u64().unwrap();
    assert!(new >= 8, "a new connection after each GOAWAY: {new}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        200,
        "each request processed once"
    );
}

#[test]
fn refused_streams_are_retried_and_other_resets_counted() {
    // Every third stream is refused: not processed, so sent again; all succeed.
    let (addr, seen) = h2_server(|n| {
        if n % 3 == 0 {
            Act::Reset(Reason::REFUSED_STREAM)
        } else {
            Act::Ok
        }
    });
    let url = format!("http://{addr}/");
    let (code, r) = regbench_json(&["run", &url, "--h2c", "-c", "1", "-n", "60"]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["status_codes"]["200"], 60, "{}", r["overall"]);
    assert!(
        seen.load(Ordering::SeqCst) > 60,
        "the refused ones came again"
    );

    // Always refused: each request is tried 1 + 3 times, then counted as a stream reset.
    let (addr, seen) = h2_server(|_| Act::Reset(Reason::REFUSED_STREAM));
    let url = format!("http://{addr}/");
    let (_, r) = regbench_json(&["run", &url, "--h2c", "-c", "1", "-n", "5"]);
    assert_eq!(
        r["overall"]["errors"]["stream-reset"], 5,
        "{}",
        r["overall"]
    );
    assert_eq!(seen.load(Ordering::SeqCst), 20);

    // Reset with an error code: the server may have acted on it, so it is counted, never resent.
    let (addr, seen) = h2_server(|_| Act::Reset(Reason::INTERNAL_ERROR));
    let url = format!("http://{addr}/");
    let (_, r) = regbench_json(&["run", &url, "--h2c", "-c", "1", "-n", "7"]);
    assert_eq!(
        r["overall"]["errors"]["stream-reset"], 7,
        "{}",
        r["overall"]
    );
    assert_eq!(seen.load(Ordering::SeqCst), 7);
}

#[test]
fn a_goaway_with_an_error_is_counted_not_retried() {
    let (addr, seen) = h2_server(|_| Act::FatalGoAway);
    let url = format!("http://{addr}/");
    let (_, r) = regbench_json(&["run", &url, "--h2c", "-c", "1", "-n", "5"]);
    assert_eq!(r["overall"]["errors"]["goaway"], 5, "{}", r["overall"]);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        5,
        "processed streams are not resent"
    );
    assert_eq!(r["overall"]["connections"]["new"], 5);
}

#[test]
fn https_picks_h2_by_alpn_unless_told_otherwise() {
    let t = demo_target(ServeConfig {
        tls: Some(self_signed_tls(true)),
        ..ServeConfig::default()
    });
    let url = format!("https://127.0.0.1:{}/v2/", t.addr().port());
    let alpn = |extra: &[&str]| {
        let mut a = vec!["run", &url, "-k", "-c", "2", "-n", "40"];
        a.extend_from_slice(extra);
        let (code, r) = regbench_json(&a);
        assert_eq!(code, 0, "{extra:?}: {}", r["overall"]);
        assert_eq!(r["overall"]["status_codes"]["200"], 40);
        let neg = &r["overall"]["connections"]["tls"]["negotiated"][0];
        assert_eq!(neg["count"], 2, "{extra:?}: {neg}");
        neg["alpn"].as_str().unwrap().to_string()
    };
    assert_eq!(alpn(&[]), "h2");
    assert_eq!(alpn(&["--http1"]), "http/1.1");
    assert_eq!(alpn(&["--http2", "--streams", "4"]), "h2");

    // A server without h2: ALPN falls back to HTTP/1.1, and --http2 refuses it.
    let t = demo_target(ServeConfig {
        tls: Some(self_signed_tls(false)),
        ..ServeConfig::default()
    });
    let url = format!("https://127.0.0.1:{}/v2/", t.addr().port());
    let (code, r) = regbench_json(&["run", &url, "-k", "-c", "2", "-n", "10"]);
    assert_eq!(code, 0);
    assert_eq!(
        r["overall"]["connections"]["tls"]["negotiated"][0]["alpn"],
        "http/1.1"
    );
    assert_eq!(r["overall"]["status_codes"]["200"], 10);
    let (_, r) = regbench_json(&["run", &url, "-k", "--http2", "-c", "1", "-n", "3"]);
    assert_eq!(r["overall"]["errors"]["no-h2"], 3, "{}", r["overall"]);
}

/// The demo target's TLS with a self-signed certificate, offering h2 or only http/1.1.
fn self_signed_tls(h2: bool) -> Arc<rustls::ServerConfig> {
    use regbench::serve::tls as stls;
    let (chain, key) = stls::self_signed().unwrap();
    let config = stls::server_config(chain, key, None).unwrap();
    let mut config = (*config).clone();
    if !h2 {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Arc::new(config)
}

#[test]
fn scenario_files_speak_http2_with_checks_on_headers() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("h2.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "http://{addr}"
http = "2"
streams = 4

[[scenario]]
name = "pull"
executor = "shared-iterations"
vus = 8
iterations = 40

[[scenario.step]]
name = "tags"
url = "/v2/demo/app-000/tags/list"
check = {{ status = [200], header = ["content-type"], json_exists = ["/tags"] }}
extract = {{ tag = {{ json = "/tags/0" }} }}

[[scenario.step]]
name = "manifest"
method = "HEAD"
url = "/v2/demo/app-000/manifests/{{{{tag}}}}"
headers = {{ Accept = "application/vnd.oci.image.manifest.v1+json" }}
check = {{ status = [200], header = ["docker-content-digest"] }}
"#,
            addr = t.addr()
        ),
    )
    .unwrap();
    let (code, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", r["steps"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 80, "{}", r["overall"]);
    assert_eq!(
        r["overall"]["connections"]["new"], 2,
        "8 virtual users over 4 streams each"
    );
    for step in r["steps"].as_array().unwrap() {
        for c in step["checks"].as_array().unwrap() {
            assert_eq!(c["failed"], 0, "{}: {c}", step["name"]);
        }
    }
}

#[test]
fn http_flags_that_cannot_work_are_usage_errors() {
    let (code, out) = regbench(&["run", "http://127.0.0.1:1/", "--streams", "4"]);
    assert_eq!(code, 2, "{out}");
    let (code, _) = regbench(&["run", "https://127.0.0.1:1/", "--h2c"]);
    assert_eq!(code, 2);
    let (code, _) = regbench(&["run", "http://127.0.0.1:1/", "--h2c", "--streams", "0"]);
    assert_eq!(code, 2);
    let (code, _) = regbench(&["run", "http://127.0.0.1:1/", "--http1", "--http2"]);
    assert_eq!(code, 2);
}

#[test]
fn a_server_allowing_fewer_streams_is_waited_for_not_overrun() {
    // The server allows 2 streams at a time; 8 slots queue behind them. A client that opened 8
    // anyway would have 6 refused on every round and, after its retries, count stream resets.
    let (addr, seen) = h2_server_with(Some(2), |_| Act::Late(Duration::from_millis(5)));
    let url = format!("http://{addr}/");
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "--h2c",
        "-c",
        "1",
        "--streams",
        "8",
        "-n",
        "200",
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{}", r["overall"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 200, "{}", r["overall"]);
    assert!(
        r["overall"]["errors"].as_object().unwrap().is_empty(),
        "{}",
        r["overall"]["errors"]
    );
    assert_eq!(seen.load(Ordering::SeqCst), 200);
    assert_eq!(r["overall"]["connections"]["new"], 1);
}

#[test]
fn a_timed_out_stream_is_reset_and_its_connection_kept() {
    // The third stream is answered after 3 s; the 300 ms timeout gives up on it (RST_STREAM
    // CANCEL) and the other requests carry on over the same connection.
    let (addr, _) = h2_server(|n| {
        if n == 3 {
            Act::Late(Duration::from_secs(3))
        } else {
            Act::Ok
        }
    });
    let url = format!("http://{addr}/");
    let started = Instant::now();
    let (_, r) = regbench_json(&[
        "run",
        &url,
        "--h2c",
        "-c",
        "1",
        "--streams",
        "2",
        "-n",
        "20",
        "--timeout",
        "300ms",
    ]);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r["overall"]["errors"]["timeout"], 1, "{}", r["overall"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 19, "{}", r["overall"]);
    assert_eq!(
        r["overall"]["connections"]["new"], 1,
        "a reset stream does not cost the connection"
    );
}

#[test]
fn response_heads_split_into_continuation_frames_are_read_whole() {
    // A 40 KB header: HEADERS plus two CONTINUATION frames at the default 16 KiB frame size. The
    // field after it is only in the last frame.
    let (addr, _) = h2_server(|_| Act::BigHead(40_000));
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("big.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "http://{addr}"
http = "2"

[[scenario]]
name = "big"
executor = "shared-iterations"
vus = 2
iterations = 6

[[scenario.step]]
name = "get"
url = "/"
check = {{ status = [200], header = ["x-big", "x-after"], body_contains = "ok" }}
"#
        ),
    )
    .unwrap();
    let (code, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", r["steps"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 6, "{}", r["overall"]);
    for c in r["steps"][0]["checks"].as_array().unwrap() {
        assert_eq!(c["failed"], 0, "{c}");
        assert_eq!(c["passed"], 6, "{c}");
    }
}

#[test]
fn registry_flows_over_h2c_move_blobs_past_the_flow_control_windows() {
    // A 20 MiB layer is more than the 16 MiB stream window regbench grants: the pull completes
    // only if WINDOW_UPDATEs go out as it arrives. 1 MiB layer uploads are far past the 64 KiB
    // the server grants at first: pushes complete only if regbench waits for its WINDOW_UPDATEs.
    // Every blob's digest is checked, by regbench on pulls and by the registry on pushes.
    let t = demo_target(ServeConfig {
        repos: 1,
        tags: 1,
        layers: 1,
        layer_size: 20 << 20,
        ..ServeConfig::default()
    });
    let url = t.url();
    let (code, r) = regbench_json(&[
        "oci",
        "pull",
        &url,
        "--image",
        "demo/app-000:v1",
        "--h2c",
        "-c",
        "1",
        "-n",
        "2",
        "--timeout",
        "10s",
    ]);
    assert_eq!(code, 0, "{}", r["steps"]);
    assert_eq!(step(&r, "pull")["success"], 2, "{}", r["steps"]);
    assert_eq!(step(&r, "pull/layer")["body_bytes"], 2 * (20 << 20));
    assert_eq!(r["run"]["http"]["version"], "2");

    for chunk in [None, Some("300KiB")] {
        let mut args = vec![
            "oci",
            "push",
            &url,
            "--image",
            "ci/h2:t",
            "--layers",
            "2",
            "--layer-size",
            "1MiB",
            "--h2c",
            "-c",
            "2",
            "-n",
            "4",
            "--timeout",
            "10s",
        ];
        if let Some(c) = chunk {
            args.extend(["--chunk", c]);
        }
        let (code, r) = regbench_json(&args);
        assert_eq!(code, 0, "{chunk:?}: {}", r["steps"]);
        assert_eq!(step(&r, "push")["success"], 4, "{chunk:?}: {}", r["steps"]);
        assert!(
            r["overall"]["errors"].as_object().unwrap().is_empty(),
            "{}",
            r["overall"]["errors"]
        );
    }
}

#[test]
fn connections_regbench_ends_say_goaway_first() {
    // With --no-keepalive every request has its own connection, which regbench ends when the
    // response is in: with GOAWAY (NO_ERROR), not a bare close.
    let (addr, last) = h2c::server();
    let url = format!("http://{addr}/");
    let (code, r) = regbench_json(&["run", &url, "--h2c", "-c", "1", "-n", "3", "--no-keepalive"]);
    assert_eq!(code, 0, "{}", r["overall"]);
    assert_eq!(r["overall"]["connections"]["new"], 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while last.load(Ordering::SeqCst) == u64::MAX && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        last.load(Ordering::SeqCst),
        7 << 32,
        "the last frame was a GOAWAY (type 7) with NO_ERROR"
    );
}

#[test]
fn h2c_to_a_server_without_http2_is_no_h2() {
    // An HTTP/1.1-only server answers the connection preface with a 400 in HTTP/1.1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://{addr}/");
    let (_, r) = regbench_json(&["run", &url, "--h2c", "-c", "1", "-n", "3"]);
    assert_eq!(r["overall"]["errors"]["no-h2"], 3, "{}", r["overall"]);
}
