//! [`EventAggregator`]: the library API of the reference. The read methods
//! work on the database alone; `start`/`stop` run an embedded recorder.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::{Config, Overrides};
use crate::core::model::AgentSession;
use crate::documents::export::{self, ExportFormat};
use crate::error::{AggregatorError, Result};
use crate::recorder::{RecorderHandle, RecorderOptions, RunReport};
use crate::store::queries::{self, SessionSort, SessionSummary};

pub use crate::recorder::status::AggregatorStatus;

/// Captures and reads agent activity sessions.
///
/// ```no_run
/// use mpm_aggregate::EventAggregator;
///
/// let aggregator = EventAggregator::new("localhost", 8765, None);
/// aggregator.start()?;                       // connects and records in the background
/// let status = aggregator.get_status()?;
/// println!("Active sessions: {}", status.active_sessions);
/// for info in aggregator.list_sessions()? {
///     println!("Session {}: {} events", info.session_id, info.event_count);
/// }
/// let path = aggregator.export_session("5283b66c", None, "summary")?;
/// println!("Exported to {}", path.display());
/// aggregator.stop()?;                        // finalizes active sessions, writes their files
/// # Ok::<(), mpm_aggregate::AggregatorError>(())
/// ```
pub struct EventAggregator {
    config: Config,
    recorder: Mutex<Option<RecorderHandle>>,
    completed_seq: Mutex<Option<i64>>,
}

impl EventAggregator {
    /// An aggregator for the monitor at `host:port`, saving sessions to
    /// `save_dir` (the configured activity directory when `None`). The rest of
    /// the configuration comes from the defaults, `.claude-mpm/config.toml` and
    /// the environment.
    pub fn new(host: &str, port: u16, save_dir: Option<PathBuf>) -> Self {
        let overrides = Overrides {
            dashboard_host: Some(host.to_string()),
            dashboard_port: Some(port),
            activity_directory: save_dir,
            ..Overrides::default()
        };
        let config = Config::load(None, &overrides).unwrap_or_else(|e| {
            tracing::warn!("{e}; using the built-in defaults");
            let defaults = Config::default();
            Config {
                dashboard_host: host.to_string(),
                dashboard_port: port,
                activity_directory: overrides
                    .activity_directory
                    .clone()
                    .unwrap_or(defaults.activity_directory.clone()),
                ..defaults
            }
        });
        Self::with_config(config)
    }

    /// An aggregator with a complete configuration.
    pub fn with_config(config: Config) -> Self {
        EventAggregator {
            config,
            recorder: Mutex::new(None),
            completed_seq: Mutex::new(None),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database file.
    pub fn database(&self) -> &Path {
        &self.config.database
    }

    /// Connects to the monitor and records in the background until [`stop`](Self::stop).
    /// Fails with [`AggregatorError::Connection`] when the monitor cannot be reached,
    /// and with [`AggregatorError::Permission`] when the activity directory cannot be created.
    pub fn start(&self) -> Result<()> {
        self.start_with(RecorderOptions::default())
    }

    /// [`start`](Self::start) with options (`force` keeps retrying an unreachable monitor).
    pub fn start_with(&self, options: RecorderOptions) -> Result<()> {
        let mut slot = self
            .recorder
            .lock()
            .map_err(|_| AggregatorError::Recorder("state lock poisoned".into()))?;
        if slot.is_some() {
            return Err(AggregatorError::Recorder(
                "this aggregator is already running".into(),
            ));
        }
        self.remember_completed_seq();
        *slot = Some(RecorderHandle::start(self.config.clone(), options)?);
        Ok(())
    }

    /// Disconnects, saves every active session and stops. Stopping an
    /// aggregator that is not running does nothing.
    pub fn stop(&self) -> Result<RunReport> {
        let handle = self.recorder.lock().ok().and_then(|mut slot| slot.take());
        match handle {
            Some(h) => h.stop(),
            None => Ok(RunReport::default()),
        }
    }

    /// Whether this aggregator runs a recorder.
    pub fn is_running(&self) -> bool {
        self.recorder.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    /// Status: running, connected, active sessions, total events, save
    /// directory, dashboard host and port, events by type, and more.
    pub fn get_status(&self) -> Result<AggregatorStatus> {
        let mut status = crate::recorder::status::read_status(&self.config)?;
        if let Ok(slot) = self.recorder.lock() {
            if let Some(handle) = slot.as_ref() {
                let live = handle.shared.state_update();
                status.running = true;
                status.connected = live.connected;
                status.state = live.state;
                status.pid = Some(i64::from(live.pid));
                status.events_received = live.events_received;
                status.connections = live.connections;
            }
        }
        Ok(status)
    }

    fn reader(&self) -> Result<rusqlite::Connection> {
        crate::store::open_read_only(&self.config.database)
    }

    /// Every session, newest first.
    pub fn list_sessions(&self) -> Result<Vec<SessionSummary>> {
        if !self.config.database.exists() {
            return Ok(Vec::new());
        }
        queries::list_sessions(&self.reader()?, SessionSort::Time, None)
    }

    /// A whole session, events included, by full id or unique prefix.
    pub fn get_session(&self, session_id: &str) -> Result<AgentSession> {
        let conn = self.reader()?;
        let id = queries::resolve_session(&conn, session_id)?;
        export::load_session(&conn, &id)
    }

    /// Exports a session (`full`, `summary` or `events`; `json` means `full`;
    /// `html`: its page) to `output_path`, or to `./session_<id8>_<format>.json`
    /// (`./session_<id8>.html`) when `None`.
    /// A path ending in `.gz` is compressed. Returns the path written.
    pub fn export_session(
        &self,
        session_id: &str,
        output_path: Option<&Path>,
        format: &str,
    ) -> Result<PathBuf> {
        let format: ExportFormat = format.parse()?;
        let conn = self.reader()?;
        let id = queries::resolve_session(&conn, session_id)?;
        let path = output_path.map_or_else(
            || PathBuf::from(export::default_file_name(&id, format)),
            Path::to_path_buf,
        );
        let pricing = match format {
            // Only the page prices anything: a JSON export needs no price file.
            ExportFormat::Html => crate::config::load_pricing(&self.config.pricing_file)?,
            _ => crate::core::pricing::PricingTable::builtin().clone(),
        };
        export::write_shared_file(&path, |out| {
            export::write_export_priced(&conn, &id, format, &pricing, out)
        })?;
        Ok(path)
    }

    /// Ids of the sessions completed since the previous call (the first call:
    /// since this aggregator was created or started).
    pub fn get_completed_sessions(&self) -> Result<Vec<String>> {
        self.remember_completed_seq();
        if !self.config.database.exists() {
            return Ok(Vec::new());
        }
        let mut seq = self
            .completed_seq
            .lock()
            .map_err(|_| AggregatorError::Recorder("state lock poisoned".into()))?;
        let (ids, max) = queries::completed_since(&self.reader()?, seq.unwrap_or(0))?;
        *seq = Some(max);
        Ok(ids)
    }

    fn remember_completed_seq(&self) {
        if let Ok(mut seq) = self.completed_seq.lock() {
            if seq.is_none() {
                let current = self.reader().ok().and_then(|c| {
                    c.query_row(
                        "SELECT coalesce(max(completed_seq), 0) FROM sessions",
                        [],
                        |r| r.get(0),
                    )
                    .ok()
                });
                *seq = Some(current.unwrap_or(0));
            }
        }
    }
}
