//! The demo's service-registry API (MCP-registry shaped): a paginated list of servers, lookup by id,
//! a status document, and a background sync whose duration scales with the number of servers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;

/// Default and largest page size of `GET /v1/registry`.
pub const DEFAULT_LIMIT: usize = 30;
pub const MAX_LIMIT: usize = 100;

pub struct ServiceRegistry {
    ids: Vec<String>,
    /// Each server's JSON, rendered once.
    docs: Vec<Bytes>,
    /// Id or name → index.
    by_id: HashMap<String, usize>,
    per_server: Duration,
    sync: Arc<Mutex<SyncState>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct SyncState {
    syncing: bool,
    last_sync_unix_ms: Option<u64>,
    /// When the last sync started, and how long it took (once it has finished).
    last_started_unix_ms: Option<u64>,
    last_duration_ms: Option<u64>,
    n_completed: u64,
    /// Reloads of `--config` so far, and when the last one happened.
    config_version: u64,
    config_loaded_unix_ms: Option<u64>,
}

fn unix_ms() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Deterministic UUID-shaped id of server `i`.
pub fn server_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

impl ServiceRegistry {
    pub fn new(n: usize, per_server: Duration) -> ServiceRegistry {
        let ids: Vec<String> = (0..n).map(server_id).collect();
        let docs = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                Bytes::from(
                    json!({
                        "id": id,
                        "name": format!("io.example.demo/server-{i:04}"),
                        "description": format!("Demo server {i} for regbench"),
                        "version": format!("1.{}.0", i % 10),
                        "status": "active",
                        "repository": { "url": format!("https://example.test/demo/server-{i:04}"), "source": "github" },
                    })
                    .to_string(),
                )
            })
            .collect();
        // Servers are found by id or by name (`io.example.demo/server-0007`).
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .chain((0..n).map(|i| (format!("io.example.demo/server-{i:04}"), i)))
            .collect();
        ServiceRegistry {
            ids,
            docs,
            by_id,
            per_server,
            sync: Arc::new(Mutex::new(SyncState::default())),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// One page: servers after `cursor` (an id), at most `limit`. `None` when the cursor is unknown.
    pub fn list(&self, cursor: Option<&str>, limit: usize) -> Option<Bytes> {
        let from = match cursor {
            Some(c) => self.by_id.get(c)? + 1,
            None => 0,
        };
        let to = (from + limit.clamp(1, MAX_LIMIT)).min(self.ids.len());
        let mut out = Vec::with_capacity(64 + (to - from) * 256);
        out.extend_from_slice(b"{\"servers\":[");
        for (k, doc) in self.docs[from.min(to)..to].iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            out.extend_from_slice(doc);
        }
        let mut meta = json!({ "count": to.saturating_sub(from) });
        if to < self.ids.len() {
            meta["nextCursor"] = json!(self.ids[to - 1]);
        }
        out.extend_from_slice(format!("],\"metadata\":{meta}}}").as_bytes());
        Some(Bytes::from(out))
    }

    /// A server by id or name (a name's '/' may come percent-encoded).
    pub fn get(&self, id_or_name: &str) -> Option<Bytes> {
        let key = id_or_name.replace("%2F", "/").replace("%2f", "/");
        self.by_id.get(&key).map(|&i| self.docs[i].clone())
    }

    /// A server's index by id or name.
    pub fn index(&self, id_or_name: &str) -> Option<usize> {
        self.by_id.get(id_or_name).copied()
    }

    /// Reloads of `--config` so far.
    pub fn config_version(&self) -> u64 {
        self.state().config_version
    }

    /// A sync is running (queries may be slowed by `--sync-slowdown`).
    pub fn is_syncing(&self) -> bool {
        self.state().syncing
    }

    /// `--config` changed and was read again: a new version, then a sync of what it lists.
    pub fn reloaded(&self) -> u64 {
        let version = {
            let mut s = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
            s.config_version += 1;
            s.config_loaded_unix_ms = unix_ms();
            eprintln!(
                "regbench serve: config reloaded (version {}) at {}",
                s.config_version,
                s.config_loaded_unix_ms.unwrap_or(0)
            );
            s.config_version
        };
        self.trigger_sync();
        version
    }

    fn state(&self) -> SyncState {
        *self.sync.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn status(&self) -> Bytes {
        let s = self.state();
        Bytes::from(
            json!({
                "status": "ok",
                "phase": if s.syncing { "syncing" } else { "idle" },
                "servers": self.ids.len(),
                "last_sync_unix_ms": s.last_sync_unix_ms,
                "last_sync_started_unix_ms": s.last_started_unix_ms,
                "last_sync_duration_ms": s.last_duration_ms,
                "sync_duration_ms": (self.per_server * self.ids.len() as u32).as_millis() as u64,
                "syncs_completed": s.n_completed,
                "config_version": s.config_version,
                "config_loaded_unix_ms": s.config_loaded_unix_ms,
            })
            .to_string(),
        )
    }

    /// Starts a sync unless one is running; returns whether this call started it. The sync itself is a
    /// background task taking `per_server × servers`.
    pub fn trigger_sync(&self) -> (bool, Bytes) {
        let started = {
            let mut s = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
            let start = !s.syncing;
            if start {
                s.syncing = true;
                s.last_started_unix_ms = unix_ms();
            }
            start
        };
        let took = self.per_server * self.ids.len() as u32;
        if started {
            let sync = Arc::clone(&self.sync);
            let t0 = std::time::Instant::now();
            eprintln!(
                "regbench serve: sync started at {} ({} servers)",
                unix_ms().unwrap_or(0),
                self.ids.len()
            );
            tokio::spawn(async move {
                tokio::time::sleep(took).await;
                let mut s = sync.lock().unwrap_or_else(PoisonError::into_inner);
                s.syncing = false;
                s.n_completed += 1;
                s.last_sync_unix_ms = unix_ms();
                s.last_duration_ms = Some(t0.elapsed().as_millis() as u64);
                eprintln!(
                    "regbench serve: sync finished at {} after {} ms",
                    s.last_sync_unix_ms.unwrap_or(0),
                    t0.elapsed().as_millis()
                );
            });
        }
        let body = json!({
            "phase": "syncing",
            "started": started,
            "expected_duration_ms": took.as_millis() as u64,
        });
        (started, Bytes::from(body.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_walks_every_server_once() {
        let reg = ServiceRegistry::new(95, Duration::ZERO);
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page: serde_json::Value =
                serde_json::from_slice(&reg.list(cursor.as_deref(), 30).unwrap()).unwrap();
            for s in page["servers"].as_array().unwrap() {
                seen.push(s["id"].as_str().unwrap().to_string());
            }
            match page["metadata"]["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 95);
        seen.dedup();
        assert_eq!(seen.len(), 95);
        assert!(reg.list(Some("nope"), 10).is_none());
    }
}
