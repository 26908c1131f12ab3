use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use regbench::serve::{tls as stls, ServeConfig, Server};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use crate::util::*;

/// A test PKI: a CA, a server certificate for localhost/127.0.0.1 and a client certificate, all
/// signed by the CA, written as PEM files into `dir`.
struct Pki {
    ca_der: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "regbench test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["client.test".into()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    Pki {
        ca_der: ca.der().clone(),
        server: (
            server.der().clone(),
            PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        ),
        ca_pem: write("ca.pem", ca.pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}

fn tls_target(pki: &Pki, require_client_cert: bool) -> Server {
    let client_ca = require_client_cert.then(|| vec![pki.ca_der.clone()]);
    let config = stls::server_config(
        vec![pki.server.0.clone()],
        pki.server.1.clone_key(),
        client_ca,
    )
    .unwrap();
    demo_target(ServeConfig {
        tls: Some(Arc::clone(&config)),
        ..ServeConfig::default()
    })
}

/// `https://localhost:PORT/v2/` pinned to 127.0.0.1, with the test CA trusted.
fn args<'a>(url: &'a str, resolve: &'a str, pki: &'a Pki) -> Vec<&'a str> {
    vec!["run", url, "--resolve", resolve, "--cacert", &pki.ca_pem]
}

fn tls_of(r: &Value) -> &Value {
    &r["overall"]["connections"]["tls"]
}

#[test]
fn tls_12_and_13_handshakes_are_timed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, false);
    let port = t.addr().port();
    let url = format!("https://localhost:{port}/v2/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    for (flag, version) in [("--tls-max", "1.2"), ("--tls-min", "1.3")] {
        let mut a = args(&url, &resolve, &pki);
        a.extend(["-c", "3", "-n", "30", "--http1", flag, version]);
        let (code, r) = regbench_json(&a);
        assert_eq!(code, 0);
        assert_valid(&r);
        assert_eq!(r["overall"]["status_codes"]["200"], 30, "{}", r["overall"]);
        let tls = tls_of(&r);
        assert_eq!(tls["handshakes"], 3, "one per connection: {tls}");
        assert_eq!(tls["handshake"]["count"], 3);
        assert!(tls["handshake"]["min_ns"].as_u64().unwrap() > 0);
        let neg = &tls["negotiated"][0];
        assert_eq!(neg["version"], format!("TLSv{version}"));
        assert_eq!(neg["alpn"], "http/1.1");
        assert_eq!(neg["count"], 3);
    }
    let (_, text) = regbench(&[&args(&url, &resolve, &pki)[..], &["-n", "5", "--quiet"]].concat());
    assert!(
        text.contains("TLS handshakes") && text.contains("negotiated   TLSv1.3"),
        "{text}"
    );
}

#[test]
fn untrusted_certificates_are_tls_errors_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, false);
    let url = format!("https://localhost:{}/v2/", t.addr().port());
    let resolve = format!("localhost:{}:127.0.0.1", t.addr().port());
    let (_, r) = regbench_json(&["run", &url, "--resolve", &resolve, "-c", "2", "-n", "6"]);
    assert_eq!(
        r["overall"]["errors"]["tls"], 6,
        "not signed by a trusted CA: {}",
        r["overall"]
    );
    let (_, r) = regbench_json(&[
        "run",
        &url,
        "--resolve",
        &resolve,
        "-c",
        "2",
        "-n",
        "6",
        "--insecure",
    ]);
    assert_eq!(r["overall"]["status_codes"]["200"], 6);
    // The name must match the certificate too: SNI another name and verification fails.
    let mut a = args(&url, &resolve, &pki);
    a.extend(["-n", "2", "-c", "1", "--sni", "other.test"]);
    let (_, r) = regbench_json(&a);
    assert_eq!(r["overall"]["errors"]["tls"], 2);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, true);
    let port = t.addr().port();
    let url = format!("https://localhost:{port}/v2/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    // Over h2 (ALPN's pick) and HTTP/1.1: the server's alert, not the reset after it, is the error.
    for version in ["--http2", "--http1"] {
        let mut without = args(&url, &resolve, &pki);
        without.extend(["-c", "2", "-n", "8", version]);
        let (_, r) = regbench_json(&without);
        assert_eq!(
            r["overall"]["errors"]["tls"], 8,
            "{version}: refused without a client certificate: {}",
            r["overall"]
        );
    }
    let mut with = args(&url, &resolve, &pki);
    with.extend([
        "-c",
        "2",
        "-n",
        "8",
        "--cert",
        &pki.client_cert,
        "--key",
        &pki.client_key,
    ]);
    let (code, r) = regbench_json(&with);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["status_codes"]["200"], 8, "{}", r["overall"]);
}

