//! Several records in one message (`nats-pub --pack N`), sent again in the same messages.
//!
//! JetStream drops a re-sent message by its id, so a rerun must send what a killed run
//! sent and did not count in the very same messages. Where the killed run cut them (after
//! N records, before a message would pass [`PACK_BYTES`], or early when the input paused
//! for the linger) the stream itself says: a rerun reads the messages on its subject past
//! the stream sequence kept beside its ack file and packs the same records the same way
//! ([`Plan`]). Past them, the usual rules apply.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use sha2::Digest;

use crate::error::Error;

/// A message is cut before it would pass this many bytes (NATS's default `max_payload` is
/// 1 MiB); a single larger record is a message of its own.
pub const PACK_BYTES: usize = 256 * 1024;

/// The message being filled: records in input order, newline-separated.
pub struct Pack {
    /// The input number of its first and last record.
    pub first: u64,
    pub last: u64,
    /// Its records.
    pub count: usize,
    payload: Vec<u8>,
    /// The first record's id (the message's own when it is the only one).
    first_id: String,
    /// A hash of every record's id, from the second record on.
    ids: Option<sha2::Sha256>,
    /// The last record's cursor (with `--ack-cursor`).
    pub cursor: Option<Box<str>>,
    /// When its first record came (the linger runs from there).
    pub opened: Instant,
}

/// A pack taken to be sent: its message's payload and id.
pub struct Message {
    pub first: u64,
    pub last: u64,
    pub payload: bytes::Bytes,
    pub id: String,
    pub cursor: Option<Box<str>>,
}

impl Pack {
    /// An empty pack.
    pub fn new() -> Pack {
        Pack {
            first: 0,
            last: 0,
            count: 0,
            payload: Vec::new(),
            first_id: String::new(),
            ids: None,
            cursor: None,
            opened: Instant::now(),
        }
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a record of `len` bytes still fits (an empty pack takes any record).
    pub fn fits(&self, len: usize) -> bool {
        self.count == 0 || self.payload.len() + 1 + len <= PACK_BYTES
    }

    /// Adds record number `index` (its line, id and cursor).
    pub fn push(&mut self, index: u64, line: Vec<u8>, id: String, cursor: Option<Box<str>>) {
        if self.count == 0 {
            self.first = index;
            self.payload = line;
            self.first_id = id;
            self.opened = Instant::now();
        } else {
            let ids = self.ids.get_or_insert_with(|| {
                let mut hash = sha2::Sha256::new();
                hash.update(self.first_id.as_bytes());
                hash
            });
            ids.update(b"\n");
            ids.update(id.as_bytes());
            self.payload.push(b'\n');
            self.payload.extend_from_slice(&line);
        }
        self.last = index;
        self.cursor = cursor;
        self.count += 1;
    }

    /// Takes the records as one message, leaving the pack empty. A lone record is sent
    /// under its own id, as without packs; several under `pack:` and a hash of their ids.
    pub fn take(&mut self) -> Message {
        let id = match self.ids.take() {
            None => std::mem::take(&mut self.first_id),
            Some(hash) => {
                let mut id = String::with_capacity(45);
                id.push_str("pack:");
                for byte in &hash.finalize()[..20] {
                    let _ = write!(id, "{byte:02x}");
                }
                id
            }
        };
        self.count = 0;
        Message {
            first: self.first,
            last: self.last,
            payload: bytes::Bytes::from(std::mem::take(&mut self.payload)),
            id,
            cursor: self.cursor.take(),
        }
    }
}

/// The messages a killed run sent that the stream holds and its ack files do not count,
/// each as its records' ids (hashed), in stream order: a rerun packs the same records into
/// the same messages, and the stream drops each as a duplicate.
#[derive(Debug, Default)]
pub struct Plan {
    landed: VecDeque<Vec<u64>>,
    records: usize,
}

/// A record id's hash, as a plan keeps it (a collision could only cost a duplicate).
pub fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// At most this many records are kept in a plan (~8 MB): past it, the rest is packed by
/// the usual rules.
pub const PLAN_RECORDS: usize = 1_000_000;

impl Plan {
    /// Notes a message held by the stream by its records' ids; false (nothing noted) once
    /// the plan holds [`PLAN_RECORDS`].
    pub fn landed(&mut self, ids: Vec<u64>) -> bool {
        if self.records + ids.len() > PLAN_RECORDS {
            return false;
        }
        self.records += ids.len();
        self.landed.push_back(ids);
        true
    }

