//! Shared fixtures: run regbench in-process, start targets on port 0, a tiny independent HTTP client.

#![allow(dead_code)]

pub mod h2c;
pub mod nginx;
pub mod registry;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use regbench::app::{self, Options};
use regbench::serve::{self, ServeConfig, Server};
use serde_json::Value;

/// Runs regbench in-process; returns the exit code and stdout.
pub fn regbench(args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let mut argv = vec!["regbench"];
    argv.extend_from_slice(args);
    let code = app::run(
        argv,
        &mut out,
        Options {
            handle_signals: false,
        },
    );
    (code, String::from_utf8(out).expect("the report is UTF-8"))
}

/// Runs regbench with `-o json --quiet` added; returns the exit code and the parsed JSON report,
/// which must validate against the schema: every report a test sees checks the contract.
pub fn regbench_json(args: &[&str]) -> (u8, Value) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json", "--quiet"]);
    let (code, out) = regbench(&all);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_valid(&v);
    (code, v)
}

/// A report's step (tag) object by name.
pub fn step<'r>(r: &'r Value, name: &str) -> &'r Value {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {}", r["steps"]))
}

/// The demo target on 127.0.0.1:0.
pub fn demo_target(config: ServeConfig) -> Server {
    serve::spawn("127.0.0.1:0".parse().unwrap(), config).expect("demo target starts")
}

/// `regbench serve` with these knobs in a process of its own (its own file descriptors, and a PID
/// to watch), stopped on drop.
pub struct Served {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Served {
    pub fn start(knobs: &[&str]) -> Served {
        Served::start_at(closed_port(), knobs)
    }

    /// On this address (a restarted target keeps its port).
    pub fn start_at(addr: SocketAddr, knobs: &[&str]) -> Served {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
            .args(["serve", "--addr", &addr.to_string()])
            .args(knobs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "regbench serve did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Served { addr, child }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v2/", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it now (a crash, or the first half of a restart).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address where nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A raw server on its own thread: each accepted connection is handed to `handler`. Serves until the
/// test process ends; loads against it are bounded by the tests.
pub fn raw_server(handler: fn(TcpStream)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || handler(s));
        }
    });
    addr
}

/// Reads one request head (up to the blank line); false on EOF.
pub fn read_head(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// Closes with RST instead of FIN (SO_LINGER 0), as a crashing or overloaded server does.
pub fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(s);
}

/// A response from [`http`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A minimal, independent HTTP/1.1 client (one request per connection), so the target is not tested
/// with the engine under test.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    http_body(addr, method, path, headers, b"")
}

/// [`http`] with a request body (Content-Length set).
pub fn http_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body,
    }
}

/// A duration field of the JSON report (integer nanoseconds) as a Duration.
pub fn ns(v: &Value) -> Duration {
    Duration::from_nanos(
        v.as_u64()
            .unwrap_or_else(|| panic!("not a ns integer: {v}")),
    )
}

/// The checked-in JSON Schema of the report.
pub fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
    let text = std::fs::read_to_string(path).expect("schema/report.schema.json is checked in");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Fails with every violation if `report` does not match the schema.
pub fn assert_valid(report: &Value) {
    let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "report violates schema: {errors:#?}");
}

/// What a [`CountingServer`] saw: requests per `METHOD PATH X-Step`, counted at the target, so a test
/// checks what regbench actually sent rather than what it reports.
pub type Seen = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>;

/// An independent HTTP/1.1 keep-alive server on 127.0.0.1:0 that answers 200 to everything and counts
/// each request under `"METHOD PATH step[ ?QUERY-KEYS][ body=BODY]"`: `step` is the `X-Step` header
/// (or `-`), the query contributes only its keys (`?it&vu`), and a body is included whole.
pub fn counting_server() -> (SocketAddr, Seen) {
    let seen: Seen = Default::default();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let counts = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || serve_counted(s, &counts));
        }
    });
    (addr, seen)
}

