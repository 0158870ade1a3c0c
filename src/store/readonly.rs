//! `query`: user SQL on a connection that cannot write. Three locks: the file
//! is opened read-only, `query_only` is on, and an authorizer admits only
//! reading (no ATTACH, which could create a file; no writable PRAGMA; no
//! VACUUM INTO). A statement SQLite does not call read-only is refused too.

use std::path::Path;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Connection, Statement};

use crate::error::{AggregatorError, Result};

/// PRAGMAs that only report.
const READ_PRAGMAS: [&str; 16] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
    "pragma_list",
    "module_list",
    "compile_options",
    "integrity_check",
    "quick_check",
    "database_list",
    "foreign_key_check",
];
/// Settings that may be read, not set. (`data_version`: FTS5 reads it on every
/// query of the search index.)
const READ_SETTINGS: [&str; 7] = [
    "data_version",
    "user_version",
    "schema_version",
    "page_count",
    "page_size",
    "freelist_count",
    "journal_mode",
];

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            if READ_PRAGMAS.contains(&name.as_str())
                || (READ_SETTINGS.contains(&name.as_str()) && pragma_value.is_none())
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => Authorization::Deny,
    }
}

/// Opens the database for user queries.
pub fn open_query_connection(path: &Path) -> Result<Connection> {
    let conn = super::open_read_only(path)?;
    conn.execute_batch("PRAGMA query_only = ON")
        .map_err(|e| AggregatorError::db(path, e))?;
    conn.authorizer(Some(authorize));
    Ok(conn)
}

/// Prepares one read-only statement, or says why not. Only statements that
/// would write (or come several at once) are "refused"; any other failure is
/// SQLite's own message.
pub fn prepare<'c>(conn: &'c Connection, sql: &str) -> Result<Statement<'c>> {
    let failed = |e: rusqlite::Error| {
        let text = e.to_string();
        if text.contains("not authorized") {
            AggregatorError::QueryRefused("only reading is allowed (SELECT, WITH, EXPLAIN, reporting PRAGMAs); the database is opened read-only".into())
        } else if matches!(e, rusqlite::Error::MultipleStatement) {
            AggregatorError::QueryRefused("one statement at a time".into())
        } else {
            AggregatorError::query(e)
        }
    };
    let stmt = conn.prepare(sql).map_err(failed)?;
    // SQLite prepares text with no statement in it (blank, only comments) to nothing.
    if stmt.expanded_sql().is_none() {
        return Err(AggregatorError::Query {
            reason: "no SQL statement in it (only white space or comments)".into(),
            source: None,
        });
    }
    if !stmt.readonly() {
        return Err(AggregatorError::QueryRefused(
            "only reading is allowed; this statement would write".into(),
        ));
    }
    Ok(stmt)
}
