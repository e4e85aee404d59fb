//! `esmond-serve`: an esmond-compatible measurement archive on an embedded store, or on
//! PostgreSQL shared by several servers.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::esmond::retention::{Policy as RetentionPolicy, Rule};
use crate::esmond::server::{self, Config};
use crate::esmond::store::Store;
use crate::esmond::{backup, pg};

mod pscheduler;

const EXAMPLES: &str = "\
Examples:
  # an archive on loopback, as esmond-client expects it (/esmond/perfsonar/archive/)
  esmond-serve --data /var/lib/esmond-serve

  # a key for a writer (printed once; only its hash is kept)
  esmond-serve --data /var/lib/esmond-serve token add bwctl-host

  # keep a year, let the measurement hosts of 10.1.0.0/16 write without a key
  esmond-serve --data /var/lib/esmond-serve --retention 365 --trust 10.1.0.0/16 --listen 0.0.0.0:8080

  # on PostgreSQL: the schema made once (and after each upgrade), then any number of servers
  export ESMOND_SERVE_STORE=postgres://esmond@db.example.net/archive
  esmond-serve migrate
  esmond-serve token add bwctl-host
  esmond-serve --listen 0.0.0.0:8080";

/// Serve the esmond perfSONAR REST API from an embedded SQLite store, or from PostgreSQL.
///
/// Reads are anonymous; writes need `Authorization: Token <key>` (or the legacy
/// `ApiKey user:key`), or a client address inside a --trust network, checked before a byte
/// of the body is read. The API is served under /ALIAS/perfsonar/archive/ and
/// /perfsonar/archive/ (each answer's URIs name the root it was asked under); HEAD is
/// answered as GET without the body; GET /health answers {"status": "ok"} for service
/// managers, GET /metrics the server's requests, latency, points written and database
/// size for Prometheus. GET / is a dashboard: the test pairs with their latest throughput,
/// latency, loss and traceroute path; GET /dashboard/KEY charts each event type of one
/// metadata (`?days=N`, default 7) and marks traceroute path changes (plain HTML and SVG,
/// no scripts). Every request is logged on stderr; a server-side error's cause is
/// logged, never sent. Slow and idle clients are bounded: headers and then the body must
/// arrive within --request-timeout, an idle connection is closed after --idle-timeout,
/// and at most --max-connections are served (more are closed at once, logged).
///
/// A bulk PUT is one transaction, and a write answered 201 is on disk. Sending an
/// identical point again is a no-op answered 201 (esmond answered 409), so a client that
/// retries after a lost answer is not told it failed; another value at the same time is
/// a conflict, 409, and the stored value stays. On a full disk the archive still starts
/// and serves reads; writes get 507 until space is freed. SIGINT/SIGTERM stop accepting,
/// finish the requests in flight and exit 0.
///
/// Metadata keys are 32 hex digits, as esmond's, ordered by creation time. An archive
/// written by an earlier measpipe is migrated to the current schema when it opens, in one
/// transaction that rebuilds the metadata tables (keep a backup of the archive first).
///
/// With --store, the archive is a PostgreSQL database (15 or later) whose schema
/// `esmond-serve migrate` made. Servers sharing it are interchangeable: a write answered by
/// one is read through every other at once, and one that stops leaves the others serving.
/// Writes are serialised by a database lock, as SQLite serialises them; points are kept in
/// monthly partitions, so --retention drops whole months once every series is past them.
#[derive(Debug, Parser)]
#[command(name = "esmond-serve", version, after_help = EXAMPLES)]
pub struct Args {
    /// Directory holding the archive (archive.sqlite); created if missing. This or --store.
    #[arg(long, value_name = "DIR", conflicts_with = "store")]
    data: Option<PathBuf>,