    /// The records' ids of the landed message that starts with record `id` (those before
    /// it are passed over), or `None`: the pack follows the usual rules, and the plan is
    /// forgotten when no message starts there.
    pub fn take(&mut self, id: u64) -> Option<Vec<u64>> {
        if self.landed.is_empty() {
            return None;
        }
        match self.landed.iter().position(|ids| ids.first() == Some(&id)) {
            Some(at) => {
                self.landed.drain(..at);
                self.landed.pop_front()
            }
            None => {
                self.landed.clear();
                None
            }
        }
    }

    /// The number of messages noted and not yet taken.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.landed.len()
    }
}

/// The stream sequence kept in `path` (beside the ack file): every message of this
/// publisher's that its ack files do not count comes after it. `None` when there is none.
pub fn read_sequence(path: &Path) -> Result<Option<u64>, Error> {
    match crate::state::read(path)? {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::failed(format!(
                "{}: not a nats-pub stream sequence (expected a number, found {:?})",
                path.display(),
                text.trim()
            ))
        }),
    }
}

/// Keeps `sequence` in `path`, atomically and durably.
pub fn write_sequence(path: &Path, sequence: u64) -> Result<(), Error> {
    crate::state::write_atomic(path, format!("{sequence}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(records: &[(&str, &str)]) -> Message {
        let mut pack = Pack::new();
        for (i, (line, id)) in records.iter().enumerate() {
            pack.push(i as u64 + 1, line.as_bytes().to_vec(), (*id).into(), None);
        }
        pack.take()
    }

    #[test]
    fn a_lone_record_keeps_its_id_and_several_are_named_by_theirs() {
        let one = message(&[("{\"a\":1}", "id1")]);
        assert_eq!(
            (one.id.as_str(), &one.payload[..]),
            ("id1", &b"{\"a\":1}"[..])
        );
        let two = message(&[("{\"a\":1}", "id1"), ("{\"b\":2}", "id2")]);
        assert_eq!(&two.payload[..], b"{\"a\":1}\n{\"b\":2}");
        assert_eq!((two.first, two.last), (1, 2));
        assert!(
            two.id.starts_with("pack:") && two.id.len() == 45,
            "{}",
            two.id
        );
        assert_eq!(two.id, message(&[("x", "id1"), ("y", "id2")]).id);
        assert_ne!(two.id, message(&[("x", "id1"), ("y", "id3")]).id);
        assert_ne!(two.id, message(&[("x", "id2"), ("y", "id1")]).id);
    }

    #[test]
    fn a_pack_takes_records_up_to_its_byte_limit() {
        let mut pack = Pack::new();
        assert!(pack.fits(PACK_BYTES * 2));
        pack.push(1, vec![b'x'; PACK_BYTES - 10], "a".into(), None);
        assert!(pack.fits(9));
        assert!(!pack.fits(10));
    }

    #[test]
    fn a_plan_passes_over_messages_before_the_first_record_and_ends_where_none_starts() {
        let mut plan = Plan::default();
        for ids in [vec![1, 2, 3], vec![4, 5], vec![6], vec![7]] {
            assert!(plan.landed(ids));
        }
        assert_eq!(plan.take(4), Some(vec![4, 5]));
        assert_eq!(plan.take(6), Some(vec![6]));
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.take(8), None);
        assert_eq!(plan.len(), 0);
        assert_eq!(plan.take(7), None);
        let mut big = Plan::default();
        assert!(big.landed(vec![0; PLAN_RECORDS - 1]));
        assert!(big.landed(vec![1]));
        assert!(!big.landed(vec![2]));
        assert_eq!(id_hash("a"), id_hash("a"));
        assert_ne!(id_hash("a"), id_hash("b"));
    }

    #[test]
    fn the_sequence_file_is_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ack.seq");
        assert_eq!(read_sequence(&path).unwrap(), None);
        write_sequence(&path, 42).unwrap();
        assert_eq!(read_sequence(&path).unwrap(), Some(42));
        std::fs::write(&path, "x\n").unwrap();
        assert_eq!(
            read_sequence(&path).err().unwrap().to_string(),
            format!(
                "{}: not a nats-pub stream sequence (expected a number, found \"x\")",
                path.display()
            )
        );
    }
}
