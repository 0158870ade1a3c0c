//! `sessions`: the recorded sessions as a table or JSON.

use super::output::{clip, duration, short_time, table};
use crate::config::Config;
use crate::error::Result;
use crate::store::queries::{list_sessions, SessionSort};

pub fn run(config: &Config, limit: Option<u64>, sort: &str, json: bool) -> Result<()> {
    let sort: SessionSort = sort.parse()?;
    let conn = crate::store::open_read_only(&config.database)?;
    let sessions = list_sessions(&conn, sort, limit)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&sessions).unwrap_or_default()
        );
        return Ok(());
    }
    if sessions.is_empty() {
        println!("no sessions recorded yet");
        return Ok(());
    }
    let mut t = table(&[
        "ID",
        "STARTED",
        "DURATION",
        "EVENTS",
        "DELEG",
        "STATUS",
        "FIRST PROMPT",
    ]);
    for s in &sessions {
        t.add_row(vec![
            s.session_id.chars().take(8).collect::<String>(),
            short_time(&s.start_time),
            duration(s.duration_ms),
            s.event_count.to_string(),
            s.delegation_count.to_string(),
            s.status.clone(),
            clip(s.initial_prompt.as_deref().unwrap_or("-"), 50),
        ]);
    }
    println!("{t}");
    Ok(())
}