fn serve_counted(s: TcpStream, seen: &Seen) {
    use std::io::BufRead;
    let mut w = s.try_clone().unwrap();
    let mut r = std::io::BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        // Templated steps put per-iteration values in the query: only its keys are counted.
        let (path, query) = parts
            .next()
            .unwrap_or("")
            .split_once('?')
            .map_or((String::new(), String::new()), |(p, q)| {
                (p.to_string(), q.to_string())
            });
        let keys: Vec<&str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        let path = if path.is_empty() {
            line.split_whitespace().nth(1).unwrap_or("").to_string()
        } else {
            path
        };
        let (mut len, mut step) = (0usize, "-".to_string());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                match n.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "x-step" => step = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let mut key = format!("{method} {path} {step}");
        if !keys.is_empty() {
            key.push_str(&format!(" ?{}", keys.join("&")));
        }
        if !body.is_empty() {
            key.push_str(&format!(" body={}", String::from_utf8_lossy(&body)));
        }
        *seen.lock().unwrap().entry(key).or_insert(0) += 1;
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// Answers HTTP/1.1 keep-alive requests (without bodies) on one connection until it closes:
/// `respond(request_line, headers)` gives each whole response. For tests' own small servers.
pub fn answer_requests<S: Read + Write>(s: S, mut respond: impl FnMut(&str, &[String]) -> Vec<u8>) {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            headers.push(h.trim_end().to_string());
        }
        let resp = respond(line.trim_end(), &headers);
        if r.get_mut().write_all(&resp).is_err() {
            return;
        }
    }
}

/// Opens an HTML report in headless Chromium with a probe script added (only to a copy), which
/// measures every chart as laid out and collects script and console errors; asserts there were none
/// and returns what the probe saw (`charts`, `drawn`, `windows`, `sections`). Network is off: a proxy
/// that refuses everything, and the page must reference nothing outside itself.
pub fn chromium_probe(html: &std::path::Path) -> Value {
    let page = std::fs::read_to_string(html).unwrap();
    for external in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(
            !page.contains(external),
            "the report must be self-contained: {external}"
        );
    }
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium not found: apt-get install -y chromium (scripts/test.sh does)");
    const PROBE: &str = r#"<script>
window.__errors = [];
addEventListener('error', e => __errors.push('error: ' + e.message));
console.error = (...a) => __errors.push('console: ' + a.join(' '));
addEventListener('load', () => {
  const charts = [...document.querySelectorAll('svg.chart')];
  const drawn = charts.filter(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('polyline, rect.bar, circle')]
      .filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
    return box.width > 300 && box.height > 80 && marks.length > 0;
  });
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    charts: charts.length,
    drawn: drawn.length,
    windows: document.querySelectorAll('svg.chart rect.window').length,
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    errors: __errors,
  });
  document.body.appendChild(out);
});
</script>"#;
    let probed = html.with_extension("probe.html");
    std::fs::write(
        &probed,
        page.replacen("<head>", &format!("<head>{PROBE}"), 1),
    )
    .unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--enable-logging=stderr",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", probed.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let probe = dom
        .split_once("<pre id=\"probe\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| {
            json.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .unwrap_or_else(|| panic!("the probe did not run: {stderr}"));
    let probe: Value = serde_json::from_str(&probe).unwrap();
    assert_eq!(probe["errors"], serde_json::json!([]), "{probe}");
    assert!(!stderr.contains("CONSOLE"), "console messages: {stderr}");
    probe
}

/// Tests that load the machine hard (several generators, a browser, a stress search) or judge
/// latency against tight bounds take this, so that no two of them overlap on a 2-core machine: a
/// timing test beside a heavy one would measure its neighbour. Other tests still run beside them.
pub fn machine() -> std::sync::MutexGuard<'static, ()> {
    static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding it poisoned nothing the next one needs.
    MACHINE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An independent server in Python (a script in tests/util that prints the port it bound), stopped
/// on drop.
pub struct PythonPeer {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl PythonPeer {
    /// Starts `tests/util/SCRIPT`; `package` is the pip package it needs, named when it cannot start.
    pub fn start(script: &str, package: &str) -> PythonPeer {
        use std::io::BufRead;
        let path = format!("{}/tests/util/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = std::process::Command::new("python3")
            .arg(path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} did not start (install it: python3 -m pip install {package}; \
                 scripts/test.sh does)"
            );
        };
        PythonPeer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
