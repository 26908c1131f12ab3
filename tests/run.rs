use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use regbench::serve::{LatencyModel, ServeConfig, Stall};

use crate::util::*;

#[test]
fn sends_exactly_n_requests() {
    let target = demo_target(ServeConfig::default());
    let url = format!("{}/v2/", target.url());
    // 7 connections on 2 threads: the budget splits unevenly and must still add up.
    let (code, r) = regbench_json(&["run", &url, "-c", "7", "-n", "1001", "--threads", "2"]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["requests"], 1001);
    assert_eq!(r["overall"]["status_codes"]["200"], 1001);
    assert_eq!(
        target.state().metrics.requests_total(),
        1001,
        "the server saw exactly N requests"
    );
    assert_eq!(
        r["overall"]["connections"]["new"], 7,
        "keep-alive: one connection each"
    );
    assert_eq!(r["overall"]["connections"]["reused"], 1001 - 7);
    assert_eq!(r["run"]["threads"], 2);
    let series: u64 = r["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(series, 1001, "the time series adds up to the total");
}

#[test]
fn status_codes_are_counted() {
    let target = demo_target(ServeConfig::default());
    let (code, r) = regbench_json(&[
        "run",
        &format!("{}/nope", target.url()),
        "-c",
        "2",
        "-n",
        "50",
    ]);
    assert_eq!(code, 0, "4xx responses are data, not a failed run");
    assert_eq!(r["overall"]["status_codes"]["404"], 50);
    assert_eq!(r["overall"]["success"], 0);

    let failing = demo_target(ServeConfig {
        error_rate: 1.0,
        ..ServeConfig::default()
    });
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", failing.url()),
        "-c",
        "3",
        "-n",
        "30",
    ]);
    assert_eq!(r["overall"]["status_codes"]["500"], 30);
    assert_eq!(
        r["overall"]["errors_total"], 0,
        "a 500 is a response, not a transport error"
    );
}

#[test]
fn closed_port_is_refused() {
    let addr = closed_port();
    let (code, r) = regbench_json(&["run", &format!("http://{addr}/"), "-c", "2", "-n", "20"]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["requests"], 20);
    assert_eq!(r["overall"]["errors"]["refused"], 20);
    assert_eq!(
        r["overall"]["latency"]["count"], 0,
        "a refused request has no latency"
    );
}

#[test]
fn resetting_server_gives_reset() {
    let addr = raw_server(|mut s| {
        if read_head(&mut s) {
            reset(s);
        }
    });
    let (_, r) = regbench_json(&["run", &format!("http://{addr}/"), "-c", "2", "-n", "10"]);
    assert_eq!(r["overall"]["errors"]["reset"], 10, "{}", r["overall"]);
}

#[test]
fn latency_against_fixed_20ms_target() {
    let _machine = machine();
    let target = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(20)),
        ..ServeConfig::default()
    });
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", target.url()),
        "-c",
        "4",
        "-n",
        "80",
    ]);
    let lat = &r["overall"]["latency"];
    assert_eq!(lat["count"], 80);
    assert!(ns(&lat["min_ns"]) >= Duration::from_millis(20), "{lat}");
    // Timer granularity is 1 ms; a loaded 2-core CI box adds a little more.
    assert!(ns(&lat["p50_ns"]) < Duration::from_millis(24), "{lat}");
    assert!(ns(&lat["p99_ns"]) < Duration::from_millis(35), "{lat}");
    let svc = &r["overall"]["service_time"];
    assert!(ns(&svc["min_ns"]) >= Duration::from_millis(20), "{svc}");
}

#[test]
fn timeout_is_its_own_error_kind() {
    let target = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_secs(5)),
        ..ServeConfig::default()
    });
    let t0 = Instant::now();
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", target.url()),
        "-c",
        "2",
        "-n",
        "4",
        "--timeout",
        "200ms",
    ]);
    assert_eq!(r["overall"]["errors"]["timeout"], 4);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "timeouts did not wait for the server"
    );
    // A timeout is recorded at the time it was given up, a lower bound of the real latency.
    assert!(ns(&r["overall"]["latency"]["min_ns"]) >= Duration::from_millis(200));
    assert_eq!(
        r["overall"]["connections"]["new"], 4,
        "a timed-out connection is not reused"
    );
}

