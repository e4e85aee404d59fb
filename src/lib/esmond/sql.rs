//! One connection to the archive's database, the embedded SQLite file or PostgreSQL,
//! behind one small interface, so the store's statements and logic are written once.
//!
//! Statements are spelled as both engines read them (`INSERT … ON CONFLICT`, `CASE`,
//! `RETURNING`), with SQLite's parameters: numbered `?N` or bare `?`, which a PostgreSQL
//! connection turns into `$N` once per statement (and keeps prepared). Values are
//! [`Arg`]s: an integer is bound as the column's own integer type (or boolean) on
//! PostgreSQL, whose driver checks types exactly.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::Failure;

/// A statement's parameter.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// An integer (a boolean is 0 or 1).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
    /// NULL.
    Null,
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u16> for Arg<'_> {
    fn from(v: u16) -> Self {
        Arg::Int(v.into())
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(v.into())
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(v)
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// An owned parameter, for statements built up from a query's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl Param {
    /// Borrowed, to bind.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Param::Int(v) => Arg::Int(*v),
            Param::Text(v) => Arg::Text(v),
        }
    }
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

/// The parameters of a statement, each converted with [`Arg::from`].
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::esmond::sql::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// One row of a result.
pub trait Row {
    /// Column `i` as an integer (a boolean as 0 or 1); `None` if NULL.
    fn int(&self, i: usize) -> Result<Option<i64>, Failure>;
    /// Column `i` as text; `None` if NULL.
    fn text(&self, i: usize) -> Result<Option<&str>, Failure>;
    /// Column `i` as bytes; `None` if NULL.
    fn blob(&self, i: usize) -> Result<Option<&[u8]>, Failure>;
}

impl dyn Row + '_ {
    /// Column `i`, an integer that is never NULL.
    pub fn i64(&self, i: usize) -> Result<i64, Failure> {
        self.int(i)?.ok_or_else(|| null(i))
    }

    /// Column `i`, text that is never NULL.
    pub fn string(&self, i: usize) -> Result<String, Failure> {
        self.text(i)?.map(str::to_owned).ok_or_else(|| null(i))
    }

    /// Column `i`, text or NULL.
    pub fn opt_string(&self, i: usize) -> Result<Option<String>, Failure> {
        Ok(self.text(i)?.map(str::to_owned))
    }
}

fn null(i: usize) -> Failure {
    Failure::internal(format!("database error: column {i} is NULL"))
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, Failure> {
        Ok(self.get::<_, Option<i64>>(i)?)
    }

    fn text(&self, i: usize) -> Result<Option<&str>, Failure> {
        Ok(self
            .get_ref(i)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?)
    }

    fn blob(&self, i: usize) -> Result<Option<&[u8]>, Failure> {
        Ok(self
            .get_ref(i)?
            .as_blob_or_null()
            .map_err(rusqlite::Error::from)?)
    }
}

impl Row for postgres::Row {
    fn int(&self, i: usize) -> Result<Option<i64>, Failure> {
        use postgres::types::Type;
        let column = self
            .columns()
            .get(i)
            .ok_or_else(|| Failure::internal(format!("database error: no column {i}")))?;
        Ok(match *column.type_() {
            Type::INT4 => self.try_get::<_, Option<i32>>(i)?.map(i64::from),
            Type::INT2 => self.try_get::<_, Option<i16>>(i)?.map(i64::from),
            Type::BOOL => self.try_get::<_, Option<bool>>(i)?.map(i64::from),
            _ => self.try_get::<_, Option<i64>>(i)?,
        })
    }

    fn text(&self, i: usize) -> Result<Option<&str>, Failure> {
        Ok(self.try_get::<_, Option<&str>>(i)?)
    }

    fn blob(&self, i: usize) -> Result<Option<&[u8]>, Failure> {
        Ok(self.try_get::<_, Option<&[u8]>>(i)?)
    }
}

/// A connection to the archive's database.
pub enum Conn {
    /// The embedded SQLite file.
    Lite(rusqlite::Connection),
    /// A PostgreSQL database.
    Pg(Box<Pg>),
}

