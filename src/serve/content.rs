//! The demo registry's content: repositories, tags, manifests and blobs, generated deterministically
//! from the configuration so every digest is a true sha256 of what is served.

use std::collections::HashMap;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::util::Rng;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Repositories `r` with `r % MULTI_PLATFORM_EVERY == MULTI_PLATFORM_EVERY - 1` (app-004, app-009,
/// …) are multi-platform: each tag is an index (OCI) or manifest list (Docker) of a linux/amd64 and
/// a linux/arm64/v8 image.
pub const MULTI_PLATFORM_EVERY: usize = 5;

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A stored manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub media_type: &'static str,
    pub digest: String,
    pub body: Bytes,
}

#[derive(Clone, Debug)]
pub struct Repo {
    pub name: String,
    /// Sorted lexically, as registries list them.
    pub tags: Vec<String>,
    /// Tag → manifest digest.
    pub by_tag: HashMap<String, String>,
    /// Digests of the layers every tag of this repository shares.
    pub layers: Vec<String>,
}

/// Everything the registry serves.
#[derive(Debug)]
pub struct Content {
    /// Sorted lexically by name.
    pub repos: Vec<Repo>,
    index: HashMap<String, usize>,
    manifests: HashMap<String, Manifest>,
    blobs: HashMap<String, Bytes>,
}

impl Content {
    /// `n_repos` repositories `demo/app-NNN`; `n_tags` tags each; `n_layers` layers of `layer_size`
    /// bytes per repository shared by its tags, plus one config blob per tag. Even-numbered repositories
    /// hold OCI manifests, odd ones Docker schema 2, as a real registry with mixed content does.
    pub fn generate(n_repos: usize, n_tags: usize, n_layers: usize, layer_size: u64) -> Content {
        let mut repos = Vec::with_capacity(n_repos);
        let mut manifests = HashMap::new();
        let mut blobs = HashMap::new();
        for r in 0..n_repos {
            let name = format!("demo/app-{r:03}");
            let oci = r % 2 == 0;
            let (mt, ct, lt) = if oci {
                (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
            } else {
                (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
            };
            let mut layers = Vec::with_capacity(n_layers);
            for l in 0..n_layers {
                let mut data = vec![0u8; layer_size as usize];
                Rng::new(((r as u64) << 32) | l as u64).fill(&mut data);
                let d = digest(&data);
                blobs.insert(d.clone(), Bytes::from(data));
                layers.push(d);
            }
            let mut tags: Vec<String> = (1..=n_tags).map(|t| format!("v{t}")).collect();
            tags.sort();
            let mut by_tag = HashMap::new();
            let multi = r % MULTI_PLATFORM_EVERY == MULTI_PLATFORM_EVERY - 1;
            for tag in &tags {
                let platforms: &[(&str, Option<&str>)] = if multi {
                    &[("amd64", None), ("arm64", Some("v8"))]
                } else {
                    &[("amd64", None)]
                };
                let mut entries = Vec::new();
                for &(arch, variant) in platforms {
                    let mut config = serde_json::json!({
                        "architecture": arch,
                        "os": "linux",
                        "config": { "Labels": { "org.opencontainers.image.ref.name": tag, "repo": name } },
                        "rootfs": { "type": "layers", "diff_ids": layers },
                    });
                    if let Some(v) = variant {
                        config["variant"] = v.into();
                    }
                    let config = Bytes::from(config.to_string());
                    let config_digest = digest(&config);
                    let layer_refs: Vec<_> = layers
                        .iter()
                        .map(|d| serde_json::json!({ "mediaType": lt, "digest": d, "size": layer_size }))
                        .collect();
                    let manifest = serde_json::json!({
                        "schemaVersion": 2,
                        "mediaType": mt,
                        "config": { "mediaType": ct, "digest": config_digest, "size": config.len() },
                        "layers": layer_refs,
                    });
                    let body = Bytes::from(manifest.to_string());
                    let md = digest(&body);
                    blobs.insert(config_digest, config);
                    let mut platform = serde_json::json!({ "architecture": arch, "os": "linux" });
                    if let Some(v) = variant {
                        platform["variant"] = v.into();
                    }
                    entries.push(serde_json::json!({
                        "mediaType": mt, "digest": md, "size": body.len(), "platform": platform,
                    }));
                    manifests.insert(
                        md.clone(),
                        Manifest {
                            media_type: mt,
                            digest: md,
                            body,
                        },
                    );
                }
                let tagged = if multi {
                    let it = if oci { OCI_INDEX } else { DOCKER_LIST };
                    let body = Bytes::from(
                        serde_json::json!({ "schemaVersion": 2, "mediaType": it, "manifests": entries })
                            .to_string(),
                    );
                    let d = digest(&body);
                    manifests.insert(
                        d.clone(),
                        Manifest {
                            media_type: it,
                            digest: d.clone(),
                            body,
                        },
                    );
                    d
                } else {
                    entries[0]["digest"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                };
                by_tag.insert(tag.clone(), tagged);
            }
            repos.push(Repo {
                name,
                tags,
                by_tag,
                layers,
            });
        }
        let index = repos
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        Content {
            repos,
            index,
            manifests,
            blobs,
        }
    }

    pub fn repo(&self, name: &str) -> Option<&Repo> {
        self.index.get(name).map(|&i| &self.repos[i])
    }

    /// A manifest by tag or digest.
    pub fn manifest(&self, repo: &Repo, reference: &str) -> Option<&Manifest> {
        let digest = if reference.starts_with("sha256:") {
            reference
        } else {
            repo.by_tag.get(reference)?.as_str()
        };
        self.manifests.get(digest)
    }

    pub fn blob(&self, digest: &str) -> Option<&Bytes> {
        self.blobs.get(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_true_and_content_is_deterministic() {
        let a = Content::generate(3, 2, 2, 1000);
        let b = Content::generate(3, 2, 2, 1000);
        let repo = a.repo("demo/app-001").unwrap();
        let m = a.manifest(repo, "v1").unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(digest(&m.body), m.digest);
        assert_eq!(
            m.digest,
            b.manifest(b.repo("demo/app-001").unwrap(), "v1")
                .unwrap()
                .digest
        );
        let parsed: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        for layer in parsed["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            assert_eq!(digest(a.blob(d).unwrap()), d);
            assert_eq!(
                a.blob(d).unwrap().len() as u64,
                layer["size"].as_u64().unwrap()
            );
        }
        let cd = parsed["config"]["digest"].as_str().unwrap();
        assert_eq!(digest(a.blob(cd).unwrap()), cd);
        assert!(a.manifest(repo, &m.digest).is_some());
        assert!(a.manifest(repo, "nope").is_none());
    }
}
