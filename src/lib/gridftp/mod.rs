//! GridFTP server logs → measurement records, resumable across cron runs and log rotation.
//!
//! Three line formats carry a finished transfer ([`line`]):
//!
//! * the transfer log (`-log-transfer`, "netlogger"): `DATE=… HOST=… … TYPE=RETR CODE=226
//!   TASKID=… [retrans=n,n,…]`, where values may contain spaces (`FILE=/a b c`);
//! * the main server log, whose `… :: Transfer stats: DATE=…` lines embed the same text;
//! * the JSON transfer log, one object per line with `"event_type": "Transfer-End"`.
//!
//! [`scan`] runs over a log (complete lines in, records out, the end position back),
//! [`checkpoint`] keeps that position between runs (a state file, or the consumer's ack),
//! [`transfer`] turns a line into a [`transfer::Transfer`] and [`render`] writes it as the
//! measurement esmond-ps-load-gridftp posted (same metadata, so archives keep their
//! metadata identity): RETR is host → DEST, STOR is DEST → host, code 226 gives
//! `throughput` (8·NBYTES/(DATE−START), bits/s) and `streams-packet-retransmits`, other
//! codes a `failures` value `{"error": "<code> <text>"}`.
//!
//! # Where a run resumes: positions and cursors
//!
//! A [`position::Position`] names a byte offset in one particular file: the file's device
//! and inode, a fingerprint of its first bytes (so a file truncated and rewritten in place
//! by `copytruncate` is told apart), the offset just after the last complete line read, and
//! that line's number (for error messages). Written as text it is the record's `cursor`:
//!
//! ```text
//! gridftp1:<dev>:<inode>:<fingerprint length>:<fingerprint, 16 hex digits>:<offset>:<line>
//! ```
//!
//! e.g. `gridftp1:2049:1311020:256:9f1c2e4b7a0d3c55:1905:7`. The fingerprint is FNV-1a 64
//! over the first `length` bytes (at most 256). A saved position is resumed only if the file
//! at the path has the same device, inode and fingerprint and is at least `offset` long;
//! otherwise the log was rotated or truncated: the saved file is looked for beside the log
//! (renamed by logrotate `create`: same inode; copied by `copytruncate`: same fingerprint)
//! and finished from the saved offset first, then the log is read from 0. A partial last line
//! (the server is still writing it) is never consumed.

pub mod checkpoint;
pub mod ftp;
pub mod line;
pub mod position;
pub mod render;
pub mod resolve;
pub mod scan;
pub mod transfer;