/// The most prepared statements a PostgreSQL connection keeps.
const STATEMENTS: usize = 256;

/// A PostgreSQL connection, its prepared statements, and whether a transaction is open.
pub struct Pg {
    /// The database's URL.
    url: String,
    /// (Taken when dropped: see the `Drop`.)
    client: RefCell<Option<postgres::Client>>,
    /// Prepared statements by their SQLite spelling.
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// A transaction is open ([`Conn::begin`] to its commit or rollback).
    open: Cell<bool>,
    /// The point partitions known to exist in the open transaction, [start, end) each.
    partitions: RefCell<Vec<(i64, i64)>>,
}

impl Pg {
    /// Wraps a client connected to `url` (which connects again should it be lost).
    pub fn new(url: &str, client: postgres::Client) -> Pg {
        Pg {
            url: url.to_owned(),
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
            open: Cell::new(false),
            partitions: RefCell::new(Vec::new()),
        }
    }

    /// The client: connected again first if the connection was lost (a database
    /// restarted, say) and no transaction was open on it (that one failed with it).
    fn client(&self) -> Result<std::cell::RefMut<'_, postgres::Client>, Failure> {
        if self.lost() {
            let client = super::pg::connect(&self.url)
                .map_err(|e| Failure::internal(format!("database error: {e}")))?;
            self.statements.borrow_mut().clear();
            *self.client.borrow_mut() = Some(client);
        }
        std::cell::RefMut::filter_map(self.client.borrow_mut(), Option::as_mut)
            .map_err(|_| Failure::internal("database error: no connection"))
    }

    /// Whether the connection was lost outside a transaction (the next use connects
    /// again).
    fn lost(&self) -> bool {
        !self.open.get()
            && self
                .client
                .borrow()
                .as_ref()
                .is_none_or(postgres::Client::is_closed)
    }

    /// The statement for `sql`, prepared once.
    fn statement(&self, sql: &str) -> Result<postgres::Statement, Failure> {
        // A lost connection is made again first: its statements went with it.
        drop(self.client()?);
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(&dollars(sql))?;
        let mut statements = self.statements.borrow_mut();
        // Searches make statements of many shapes: the kept ones are bounded (each is
        // also kept by the server, per connection), and start over when full.
        if statements.len() >= STATEMENTS {
            statements.clear();
        }
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Each argument as the type its parameter was inferred to be.
    fn bind<'a>(
        statement: &postgres::Statement,
        args: &'a [Arg<'a>],
    ) -> Result<Vec<Typed<'a>>, Failure> {
        if statement.params().len() != args.len() {
            return Err(Failure::internal(format!(
                "database error: {} parameters bound to a statement of {}",
                args.len(),
                statement.params().len()
            )));
        }
        Ok(args.iter().map(Typed).collect())
    }
}

impl Drop for Pg {
    /// Closes the connection on a thread of its own: the blocking client runs a runtime to
    /// close it, which cannot start on a server's runtime thread (where the last reference
    /// to the store may go).
    fn drop(&mut self) {
        self.statements.get_mut().clear();
        if let Some(client) = self.client.get_mut().take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// An [`Arg`] bound on PostgreSQL: an integer is written as the parameter's type.
#[derive(Debug)]
struct Typed<'a>(&'a Arg<'a>);

impl postgres::types::ToSql for Typed<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match *self.0 {
            Arg::Null => Ok(postgres::types::IsNull::Yes),
            Arg::Int(v) => match *ty {
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Arg::Text(v) => v.to_sql(ty, out),
            Arg::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// `sql` with SQLite's parameters as PostgreSQL's `$N`: `?N` is `$N`, and a bare `?` is
/// numbered one past the largest number before it, as SQLite numbers it.
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut largest = 0u32;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        let mut number = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            number.push(d);
        }
        let n = number.parse().unwrap_or(largest + 1);
        largest = largest.max(n);
        out.push('$');
        out.push_str(&n.to_string());
    }
    out
}

impl Conn {
    /// Runs a statement; how many rows it changed.
    pub fn execute(&self, sql: &str, args: &[Arg]) -> Result<usize, Failure> {
        match self {
            Conn::Lite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                lite_bind(&mut statement, args)?;
                Ok(statement.raw_execute()?)
            }
            // (Writes run in transactions: one on a lost connection fails with it.)
            Conn::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let typed = Pg::bind(&statement, args)?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    typed.iter().map(|t| t as _).collect();
                let changed = pg.client()?.execute(&statement, &refs)?;
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
        }
    }