    /// The archive in a PostgreSQL database instead:
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better
    /// given in the environment than on the command line, where `ps` shows a password.
    #[arg(
        long,
        value_name = "URL",
        env = "ESMOND_SERVE_STORE",
        global = true,
        hide_env_values = true
    )]
    store: Option<String>,

    /// Address and port to listen on (loopback unless you say otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// URL prefix before /perfsonar/archive/; `/` for none.
    #[arg(long, value_name = "ALIAS", default_value = "esmond")]
    script_alias: String,

    /// A network (CIDR) whose clients may write without a key; repeatable.
    #[arg(long, value_name = "CIDR", value_parser = crate::cli::cidr)]
    trust: Vec<(IpAddr, u8)>,

    /// Largest request body accepted, bytes (a larger one gets 413 unread).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    max_body: usize,

    /// Request-body bytes read at once over all connections; more writes wait their turn
    /// (up to --request-timeout, then 503). At least --max-body.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    body_budget: usize,

    #[command(flatten)]
    connections: crate::cli::ConnectionArgs,

    /// Delete points older than DAYS (checked at start, then hourly; --keep rules first)
    /// and give the space back; runs go with their points, refusals after DAYS.
    #[arg(long, value_name = "DAYS")]
    retention: Option<u64>,

    /// Keep matching series' points DAYS (or `forever`), before --retention; repeatable, the
    /// first match decides. FIELD: event-type, summary-type, tool-name, source, destination,
    /// measurement-agent, input-source, input-destination or subject-type (exact values).
    #[arg(long, value_name = "FIELD=VALUE[,...]:DAYS", value_parser = Rule::parse)]
    keep: Vec<Rule>,

    #[command(flatten)]
    pscheduler: pscheduler::PschedulerArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Management commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the API keys writers use.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Copy the live archive into DEST/archive.sqlite: consistent as of one commit, made
    /// while the server goes on writing (every write answered before it began is in it).
    /// To restore, start a server on it: `esmond-serve --data DEST`.
    Backup {
        /// The directory to copy into (must not hold an archive already).
        dest: PathBuf,
    },
    /// Create or upgrade the archive's schema in the PostgreSQL database of --store, and
    /// the partitions of this month and the next. Safe to run again, and from several
    /// hosts at once; servers refuse a database whose schema it has not brought up to
    /// date.
    Migrate,
}

/// What to do with keys.
#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create (or replace) USER's key and print it once, on stdout.
    Add {
        /// The key's owner.
        user: String,
    },
    /// List users with keys and when each key was made.
    List,
    /// Delete USER's key.
    Revoke {
        /// The key's owner.
        user: String,
    },
}

/// Runs `esmond-serve`.
pub fn run(args: Args) -> Result<(), Error> {
    let open = || match (&args.store, &args.data) {
        (Some(url), _) => Store::open_pg(url),
        (None, Some(data)) => Store::open(data).map_err(|e| Error::from(e).context(data.display())),
        (None, None) => Err(Error::Usage(
            "--data DIR (or --store URL, for PostgreSQL) is required".into(),
        )),
    };
    match args.command {
        Some(Command::Migrate) => match &args.store {
            Some(url) => {
                let said = pg::migrate_database(url, crate::clock::now_seconds())?;
                crate::cli::notice(&said);
                Ok(())
            }
            None => Err(Error::Usage(
                "migrate needs --store URL (or ESMOND_SERVE_STORE): it upgrades a PostgreSQL database; an embedded archive is upgraded when it opens".into(),
            )),
        },
        Some(Command::Backup { dest }) => {
            let Some(data) = &args.data else {
                return Err(Error::Usage(
                    "backup copies the embedded archive of --data DIR; back a PostgreSQL store up with pg_dump".into(),
                ));
            };
            let mut status = crate::cli::Status::new(false);
            let copied = backup::backup(data, &dest, |done, total| {
                status.update(|| format!("{done} of {total} pages copied"))
            })?;
            crate::cli::notice(&format!("backup: {copied}"));
            Ok(())
        }
        Some(Command::Token { action }) => {
            let store = open()?;
            let mut out = crate::cli::stdout(&crate::cli::OutputArgs::default());
            match action {
                TokenAction::Add { user } => {
                    let key = store.add_token(&user, crate::clock::now_seconds())?;
                    out.write_line(key.as_bytes())?;
                }
                TokenAction::List => {
                    for (user, created) in store.tokens()? {
                        let when = chrono::DateTime::from_timestamp(created, 0)
                            .map_or_else(|| created.to_string(), |t| t.to_rfc3339());
                        out.write_line(format!("{user}\t{when}").as_bytes())?;
                    }
                }
                TokenAction::Revoke { user } => {
                    if !store.revoke_token(&user)? {
                        return Err(Error::Usage(format!("no key for user {user:?}")));
                    }
                }
            }
            Ok(())
        }
        None => {
            let store = open()?;
            // The server shuts down gracefully itself; the shared handler only notes it.
            let pscheduler = std::sync::Arc::new(args.pscheduler.ingest()?);
            crate::cli::stop_on_signal();
            let config = Config {
                pscheduler,
                listen: args.listen,
                script_alias: Some(args.script_alias).filter(|a| !a.trim_matches('/').is_empty()),
                trusted: args.trust,
                max_body: args.max_body,
                body_budget: args.body_budget,
                limits: args.connections.limits(),
                retention: RetentionPolicy {
                    rules: args.keep,
                    default_days: args.retention,
                },
                notice: crate::cli::notice,
            };
            server::serve(store, config)
                .map_err(|e| Error::failed(format!("serving on {}: {e}", args.listen)))?;
            Ok(())
        }
    }
}
