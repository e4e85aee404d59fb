//! The metadata-key cache: which archive key each metadata has, kept on disk between runs
//! and bounded in memory whatever the number of metadata.
//!
//! Keys live in a SQLite file (`keys(id, key)`, `id` the metadata's [`identity`]), so a
//! run holds only SQLite's page cache and the [`RECENT`] most recently used metadata texts,
//! not every metadata it ever saw: a GridFTP log has nearly one metadata per transfer.
//! New keys are written in the run's open transaction and committed with each flush (and
//! at the end); a key lost to a crash is only a cache miss (creation is get-or-create).
//! Overlapping runs share the file through SQLite's own locking.
//!
//! Without a file, a private temporary database stands in (SQLite deletes it on close). A
//! dry run writes nothing: it reads the file, if there is one, and keeps what it made up
//! in a temporary database. A file in the old JSON form (`{"identity": "key", …}`) is
//! converted on first use; anything else is not a cache and is started afresh.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use lru::LruCache;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext};
use crate::state;

/// Metadata texts remembered in memory (each with its key): the working set of a busy
/// host's tests, a few megabytes at most.
pub const RECENT: usize = 4096;

/// A metadata's identity: SHA-256 of the archive root and the metadata with sorted keys.
pub fn identity(root: &str, metadata: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(root.as_bytes());
    hasher.update(b"\n");
    canonical(metadata, &mut hasher);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Feeds `value` as compact JSON with every object's keys sorted.
fn canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            hasher.update(b"{");
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                hasher.update(Value::from(name.as_str()).to_string().as_bytes());
                hasher.update(b":");
                canonical(member, hasher);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        other => hasher.update(other.to_string().as_bytes()),
    }
}

/// Keys by metadata identity (on disk) and by exact metadata text (the recent ones).
pub struct Keys {
    db: Connection,
    /// Where the keys are saved, for messages (`None`: nowhere).
    path: Option<String>,
    /// A dry run also reads the saved keys, attached as `saved`.
    saved: bool,
    recent: LruCache<Box<str>, Arc<str>>,
    /// A write transaction is open.
    open: bool,
}

impl Keys {
    /// Opens the cache at `path` (none: a private temporary one); `dry_run` writes nothing
    /// there. `recent` metadata texts are remembered in memory.
    pub fn open(path: Option<&Path>, dry_run: bool, recent: usize) -> Result<Keys, Error> {
        let shown = path.map(|p| p.display().to_string());
        let at = |e: rusqlite::Error| {
            Error::Failed(format!("{}: {e}", shown.as_deref().unwrap_or("key cache")))
        };
        let (db, saved) = match path {
            Some(path) if !dry_run => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).at(dir.display())?;
                }
                prepare(path)?;
                (Connection::open(path).map_err(at)?, false)
            }
            Some(path) if is_sqlite(path)? => {
                let db = Connection::open("").map_err(at)?;
                let uri = format!("file:{}?mode=ro", path.display());
                db.execute("ATTACH DATABASE ?1 AS saved", [uri])
                    .map_err(at)?;
                (db, true)
            }
            _ => (Connection::open("").map_err(at)?, false),
        };
        db.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(at)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, key TEXT NOT NULL) WITHOUT ROWID",
        )
        .map_err(at)?;
        Ok(Keys {
            db,
            path: shown,
            saved,
            recent: LruCache::new(NonZeroUsize::new(recent.max(1)).expect("at least 1")),
            open: false,
        })
    }

    fn fail(&self, e: rusqlite::Error) -> Error {
        Error::Failed(format!(
            "{}: {e}",
            self.path.as_deref().unwrap_or("key cache")
        ))
    }

    /// The key of a metadata seen recently, by its exact text.
    pub fn recent(&mut self, text: &str) -> Option<Arc<str>> {
        self.recent.get(text).cloned()
    }

    /// Remembers `text`'s key in memory (the least recently used text is forgotten).
    pub fn remember(&mut self, text: &str, key: Arc<str>) {
        self.recent.put(text.into(), key);
    }

    /// The saved key of the metadata with identity `id`.
    pub fn get(&self, id: &str) -> Result<Option<Arc<str>>, Error> {
        let sql = if self.saved {
            "SELECT key FROM keys WHERE id = ?1 UNION ALL SELECT key FROM saved.keys WHERE id = ?1 LIMIT 1"
        } else {
            "SELECT key FROM keys WHERE id = ?1"
        };
        let mut query = self.db.prepare_cached(sql).map_err(|e| self.fail(e))?;
        query
            .query_row([id], |row| row.get::<_, String>(0))
            .optional()
            .map(|key| key.map(Arc::from))
            .map_err(|e| self.fail(e))
    }

    /// Saves `key` for identity `id` (committed by the next [`Keys::commit`]).
    pub fn insert(&mut self, id: &str, key: &str) -> Result<(), Error> {
        self.begin()?;
        self.db
            .prepare_cached("INSERT OR REPLACE INTO keys (id, key) VALUES (?1, ?2)")
            .and_then(|mut insert| insert.execute([id, key]))
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Forgets `key` wherever it is remembered (the archive no longer knows it).
    pub fn forget(&mut self, key: &str) -> Result<(), Error> {
        self.begin()?;
        self.db
            .execute("DELETE FROM keys WHERE key = ?1", [key])
            .map_err(|e| self.fail(e))?;
        let stale: Vec<Box<str>> = self
            .recent
            .iter()
            .filter(|(_, k)| &***k == key)
            .map(|(text, _)| text.clone())
            .collect();
        for text in stale {
            self.recent.pop(&text);
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), Error> {
        if !self.open {
            self.db
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.fail(e))?;
            self.open = true;
        }
        Ok(())
    }

    /// Makes the keys written so far durable.
    pub fn commit(&mut self) -> Result<(), Error> {
        if self.open {
            self.db.execute_batch("COMMIT").map_err(|e| self.fail(e))?;
            self.open = false;
        }
        Ok(())
    }
}

