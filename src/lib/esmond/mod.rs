//! An esmond-compatible measurement archive: the perfSONAR REST API of esmond 4.2.1
//! (esmond.md §1) served from an embedded SQLite store (or PostgreSQL, for several servers
//! on one database), so the real esmond-client and existing perfSONAR scripts have an
//! archive again.
//!
//! [`types`] is the event-type catalogue and value validation, [`timefilter`] the time
//! parameters, [`statistics`] histogram summaries, [`store`] the database (over [`sql`]'s
//! connection; [`pg`] is what is PostgreSQL's own) and [`server`] the HTTP routes. [`query`] reads an archive back (a real esmond or this one) and
//! [`rows`] prints what it reads as the esmond-client tools did.
//!
//! Where esmond was wrong or fragile the archive does better and says so:
//! a bulk PUT is one transaction, re-sending identical data is a no-op, subject addresses
//! must be IP literals (esmond answered 500), and `--retention` really frees space.

#[cfg(feature = "esmond-client")]
pub mod audit;
#[cfg(feature = "esmond-server")]
pub mod backup;
pub mod bulk;
#[cfg(feature = "esmond-client")]
pub mod client;
#[cfg(feature = "esmond-server")]
pub mod dashboard;
#[cfg(feature = "esmond-client")]
pub mod dates;
#[cfg(feature = "esmond-client")]
pub mod deliver;
#[cfg(feature = "esmond-client")]
pub mod fetch;
#[cfg(feature = "esmond-client")]
pub mod keys;
#[cfg(feature = "esmond-server")]
pub mod meters;
#[cfg(feature = "esmond-server")]
pub mod pg;
#[cfg(any(feature = "esmond-server", feature = "esmond-client"))]
pub mod pscheduler;
pub mod python;
#[cfg(feature = "esmond-client")]
pub mod query;
pub mod retention;
#[cfg(feature = "esmond-client")]
pub mod rows;
#[cfg(feature = "esmond-server")]
pub mod server;
#[cfg(feature = "esmond-client")]
pub mod sink;
#[cfg(feature = "esmond-server")]
pub mod sql;
pub mod statistics;
#[cfg(feature = "esmond-server")]
pub mod store;
pub mod timefilter;
pub mod types;

/// An API error: an HTTP status and esmond's `detail` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status code.
    pub status: u16,
    /// The `{"detail": ...}` text.
    pub detail: String,
}

impl Failure {
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Failure {
            status: 400,
            detail: detail.into(),
        }
    }
    /// 404 `Not found.`
    pub fn not_found() -> Self {
        Failure {
            status: 404,
            detail: "Not found.".into(),
        }
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Failure {
            status: 409,
            detail: detail.into(),
        }
    }
    /// 507: the archive's disk is full.
    pub fn disk_full() -> Self {
        Failure {
            status: 507,
            detail:
                "The archive's disk is full: nothing was written; try again when space is freed"
                    .into(),
        }
    }
    /// 500.
    pub fn internal(detail: impl Into<String>) -> Self {
        Failure {
            status: 500,
            detail: detail.into(),
        }
    }
}

#[cfg(feature = "esmond-server")]
impl From<rusqlite::Error> for Failure {
    /// A full disk is the client's 507 (nothing was written; retry later); anything else
    /// is a 500 whose text is logged, never sent.
    fn from(err: rusqlite::Error) -> Self {
        if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Failure::disk_full();
        }
        Failure::internal(format!("database error: {err}"))
    }
}

#[cfg(feature = "esmond-server")]
impl From<postgres::Error> for Failure {
    /// A full disk is the client's 507, as SQLite's; anything else a 500 whose text is
    /// logged, never sent.
    fn from(err: postgres::Error) -> Self {
        use postgres::error::SqlState;
        match err.code() {
            Some(code) if *code == SqlState::DISK_FULL => Failure::disk_full(),
            _ => Failure::internal(format!(
                "database error: {}",
                err.as_db_error()
                    .map_or_else(|| err.to_string(), |db| db.message().to_owned())
            )),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for crate::Error {
    fn from(failure: Failure) -> Self {
        crate::Error::Failed(failure.to_string())
    }
}
