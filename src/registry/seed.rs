//! `regbench oci seed`: pushes deterministic synthetic images so pull benchmarks have content.
//! Idempotent: every blob and manifest is checked with HEAD first, so a second run pushes nothing.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::client::{Client, ClientError};
use crate::util::Rng;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What to push: `repos` repositories `PREFIX/app-NNN`, each with `tags` tags `vN` sharing `layers`
/// layers of `layer_size` bytes, and one config blob per tag.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    pub prefix: String,
    pub repos: usize,
    pub tags: usize,
    pub layers: usize,
    pub layer_size: u64,
}

/// What a seed run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub blobs_pushed: u64,
    pub blobs_present: u64,
    pub manifests_pushed: u64,
    pub manifests_present: u64,
    pub bytes_pushed: u64,
    pub took: Duration,
}

fn sha256(data: &[u8]) -> String {
    crate::util::sha256_digest(Sha256::new_with_prefix(data))
}

fn unexpected(what: &str, status: u16, body: &[u8]) -> ClientError {
    ClientError::Auth(format!(
        "{what}: the registry answered {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    ))
}

async fn ensure_blob(
    c: &mut Client,
    repo: &str,
    data: &[u8],
    report: &mut SeedReport,
) -> Result<String, ClientError> {
    let d = sha256(data);
    let scope = format!("repository:{repo}:pull,push");
    let head = c
        .request("HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], b"", &scope)
        .await?;
    if head.status == 200 {
        report.blobs_present += 1;
        return Ok(d);
    }
    let start = c
        .request(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
            &scope,
        )
        .await?;
    if start.status != 202 {
        return Err(unexpected(
            "starting a blob upload",
            start.status,
            &start.body,
        ));
    }
    let loc = start.header("location").unwrap_or_default();
    let loc = super::auth::same_origin_path(&loc, c.target())
        .map_err(|e| ClientError::Auth(format!("the upload Location: {e}")))?;
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = c
        .request(
            "PUT",
            &format!("{loc}{sep}digest={d}"),
            &[("Content-Type", "application/octet-stream")],
            data,
            &scope,
        )
        .await?;
    if put.status != 201 {
        return Err(unexpected("finishing a blob upload", put.status, &put.body));
    }
    report.blobs_pushed += 1;
    report.bytes_pushed += data.len() as u64;
    Ok(d)
}

/// Pushes what is missing. `progress(done, total)` is called after each image.
pub async fn seed(
    c: &mut Client,
    spec: &SeedSpec,
    mut progress: impl FnMut(u64, u64),
) -> Result<SeedReport, ClientError> {
    let t0 = Instant::now();
    let mut report = SeedReport::default();
    let total = (spec.repos * spec.tags) as u64;
    let mut done = 0;
    for r in 0..spec.repos {
        let repo = format!("{}/app-{r:03}", spec.prefix);
        let scope = format!("repository:{repo}:pull,push");
        let mut layers = Vec::with_capacity(spec.layers);
        for l in 0..spec.layers {
            let mut data = vec![0u8; spec.layer_size as usize];
            Rng::new(0x5eed_0000 ^ ((r as u64) << 20) ^ l as u64).fill(&mut data);
            let d = ensure_blob(c, &repo, &data, &mut report).await?;
            layers.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": data.len(),
            }));
        }
        for t in 1..=spec.tags {
            let tag = format!("v{t}");
            let config = serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "config": { "Labels": { "seeded-by": "regbench", "tag": tag } },
                "rootfs": { "type": "layers", "diff_ids": [] },
            })
            .to_string();
            let cd = ensure_blob(c, &repo, config.as_bytes(), &mut report).await?;
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len() },
                "layers": layers,
            })
            .to_string();
            let md = sha256(manifest.as_bytes());
            let path = format!("/v2/{repo}/manifests/{tag}");
            let head = c
                .request("HEAD", &path, &[("Accept", OCI_MANIFEST)], b"", &scope)
                .await?;
            if head.status == 200
                && head.header("docker-content-digest").as_deref() == Some(md.as_str())
            {
                report.manifests_present += 1;
            } else {
                let put = c
                    .request(
                        "PUT",
                        &path,
                        &[("Content-Type", OCI_MANIFEST)],
                        manifest.as_bytes(),
                        &scope,
                    )
                    .await?;
                if put.status != 201 {
                    return Err(unexpected("pushing a manifest", put.status, &put.body));
                }
                report.manifests_pushed += 1;
            }
            done += 1;
            progress(done, total);
        }
    }
    report.took = t0.elapsed();
    Ok(report)
}
