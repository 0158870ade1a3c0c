//! Configuration: the documented `config.toml` equals the built-in defaults,
//! and the layers apply in order defaults < file < environment < flags.

use std::path::PathBuf;

use mpm_aggregate::config::{Config, Overrides};
use serde_json::json;

fn config_toml() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap()
}

#[test]
fn documented_config_file_equals_the_built_in_defaults() {
    let parsed = Config::from_toml_str(&config_toml()).unwrap();
    assert_eq!(parsed, Config::default());
    // Every key is written out in the file (not left to the defaults).
    let table: toml::Table = toml::from_str(&config_toml()).unwrap();
    let section = table["event_aggregator"].as_table().unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for key in defaults.as_object().unwrap().keys() {
        assert!(section.contains_key(key), "config.toml lacks {key}");
    }
    for key in defaults["capture"].as_object().unwrap().keys() {
        assert!(
            section["capture"].as_table().unwrap().contains_key(key),
            "config.toml lacks capture.{key}"
        );
    }
}

#[test]
fn layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[other_tool]\nx = 1\n[event_aggregator]\ndashboard_port = 9000\ndashboard_host = \"filehost\"\nsession_timeout_minutes = 5\n[event_aggregator.capture]\nresponses = false\n").unwrap();
    let env = |k: &str| match k {
        "CLAUDE_MPM_DASHBOARD_PORT" => Some("9100".to_string()),
        "CLAUDE_MPM_AGGREGATOR_DB" => Some("/tmp/env.db".to_string()),
        _ => None,
    };
    let flags = Overrides {
        database: Some(PathBuf::from("/tmp/flag.db")),
        ..Overrides::default()
    };
    let c = Config::load_with_env(Some(&file), &flags, env).unwrap();
    assert_eq!(c.dashboard_host, "filehost", "file over default");
    assert_eq!(c.session_timeout_minutes, 5.0);
    assert_eq!(c.dashboard_port, 9100, "environment over file");
    assert_eq!(
        c.database,
        PathBuf::from("/tmp/flag.db"),
        "flag over environment"
    );
    assert!(!c.capture.responses);
    assert!(c.capture.user_prompts, "unset keys keep their defaults");
    assert_eq!(
        c.get("event_aggregator.session_timeout_minutes"),
        Some(json!(5.0))
    );
    assert_eq!(
        c.get("event_aggregator.capture")
            .and_then(|v| v.get("responses").cloned()),
        Some(json!(false))
    );
    assert_eq!(
        c.get("event_aggregator.activity_directory"),
        Some(json!(".claude-mpm/activity"))
    );
    assert_eq!(c.get("event_aggregator.no_such_key"), None);
}

#[test]
fn bad_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        (
            "[event_aggregator]\ndashboard_port = \"eighty\"\n",
            "dashboard_port",
        ),
        ("[event_aggregator]\ndashbord_port = 1\n", "dashbord_port"),
        (
            "[event_aggregator]\ndashboard_port = 70000\n",
            "dashboard_port",
        ),
        ("[event_aggregator\n", "c.toml"),
    ] {
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        let err = Config::load_with_env(Some(&file), &Overrides::default(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    let err = Config::load_with_env(None, &Overrides::default(), |k| {
        (k == "CLAUDE_MPM_DASHBOARD_PORT").then(|| "http".into())
    })
    .unwrap_err();
    assert!(err.to_string().contains("CLAUDE_MPM_DASHBOARD_PORT"));
    let err = Config::load_with_env(
        Some(&dir.path().join("missing.toml")),
        &Overrides::default(),
        |_| None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing.toml"));
}

#[test]
fn the_binary_reads_the_default_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".claude-mpm")).unwrap();
    std::fs::write(
        dir.path().join(".claude-mpm/config.toml"),
        "[event_aggregator]\ndatabase = \"from-file.db\"\ndashboard_port = 9999\n",
    )
    .unwrap();
    let status = |env: &[(&str, &str)], args: &[&str]| -> serde_json::Value {
        let mut c = assert_cmd::Command::cargo_bin("mpm-aggregate").unwrap();
        c.current_dir(dir.path())
            .env_remove("CLAUDE_MPM_DASHBOARD_PORT")
            .env_remove("CLAUDE_MPM_AGGREGATOR_DB");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c
            .args(args)
            .args(["status", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let s = status(&[], &[]);
    assert_eq!(
        (s["database"].as_str(), s["dashboard_port"].as_u64()),
        (Some("from-file.db"), Some(9999))
    );
    let s = status(
        &[
            ("CLAUDE_MPM_DASHBOARD_PORT", "7777"),
            ("CLAUDE_MPM_AGGREGATOR_DB", "env.db"),
        ],
        &[],
    );
    assert_eq!(
        (s["database"].as_str(), s["dashboard_port"].as_u64()),
        (Some("env.db"), Some(7777))
    );
    let s = status(
        &[("CLAUDE_MPM_AGGREGATOR_DB", "env.db")],
        &["--db", "flag.db"],
    );
    assert_eq!(s["database"], "flag.db");
}
