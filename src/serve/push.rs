//! Pushes to the demo target: blob uploads (monolithic POST+PUT, single POST with `?digest=`, chunked
//! POST / PATCH (`Content-Range`) / PUT), cross-repository mounts and manifest PUTs, as the OCI
//! distribution spec describes them. Pushed content lives in a [`Store`] beside the generated content;
//! reads look in both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

use super::content::digest;

/// A pushed manifest.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub media_type: String,
    pub digest: String,
    pub body: Bytes,
}

#[derive(Default)]
struct Inner {
    uploads: HashMap<String, Vec<u8>>,
    blobs: HashMap<String, Bytes>,
    /// Repository → reference (tag or digest) → manifest.
    manifests: BTreeMap<String, BTreeMap<String, Pushed>>,
    next_upload: u64,
}

/// Everything pushed since the target started.
#[derive(Default)]
pub struct Store(Mutex<Inner>);

/// Why a push is refused (maps to an OCI error code).
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// BLOB_UPLOAD_UNKNOWN
    UnknownUpload,
    /// DIGEST_INVALID: the content's sha256 is not the digest given.
    DigestMismatch { expected: String, actual: String },
    /// Content-Range does not continue the upload.
    RangeInvalid { have: usize },
    /// MANIFEST_BLOB_UNKNOWN
    ManifestBlobUnknown(String),
    /// MANIFEST_INVALID
    ManifestInvalid(String),
}

impl Store {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts an upload; returns its id.
    pub fn start(&self) -> String {
        let mut s = self.inner();
        s.next_upload += 1;
        let id = format!("u{:016x}", s.next_upload);
        s.uploads.insert(id.clone(), Vec::new());
        id
    }

    /// Appends a chunk; `start` is the Content-Range start if given. Returns the new length.
    pub fn append(&self, id: &str, start: Option<usize>, data: &[u8]) -> Result<usize, PushError> {
        let mut s = self.inner();
        let buf = s.uploads.get_mut(id).ok_or(PushError::UnknownUpload)?;
        if start.is_some_and(|st| st != buf.len()) {
            return Err(PushError::RangeInvalid { have: buf.len() });
        }
        buf.extend_from_slice(data);
        Ok(buf.len())
    }

    /// Bytes received so far.
    pub fn progress(&self, id: &str) -> Option<usize> {
        self.inner().uploads.get(id).map(Vec::len)
    }

    /// Completes an upload with its last chunk, verifying the digest.
    pub fn finish(&self, id: &str, last: &[u8], expected: &str) -> Result<(), PushError> {
        let mut s = self.inner();
        let mut data = s.uploads.remove(id).ok_or(PushError::UnknownUpload)?;
        data.extend_from_slice(last);
        let actual = digest(&data);
        if actual != expected {
            return Err(PushError::DigestMismatch {
                expected: expected.into(),
                actual,
            });
        }
        s.blobs.insert(actual, Bytes::from(data));
        Ok(())
    }

    /// Stores a blob sent whole (a single POST with `?digest=`).
    pub fn put_blob(&self, data: Bytes, expected: &str) -> Result<(), PushError> {
        let actual = digest(&data);
        if actual != expected {
            return Err(PushError::DigestMismatch {
                expected: expected.into(),
                actual,
            });
        }
        self.inner().blobs.insert(actual, data);
        Ok(())
    }

    pub fn blob(&self, digest: &str) -> Option<Bytes> {
        self.inner().blobs.get(digest).cloned()
    }

    /// Stores a manifest under its digest and `reference` (a tag, or its digest). Every blob it
    /// references must exist (`exists`).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
        exists: impl Fn(&str) -> bool,
    ) -> Result<String, PushError> {
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| PushError::ManifestInvalid(e.to_string()))?;
        let mut referenced: Vec<&str> = doc["layers"]
            .as_array()
            .map(|l| l.iter().filter_map(|x| x["digest"].as_str()).collect())
            .unwrap_or_default();
        if let Some(c) = doc["config"]["digest"].as_str() {
            referenced.push(c);
        }
        let blobs_known = |d: &str| exists(d) || self.inner().blobs.contains_key(d);
        if let Some(missing) = referenced.iter().find(|d| !blobs_known(d)) {
            return Err(PushError::ManifestBlobUnknown(missing.to_string()));
        }
        let d = digest(&body);
        if reference.starts_with("sha256:") && reference != d {
            return Err(PushError::DigestMismatch {
                expected: reference.into(),
                actual: d,
            });
        }
        let m = Pushed {
            media_type: media_type.to_string(),
            digest: d.clone(),
            body,
        };
        let mut s = self.inner();
        let refs = s.manifests.entry(repo.to_string()).or_default();
        refs.insert(d.clone(), m.clone());
        refs.insert(reference.to_string(), m);
        Ok(d)
    }

    pub fn manifest(&self, repo: &str, reference: &str) -> Option<Pushed> {
        self.inner().manifests.get(repo)?.get(reference).cloned()
    }

    /// Repositories with pushed manifests.
    pub fn repos(&self) -> BTreeSet<String> {
        self.inner().manifests.keys().cloned().collect()
    }

    /// Tags pushed to a repository.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        self.inner()
            .manifests
            .get(repo)
            .map(|r| {
                r.keys()
                    .filter(|k| !k.starts_with("sha256:"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_upload_then_manifest() {
        let s = Store::default();
        let id = s.start();
        assert_eq!(s.append(&id, Some(0), b"hello ").unwrap(), 6);
        assert_eq!(
            s.append(&id, Some(3), b"x"),
            Err(PushError::RangeInvalid { have: 6 })
        );
        assert_eq!(s.append(&id, None, b"wor").unwrap(), 9);
        let d = digest(b"hello world");
        assert!(matches!(
            s.finish(&id, b"ld", "sha256:00"),
            Err(PushError::DigestMismatch { .. })
        ));
        let id = s.start();
        s.append(&id, None, b"hello wor").unwrap();
        s.finish(&id, b"ld", &d).unwrap();
        assert_eq!(s.blob(&d).unwrap(), Bytes::from_static(b"hello world"));
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{d}"}},"layers":[{{"digest":"{d}"}}]}}"#
        );
        let md = s
            .put_manifest(
                "me/app",
                "v1",
                "application/vnd.oci.image.manifest.v1+json",
                Bytes::from(manifest),
                |_| false,
            )
            .unwrap();
        assert_eq!(s.manifest("me/app", "v1").unwrap().digest, md);
        assert_eq!(s.tags("me/app"), ["v1"]);
        let bad = r#"{"config":{"digest":"sha256:ff"},"layers":[]}"#;
        assert!(matches!(
            s.put_manifest(
                "me/app",
                "v2",
                "x",
                Bytes::from_static(bad.as_bytes()),
                |_| false
            ),
            Err(PushError::ManifestBlobUnknown(_))
        ));
    }
}
