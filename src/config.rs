//! Configuration: built-in defaults (identical to the repository's `config.toml`)
//! < a TOML file < environment variables < command-line flags.
//!
//! Only the `[event_aggregator]` table is read from a file, so the file can be
//! shared with other tools; unknown keys inside that table are an error, which
//! catches typos instead of silently ignoring them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::Category;
use crate::error::{AggregatorError, Result};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = ".claude-mpm/config.toml";

/// The whole configuration (the `[event_aggregator]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub enabled: bool,
    pub activity_directory: PathBuf,
    pub database: PathBuf,
    pub dashboard_host: String,
    pub dashboard_port: u16,
    /// Fractions are allowed (`0.5` is 30 seconds).
    pub session_timeout_minutes: f64,
    pub compress_sessions: bool,
    pub auto_cleanup_days: u64,
    pub history_limit: u64,
    pub max_event_bytes: usize,
    pub status_interval_seconds: u64,
    /// `start --listen` may bind a non-loopback address (also `--listen-any`).
    pub listen_any: bool,
    pub debug: bool,
    /// A price table laid over the built-in one ("" = the built-in one alone).
    pub pricing_file: PathBuf,
    /// Where the recorder pushes as it records (`push` without a URL too):
    /// a PostgreSQL URL or an OTLP/HTTP collector ("" = nowhere).
    pub push_url: String,
    /// This machine's name in pushed rows and traces ("" = `USER@HOSTNAME`).
    pub host_id: String,
    pub capture: CaptureConfig,
}

/// `[event_aggregator.capture]`: one switch per stored category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub user_prompts: bool,
    pub agent_delegations: bool,
    pub tool_operations: bool,
    pub file_operations: bool,
    pub todo_updates: bool,
    pub responses: bool,
    pub memory_events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            activity_directory: PathBuf::from(".claude-mpm/activity"),
            database: PathBuf::from(".claude-mpm/aggregator.db"),
            dashboard_host: "localhost".into(),
            dashboard_port: 8765,
            session_timeout_minutes: 60.0,
            compress_sessions: false,
            auto_cleanup_days: 30,
            pricing_file: PathBuf::new(),
            history_limit: 1000,
            max_event_bytes: 16 * 1024 * 1024,
            status_interval_seconds: 30,
            listen_any: false,
            debug: false,
            push_url: String::new(),
            host_id: String::new(),
            capture: CaptureConfig::default(),
        }
    }
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            user_prompts: true,
            agent_delegations: true,
            tool_operations: true,
            file_operations: true,
            todo_updates: true,
            responses: true,
            memory_events: true,
        }
    }
}

impl CaptureConfig {
    /// Whether events of `category` are stored. `meta` always is.
    pub fn allows(&self, category: Category) -> bool {
        match category {
            Category::Prompt => self.user_prompts,
            Category::Delegation => self.agent_delegations,
            Category::Tool => self.tool_operations,
            Category::File => self.file_operations,
            Category::Todo => self.todo_updates,
            Category::Response => self.responses,
            Category::Memory => self.memory_events,
            Category::Meta => true,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database: Option<PathBuf>,
    pub activity_directory: Option<PathBuf>,
    pub dashboard_host: Option<String>,
    pub dashboard_port: Option<u16>,
    pub debug: Option<bool>,
}

/// The file that wraps the table: `[event_aggregator]` plus anything else.
#[derive(Deserialize)]
struct FileLayout {
    event_aggregator: Option<toml::Value>,
}

impl Config {
    /// Loads defaults, then `file` (or [`DEFAULT_CONFIG_FILE`] when it exists),
    /// then the process environment, then `flags`.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config> {
        Self::load_with_env(file, flags, |k| std::env::var(k).ok())
    }

    /// [`Config::load`] with the environment given as a lookup function (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        flags: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.apply_overrides(flags);
        Ok(config)
    }

