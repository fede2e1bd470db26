//! The in-memory filesystem of a simulated container.
//!
//! Paths are absolute, `/`-separated and normalised (no `.`/`..`, no trailing `/`); the root is
//! `/`. Directories are implicit parents of files but are also stored explicitly so that empty
//! directories exist and carry a mode.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// One entry of the filesystem.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Permission bits (e.g. 0o755).
        mode: u32,
        /// Last modification.
        mtime: DateTime<Utc>,
    },
    /// A regular file.
    File {
        /// Content.
        data: Bytes,
        /// Permission bits (e.g. 0o644).
        mode: u32,
        /// Last modification.
        mtime: DateTime<Utc>,
    },
}

impl Entry {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, Entry::Dir { .. })
    }

    /// Permission bits.
    pub fn mode(&self) -> u32 {
        match self {
            Entry::Dir { mode, .. } | Entry::File { mode, .. } => *mode,
        }
    }

    /// Modification time.
    pub fn mtime(&self) -> DateTime<Utc> {
        match self {
            Entry::Dir { mtime, .. } | Entry::File { mtime, .. } => *mtime,
        }
    }

    /// Size in bytes (0 for directories, like `ls` shows 4096 for them on ext4, we show 0).
    pub fn size(&self) -> usize {
        match self {
            Entry::Dir { .. } => 0,
            Entry::File { data, .. } => data.len(),
        }
    }
}

/// Why a filesystem operation failed; rendered like the coreutils messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// ENOENT.
    #[error("No such file or directory")]
    NotFound,
    /// EISDIR.
    #[error("Is a directory")]
    IsDir,
    /// ENOTDIR.
    #[error("Not a directory")]
    NotDir,
    /// EEXIST.
    #[error("File exists")]
    Exists,
    /// ENOTEMPTY.
    #[error("Directory not empty")]
    NotEmpty,
}

