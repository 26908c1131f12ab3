//! Registry flows: steps that run a whole registry workflow (an image pull, a push, a catalog or tag
//! walk) instead of one request. Pure data; `registry::flow` runs them on the engine's connections.
//!
//! A flow step records one sample per request under a phase tag (`STEP/token`, `STEP/layer`, …) and
//! one sample for the whole operation under the step's own tag.

use crate::plan::template::Template;

/// What a flow step does.
#[derive(Clone, Debug)]
pub enum Flow {
    Pull(Pull),
    Push(Push),
    /// `GET /v2/_catalog`, every page.
    Catalog(Walk),
    /// `GET /v2/REPO/tags/list`, every page.
    Tags(Walk),
}

/// `oci-pull`: ping, answer the auth challenge, HEAD then GET the manifest (an index resolved to one
/// platform), GET the config, GET the layers `parallel` at a time, verifying every blob's sha256.
#[derive(Clone, Debug)]
pub struct Pull {
    /// `REPO:TAG` or `REPO@sha256:…`; several (CLI `--image` repeated) are taken in turn by iteration.
    pub images: Vec<Template>,
    pub platform: Platform,
    /// Layers fetched at once, each on its own connection (dockerd's default is 3).
    pub parallel: usize,
    /// Fetch each blob in `Range` requests of this many bytes instead of one GET.
    pub range: Option<u64>,
    pub auth: FlowAuth,
}

/// `oci-push`: blob uploads (monolithic POST+PUT, or chunked POST, PATCH…, PUT), an optional
/// cross-repository mount of the first layer, and the manifest PUT. Layer bytes are new for every
/// iteration (derived from the seed, the virtual user and the iteration), so every upload is real.
#[derive(Clone, Debug)]
pub struct Push {
    /// `REPO:TAG` to push to.
    pub image: Template,
    pub layers: usize,
    pub layer_size: u64,
    /// Upload in PATCH chunks of this many bytes instead of one PUT.
    pub chunk: Option<u64>,
    /// Mount the first layer from this repository (pushed there first by the same iteration) instead
    /// of uploading it again.
    pub mount_from: Option<Template>,
    pub auth: FlowAuth,
}

/// A paginated listing: `?n=page_size`, following `Link: <…>; rel="next"`.
#[derive(Clone, Debug)]
pub struct Walk {
    /// The repository (tags lists only).
    pub repo: Option<Template>,
    pub page_size: u32,
    pub max_pages: u32,
    pub auth: FlowAuth,
}

/// Credentials and token policy of a flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowAuth {
    /// Basic credentials, for a Basic challenge or for the token server.
    pub user: Option<(String, String)>,
    pub token: TokenMode,
}

/// When a virtual user fetches Bearer tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenMode {
    /// Cached per scope until `expires_in`: what a long-lived client (a CI runner's daemon) does.
    #[default]
    Warm,
    /// A new token every iteration: what a fresh client per job does; the token server's cost shows.
    Cold,
}

impl TokenMode {
    pub fn parse(s: &str) -> Result<TokenMode, String> {
        match s {
            "warm" => Ok(TokenMode::Warm),
            "cold" => Ok(TokenMode::Cold),
            _ => Err(format!("'{s}' is not a token mode (expected warm or cold)")),
        }
    }
}

/// The platform an image index is resolved to: `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    pub fn parse(s: &str) -> Result<Platform, String> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform {
                    os: os.into(),
                    architecture: arch.into(),
                    variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
                })
            }
            _ => Err(format!(
                "'{s}' is not a platform (expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64/v8)"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl Flow {
    /// The phases it records, each its own tag `STEP/PHASE` after the step's own.
    pub fn phases(&self) -> &'static [&'static str] {
        match self {
            Flow::Pull(_) => &["ping", "token", "head", "manifest", "config", "layer"],
            Flow::Push(_) => &[
                "ping", "token", "upload", "chunk", "commit", "mount", "manifest",
            ],
            Flow::Catalog(_) | Flow::Tags(_) => &["ping", "token", "page"],
        }
    }

    /// The step type as scenario files name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Flow::Pull(_) => "oci-pull",
            Flow::Push(_) => "oci-push",
            Flow::Catalog(_) => "oci-catalog",
            Flow::Tags(_) => "oci-tags",
        }
    }

    pub fn auth(&self) -> &FlowAuth {
        match self {
            Flow::Pull(p) => &p.auth,
            Flow::Push(p) => &p.auth,
            Flow::Catalog(w) | Flow::Tags(w) => &w.auth,
        }
    }

    pub fn auth_mut(&mut self) -> &mut FlowAuth {
        match self {
            Flow::Pull(p) => &mut p.auth,
            Flow::Push(p) => &mut p.auth,
            Flow::Catalog(w) | Flow::Tags(w) => &mut w.auth,
        }
    }

    /// Every template it renders per iteration, in a fixed order (see `registry::flow`).
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Flow::Pull(p) => p.images.iter().collect(),
            Flow::Push(p) => std::iter::once(&p.image)
                .chain(p.mount_from.as_ref())
                .collect(),
            Flow::Catalog(_) => Vec::new(),
            Flow::Tags(w) => w.repo.iter().collect(),
        }
    }
}

/// Splits `REPO:TAG` / `REPO@DIGEST` into repository and reference (`latest` when none is given).
pub fn split_image(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    // A ':' after the last '/' is the tag; one before it belongs to a host:port.
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_repository_and_reference() {
        assert_eq!(split_image("demo/app-000:v1"), ("demo/app-000", "v1"));
        assert_eq!(split_image("app"), ("app", "latest"));
        assert_eq!(split_image("a/b@sha256:0123"), ("a/b", "sha256:0123"));
        assert_eq!(split_image("ns/app:1.2.3"), ("ns/app", "1.2.3"));
    }

    #[test]
    fn platforms_parse() {
        assert_eq!(Platform::parse("linux/amd64").unwrap(), Platform::default());
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//").is_err());
        assert!(TokenMode::parse("hot").is_err());
    }
}