#[test]
fn resumption_saves_full_handshakes_without_keepalive() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, false);
    let port = t.addr().port();
    let url = format!("https://localhost:{port}/v2/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let run = |resumption: &str| {
        let mut a = args(&url, &resolve, &pki);
        a.extend([
            "-c",
            "1",
            "-n",
            "20",
            "--no-keepalive",
            "--tls-resumption",
            resumption,
        ]);
        let (_, r) = regbench_json(&a);
        assert_eq!(r["overall"]["status_codes"]["200"], 20);
        tls_of(&r)["resumed"].as_u64().unwrap()
    };
    let (on, off) = (run("on"), run("off"));
    assert_eq!(off, 0);
    assert!(
        on >= 18,
        "only the first connection needs a full handshake: {on} of 20 resumed"
    );
}

#[test]
fn scenario_files_take_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, true);
    let port = t.addr().port();
    let file = dir.path().join("tls.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbase_url = \"https://localhost:{port}\"\n[defaults.tls]\ncacert = \"ca.pem\"\n\
             cert = \"client.pem\"\nkey = \"client.key\"\nmax = \"1.2\"\n\n[[scenario]]\nname = \"s\"\n\
             executor = \"shared-iterations\"\nvus = 1\niterations = 5\n[scenario.request]\nurl = \"/v2/\"\n"
        ),
    )
    .unwrap();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let (code, r) = regbench_json(&["run", file.to_str().unwrap(), "--resolve", &resolve]);
    assert_eq!(code, 0, "{}", r["overall"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 5);
    assert_eq!(tls_of(&r)["negotiated"][0]["version"], "TLSv1.2");
}

#[test]
fn a_tls_flag_overrides_one_setting_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, false);
    let port = t.addr().port();
    let file = dir.path().join("tls.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbase_url = \"https://localhost:{port}\"\nkeepalive = false\n[defaults.tls]\ncacert = \"ca.pem\"\n\n\
             [[scenario]]\nname = \"s\"\nexecutor = \"shared-iterations\"\nvus = 1\niterations = 6\n[scenario.request]\nurl = \"/v2/\"\n"
        ),
    )
    .unwrap();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let (code, r) = regbench_json(&[
        "run",
        file.to_str().unwrap(),
        "--resolve",
        &resolve,
        "--tls-resumption",
        "off",
    ]);
    assert_eq!(code, 0, "the file's cacert still applies: {}", r["overall"]);
    assert_eq!(tls_of(&r)["handshakes"], 6);
    assert_eq!(tls_of(&r)["resumed"], 0, "the flag turned resumption off");
}

/// gRPC (grpcs://, ALPN h2, the method found by server reflection over TLS), WebSocket (wss://) and
/// an event stream (https://) against the TLS demo target, its certificate verified.
#[test]
fn grpc_websocket_and_sse_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let t = tls_target(&pki, false);
    let port = t.addr().port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let grpc = format!("grpcs://localhost:{port}/regbench.demo.v1.Registry/Lookup");
    let mut a = args(&grpc, &resolve, &pki);
    a.extend([
        "-d",
        r#"{"name": "io.example.demo/server-0002"}"#,
        "-n",
        "10",
        "-c",
        "2",
    ]);
    let (code, r) = regbench_json(&a);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["grpc_status"]["OK"], 10, "{}", r["overall"]);
    assert_eq!(tls_of(&r)["negotiated"][0]["alpn"], "h2", "{}", tls_of(&r));

    let ws = format!("wss://localhost:{port}/ws/echo");
    let mut a = args(&ws, &resolve, &pki);
    a.extend(["-d", "hello", "-n", "10", "-c", "2"]);
    let (code, r) = regbench_json(&a);
    assert_eq!(code, 0);
    assert_eq!(step(&r, "WS /ws/echo")["delivered"], 10);
    assert_eq!(
        tls_of(&r)["negotiated"][0]["alpn"],
        "http/1.1",
        "{}",
        tls_of(&r)
    );

    let sse = format!("https://localhost:{port}/sse/watch?count=3&interval_ms=1");
    let mut a = args(&sse, &resolve, &pki);
    a.extend(["--sse-events", "3", "-n", "4", "-c", "2"]);
    let (code, r) = regbench_json(&a);
    assert_eq!(code, 0);
    assert_eq!(
        step(&r, "SSE /sse/watch?count=3&interval_ms=1/event")["delivered"],
        12
    );
}
