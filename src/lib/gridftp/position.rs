//! Positions in a log file that survive rotation: the cursor format of the module docs.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Bytes of the file's head that identify its contents.
pub const FINGERPRINT_MAX: u64 = 256;
const PREFIX: &str = "gridftp1";

/// Which file: device, inode and a fingerprint of its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// How many leading bytes the fingerprint covers.
    pub fingerprint_len: u64,
    /// FNV-1a 64 of those bytes.
    pub fingerprint: u64,
}

impl Identity {
    /// The identity of an open file as it is now (the fingerprint covers up to
    /// [`FINGERPRINT_MAX`] bytes, fewer if the file is shorter).
    pub fn of(file: &File) -> std::io::Result<Identity> {
        let meta = file.metadata()?;
        let len = meta.len().min(FINGERPRINT_MAX);
        Ok(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint_len: len,
            fingerprint: fingerprint(file, len)?.unwrap_or(0),
        })
    }

    /// True when `file` is the file this identity was taken from: same device and inode,
    /// and its first `fingerprint_len` bytes hash the same.
    pub fn matches(&self, file: &File) -> std::io::Result<bool> {
        let meta = file.metadata()?;
        if meta.dev() != self.dev || meta.ino() != self.ino {
            return Ok(false);
        }
        Ok(fingerprint(file, self.fingerprint_len)? == Some(self.fingerprint))
    }
}

/// FNV-1a 64 of the first `len` bytes, or `None` if the file is shorter.
fn fingerprint(file: &File, len: u64) -> std::io::Result<Option<u64>> {
    let mut head = vec![0u8; len as usize];
    let mut done = 0;
    while done < head.len() {
        match file.read_at(&mut head[done..], done as u64)? {
            0 => return Ok(None),
            n => done += n,
        }
    }
    Ok(Some(
        head.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        }),
    ))
}

/// A place in a particular file: after `offset` bytes, which end line `line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The file.
    pub identity: Identity,
    /// Bytes consumed: the offset just after the last complete line read.
    pub offset: u64,
    /// Lines consumed (the number of the line ending at `offset`).
    pub line: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}:{}", self.identity_prefix(), self.offset, self.line)
    }
}

impl Position {
    /// The cursor up to the offset: `gridftp1:dev:ino:fplen:fphex:`, to which a writer
    /// appends `offset:line` per record.
    pub fn identity_prefix(&self) -> String {
        let id = &self.identity;
        format!(
            "{PREFIX}:{}:{}:{}:{:016x}:",
            id.dev, id.ino, id.fingerprint_len, id.fingerprint
        )
    }

    /// Parses a cursor.
    pub fn parse(text: &str) -> Result<Position, String> {
        let bad = || format!("{text:?} is not a gridftp-parse cursor");
        let parts: Vec<&str> = text.trim().split(':').collect();
        let [PREFIX, dev, ino, fp_len, fp, offset, line] = parts[..] else {
            return Err(bad());
        };
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let fingerprint_len = number(fp_len)?;
        if fingerprint_len > FINGERPRINT_MAX {
            return Err(bad());
        }
        Ok(Position {
            identity: Identity {
                dev: number(dev)?,
                ino: number(ino)?,
                fingerprint_len,
                fingerprint: u64::from_str_radix(fp, 16).map_err(|_| bad())?,
            },
            offset: number(offset)?,
            line: number(line)?,
        })
    }
}

/// Where to start reading `file` given a saved position, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No saved position: from the beginning.
    Fresh,
    /// The saved position is in this file: go on from there.
    Resume {
        /// Byte offset.
        offset: u64,
        /// Lines before it.
        line: u64,
    },
    /// The saved position is in another file (rotated) or this one was truncated: from the
    /// beginning.
    Rotated,
}

/// Finds the file the saved position is in, now that `path` is another file: a sibling
/// named after it (`LOG.1`, `LOG-20261203`, …; compressed ones cannot be read) that is the
/// same file renamed (same device, inode and fingerprint: logrotate `create`) or a copy of
/// it (same fingerprint and at least `offset` long: `copytruncate`). Returns its path and
/// the open file.
pub fn find_rotated(
    path: &std::path::Path,
    saved: &Position,
) -> std::io::Result<Option<(std::path::PathBuf, File)>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let Some(stem) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    let mut copies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let compressed = [".gz", ".bz2", ".xz", ".zst", ".lz4"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if name == stem || !name.starts_with(&stem) || compressed {
            continue;
        }
        // Beside a relative name with no directory, name the sibling the same way.
        let candidate = match path.parent() {
            Some(parent) if parent.as_os_str().is_empty() => std::path::PathBuf::from(&name),
            _ => entry.path(),
        };
        let Ok(file) = File::open(&candidate) else {
            continue;
        };
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() < saved.offset {
            continue;
        }
        if saved.identity.matches(&file)? {
            return Ok(Some((candidate, file)));
        }
        if fingerprint(&file, saved.identity.fingerprint_len)? == Some(saved.identity.fingerprint) {
            copies.push((candidate, file));
        }
    }
    // A copy: the shortest name is the newest rotation (LOG.1 before LOG.1.1, LOG.2).
    copies.sort_by_key(|(p, _)| (p.as_os_str().len(), p.clone()));
    Ok(copies.into_iter().next())
}

/// Decides where to start reading `file`.
pub fn start(saved: Option<&Position>, file: &File) -> std::io::Result<Start> {
    let Some(saved) = saved else {
        return Ok(Start::Fresh);
    };
    let len = file.metadata()?.len();
    if saved.offset <= len && saved.identity.matches(file)? {
        Ok(Start::Resume {
            offset: saved.offset,
            line: saved.line,
        })
    } else {
        Ok(Start::Rotated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let position = Position {
            identity: Identity {
                dev: 2049,
                ino: 77,
                fingerprint_len: 256,
                fingerprint: 0x9f1c,
            },
            offset: 1905,
            line: 7,
        };
        let text = position.to_string();
        assert_eq!(text, "gridftp1:2049:77:256:0000000000009f1c:1905:7");
        assert_eq!(Position::parse(&text), Ok(position));
        assert_eq!(Position::parse(&format!("{text}\n")), Ok(position));
        for bad in [
            "",
            "gridftp1:1:2",
            "other:1:2:3:ab:5:6",
            "gridftp1:1:2:999:ab:5:6",
        ] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rewritten_or_truncated_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "first line\nsecond\n").unwrap();
        let file = File::open(&path).unwrap();
        let saved = Position {
            identity: Identity::of(&file).unwrap(),
            offset: 11,
            line: 1,
        };
        assert_eq!(
            start(Some(&saved), &file).unwrap(),
            Start::Resume {
                offset: 11,
                line: 1
            }
        );
        assert_eq!(start(None, &file).unwrap(), Start::Fresh);
        // copytruncate, then new lines: same inode, other contents.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        assert_eq!(start(Some(&saved), &file).unwrap(), Start::Rotated);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"fresh line after the truncation\n").unwrap();
        assert_eq!(start(Some(&saved), &file).unwrap(), Start::Rotated);
    }
}