#[test]
fn no_keepalive_opens_a_connection_per_request() {
    let target = demo_target(ServeConfig::default());
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", target.url()),
        "-c",
        "3",
        "-n",
        "60",
        "--no-keepalive",
    ]);
    assert_eq!(r["overall"]["status_codes"]["200"], 60);
    assert_eq!(r["overall"]["connections"]["new"], 60);
    assert_eq!(r["overall"]["connections"]["connect"]["count"], 60);
}

/// A server that answers with `Connection: close` and closes: the engine reconnects every time.
#[test]
fn reconnects_when_the_server_closes() {
    let addr = raw_server(|mut s| {
        if read_head(&mut s) {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let (_, r) = regbench_json(&["run", &format!("http://{addr}/"), "-c", "2", "-n", "40"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 40);
    assert_eq!(r["overall"]["connections"]["new"], 40);
    assert_eq!(r["overall"]["errors_total"], 0);
}

/// Chunked bodies, 100 Continue and a body read until close on HTTP/1.0.
#[test]
fn chunked_interim_and_until_close_bodies() {
    let chunked = raw_server(|mut s| {
        while read_head(&mut s) {
            let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
            if s.write_all(resp).is_err() {
                return;
            }
        }
    });
    let (_, r) = regbench_json(&["run", &format!("http://{chunked}/"), "-c", "2", "-n", "20"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 20);
    assert_eq!(r["overall"]["body_bytes"], 20 * 9);
    assert_eq!(
        r["overall"]["connections"]["new"], 2,
        "chunked responses keep the connection"
    );

    let until_close = raw_server(|mut s| {
        if read_head(&mut s) {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello world");
        }
    });
    let (_, r) = regbench_json(&[
        "run",
        &format!("http://{until_close}/"),
        "-c",
        "1",
        "-n",
        "5",
    ]);
    assert_eq!(r["overall"]["status_codes"]["200"], 5);
    assert_eq!(r["overall"]["body_bytes"], 5 * 11);
    assert_eq!(r["overall"]["connections"]["new"], 5);
}

#[test]
fn garbage_is_a_protocol_error() {
    let addr = raw_server(|mut s| {
        if read_head(&mut s) {
            let _ = s.write_all(b"SMTP ready\r\n\r\n");
        }
    });
    let (_, r) = regbench_json(&["run", &format!("http://{addr}/"), "-c", "1", "-n", "3"]);
    assert_eq!(r["overall"]["errors"]["protocol"], 3);
}

#[test]
fn duration_bounds_the_run() {
    let target = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(10)),
        ..ServeConfig::default()
    });
    let t0 = Instant::now();
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", target.url()),
        "-c",
        "4",
        "-z",
        "1s",
    ]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let n = r["overall"]["requests"].as_u64().unwrap();
    // 4 connections × ~10 ms per request for 1 s ≈ 360–400 requests.
    assert!((250..=420).contains(&n), "{n} requests");
    assert!(ns(&r["run"]["duration_ns"]) >= Duration::from_secs(1));
}

#[test]
fn method_headers_and_body_are_sent() {
    // Echo the request head and body length back so the test can see what arrived.
    let addr = raw_server(|mut s| {
        use std::io::Read;
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"{\"q\":1}") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&got).to_string();
        let ok = text.starts_with("POST /x?y=1 HTTP/1.1\r\n")
            && text.contains("Content-Type: application/json\r\n")
            && text.contains("X-Trace: abc\r\n")
            && text.contains("Content-Length: 7\r\n");
        let status = if ok { "200 OK" } else { "400 Bad Request" };
        let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        let _ = TcpStream::shutdown(&s, std::net::Shutdown::Both);
    });
    let (_, r) = regbench_json(&[
        "run",
        &format!("http://{addr}/x?y=1"),
        "-c",
        "1",
        "-n",
        "1",
        "-m",
        "POST",
        "-H",
        "X-Trace: abc",
        "-T",
        "application/json",
        "-d",
        "{\"q\":1}",
    ]);
    assert_eq!(r["overall"]["status_codes"]["200"], 1, "{}", r["overall"]);
}

