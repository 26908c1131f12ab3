use std::time::{Duration, Instant};

use regbench::serve::{
    digest, server_id, LatencyModel, ServeConfig, DOCKER_MANIFEST, OCI_MANIFEST,
};

use crate::util::*;

const ACCEPT_ALL: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn base_and_catalog_pagination() {
    let t = demo_target(ServeConfig {
        repos: 23,
        ..ServeConfig::default()
    });
    let r = http(t.addr(), "GET", "/v2/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    // Follow Link headers until there is none; every repository appears once, in order.
    let mut path = "/v2/_catalog?n=7".to_string();
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let r = http(t.addr(), "GET", &path, &[]);
        assert_eq!(r.status, 200);
        pages += 1;
        for n in r.json()["repositories"].as_array().unwrap() {
            names.push(n.as_str().unwrap().to_string());
        }
        match r.header("link") {
            Some(link) => {
                assert!(link.ends_with("rel=\"next\""), "{link}");
                path = link[1..link.find('>').unwrap()].to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(names.len(), 23);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, names);
}

#[test]
fn tags_and_unknown_names() {
    let t = demo_target(ServeConfig::default());
    let r = http(t.addr(), "GET", "/v2/demo/app-001/tags/list", &[]);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["name"], "demo/app-001");
    assert_eq!(body["tags"].as_array().unwrap().len(), 5);
    let r = http(t.addr(), "GET", "/v2/demo/app-001/tags/list?n=2", &[]);
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), 2);
    assert!(r.header("link").is_some());

    let r = http(t.addr(), "GET", "/v2/no/such/tags/list", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN");
    let r = http(
        t.addr(),
        "GET",
        "/v2/no/such/manifests/v1",
        &[("Accept", ACCEPT_ALL)],
    );
    assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN");
}

