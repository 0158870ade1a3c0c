//! `query`: one read-only SQL statement, printed as a table, JSON or CSV.

use std::io::Write;

use rusqlite::types::ValueRef;
use serde_json::Value;

use super::output::table;
use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::store::readonly::{open_query_connection, prepare};

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

fn to_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

fn query_err(e: rusqlite::Error) -> AggregatorError {
    AggregatorError::query(e)
}

/// A CSV write error with its I/O kind kept (csv's own conversion makes every
/// error `Other`, which would hide a closed pipe).
fn csv_err(e: csv::Error) -> AggregatorError {
    let text = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(e) => super::output::stdout_error(e),
        _ => super::output::stdout_error(std::io::Error::other(text)),
    }
}

/// `--format` of `query`.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub fn run(config: &Config, sql: &str, format: Format, out: &mut dyn Write) -> Result<()> {
    let conn = open_query_connection(&config.database)?;
    let mut stmt = prepare(&conn, sql)?;
    let columns: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut rows = stmt.query([]).map_err(query_err)?;
    let io = super::output::stdout_error;
    match format {
        Format::Json => {
            out.write_all(b"[").map_err(io)?;
            let mut first = true;
            while let Some(row) = rows.next().map_err(query_err)? {
                let mut obj = serde_json::Map::new();
                for (i, name) in columns.iter().enumerate() {
                    obj.insert(
                        name.clone(),
                        row.get_ref(i).map(to_json).unwrap_or(Value::Null),
                    );
                }
                out.write_all(if first { b"\n  " } else { b",\n  " })
                    .map_err(io)?;
                first = false;
                serde_json::to_writer(&mut *out, &obj).map_err(|e| io(e.into()))?;
            }
            out.write_all(if first { b"]\n" } else { b"\n]\n" })
                .map_err(io)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(&columns).map_err(csv_err)?;
            while let Some(row) = rows.next().map_err(query_err)? {
                let record: Vec<String> = (0..columns.len())
                    .map(|i| match row.get_ref(i) {
                        Ok(ValueRef::Null) | Err(_) => String::new(),
                        Ok(v) => to_text(v),
                    })
                    .collect();
                w.write_record(&record).map_err(csv_err)?;
            }
            w.flush().map_err(io)?;
        }
        Format::Table => {
            let header: Vec<&str> = columns.iter().map(String::as_str).collect();
            let mut t = table(&header);
            let mut n = 0;
            while let Some(row) = rows.next().map_err(query_err)? {
                t.add_row(
                    (0..columns.len())
                        .map(|i| row.get_ref(i).map(to_text).unwrap_or_default())
                        .collect::<Vec<_>>(),
                );
                n += 1;
            }
            writeln!(out, "{t}").map_err(io)?;
            writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" }).map_err(io)?;
        }
    }
    Ok(())
}