    /// Defaults overlaid with the `[event_aggregator]` table of a TOML file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| AggregatorError::io(path, e))?;
        Self::from_toml_str(&text)
            .map_err(|e| AggregatorError::Config(format!("{}: {e}", path.display())))
    }

    /// Defaults overlaid with the `[event_aggregator]` table of TOML text.
    pub fn from_toml_str(text: &str) -> std::result::Result<Config, String> {
        let layout: FileLayout =
            toml::from_str(text).map_err(|e| crate::error::one_line(&e.to_string()))?;
        match layout.event_aggregator {
            None => Ok(Config::default()),
            Some(table) => Config::deserialize(table).map_err(|e| {
                format!(
                    "[event_aggregator]: {}",
                    crate::error::one_line(&e.to_string())
                )
            }),
        }
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = nonempty("CLAUDE_MPM_DASHBOARD_HOST") {
            self.dashboard_host = v;
        }
        if let Some(v) = nonempty("CLAUDE_MPM_DASHBOARD_PORT") {
            self.dashboard_port = v.trim().parse().map_err(|_| {
                AggregatorError::Config(format!(
                    "CLAUDE_MPM_DASHBOARD_PORT={v:?} is not a port number (1-65535)"
                ))
            })?;
        }
        if let Some(v) = nonempty("CLAUDE_MPM_ACTIVITY_DIR") {
            self.activity_directory = PathBuf::from(v);
        }
        if let Some(v) = nonempty("CLAUDE_MPM_AGGREGATOR_DB") {
            self.database = PathBuf::from(v);
        }
        if let Some(v) = nonempty("CLAUDE_MPM_AGGREGATOR_DEBUG") {
            self.debug = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(AggregatorError::Config(format!(
                        "CLAUDE_MPM_AGGREGATOR_DEBUG={v:?} is not a boolean (true/false/1/0)"
                    )))
                }
            };
        }
        Ok(())
    }

    fn apply_overrides(&mut self, flags: &Overrides) {
        if let Some(v) = &flags.database {
            self.database = v.clone();
        }
        if let Some(v) = &flags.activity_directory {
            self.activity_directory = v.clone();
        }
        if let Some(v) = &flags.dashboard_host {
            self.dashboard_host = v.clone();
        }
        if let Some(v) = flags.dashboard_port {
            self.dashboard_port = v;
        }
        if let Some(v) = flags.debug {
            self.debug = v;
        }
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<()> {
        if self.dashboard_port == 0 {
            return Err(AggregatorError::Config(
                "dashboard_port must be 1-65535".into(),
            ));
        }
        if self.dashboard_host.trim().is_empty() {
            return Err(AggregatorError::Config("dashboard_host is empty".into()));
        }
        if !self.session_timeout_minutes.is_finite() || self.session_timeout_minutes < 0.0 {
            return Err(AggregatorError::Config(
                "session_timeout_minutes must be 0 or more".into(),
            ));
        }
        if self.max_event_bytes < 1024 {
            return Err(AggregatorError::Config(
                "max_event_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    /// Dotted access in the style of claude-mpm's `Config.get`:
    /// `get("event_aggregator.session_timeout_minutes")`, `get("event_aggregator.capture")`.
    /// The `event_aggregator.` prefix is optional. Returns `None` for an unknown key.
    ///
    /// ```
    /// let config = mpm_aggregate::Config::default();
    /// assert_eq!(config.get("event_aggregator.dashboard_port"), Some(serde_json::json!(8765)));
    /// assert_eq!(config.get("event_aggregator.capture.responses"), Some(serde_json::json!(true)));
    /// ```
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        let key = key.strip_prefix("event_aggregator").unwrap_or(key);
        let key = key.strip_prefix('.').unwrap_or(key);
        let mut value = serde_json::to_value(self).ok()?;
        if key.is_empty() {
            return Some(value);
        }
        for part in key.split('.') {
            value = value.get_mut(part)?.take();
        }
        Some(value)
    }
}

/// The price table: the built-in one (the repository's `pricing.toml`), with
/// the entries of `file` laid over it when one is named.
pub fn load_pricing(file: &Path) -> Result<crate::core::pricing::PricingTable> {
    let mut table = crate::core::pricing::PricingTable::builtin().clone();
    if !file.as_os_str().is_empty() {
        let text = std::fs::read_to_string(file).map_err(|e| AggregatorError::io(file, e))?;
        table.merge_str(&text, &file.display().to_string())?;
    }
    Ok(table)
}
