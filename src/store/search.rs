//! Full-text search over the events' searchable text (the FTS5 index
//! `event_search` of migration V7, kept by the writer in the transaction
//! that writes each event; deletions by a trigger), and turning a person's words into an FTS5 query that
//! cannot be a syntax error.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::error::{AggregatorError, Result};

/// Around a matched term in a snippet.
pub const MARK_START: &str = "«";
pub const MARK_END: &str = "»";

/// One event whose text matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub event_id: i64,
    pub session_id: Option<String>,
    pub timestamp: String,
    pub event_type: String,
    pub tool_name: Option<String>,
    /// The sub-agent the event belongs to (its delegation's type), `None` on the main thread.
    pub agent_type: Option<String>,
    pub agent_id: Option<String>,
    /// Some words around the match, matched terms between `«` and `»`.
    pub snippet: String,
}

/// Each whitespace-separated word of `text` as a quoted FTS5 string, so that
/// quotes, `-`, `:`, parentheses or `AND` are searched for, not parsed; a word
/// ending in `*` (after something) stays a prefix search. Words with no letter
/// or digit (which the tokenizer would drop) are left out; `None` when nothing
/// is left to search for.
pub fn quote_words(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .filter_map(|word| {
            let core = word.trim_end_matches('*');
            let prefix = core.len() < word.len();
            if !core.chars().any(char::is_alphanumeric) {
                return None;
            }
            let quoted = format!("\"{}\"", core.replace('"', "\"\""));
            Some(if prefix { quoted + "*" } else { quoted })
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The best `limit` hits of an FTS5 `query` (best first: FTS5's bm25 rank),
/// in one session or in all. The hits are chosen first, by row id and rank
/// alone; only they are read and get a snippet (cut from the view's text),
/// so a common word costs its ranking, not a snippet per match.
pub fn search(
    conn: &Connection,
    query: &str,
    session_id: Option<&str>,
    limit: u64,
) -> Result<Vec<SearchHit>> {
    let failed = |e: rusqlite::Error| {
        let text = e.to_string();
        if text.contains("no such table: event_search") {
            AggregatorError::Query {
                reason: "this database has no search index yet (open it once for writing: any `import` or `start` migrates it)".into(),
                source: None,
            }
        } else if text.contains("fts5") || text.contains("syntax error") {
            AggregatorError::Query {
                reason: format!(
                    "{text} (--raw takes FTS5 syntax; without it words are searched as written)"
                ),
                source: None,
            }
        } else {
            AggregatorError::query(e)
        }
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let best: Vec<i64> = match session_id {
        None => conn
            .prepare("SELECT rowid FROM event_search WHERE event_search MATCH ?1 ORDER BY rank LIMIT ?2")
            .map_err(failed)?
            .query_map(params![query, limit], |r| r.get(0))
            .map_err(failed)?
            .collect::<rusqlite::Result<_>>()
            .map_err(failed)?,
        Some(id) => conn
            .prepare(
                "SELECT event_search.rowid FROM event_search JOIN events e ON e.id = event_search.rowid
                 WHERE event_search MATCH ?1 AND e.session_id = ?2 ORDER BY event_search.rank LIMIT ?3",
            )
            .map_err(failed)?
            .query_map(params![query, id, limit], |r| r.get(0))
            .map_err(failed)?
            .collect::<rusqlite::Result<_>>()
            .map_err(failed)?,
    };
    let mut read = conn
        .prepare(
            "SELECT e.id, e.session_id, e.timestamp, e.event_type, e.tool_name,
                    (SELECT d.agent_type FROM delegations d WHERE d.id = e.delegation_id),
                    e.agent_id,
                    snippet(event_search, 0, ?3, ?4, '…', 16)
             FROM event_search JOIN events e ON e.id = event_search.rowid
             WHERE event_search MATCH ?1 AND event_search.rowid = ?2",
        )
        .map_err(failed)?;
    let mut hits = Vec::with_capacity(best.len());
    for id in best {
        let hit = read
            .query_row(params![query, id, MARK_START, MARK_END], |r| {
                Ok(SearchHit {
                    event_id: r.get(0)?,
                    session_id: r.get(1)?,
                    timestamp: r.get(2)?,
                    event_type: r.get(3)?,
                    tool_name: r.get(4)?,
                    agent_type: r.get(5)?,
                    agent_id: r.get(6)?,
                    snippet: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                })
            })
            .map_err(failed)?;
        hits.push(hit);
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_so_that_no_query_is_a_syntax_error() {
        assert_eq!(quote_words("greet"), Some("\"greet\"".into()));
        assert_eq!(
            quote_words("say \"hi\" -x a:b (c) AND"),
            Some("\"say\" \"\"\"hi\"\"\" \"-x\" \"a:b\" \"(c)\" \"AND\"".into())
        );
        assert_eq!(quote_words("gree* *"), Some("\"gree\"*".into()));
        assert_eq!(quote_words("  - ( ) \" "), None);
    }

    #[test]
    fn quoted_words_run_on_fts5_whatever_they_hold() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(body);
             INSERT INTO t(body) VALUES ('ls: cannot access ''/nonexistent-qa-dir'': No such file (exit 2) AND more');",
        )
        .unwrap();
        let count = |q: &str| -> i64 {
            conn.query_row("SELECT count(*) FROM t WHERE t MATCH ?1", [q], |r| r.get(0))
                .unwrap()
        };
        for text in [
            "nonexistent-qa-dir",
            "'/nonexistent-qa-dir':",
            "(exit 2)",
            "AND",
            "ls: cannot",
            "\"no such\"",
            "nonex*",
        ] {
            assert_eq!(count(&quote_words(text).unwrap()), 1, "{text}");
        }
        assert_eq!(count(&quote_words("OR absent").unwrap()), 0);
    }
}