/// Normalise `path` relative to `cwd` into an absolute path without `.`, `..` or empty parts.
pub fn normalize(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", cwd.trim_end_matches('/'), path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Parent directory of a normalised path (`/` for top-level entries and for `/` itself).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Last component of a normalised path (empty for `/`).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// The filesystem: a map from normalised absolute path to entry.
#[derive(Debug, Clone)]
pub struct Fs {
    entries: BTreeMap<String, Entry>,
}

impl Default for Fs {
    fn default() -> Self {
        Fs::new()
    }
}

impl Fs {
    /// An empty filesystem holding only `/`.
    pub fn new() -> Fs {
        let mut entries = BTreeMap::new();
        entries.insert(
            "/".to_string(),
            Entry::Dir {
                mode: 0o755,
                mtime: Utc::now(),
            },
        );
        Fs { entries }
    }

    /// The entry at a normalised path.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Whether a directory exists at `path`.
    pub fn is_dir(&self, path: &str) -> bool {
        self.get(path).is_some_and(Entry::is_dir)
    }

    /// Whether a regular file exists at `path`.
    pub fn is_file(&self, path: &str) -> bool {
        self.get(path).is_some_and(|e| !e.is_dir())
    }

    /// Content of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Bytes, FsError> {
        match self.get(path) {
            None => Err(FsError::NotFound),
            Some(Entry::Dir { .. }) => Err(FsError::IsDir),
            Some(Entry::File { data, .. }) => Ok(data.clone()),
        }
    }

    /// Create `path` and all missing parents as directories (`mkdir -p`).
    pub fn mkdir_all(&mut self, path: &str, mode: u32) -> Result<(), FsError> {
        if path == "/" {
            return Ok(());
        }
        let mut current = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            current.push('/');
            current.push_str(part);
            match self.entries.get(&current) {
                Some(Entry::Dir { .. }) => {}
                Some(Entry::File { .. }) => return Err(FsError::NotDir),
                None => {
                    self.entries.insert(
                        current.clone(),
                        Entry::Dir {
                            mode,
                            mtime: Utc::now(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Create one directory whose parent must exist (`mkdir`).
    pub fn mkdir(&mut self, path: &str, mode: u32) -> Result<(), FsError> {
        if self.entries.contains_key(path) {
            return Err(FsError::Exists);
        }
        self.require_parent_dir(path)?;
        self.entries.insert(
            path.to_string(),
            Entry::Dir {
                mode,
                mtime: Utc::now(),
            },
        );
        Ok(())
    }

    fn require_parent_dir(&self, path: &str) -> Result<(), FsError> {
        match self.get(parent(path)) {
            Some(Entry::Dir { .. }) => Ok(()),
            Some(Entry::File { .. }) => Err(FsError::NotDir),
            None => Err(FsError::NotFound),
        }
    }

    /// Write a file whose parent directory must exist; keeps the mode of an existing file
    /// unless `mode` is given.
    pub fn write(&mut self, path: &str, data: Bytes, mode: Option<u32>) -> Result<(), FsError> {
        self.require_parent_dir(path)?;
        let mode = match (mode, self.get(path)) {
            (_, Some(Entry::Dir { .. })) => return Err(FsError::IsDir),
            (Some(m), _) => m,
            (None, Some(e)) => e.mode(),
            (None, None) => 0o644,
        };
        self.entries.insert(
            path.to_string(),
            Entry::File {
                data,
                mode,
                mtime: Utc::now(),
            },
        );
        Ok(())
    }

    /// Write a file, creating missing parent directories (mode 0755).
    pub fn write_all(&mut self, path: &str, data: Bytes, mode: Option<u32>) -> Result<(), FsError> {
        self.mkdir_all(parent(path), 0o755)?;
        self.write(path, data, mode)
    }

    /// Append to a file (created when missing).
    pub fn append(&mut self, path: &str, data: &[u8]) -> Result<(), FsError> {
        let mut content = match self.read(path) {
            Ok(d) => d.to_vec(),
            Err(FsError::NotFound) => Vec::new(),
            Err(e) => return Err(e),
        };
        content.extend_from_slice(data);
        self.write(path, Bytes::from(content), None)
    }

    /// Set the modification time of an existing entry.
    pub fn set_mtime(&mut self, path: &str, when: DateTime<Utc>) {
        if let Some(Entry::Dir { mtime, .. } | Entry::File { mtime, .. }) =
            self.entries.get_mut(path)
        {
            *mtime = when;
        }
    }

    /// Direct children of a directory, as (name, entry), sorted by name.
    pub fn list(&self, dir: &str) -> Result<Vec<(String, Entry)>, FsError> {
        match self.get(dir) {
            None => return Err(FsError::NotFound),
            Some(Entry::File { .. }) => return Err(FsError::NotDir),
            Some(Entry::Dir { .. }) => {}
        }
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, e)| (k[prefix.len()..].to_string(), e.clone()))
            .collect())
    }

    /// Every entry under `dir` (not including `dir` itself), depth-first in path order.
    pub fn walk(&self, dir: &str) -> Vec<(String, Entry)> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len())
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Remove a file, or a directory (recursively when `recursive`).
    pub fn remove(&mut self, path: &str, recursive: bool) -> Result<(), FsError> {
        match self.get(path) {
            None => Err(FsError::NotFound),
            Some(Entry::File { .. }) => {
                self.entries.remove(path);
                Ok(())
            }
            Some(Entry::Dir { .. }) => {
                let children: Vec<String> = self.walk(path).into_iter().map(|(k, _)| k).collect();
                if !children.is_empty() && !recursive {
                    return Err(FsError::NotEmpty);
                }
                for c in children {
                    self.entries.remove(&c);
                }
                if path != "/" {
                    self.entries.remove(path);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(normalize("/a/b", "../c/./d/"), "/a/c/d");
        assert_eq!(normalize("/", "x"), "/x");
        assert_eq!(normalize("/x", "/../.."), "/");
    }

    #[test]
    fn write_read_list_remove() {
        let mut fs = Fs::new();
        assert_eq!(
            fs.write("/a/b", Bytes::from_static(b"x"), None),
            Err(FsError::NotFound)
        );
        fs.write_all("/a/b/c.txt", Bytes::from_static(b"hello"), Some(0o600))
            .unwrap();
        assert_eq!(fs.read("/a/b/c.txt").unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(fs.read("/a/b"), Err(FsError::IsDir));
        let names: Vec<String> = fs.list("/a").unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["b".to_string()]);
        assert_eq!(fs.remove("/a", false), Err(FsError::NotEmpty));
        fs.remove("/a", true).unwrap();
        assert!(fs.get("/a/b/c.txt").is_none());
        assert_eq!(fs.mkdir_all("/x", 0o755), Ok(()));
        fs.write("/x/f", Bytes::new(), None).unwrap();
        assert_eq!(fs.mkdir_all("/x/f/g", 0o755), Err(FsError::NotDir));
    }
}