#[test]
fn resolve_pins_a_host_without_dns() {
    let target = demo_target(ServeConfig::default());
    let port = target.addr().port();
    let (code, r) = regbench_json(&[
        "run",
        &format!("http://registry.invalid:{port}/v2/"),
        "--resolve",
        &format!("registry.invalid:{port}:127.0.0.1"),
        "-c",
        "1",
        "-n",
        "5",
    ]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["status_codes"]["200"], 5);
    assert!(r["run"]["dns_ns"].is_null(), "pinned: no lookup");

    let (code, r) = regbench_json(&[
        "run",
        &format!("http://localhost:{port}/v2/"),
        "-c",
        "1",
        "-n",
        "3",
    ]);
    assert_eq!(code, 0);
    assert!(
        r["run"]["dns_ns"].is_u64(),
        "a name is resolved once and timed"
    );
}

#[test]
fn stalls_show_up_in_latency() {
    // A 400 ms pause every 800 ms: over 1.6 s some requests must wait for a pause to end.
    let target = demo_target(ServeConfig {
        stall: Some(Stall {
            pause: Duration::from_millis(400),
            period: Duration::from_millis(800),
        }),
        ..ServeConfig::default()
    });
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", target.url()),
        "-c",
        "2",
        "-z",
        "1600ms",
    ]);
    assert!(
        ns(&r["overall"]["latency"]["max_ns"]) >= Duration::from_millis(150),
        "{}",
        r["overall"]["latency"]
    );
}

/// A server that closes a keep-alive connection after one response without saying so (as idle
/// timeouts do): the next request on it finds the connection dead before any response byte, is retried
/// once on a new connection, and is not counted as an error.
#[test]
fn stale_keepalive_connection_is_retried_once() {
    let addr = raw_server(|mut s| {
        if read_head(&mut s) {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let (_, r) = regbench_json(&["run", &format!("http://{addr}/"), "-c", "1", "-n", "20"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 20, "{}", r["overall"]);
    assert_eq!(r["overall"]["errors_total"], 0);
    assert_eq!(r["overall"]["connections"]["new"], 20);

    // A server that closes every connection before answering is not retried forever: one retry, then
    // the error counts.
    let dead = raw_server(|mut s| {
        let _ = read_head(&mut s);
    });
    let (_, r) = regbench_json(&["run", &format!("http://{dead}/"), "-c", "1", "-n", "3"]);
    assert_eq!(r["overall"]["errors"]["closed"], 3, "{}", r["overall"]);
}

/// Large bodies grow the connection's read buffer (2 KiB → 64 KiB) without losing a byte, and the
/// connection stays reusable.
#[test]
fn large_bodies_are_read_whole() {
    let t = demo_target(ServeConfig {
        layer_size: 1 << 20,
        repos: 1,
        ..ServeConfig::default()
    });
    let layer = t.state().content.repos[0].layers[0].clone();
    let url = format!("{}/v2/demo/app-000/blobs/{layer}", t.url());
    let (_, r) = regbench_json(&["run", &url, "-c", "2", "-n", "8"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 8);
    assert_eq!(r["overall"]["body_bytes"], 8u64 << 20);
    assert_eq!(r["overall"]["connections"]["new"], 2);
}

/// `--redirect N` follows same-origin redirects (each hop a request of the step, counted); without
/// it a 3xx is the result; another origin is never followed.
#[test]
fn redirects_are_followed_only_when_asked_and_only_on_the_same_origin() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                answer_requests(s, |line, _| {
                    let resp = match line.split_whitespace().nth(1).unwrap_or("") {
                        "/old" => format!("HTTP/1.1 301 Moved\r\nLocation: http://{addr}/mid\r\nContent-Length: 0\r\n\r\n"),
                        "/mid" => "HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n".to_string(),
                        "/away" => "HTTP/1.1 302 Found\r\nLocation: http://example.invalid/x\r\nContent-Length: 0\r\n\r\n".to_string(),
                        _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
                    };
                    resp.into_bytes()
                })
            });
        }
    });
    let url = format!("http://{addr}/old");
    let (_, r) = regbench_json(&["run", &url, "-c", "1", "-n", "4", "--redirect", "5"]);
    let all = &r["overall"];
    assert_eq!(all["status_codes"]["301"], 4, "{all}");
    assert_eq!(all["status_codes"]["302"], 4, "{all}");
    assert_eq!(all["status_codes"]["200"], 4, "{all}");
    assert_eq!(all["redirects"], 8);
    // One hop allowed: the 302 is the result.
    let (_, r) = regbench_json(&["run", &url, "-c", "1", "-n", "4", "--redirect", "1"]);
    assert_eq!(r["overall"]["status_codes"]["302"], 4);
    assert!(r["overall"]["status_codes"]["200"].is_null());
    // Not asked: the 301 is the result.
    let (_, r) = regbench_json(&["run", &url, "-c", "1", "-n", "4"]);
    assert_eq!(r["overall"]["status_codes"]["301"], 4);
    assert_eq!(r["overall"]["redirects"], 0);
    // Another origin is never followed.
    let (_, r) = regbench_json(&[
        "run",
        &format!("http://{addr}/away"),
        "-n",
        "3",
        "--redirect",
        "5",
    ]);
    assert_eq!(r["overall"]["status_codes"]["302"], 3);
    assert_eq!(r["overall"]["redirects"], 0);
}

