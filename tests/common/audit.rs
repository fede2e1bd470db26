//! The audit log of a real API server read as the emulator's request log: hack/cluster.sh starts
//! kube-apiserver with a JSON audit log (`audit.log` beside the admin kubeconfig, Metadata level, written
//! before each response is sent), so tests that check which calls a controller made — and that it made
//! none — run on a real server too.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tycho_emulator::RequestRecord;

/// An audit log and the point from which this test reads it.
pub struct AuditLog {
    path: PathBuf,
    from: AtomicU64,
}

impl AuditLog {
    /// The audit log beside `kubeconfig`, if the cluster writes one; read from its current end.
    pub fn beside(kubeconfig: &Path) -> Option<AuditLog> {
        let path = kubeconfig.with_file_name("audit.log");
        let len = std::fs::metadata(&path).ok()?.len();
        Some(AuditLog {
            path,
            from: AtomicU64::new(len),
        })
    }

    /// Read from the current end from now on.
    pub fn mark(&self) {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        self.from.store(len, Ordering::SeqCst);
    }

    /// The completed requests logged since the mark, in the order they completed.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.events().iter().map(record).collect()
    }

    /// The completed requests of user `username` logged since the mark.
    pub fn records_of(&self, username: &str) -> Vec<RequestRecord> {
        self.events()
            .iter()
            .filter(|e| e["user"]["username"] == username)
            .map(record)
            .collect()
    }

    /// The whole log, from its first line.
    pub fn from_start(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            from: AtomicU64::new(0),
        }
    }

    fn events(&self) -> Vec<Value> {
        let bytes = std::fs::read(&self.path)
            .unwrap_or_else(|e| panic!("read the audit log {}: {e}", self.path.display()));
        let from = (self.from.load(Ordering::SeqCst) as usize).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..])
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .collect()
    }
}

/// An audit event as a request record.
fn record(e: &Value) -> RequestRecord {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let o = &e["objectRef"];
    RequestRecord {
        verb: s(&e["verb"]),
        api_group: s(&o["apiGroup"]),
        api_version: s(&o["apiVersion"]),
        resource: s(&o["resource"]),
        subresource: s(&o["subresource"]),
        namespace: s(&o["namespace"]),
        name: s(&o["name"]),
        path: s(&e["requestURI"]),
        user_agent: s(&e["userAgent"]),
        code: e["responseStatus"]["code"].as_u64().unwrap_or_default() as u16,
        impersonate_user: s(&e["impersonatedUser"]["username"]),
        impersonate_groups: e["impersonatedUser"]["groups"]
            .as_array()
            .map(|g| g.iter().map(s).collect())
            .unwrap_or_default(),
        impersonate_uid: s(&e["impersonatedUser"]["uid"]),
    }
}