/// Whether `path` is a SQLite database (its 16-byte header).
fn is_sqlite(path: &Path) -> Result<bool, Error> {
    use std::io::Read;
    let mut header = [0u8; 16];
    match std::fs::File::open(path) {
        Ok(mut file) => Ok(file.read_exact(&mut header).is_ok() && &header == b"SQLite format 3\0"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

/// Makes `path` a key database: converts the old JSON cache, replaces anything else that is
/// not a database (a cache, so nothing is lost but a few re-creations).
fn prepare(path: &Path) -> Result<(), Error> {
    let exists = path.exists();
    if !exists || is_sqlite(path)? {
        return Ok(());
    }
    let _lock = state::lock(path, true)?;
    if is_sqlite(path)? {
        return Ok(());
    }
    let old = state::read(path)?
        .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".esmond-keys.")
        .suffix(".new")
        .tempfile_in(dir)
        .at(dir.display())?;
    let failed = |e: rusqlite::Error| Error::Failed(format!("{}: {e}", temp.path().display()));
    let mut db = Connection::open(temp.path()).map_err(failed)?;
    let tx = db.transaction().map_err(failed)?;
    tx.execute_batch("CREATE TABLE keys (id TEXT PRIMARY KEY, key TEXT NOT NULL) WITHOUT ROWID")
        .map_err(failed)?;
    for (id, key) in &old {
        if let Some(key) = key.as_str() {
            tx.execute("INSERT OR REPLACE INTO keys VALUES (?1, ?2)", [id, key])
                .map_err(failed)?;
        }
    }
    tx.commit().map_err(failed)?;
    drop(db);
    temp.persist(path)
        .map_err(|e| Error::io(path.display().to_string(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sorts_keys_at_every_depth() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"é"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"é","y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(identity("r/", &a), identity("r/", &b));
        assert_ne!(identity("r/", &a), identity("s/", &a));
        // The same digest as hashing the canonical text itself.
        let text = r#"r/
{"a":{"x":"é","y":[1,{"c":3,"d":2}]},"b":1}"#;
        let expected: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(identity("r/", &a), expected);
    }

    #[test]
    fn keys_survive_the_run_and_memory_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let mut keys = Keys::open(Some(&path), false, 3).unwrap();
        for i in 0..10 {
            keys.insert(&format!("id{i}"), &format!("k{i}")).unwrap();
            keys.remember(&format!("text{i}"), Arc::from(format!("k{i}")));
        }
        keys.commit().unwrap();
        assert_eq!(keys.recent.len(), 3);
        assert_eq!(keys.recent("text9").as_deref(), Some("k9"));
        assert_eq!(keys.recent("text0"), None);
        drop(keys);
        let mut keys = Keys::open(Some(&path), false, 3).unwrap();
        assert_eq!(keys.get("id0").unwrap().as_deref(), Some("k0"));
        keys.forget("k0").unwrap();
        keys.commit().unwrap();
        assert_eq!(keys.get("id0").unwrap(), None);
    }

    #[test]
    fn a_dry_run_reads_the_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let mut keys = Keys::open(Some(&path), false, 8).unwrap();
        keys.insert("old", "k-old").unwrap();
        keys.commit().unwrap();
        drop(keys);
        let before = std::fs::read(&path).unwrap();
        let mut dry = Keys::open(Some(&path), true, 8).unwrap();
        assert_eq!(dry.get("old").unwrap().as_deref(), Some("k-old"));
        dry.insert("new", "k-new").unwrap();
        dry.commit().unwrap();
        assert_eq!(dry.get("new").unwrap().as_deref(), Some("k-new"));
        drop(dry);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn the_old_json_cache_is_converted_and_junk_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, r#"{"id1":"k1","id2":"k2"}"#).unwrap();
        let keys = Keys::open(Some(&path), false, 8).unwrap();
        assert_eq!(keys.get("id2").unwrap().as_deref(), Some("k2"));
        assert!(is_sqlite(&path).unwrap());
        drop(keys);
        std::fs::write(&path, "not a cache").unwrap();
        let keys = Keys::open(Some(&path), false, 8).unwrap();
        assert_eq!(keys.get("id1").unwrap(), None);
    }
}
