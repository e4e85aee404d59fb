//! Where a run over a log starts and what it saves: the checkpointer, after Vector's file
//! source (a fingerprinter names the file, see [`super::position`]; a checkpointer keeps
//! the position of each file between runs).
//!
//! The position is kept either in a state file gridftp-parse writes (`--state`: a JSON
//! object with the cursor, written atomically) or in an acknowledgement file the consumer
//! writes (`--ack`: the cursor of the last record it delivered durably; gridftp-parse only
//! reads it). Either is guarded by a lock on `<file>.lock`, so overlapping cron runs are
//! kept apart.

use std::path::{Path, PathBuf};

use super::position::Position;
use crate::error::Error;
use crate::state;

/// Which file holds the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Nothing: every run reads the whole log.
    None,
    /// A state file this tool writes.
    State(PathBuf),
    /// An acknowledgement file the consumer writes.
    Ack(PathBuf),
}

/// The checkpointer of one log: holds the lock for as long as it lives.
#[derive(Debug)]
pub struct Checkpointer {
    store: Store,
    _lock: Option<state::Lock>,
}

impl Checkpointer {
    /// Takes the lock of `store` (waiting for another run when `wait`, else failing with
    /// [`Error::Locked`]).
    pub fn open(store: Store, wait: bool) -> Result<Checkpointer, Error> {
        let lock = match &store {
            Store::None => None,
            Store::State(path) | Store::Ack(path) => Some(state::lock(path, wait)?),
        };
        Ok(Checkpointer { store, _lock: lock })
    }

    /// The position saved by the last run, if any.
    pub fn saved(&self) -> Result<Option<Position>, Error> {
        match &self.store {
            Store::None => Ok(None),
            Store::State(path) => read_state(path),
            Store::Ack(path) => read_ack(path),
        }
    }

    /// Saves `end` as the position of `log` (a no-op unless the store is a state file).
    pub fn save(&self, end: &Position, log: &str) -> Result<(), Error> {
        let Store::State(path) = &self.store else {
            return Ok(());
        };
        let body = serde_json::json!({
            "cursor": end.to_string(),
            "log": log,
            "saved": crate::clock::now_rfc3339(),
        });
        state::write_atomic(path, format!("{body}\n").as_bytes())
    }

    /// Removes the state file (a no-op for an ack, which belongs to the consumer).
    pub fn remove(&self) -> Result<(), Error> {
        match &self.store {
            Store::State(path) => state::remove(path),
            _ => Ok(()),
        }
    }
}

fn read_state(path: &Path) -> Result<Option<Position>, Error> {
    let Some(text) = state::read(path)? else {
        return Ok(None);
    };
    let cursor = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("cursor")?.as_str().map(str::to_owned))
        .ok_or_else(|| {
            Error::failed(format!(
                "{}: not a gridftp-parse state file",
                path.display()
            ))
        })?;
    Position::parse(&cursor)
        .map(Some)
        .map_err(|e| Error::failed(format!("{}: {e}", path.display())))
}

/// A missing or empty ack means nothing was delivered yet.
fn read_ack(path: &Path) -> Result<Option<Position>, Error> {
    match state::read(path)? {
        Some(text) if !text.trim().is_empty() => Position::parse(&text)
            .map(Some)
            .map_err(|e| Error::failed(format!("{}: {e}", path.display()))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gridftp::position::Identity;

    #[test]
    fn a_state_round_trips_and_an_ack_is_only_read() {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("state");
        let position = Position {
            identity: Identity {
                dev: 1,
                ino: 2,
                fingerprint_len: 3,
                fingerprint: 4,
            },
            offset: 5,
            line: 6,
        };
        let states = Checkpointer::open(Store::State(state_path.clone()), false).unwrap();
        assert_eq!(states.saved().unwrap(), None);
        states.save(&position, "log").unwrap();
        assert_eq!(states.saved().unwrap(), Some(position));
        assert!(matches!(
            Checkpointer::open(Store::State(state_path.clone()), false),
            Err(Error::Locked(_))
        ));
        states.remove().unwrap();
        assert!(!state_path.exists());

        let ack = dir.path().join("ack");
        std::fs::write(&ack, format!("{position}\n")).unwrap();
        let acks = Checkpointer::open(Store::Ack(ack.clone()), false).unwrap();
        assert_eq!(acks.saved().unwrap(), Some(position));
        acks.save(&position, "log").unwrap();
        assert_eq!(
            std::fs::read_to_string(&ack).unwrap(),
            format!("{position}\n")
        );
        std::fs::write(&ack, "garbage").unwrap();
        assert_eq!(
            acks.saved().unwrap_err().to_string(),
            format!(
                "{}: \"garbage\" is not a gridftp-parse cursor",
                ack.display()
            )
        );
    }
}