/// `--unix-socket` sends plain HTTP over a Unix socket; the URL gives the Host header and the path.
#[test]
fn unix_socket_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let hosts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hosts.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                answer_requests(s, |line, headers| {
                    for h in headers {
                        if let Some(v) = h.strip_prefix("Host: ") {
                            seen.lock().unwrap().push(format!("{line} {}", v.trim()));
                        }
                    }
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
                })
            });
        }
    });
    let sock = path.to_str().unwrap();
    let (code, r) = regbench_json(&[
        "run",
        "http://registry.local/v2/",
        "--unix-socket",
        sock,
        "-n",
        "10",
        "-c",
        "2",
    ]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["status_codes"]["200"], 10, "{}", r["overall"]);
    assert_eq!(r["run"]["address"], format!("unix:{sock}"));
    let hosts = hosts.lock().unwrap();
    assert_eq!(hosts.len(), 10);
    assert!(
        hosts
            .iter()
            .all(|h| h == "GET /v2/ HTTP/1.1 registry.local"),
        "{hosts:?}"
    );
    let (code, _) = regbench(&[
        "run",
        "https://registry.local/",
        "--unix-socket",
        sock,
        "-n",
        "1",
    ]);
    assert_eq!(code, 2, "TLS over a Unix socket is refused");
}

/// `-x/--proxy` tunnels each connection through an HTTP proxy with CONNECT (once per connection, not
/// per request); a proxy that refuses is `refused`.
#[test]
fn requests_go_through_a_connect_proxy() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    fn proxy(
        refuse: bool,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(client.try_clone().unwrap());
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    log.lock().unwrap().push(line.trim().to_string());
                    let mut c = client;
                    if refuse {
                        let _ = c.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
                        return;
                    }
                    let target = line.split_whitespace().nth(1).unwrap().to_string();
                    let upstream = TcpStream::connect(target).unwrap();
                    c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    let (mut a, mut b) = (c.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c2, mut u2) = (c, upstream);
                    std::thread::spawn(move || std::io::copy(&mut u2, &mut a));
                    let _ = std::io::copy(&mut c2, &mut b);
                });
            }
        });
        (addr, seen)
    }
    let t = demo_target(ServeConfig::default());
    let (paddr, seen) = proxy(false);
    let url = format!("{}/v2/", t.url());
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "-n",
        "20",
        "-c",
        "2",
        "-x",
        &format!("http://{paddr}"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["status_codes"]["200"], 20, "{}", r["overall"]);
    assert_eq!(r["run"]["proxy"], paddr.to_string());
    let tunnels = seen.lock().unwrap().clone();
    assert_eq!(
        tunnels,
        vec![format!("CONNECT {} HTTP/1.1", t.addr()); 2],
        "one tunnel per connection"
    );
    let (paddr, _) = proxy(true);
    let (_, r) = regbench_json(&[
        "run",
        &url,
        "-n",
        "3",
        "-c",
        "1",
        "--proxy",
        &format!("http://{paddr}"),
    ]);
    assert_eq!(r["overall"]["errors"]["refused"], 3, "{}", r["overall"]);
}