#[test]
fn manifests_need_accept_and_carry_true_digests() {
    let t = demo_target(ServeConfig::default());
    for (repo, media_type) in [
        ("demo/app-000", OCI_MANIFEST),
        ("demo/app-001", DOCKER_MANIFEST),
    ] {
        let path = format!("/v2/{repo}/manifests/v1");
        let r = http(t.addr(), "GET", &path, &[]);
        assert_eq!(r.status, 404, "no Accept: registries refuse");
        assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");

        let r = http(t.addr(), "GET", &path, &[("Accept", ACCEPT_ALL)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(media_type));
        let d = r.header("docker-content-digest").unwrap().to_string();
        assert_eq!(
            digest(&r.body),
            d,
            "Docker-Content-Digest is the body's sha256"
        );

        let h = http(t.addr(), "HEAD", &path, &[("Accept", media_type)]);
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert_eq!(h.header("docker-content-digest"), Some(d.as_str()));

        // By digest, the stored manifest is served whatever Accept says.
        let by_digest = http(t.addr(), "GET", &format!("/v2/{repo}/manifests/{d}"), &[]);
        assert_eq!(by_digest.status, 200);
        assert_eq!(by_digest.body, r.body);

        // Every blob the manifest names is served, with a matching digest.
        let m = r.json();
        let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        for l in m["layers"].as_array().unwrap() {
            digests.push(l["digest"].as_str().unwrap().to_string());
        }
        for bd in digests {
            let b = http(t.addr(), "GET", &format!("/v2/{repo}/blobs/{bd}"), &[]);
            assert_eq!(b.status, 200);
            assert_eq!(digest(&b.body), bd);
        }
    }
    let r = http(
        t.addr(),
        "GET",
        "/v2/demo/app-000/manifests/nope",
        &[("Accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 404);
}

#[test]
fn blobs_honour_range_and_head() {
    let t = demo_target(ServeConfig {
        layer_size: 10_000,
        ..ServeConfig::default()
    });
    let layer = t.state().content.repos[0].layers[0].clone();
    let path = format!("/v2/demo/app-000/blobs/{layer}");
    let full = http(t.addr(), "GET", &path, &[]);
    assert_eq!(full.body.len(), 10_000);
    let part = http(t.addr(), "GET", &path, &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, full.body[100..200]);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/10000"));
    let tail = http(t.addr(), "GET", &path, &[("Range", "bytes=-10")]);
    assert_eq!(tail.body, full.body[9_990..]);
    let bad = http(t.addr(), "GET", &path, &[("Range", "bytes=20000-")]);
    assert_eq!(bad.status, 416);
    let head = http(t.addr(), "HEAD", &path, &[]);
    assert_eq!(head.header("content-length"), Some("10000"));
    assert!(head.body.is_empty());
    let unknown = http(t.addr(), "GET", "/v2/demo/app-000/blobs/sha256:00", &[]);
    assert_eq!(unknown.json()["errors"][0]["code"], "BLOB_UNKNOWN");
}

#[test]
fn service_registry_list_get_status_sync() {
    let t = demo_target(ServeConfig {
        servers: 95,
        sync_per_server: Duration::from_millis(2),
        ..ServeConfig::default()
    });
    let mut ids = Vec::new();
    let mut path = "/v1/registry?limit=30".to_string();
    loop {
        let page = http(t.addr(), "GET", &path, &[]).json();
        for s in page["servers"].as_array().unwrap() {
            ids.push(s["id"].as_str().unwrap().to_string());
        }
        match page["metadata"]["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/registry?limit=30&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 95);
    let one = http(
        t.addr(),
        "GET",
        &format!("/v1/registry/{}", server_id(42)),
        &[],
    );
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], server_id(42));
    assert_eq!(http(t.addr(), "GET", "/v1/registry/nope", &[]).status, 404);

    let status = http(t.addr(), "GET", "/registry/status", &[]).json();
    assert_eq!(status["phase"], "idle");
    assert_eq!(status["servers"], 95);
    assert!(status["last_sync_unix_ms"].is_null());

    // 95 servers × 2 ms ≈ 190 ms of background sync.
    let r = http(t.addr(), "POST", "/registry/sync", &[]);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["started"], true);
    assert_eq!(
        http(t.addr(), "POST", "/registry/sync", &[]).json()["started"],
        false
    );
    assert_eq!(
        http(t.addr(), "GET", "/registry/status", &[]).json()["phase"],
        "syncing"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = http(t.addr(), "GET", "/registry/status", &[]).json();
        if s["phase"] == "idle" {
            assert_eq!(s["syncs_completed"], 1);
            assert!(s["last_sync_unix_ms"].is_u64());
            break;
        }
        assert!(Instant::now() < deadline, "sync never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_count_requests_by_route() {
    let t = demo_target(ServeConfig::default());
    for _ in 0..3 {
        http(t.addr(), "GET", "/v2/_catalog", &[]);
    }
    http(t.addr(), "GET", "/nope", &[]);
    let m = http(t.addr(), "GET", "/metrics", &[]);
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("regbench_demo_requests_total{route=\"catalog\",code=\"2xx\"} 3"),
        "{text}"
    );
    assert!(text.contains("regbench_demo_requests_total{route=\"not_found\",code=\"4xx\"} 1"));
    assert!(text.contains("regbench_demo_request_duration_seconds_count{route=\"catalog\"} 3"));
    let rss: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 1 << 20);
}

#[test]
fn shutdown_lets_open_requests_finish() {
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(300)),
        ..ServeConfig::default()
    });
    let addr = t.addr();
    let client = std::thread::spawn(move || http(addr, "GET", "/v2/", &[]));
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    t.shutdown();
    assert_eq!(
        client.join().unwrap().status,
        200,
        "the in-flight request completed"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

#[test]
fn registry_auth_challenges_and_tokens() {
    use regbench::serve::auth::Auth;
    let t = demo_target(ServeConfig {
        auth: Auth::parse("bearer:ci:pw").unwrap(),
        ..ServeConfig::default()
    });
    let r = http(t.addr(), "GET", "/v2/demo/app-000/tags/list", &[]);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"http://test/token\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:demo/app-000:pull\""),
        "{challenge}"
    );
    // The token server wants credentials.
    assert_eq!(
        http(
            t.addr(),
            "GET",
            "/token?scope=repository:demo/app-000:pull",
            &[]
        )
        .status,
        401
    );
    let basic = "Basic Y2k6cHc="; // ci:pw
    let tok = http(
        t.addr(),
        "GET",
        "/token?service=regbench-demo&scope=repository:demo/app-000:pull",
        &[("Authorization", basic)],
    );
    assert_eq!(tok.status, 200);
    let bearer = format!("Bearer {}", tok.json()["token"].as_str().unwrap());
    let r = http(
        t.addr(),
        "GET",
        "/v2/demo/app-000/tags/list",
        &[("Authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        http(
            t.addr(),
            "GET",
            "/v2/demo/app-001/tags/list",
            &[("Authorization", &bearer)]
        )
        .status,
        401,
        "the token is scoped to demo/app-000"
    );

    let basic_target = demo_target(ServeConfig {
        auth: Auth::parse("basic:ci:pw").unwrap(),
        ..ServeConfig::default()
    });
    let r = http(basic_target.addr(), "GET", "/v2/", &[]);
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Basic realm=\"regbench-demo\""))
    );
    assert_eq!(
        http(
            basic_target.addr(),
            "GET",
            "/v2/",
            &[("Authorization", basic)]
        )
        .status,
        200
    );
}

