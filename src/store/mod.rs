//! The SQLite store: opening and migrating the database, the single writer
//! thread, the read queries, streaming exports and pruning.
//!
//! One connection writes (the [`writer`] thread); every other connection reads.
//! WAL mode lets readers run while the writer commits.

mod checkpoint;
pub mod prune;
pub mod queries;
pub mod readonly;
pub mod search;
pub(crate) mod search_index;
pub mod session_file;
pub mod stats;
mod upkeep;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{AggregatorError, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a connection waits for a lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The WAL file is cut back to this size when it starts over
/// (`journal_size_limit`; the checkpointer makes it start over past it).
pub const WAL_SIZE_LIMIT: i64 = 64 << 20;

pub use crate::files::create_private_dir;
/// `mpm_search_text(event_type, data)` on a connection: registered before
/// the migrations run (V7's backfill calls it); a connection to a database
/// already migrated gets it only by asking (the search bench times V7's
/// backfill again).
pub use search_index::register as register_search_text;

/// Opens (creating if needed) the database at `path` for writing, applies the
/// pragmas and runs pending migrations. The file is created readable by the owner only.
pub fn open_writable(path: &Path) -> Result<Connection> {
    open_writable_waiting(path, BUSY_TIMEOUT)
}

/// [`open_writable`] waiting at most `busy` for another process's lock (the
/// `hook` command waits briefly, then spools).
pub fn open_writable_waiting(path: &Path, busy: Duration) -> Result<Connection> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    if !path.exists() {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(AggregatorError::io(path, e)),
        }
    }
    let mut conn = Connection::open(path).map_err(|e| AggregatorError::db(path, e))?;
    conn.busy_timeout(busy)
        .map_err(|e| AggregatorError::db(path, e))?;
    check_is_database(&conn, path)?;
    conn.execute_batch(
        // Page size only applies to a new database (before its first table).
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -16000;
         PRAGMA wal_autocheckpoint = 10000;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = OFF;",
    )
    .map_err(|e| AggregatorError::db(path, e))?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(|e| AggregatorError::db(path, e))?;
    // A database this build (or a later one) migrated says so in its user_version: one read
    // instead of the migration runner's look at its history (a `hook` process opens it each time).
    let latest = latest_migration();
    if schema_version(&conn, path)? >= latest {
        return Ok(conn);
    }
    // Several processes opening a new database at once (Claude Code starts hooks in parallel) would
    // each see the migrations pending and all but one fail on what the other just made: they take
    // turns, holding a lock on a file beside the database while they look and migrate.
    let _turn = migration_lock(path)?;
    search_index::register(&conn).map_err(|e| AggregatorError::db(path, e))?;
    embedded::migrations::runner()
        .run(&mut conn)
        .map_err(|e| AggregatorError::db_message(path, format!("migration failed: {e}")))?;
    if schema_version(&conn, path)? < latest {
        conn.execute_batch(&format!("PRAGMA user_version = {latest}"))
            .map_err(|e| AggregatorError::db(path, e))?;
    }
    Ok(conn)
}

/// The newest migration of this build (`build.rs` reads `migrations/`; a
/// unit test checks it against the runner's).
fn latest_migration() -> i64 {
    env!("MPM_LATEST_MIGRATION")
        .parse()
        .expect("build.rs sets MPM_LATEST_MIGRATION to a migration number")
}

/// The newest migration applied, as recorded in `PRAGMA user_version` (0: not recorded).
fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| AggregatorError::db(path, e))
}

/// An exclusive lock on `<database>.lock`, held while migrations are looked at
/// and applied (released when dropped).
fn migration_lock(database: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(&path)
        .map_err(|e| AggregatorError::io(&path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| AggregatorError::io(&path, std::io::Error::from(e)))
}

/// Opens an existing database read-only. A missing file is an error that says
/// how to create one.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(AggregatorError::db_message(
            path.to_path_buf(),
            "no database here yet (nothing was recorded or imported into it)",
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| AggregatorError::db(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| AggregatorError::db(path, e))?;
    check_is_database(&conn, path)?;
    let has_schema: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
        .map_err(|e| AggregatorError::db(path, e))?;
    if !has_schema {
        return Err(AggregatorError::db_message(
            path.to_path_buf(),
            "not an mpm-aggregate database (no events table)",
        ));
    }
    Ok(conn)
}

fn check_is_database(conn: &Connection, path: &Path) -> Result<()> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
        .map(|_| ())
        .map_err(|e| AggregatorError::db(path, e))
}

/// `PRAGMA integrity_check` result: `true` when the database is sound.
pub fn integrity_ok(conn: &Connection) -> Result<bool> {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .map(|s| s == "ok")
        .map_err(AggregatorError::query)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_latest_migration_is_the_runners_newest() {
        let newest = super::embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max();
        assert_eq!(Some(super::latest_migration()), newest);
    }
}
