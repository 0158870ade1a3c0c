//! Keeping the search index (`event_search`, migration V7): each event's
//! searchable text ([`searchable_text`] of the core) entered as the writer
//! stores the event, replaced when a merged observation changes its data, in
//! the writer's transaction; and the same text as the SQL function
//! `mpm_search_text(event_type, data)`, which V7's backfill calls.

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, Statement};

use crate::core::event::NormalizedEvent;
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

/// The statement that enters an event's text (the writer keeps it prepared for a batch).
pub const INSERT: &str = "INSERT INTO event_search (rowid, body) VALUES (?1, ?2)";

/// Enters a newly stored `event` (row `row`) through `insert` (the [`INSERT`]
/// statement the writer keeps prepared): the text its normalizer made, else
/// made now.
pub fn index_stored(
    insert: &mut Statement<'_>,
    row: i64,
    event: &NormalizedEvent,
) -> rusqlite::Result<()> {
    match &event.search_text {
        Some(text) => enter(insert, row, text),
        None => enter(
            insert,
            row,
            &searchable_text(event.kind.as_str(), &event.data),
        ),
    }
}

/// An event without searchable text has no entry.
fn enter(insert: &mut Statement<'_>, row: i64, text: &str) -> rusqlite::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    insert.execute(params![row, text])?;
    Ok(())
}

/// Replaces the entry of event `row` after its data changed to `data` (the
/// writer has it in hand: no reading it back), entering it through `insert`
/// as [`index_stored`] does.
pub fn reindex(
    conn: &Connection,
    insert: &mut Statement<'_>,
    row: i64,
    event_type: &str,
    data: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM event_search WHERE rowid = ?1")?
        .execute([row])?;
    enter(insert, row, &searchable_text(event_type, data))
}
