//! The push flow: upload (or mount) the layers, then the config and the manifest.

use super::*;

/// A push's per-virtual-user buffers.
pub(super) struct PushState<'a> {
    pub(super) data: &'a mut Vec<u8>,
    pub(super) base_pushed: &'a mut bool,
}

/// Seeds of the layers a push generates: the base layer is the same for the whole run (mounted),
/// the others new per virtual user, iteration and layer.
pub(super) const BASE_LAYER: u64 = 0xba5e_1a7e;

#[allow(clippy::too_many_arguments)]
pub(super) async fn push(
    cx: &Cx<'_, '_>,
    p: &Push,
    lane: &mut Lane,
    st: &mut PushState<'_>,
    image: &str,
    mount_from: Option<&str>,
    it: &Iteration,
    at: &mut Instant,
) -> Result<(), Outcome> {
    let (repo, tag) = split_image(image);
    let scope = format!("repository:{repo}:pull,push");
    cx.ping(lane, at).await?;
    let size = p.layer_size as usize;
    let mut layers = Vec::with_capacity(p.layers);
    for l in 0..p.layers {
        st.data.resize(size, 0);
        let mounted = match mount_from.filter(|_| l == 0) {
            Some(from) => {
                Rng::new(it.seed ^ BASE_LAYER).fill(st.data);
                let digest = sha256_digest(Sha256::new_with_prefix(&st.data[..]));
                if !*st.base_pushed {
                    let from_scope = format!("repository:{from}:pull,push");
                    upload(cx, lane, from, &from_scope, st.data, &digest, p.chunk, at).await?;
                    *st.base_pushed = true;
                }
                Some(digest)
            }
            None => {
                Rng::new(it.seed ^ (it.vu << 40) ^ (it.number << 8) ^ l as u64).fill(st.data);
                None
            }
        };
        let digest = match mounted {
            Some(digest) => {
                let path = format!(
                    "/v2/{repo}/blobs/uploads/?mount={digest}&from={}",
                    mount_from.unwrap_or("")
                );
                let req = Req::new("POST", &path, &[], b"", &[201, 202]);
                let status = cx.call(lane, PUSH_MOUNT, &scope, &req, None, at).await?;
                if status == 202 {
                    // The registry could not mount and opened an upload instead: finish it.
                    let loc = location(cx, lane)?;
                    finish(cx, lane, &scope, loc, st.data, &digest, p.chunk, at).await?;
                }
                digest
            }
            None => {
                let digest = sha256_digest(Sha256::new_with_prefix(&st.data[..]));
                upload(cx, lane, repo, &scope, st.data, &digest, p.chunk, at).await?;
                digest
            }
        };
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Labels": { "pushed-by": "regbench", "vu": it.vu, "iteration": it.number } },
        "rootfs": { "type": "layers", "diff_ids": [] },
    })
    .to_string();
    let config_digest = sha256_digest(Sha256::new_with_prefix(config.as_bytes()));
    upload(
        cx,
        lane,
        repo,
        &scope,
        config.as_bytes(),
        &config_digest,
        None,
        at,
    )
    .await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": layers,
    })
    .to_string();
    let path = format!("/v2/{repo}/manifests/{tag}");
    let headers = [("Content-Type", OCI_MANIFEST)];
    let req = Req::new("PUT", &path, &headers, manifest.as_bytes(), &[201]);
    cx.call(lane, PUSH_MANIFEST, &scope, &req, None, at).await?;
    Ok(())
}

/// The path of the upload URL a registry answered. None, or one on another origin, is a protocol
/// error here: every request goes to the registry's address.
pub(super) fn location(cx: &Cx<'_, '_>, lane: &Lane) -> Result<String, Outcome> {
    header(&lane.cap.head, "location")
        .and_then(|l| same_origin_path(&l, cx.io.target()).ok())
        .ok_or(Outcome::Error(ErrorKind::Protocol))
}

/// POST an upload, then send the blob.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload(
    cx: &Cx<'_, '_>,
    lane: &mut Lane,
    repo: &str,
    scope: &str,
    data: &[u8],
    digest: &str,
    chunk: Option<u64>,
    at: &mut Instant,
) -> Result<(), Outcome> {
    let path = format!("/v2/{repo}/blobs/uploads/");
    let req = Req::new("POST", &path, &[], b"", &[202]);
    cx.call(lane, PUSH_UPLOAD, scope, &req, None, at).await?;
    let loc = location(cx, lane)?;
    finish(cx, lane, scope, loc, data, digest, chunk, at).await
}

/// Sends an opened upload's bytes: one PUT (monolithic), or PATCH pieces with `Content-Range` and a
/// closing PUT (chunked), each to the Location the registry answered last.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    cx: &Cx<'_, '_>,
    lane: &mut Lane,
    scope: &str,
    mut loc: String,
    data: &[u8],
    digest: &str,
    chunk: Option<u64>,
    at: &mut Instant,
) -> Result<(), Outcome> {
    let octets = ("Content-Type", "application/octet-stream");
    let mut rest = data;
    if let Some(piece) = chunk {
        let mut offset = 0;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(rest.len().min(piece as usize));
            let range = format!("{offset}-{}", offset + now.len() - 1);
            let headers = [octets, ("Content-Range", range.as_str())];
            let req = Req::new("PATCH", &loc, &headers, now, &[202]);
            cx.call(lane, PUSH_CHUNK, scope, &req, None, at).await?;
            loc = location(cx, lane)?;
            offset += now.len();
            rest = later;
        }
    }
    let sep = if loc.contains('?') { '&' } else { '?' };
    let path = format!("{loc}{sep}digest={digest}");
    let headers = [octets];
    let req = Req::new("PUT", &path, &headers, rest, &[201]);
    cx.call(lane, PUSH_COMMIT, scope, &req, None, at).await?;
    Ok(())
}