#[test]
fn pushes_monolithic_chunked_mount_and_manifest() {
    let t = demo_target(ServeConfig::default());
    let a = t.addr();
    let layer = b"a layer of synthetic bytes".repeat(100);
    let ld = digest(&layer);
    // Monolithic: POST for a location, PUT the whole blob with its digest.
    let r = http(a, "POST", "/v2/me/app/blobs/uploads/", &[]);
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();
    let r = http_body(a, "PUT", &format!("{loc}?digest={ld}"), &[], &layer);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(ld.as_str()));
    assert_eq!(
        http(a, "GET", &format!("/v2/me/app/blobs/{ld}"), &[]).body,
        layer
    );

    // Chunked: POST, PATCH with Content-Range twice, PUT to finish; a gap is refused.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#.to_vec();
    let cd = digest(&config);
    let loc = http(a, "POST", "/v2/me/app/blobs/uploads/", &[])
        .header("location")
        .unwrap()
        .to_string();
    let r = http_body(a, "PATCH", &loc, &[("Content-Range", "0-9")], &config[..10]);
    assert_eq!((r.status, r.header("range")), (202, Some("0-9")));
    assert_eq!(
        http_body(
            a,
            "PATCH",
            &loc,
            &[("Content-Range", "20-30")],
            &config[20..31]
        )
        .status,
        416
    );
    let r = http_body(
        a,
        "PATCH",
        &loc,
        &[("Content-Range", &format!("10-{}", config.len() - 1))],
        &config[10..],
    );
    assert_eq!(r.status, 202);
    assert_eq!(
        http(a, "PUT", &format!("{loc}?digest={cd}"), &[]).status,
        201
    );

    // A wrong digest is refused; a single POST with ?digest= works; a mount from another repo too.
    let loc = http(a, "POST", "/v2/me/app/blobs/uploads/", &[])
        .header("location")
        .unwrap()
        .to_string();
    let r = http_body(a, "PUT", &format!("{loc}?digest=sha256:00"), &[], b"x");
    assert_eq!(
        (r.status, r.json()["errors"][0]["code"].as_str()),
        (400, Some("DIGEST_INVALID"))
    );
    let small = b"tiny";
    let r = http_body(
        a,
        "POST",
        &format!("/v2/me/app/blobs/uploads/?digest={}", digest(small)),
        &[],
        small,
    );
    assert_eq!(r.status, 201);
    let r = http(
        a,
        "POST",
        &format!("/v2/you/app/blobs/uploads/?mount={ld}&from=me/app"),
        &[],
    );
    assert_eq!(
        (r.status, r.header("location")),
        (201, Some(format!("/v2/you/app/blobs/{ld}").as_str()))
    );

    // Manifest PUT: refused while a blob is unknown, stored and served once all exist.
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let missing = manifest.replace(
        &ld,
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );
    let r = http_body(
        a,
        "PUT",
        "/v2/me/app/manifests/v0",
        &[("Content-Type", OCI_MANIFEST)],
        missing.as_bytes(),
    );
    assert_eq!(
        (r.status, r.json()["errors"][0]["code"].as_str()),
        (400, Some("MANIFEST_BLOB_UNKNOWN"))
    );
    let r = http_body(
        a,
        "PUT",
        "/v2/me/app/manifests/v1",
        &[("Content-Type", OCI_MANIFEST)],
        manifest.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let md = r.header("docker-content-digest").unwrap().to_string();
    assert_eq!(md, digest(manifest.as_bytes()));
    let got = http(
        a,
        "GET",
        "/v2/me/app/manifests/v1",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, manifest.as_bytes())
    );
    assert_eq!(
        http(a, "GET", &format!("/v2/me/app/manifests/{md}"), &[]).status,
        200
    );
    assert_eq!(
        http(a, "GET", "/v2/me/app/tags/list", &[]).json()["tags"],
        serde_json::json!(["v1"])
    );
    let catalog = http(a, "GET", "/v2/_catalog?n=1000", &[]).json();
    assert!(catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "me/app"));
}

#[test]
fn pushing_needs_a_push_scope() {
    let t = demo_target(ServeConfig {
        auth: regbench::serve::auth::Auth::parse("bearer").unwrap(),
        ..ServeConfig::default()
    });
    let a = t.addr();
    let r = http(a, "POST", "/v2/me/app/blobs/uploads/", &[]);
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"repository:me/app:push\""));
    let token = |scope: &str| {
        let t = http(
            a,
            "GET",
            &format!("/token?service=regbench-demo&scope={scope}"),
            &[],
        )
        .json();
        format!("Bearer {}", t["token"].as_str().unwrap())
    };
    let pull = token("repository:me/app:pull");
    assert_eq!(
        http(
            a,
            "POST",
            "/v2/me/app/blobs/uploads/",
            &[("Authorization", &pull)]
        )
        .status,
        401
    );
    let push = token("repository:me/app:pull,push");
    assert_eq!(
        http(
            a,
            "POST",
            "/v2/me/app/blobs/uploads/",
            &[("Authorization", &push)]
        )
        .status,
        202
    );
}

/// The demo target speaks HTTP/2 too: h2c with prior knowledge on plain TCP (an independent client,
/// the `h2` crate), for the HTTP/2 engine to be tested against.
#[tokio::test]
async fn demo_target_speaks_h2c() {
    let t = demo_target(ServeConfig::default());
    let tcp = tokio::net::TcpStream::connect(t.addr()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    for path in ["/v2/", "/v2/_catalog?n=2"] {
        let req = http::Request::get(format!("http://{}{path}", t.addr()))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
    }
    assert_eq!(t.state().metrics.requests_total(), 2);
    // Close the connection before the server's graceful shutdown waits for it.
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}
