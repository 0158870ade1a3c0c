//! The SQL function `mpm_search_text(event_type, data)` behind the search
//! index (migration V7's triggers and backfill): [`searchable_text`] of the
//! core, registered on every connection that may write events.

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use crate::core::searchable::searchable_text;

/// Registers `mpm_search_text` on `conn` (before the migrations run: V7 calls it).
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "mpm_search_text",
        2,
        // Innocuous: usable from triggers whatever `trusted_schema` says.
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            let kind = ctx.get_raw(0).as_str().unwrap_or("");
            let data = ctx.get_raw(1).as_str().unwrap_or("");
            Ok(searchable_text(kind, data))
        },
    )
}