    /// Calls `each` with every row `sql` selects, until it returns false.
    pub fn each(
        &self,
        sql: &str,
        args: &[Arg],
        each: &mut dyn FnMut(&dyn Row) -> Result<bool, Failure>,
    ) -> Result<(), Failure> {
        match self {
            Conn::Lite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                lite_bind(&mut statement, args)?;
                let mut rows = statement.raw_query();
                while let Some(row) = rows.next()? {
                    if !each(row)? {
                        break;
                    }
                }
                Ok(())
            }
            Conn::Pg(pg) => {
                use postgres::fallible_iterator::FallibleIterator;
                let delivered = Cell::new(false);
                let mut run = || -> Result<(), Failure> {
                    let statement = pg.statement(sql)?;
                    let typed = Pg::bind(&statement, args)?;
                    let mut client = pg.client()?;
                    let mut rows = client.query_raw(&statement, typed.iter())?;
                    while let Some(row) = rows.next()? {
                        delivered.set(true);
                        if !each(&row)? {
                            break;
                        }
                    }
                    Ok(())
                };
                // Run again on a new connection if the first was found lost (the database
                // restarted since the last statement) before a row came: nothing is
                // delivered twice.
                match run() {
                    Err(_) if !delivered.get() && pg.lost() => run(),
                    other => other,
                }
            }
        }
    }

    /// The first row `sql` selects, read by `f`; `None` if none.
    pub fn one<T>(
        &self,
        sql: &str,
        args: &[Arg],
        f: impl FnOnce(&dyn Row) -> Result<T, Failure>,
    ) -> Result<Option<T>, Failure> {
        let mut f = Some(f);
        let mut found = None;
        self.each(sql, args, &mut |row| {
            if let Some(f) = f.take() {
                found = Some(f(row)?);
            }
            Ok(false)
        })?;
        Ok(found)
    }

    /// Every row `sql` selects, each read by `f`.
    pub fn all<T>(
        &self,
        sql: &str,
        args: &[Arg],
        mut f: impl FnMut(&dyn Row) -> Result<T, Failure>,
    ) -> Result<Vec<T>, Failure> {
        let mut found = Vec::new();
        self.each(sql, args, &mut |row| {
            found.push(f(row)?);
            Ok(true)
        })?;
        Ok(found)
    }

    /// Runs statements without parameters (savepoints, say) inside a transaction.
    pub fn batch(&self, sql: &str) -> Result<(), Failure> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(pg) => Ok(pg.client()?.batch_execute(sql)?),
        }
    }

    /// Commits the open transaction (it is over even if this fails).
    pub fn commit(&self) -> Result<(), Failure> {
        self.end("COMMIT")
    }

    /// Rolls the open transaction back.
    pub fn rollback(&self) -> Result<(), Failure> {
        self.end("ROLLBACK")
    }

    fn end(&self, sql: &str) -> Result<(), Failure> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(pg) => {
                pg.open.set(false);
                Ok(pg.client()?.batch_execute(sql)?)
            }
        }
    }

    /// Begins the write transaction: SQLite's immediate one (the file's write lock), or on
    /// PostgreSQL a transaction holding the archive's write lock, which serialises the
    /// writes of every server sharing the database as SQLite's lock does one file's.
    pub fn begin(&self) -> Result<(), Failure> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Conn::Pg(pg) => {
                // The generation moves with the transaction: other servers see it move
                // when (and only if) it commits, and drop the searches they keep.
                let begin = || {
                    pg.client()?
                        .batch_execute(&format!(
                            "BEGIN; SELECT pg_advisory_xact_lock({}); UPDATE measpipe_generation SET n = n + 1",
                            super::pg::WRITE_LOCK
                        ))
                        .map_err(Failure::from)
                };
                // (A connection found lost is made again, once.)
                let begun = match begin() {
                    Err(_) if pg.lost() => begin(),
                    other => other,
                };
                if begun.is_err() {
                    // (What of it ran is rolled back; a lost connection has ended it.)
                    let _ = pg.client().map(|mut c| c.batch_execute("ROLLBACK"));
                }
                begun?;
                pg.open.set(true);
                pg.partitions.borrow_mut().clear();
                Ok(())
            }
        }
    }

    /// Whether a transaction is open (SQLite ends one itself on some failures, a full
    /// disk among them).
    pub fn in_transaction(&self) -> bool {
        match self {
            Conn::Lite(c) => !c.is_autocommit(),
            Conn::Pg(pg) => pg.open.get(),
        }
    }

    /// Whether this is a PostgreSQL connection.
    pub fn is_pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// Makes sure points at times `from..=to` can be written: on PostgreSQL, the month
    /// partitions holding them exist (made in the open transaction if not; what is known
    /// to exist is kept for the transaction only, since another server's retention may
    /// drop a month meanwhile). Nothing to do on SQLite.
    pub fn cover(&self, from: i64, to: i64) -> Result<(), Failure> {
        let Conn::Pg(pg) = self else {
            return Ok(());
        };
        let mut at = from;
        while at <= to {
            let known = pg
                .partitions
                .borrow()
                .iter()
                .find(|p| p.0 <= at && at < p.1)
                .map(|p| p.1);
            let end = match known {
                Some(end) => end,
                None => {
                    // (Months past chrono's ±262,000 years have no partition.)
                    super::pg::partition_of(at)
                        .map_err(|_| Failure::bad_request(format!("Time {at} is out of range")))?;
                    let made =
                        super::pg::create_partition(&mut *pg.client()?, at).map_err(internal)?;
                    pg.partitions.borrow_mut().push((made.start, made.end));
                    made.end
                }
            };
            if end <= at {
                break;
            }
            at = end;
        }
        Ok(())
    }

    /// On PostgreSQL, drops the month partitions whose every time is before `cutoff`, in
    /// the open write transaction; how many points they held. Nothing on SQLite.
    pub fn drop_months_before(&self, cutoff: i64) -> Result<usize, Failure> {
        let Conn::Pg(pg) = self else {
            return Ok(0);
        };
        let mut client = pg.client()?;
        let mut dropped = 0;
        for partition in super::pg::partitions(&mut *client).map_err(internal)? {
            if partition.end > cutoff {
                continue;
            }
            let count: i64 = client
                .query_one(&format!("SELECT count(*) FROM {}", partition.name), &[])?
                .get(0);
            client.batch_execute(&format!("DROP TABLE {}", partition.name))?;
            dropped += usize::try_from(count).unwrap_or(0);
        }
        pg.partitions.borrow_mut().clear();
        Ok(dropped)
    }
}

fn internal(e: crate::Error) -> Failure {
    Failure::internal(format!("database error: {e}"))
}

/// Binds `args` to a cached SQLite statement.
fn lite_bind(statement: &mut rusqlite::CachedStatement<'_>, args: &[Arg]) -> Result<(), Failure> {
    for (i, arg) in args.iter().enumerate() {
        match *arg {
            Arg::Int(v) => statement.raw_bind_parameter(i + 1, v)?,
            Arg::Text(v) => statement.raw_bind_parameter(i + 1, v)?,
            Arg::Blob(v) => statement.raw_bind_parameter(i + 1, v)?,
            Arg::Null => statement.raw_bind_parameter(i + 1, rusqlite::types::Null)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_parameters_become_postgresql_s() {
        assert_eq!(
            dollars("SELECT a FROM t WHERE b = ?1 AND c IN (?, ?) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) AND d = '?'"
        );
        assert_eq!(dollars("VALUES (?1,?12,?3)"), "VALUES ($1,$12,$3)");
        assert_eq!(dollars("x = ? AND y = ?"), "x = $1 AND y = $2");
    }
}
