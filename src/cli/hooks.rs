//! `hooks install|uninstall|status`: our `hook` command (or an `http` hook
//! pointing at the recorder's listener) in Claude Code's settings file, on
//! every hook event this Claude Code version has, every other setting and
//! hook kept as it was.
//!
//! The settings file is read into an order-keeping JSON tree ([`Json`]) of
//! our own rather than `serde_json::Value`: turning on serde_json's
//! `preserve_order` would change the key order of every JSON text the crate
//! writes, the data hashed into event dedup keys included.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::output::shell_quote;
use super::say;
use crate::config::Config;
use crate::core::HookEvent;
use crate::error::{AggregatorError, Result};

/// The hook events of Claude Code 2.1 (the first 33 names of [`HookEvent::NAMED`];
/// the others are our own event types, not hooks).
const CLAUDE_CODE_EVENTS: usize = 33;
/// Events whose matcher is a tool name: these get `"matcher": "*"`.
const TOOL_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
];
/// The header that marks an `http` hook as ours.
const HTTP_MARKER: &str = "X-Mpm-Aggregate";
/// Seconds Claude Code waits for our `http` hook (its default is ten minutes).
const HTTP_TIMEOUT_SECS: u64 = 5;
/// Events for which Claude Code runs no `http` hook: with `--http` these get
/// the command form (which writes the same database).
const NO_HTTP_EVENTS: &[&str] = &["SessionStart", "Setup"];
/// The backup of the file as it was before our last change, beside it.
const BACKUP_SUFFIX: &str = ".mpm-aggregate.bak";

/// `hooks`: install, remove or show our Claude Code hook.
#[derive(Subcommand, Debug, Clone)]
pub enum HooksCommand {
    /// Add our hook to Claude Code's settings on every hook event (other hooks are kept)
    #[command(
        after_help = "Examples:\n  mpm-aggregate hooks install --dry-run\n  mpm-aggregate hooks install --scope project\n  mpm-aggregate hooks install --http http://127.0.0.1:8766/"
    )]
    Install(InstallArgs),
    /// Remove our hook from Claude Code's settings (only ours)
    #[command(after_help = "Example:\n  mpm-aggregate hooks uninstall --scope project --dry-run")]
    Uninstall {
        /// Which settings file
        #[arg(long, value_enum, default_value_t = Scope::User)]
        scope: Scope,
        /// Show the change without writing it
        #[arg(long)]
        dry_run: bool,
    },
    /// Show where our hook is installed
    #[command(after_help = "Example:\n  mpm-aggregate hooks status")]
    Status,
}

/// Options of `hooks install`.
#[derive(Args, Debug, Clone)]
pub struct InstallArgs {
    /// Which settings file: user (~/.claude/settings.json), project (./.claude/settings.json)
    /// or local (./.claude/settings.local.json)
    #[arg(long, value_enum, default_value_t = Scope::User)]
    scope: Scope,
    /// Show the change without writing it
    #[arg(long)]
    dry_run: bool,
    /// Install an `http` hook posting to this URL (the recorder's listener) instead of the command
    #[arg(long, value_name = "URL")]
    http: Option<String>,
}

/// A Claude Code settings scope.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Project,
    Local,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
            Scope::Local => "local",
        }
    }

    /// The settings file of this scope.
    fn path(self) -> Result<PathBuf> {
        match self {
            Scope::User => {
                if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
                    return Ok(std::path::absolute(dir)
                        .map_err(|e| AggregatorError::io("$CLAUDE_CONFIG_DIR", e))?
                        .join("settings.json"));
                }
                let home = std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| {
                        AggregatorError::Config(
                            "HOME is not set: cannot find ~/.claude/settings.json".into(),
                        )
                    })?;
                Ok(PathBuf::from(home).join(".claude").join("settings.json"))
            }
            Scope::Project | Scope::Local => {
                let cwd = std::env::current_dir()
                    .map_err(|e| AggregatorError::io(".", e))?
                    .join(".claude");
                Ok(cwd.join(if self == Scope::Project {
                    "settings.json"
                } else {
                    "settings.local.json"
                }))
            }
        }
    }
}

pub fn run(config: &Config, command: &HooksCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        HooksCommand::Install(args) => install(config, args, out),
        HooksCommand::Uninstall { scope, dry_run } => uninstall(*scope, *dry_run, out),
        HooksCommand::Status => status(out),
    }
}

// ---------------------------------------------------------------- the JSON tree

/// A JSON value that keeps its object keys in file order.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn obj(fields: &[(&str, Json)]) -> Json {
        Json::Obj(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> std::result::Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Json, E> {
                Ok(Json::Num(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Json, E> {
                Ok(Json::Num(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> std::result::Result<Json, E> {
                Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Num))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Json, E> {
                Ok(Json::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Json, E> {
                Ok(Json::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = a.next_element()? {
                    items.push(x);
                }
                Ok(Json::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Json, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Json>()? {
                    fields.push((k, v));
                }
                Ok(Json::Obj(fields))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Num(n) => n.serialize(s),
            Json::Str(x) => s.serialize_str(x),
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for x in items {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Json::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The settings as text, in the file's own indentation (two spaces, as
/// Claude Code writes it, when the file has none to copy).
fn render(value: &Json, indent: &[u8], final_newline: bool) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value
        .serialize(&mut ser)
        .expect("a JSON tree always serializes");
    let mut text = String::from_utf8(buf).expect("serde_json writes UTF-8");
    if final_newline {
        text.push('\n');
    }
    text
}

/// The indentation of the first indented line, or two spaces.
fn indent_of(text: &str) -> Vec<u8> {
    text.lines()
        .skip(1)
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .find(|ws| !ws.is_empty())
        .unwrap_or("  ")
        .as_bytes()
        .to_vec()
}

// ------------------------------------------------------------ the settings file

/// One scope's settings file as read.
struct Settings {
    path: PathBuf,
    /// The file's text; `None` when there is no file.
    text: Option<String>,
    value: Json,
}

impl Settings {
    fn read(path: PathBuf) -> Result<Settings> {
        let text = match std::fs::read(&path) {
            Ok(bytes) => Some(String::from_utf8(bytes).map_err(|_| {
                AggregatorError::InvalidFormat(format!(
                    "{} is not UTF-8 text; left as it is",
                    path.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(AggregatorError::io(&path, e)),
        };
        let value = match &text {
            Some(t) => parse_settings(t).map_err(|reason| {
                AggregatorError::InvalidFormat(format!(
                    "{}: {reason}; left as it is",
                    path.display()
                ))
            })?,
            None => Json::Obj(Vec::new()),
        };
        Ok(Settings { path, text, value })
    }

    /// The text of `value` in this file's style.
    fn render(&self, value: &Json) -> String {
        match &self.text {
            Some(t) if !t.trim().is_empty() => render(value, &indent_of(t), t.ends_with('\n')),
            _ => render(value, b"  ", true),
        }
    }

    fn backup_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(BACKUP_SUFFIX);
        self.path.with_file_name(name)
    }
}

/// Parses a settings file and checks the shape of its `hooks`.
fn parse_settings(text: &str) -> std::result::Result<Json, String> {
    if text.trim().is_empty() {
        return Ok(Json::Obj(Vec::new()));
    }
    let value: Json = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let Json::Obj(_) = value else {
        return Err("not a JSON object".into());
    };
    match value.get("hooks") {
        None => {}
        Some(Json::Obj(events)) => {
            for (event, groups) in events {
                let Json::Arr(groups) = groups else {
                    return Err(format!("hooks.{event} is not an array"));
                };
                for group in groups {
                    match group.get("hooks") {
                        Some(Json::Arr(_)) | None if matches!(group, Json::Obj(_)) => {}
                        _ => {
                            return Err(format!(
                                "hooks.{event} holds an entry that is not {{\"hooks\": [...]}}"
                            ))
                        }
                    }
                }
            }
        }
        Some(_) => return Err("\"hooks\" is not an object".into()),
    }
    Ok(value)
}

/// Writes `text` in place of the file, through a temporary file beside it,
/// keeping the old file's permissions.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    // A settings file that is a link (a dotfiles folder) stays a link: the
    // file it points to is the one replaced.
    let resolved;
    let path = if path.is_symlink() {
        resolved = path
            .canonicalize()
            .map_err(|e| AggregatorError::io(path, e))?;
        resolved.as_path()
    } else {
        path
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| AggregatorError::io(dir, e))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".mpm-aggregate.tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, text).map_err(|e| AggregatorError::io(&tmp, e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AggregatorError::io(path, e)
    })
}

// ------------------------------------------------------------------- our hook

/// What our hook is: the command (with its database) or the URL.
#[derive(Debug, Clone, PartialEq)]
enum Ours {
    Command { db: Option<String> },
    Http { url: String },
}

/// `mpm-aggregate hook` as a program of its own (`src/bin/mpm-aggregate-hook.rs`).
const HOOK_PROGRAM: &str = "mpm-aggregate-hook";

/// Whether a hook object is ours, and what it is.
fn ours(hook: &Json) -> Option<Ours> {
    match hook.get("type").and_then(Json::as_str) {
        Some("command") => {
            let command = hook.get("command").and_then(Json::as_str)?;
            let words = shlex::split(command)?;
            let exe = words
                .first()
                .and_then(|w| Path::new(w).file_name()?.to_str())
                .map(|n| n.trim_end_matches(".exe"));
            // `mpm-aggregate … hook`, or the hook's own program.
            let ours = match exe {
                Some("mpm-aggregate") => words.last().map(String::as_str) == Some("hook"),
                Some(HOOK_PROGRAM) => true,
                _ => false,
            };
            if !ours {
                return None;
            }
            let db = words
                .windows(2)
                .find(|w| w[0] == "--db")
                .map(|w| w[1].clone());
            Some(Ours::Command { db })
        }
        Some("http") => {
            hook.get("headers")?.get(HTTP_MARKER)?;
            Some(Ours::Http {
                url: hook.get("url").and_then(Json::as_str)?.to_string(),
            })
        }
        _ => None,
    }
}

/// The hook object we install: the command, or with `--http` the http
/// hook and, for the events that take no http hook, the command.
struct OurHooks {
    command: Json,
    http: Option<Json>,
}

impl OurHooks {
    fn new(config: &Config, http: Option<&str>) -> Result<OurHooks> {
        Ok(OurHooks {
            command: our_hook(config, None)?,
            http: http.map(|url| our_hook(config, Some(url))).transpose()?,
        })
    }

    fn for_event(&self, event: &str) -> &Json {
        match &self.http {
            Some(h) if !NO_HTTP_EVENTS.contains(&event) => h,
            _ => &self.command,
        }
    }
}

fn our_hook(config: &Config, http: Option<&str>) -> Result<Json> {
    if let Some(url) = http {
        let parsed = url::Url::parse(url)
            .map_err(|e| AggregatorError::Config(format!("--http {url}: not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AggregatorError::Config(format!(
                "--http {url}: not an http:// or https:// URL"
            )));
        }
        return Ok(Json::obj(&[
            ("type", Json::Str("http".into())),
            ("url", Json::Str(url.to_string())),
            (
                "headers",
                Json::obj(&[(HTTP_MARKER, Json::Str("hook".into()))]),
            ),
            ("timeout", Json::Num(HTTP_TIMEOUT_SECS.into())),
        ]));
    }
    let exe =
        std::env::current_exe().map_err(|e| AggregatorError::io("the running mpm-aggregate", e))?;
    let db = std::path::absolute(&config.database)
        .map_err(|e| AggregatorError::io(&config.database, e))?;
    // The hook's own program when it is installed beside this one (it starts
    // in half the time: Claude Code waits for it at every hook event).
    let program = exe.with_file_name(format!("{HOOK_PROGRAM}{}", std::env::consts::EXE_SUFFIX));
    let (program, subcommand) = if program.is_file() {
        (program, "")
    } else {
        (exe, " hook")
    };
    let command = format!(
        "{} --db {}{subcommand}",
        shell_quote(&program.to_string_lossy()),
        shell_quote(&db.to_string_lossy())
    );
    Ok(Json::obj(&[
        ("type", Json::Str("command".into())),
        ("command", Json::Str(command)),
    ]))
}

/// The settings with every hook of ours taken out. An entry, an event or
/// the `hooks` key goes only when we made it empty. Returns how many
/// hooks of ours were removed.
fn strip_ours(settings: &Json) -> (Json, usize) {
    let mut removed = 0;
    let Json::Obj(fields) = settings else {
        return (settings.clone(), 0);
    };
    let mut out = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        let (Json::Obj(events), "hooks") = (value, key.as_str()) else {
            out.push((key.clone(), value.clone()));
            continue;
        };
        let mut kept_events = Vec::new();
        for (event, groups) in events {
            let Json::Arr(groups) = groups else {
                kept_events.push((event.clone(), groups.clone()));
                continue;
            };
            let mut kept_groups = Vec::new();
            for group in groups {
                let Json::Obj(group_fields) = group else {
                    kept_groups.push(group.clone());
                    continue;
                };
                let mut emptied = false;
                let new_fields = group_fields
                    .iter()
                    .map(|(k, v)| match (k.as_str(), v) {
                        ("hooks", Json::Arr(hooks)) => {
                            let kept: Vec<Json> = hooks
                                .iter()
                                .filter(|h| ours(h).is_none())
                                .cloned()
                                .collect();
                            removed += hooks.len() - kept.len();
                            emptied = kept.is_empty() && !hooks.is_empty();
                            (k.clone(), Json::Arr(kept))
                        }
                        _ => (k.clone(), v.clone()),
                    })
                    .collect();
                if !emptied {
                    kept_groups.push(Json::Obj(new_fields));
                }
            }
            if kept_groups.is_empty() && !groups.is_empty() {
                continue;
            }
            kept_events.push((event.clone(), Json::Arr(kept_groups)));
        }
        if kept_events.is_empty() && !events.is_empty() {
            continue;
        }
        out.push((key.clone(), Json::Obj(kept_events)));
    }
    (Json::Obj(out), removed)
}

/// The settings with `hook` on every Claude Code hook event (after any
/// earlier hook of ours was taken out): one more entry per event.
fn with_ours(settings: &Json, hooks: &OurHooks) -> Json {
    let (stripped, _) = strip_ours(settings);
    let Json::Obj(mut fields) = stripped else {
        unreachable!("settings are checked to be an object")
    };
    let index = match fields.iter().position(|(k, _)| k == "hooks") {
        Some(i) => i,
        None => {
            fields.push(("hooks".into(), Json::Obj(Vec::new())));
            fields.len() - 1
        }
    };
    let Json::Obj(events) = &mut fields[index].1 else {
        unreachable!("hooks is checked to be an object")
    };
    for event in &HookEvent::NAMED[..CLAUDE_CODE_EVENTS] {
        let hook = hooks.for_event(event);
        let entry = if TOOL_EVENTS.contains(event) {
            Json::obj(&[
                ("matcher", Json::Str("*".into())),
                ("hooks", Json::Arr(vec![hook.clone()])),
            ])
        } else {
            Json::obj(&[("hooks", Json::Arr(vec![hook.clone()]))])
        };
        match events.iter_mut().find(|(k, _)| k == event) {
            Some((_, Json::Arr(groups))) => groups.push(entry),
            Some(_) => unreachable!("events are checked to be arrays"),
            None => events.push((event.to_string(), Json::Arr(vec![entry]))),
        }
    }
    Json::Obj(fields)
}

/// What the settings hold: our hooks per event, and every other hook.
struct Census {
    /// Events carrying a hook of ours.
    events: usize,
    /// Our hooks, each once.
    kinds: Vec<Ours>,
    /// Hooks that are not ours.
    others: usize,
}

fn census(settings: &Json) -> Census {
    let mut census = Census {
        events: 0,
        kinds: Vec::new(),
        others: 0,
    };
    let Some(Json::Obj(events)) = settings.get("hooks") else {
        return census;
    };
    for (_, groups) in events {
        let Json::Arr(groups) = groups else { continue };
        let mut here = false;
        for group in groups {
            let Some(Json::Arr(hooks)) = group.get("hooks") else {
                continue;
            };
            for hook in hooks {
                match ours(hook) {
                    Some(kind) => {
                        here = true;
                        if !census.kinds.contains(&kind) {
                            census.kinds.push(kind);
                        }
                    }
                    None => census.others += 1,
                }
            }
        }
        census.events += usize::from(here);
    }
    census
}

// ------------------------------------------------------------------- commands

fn install(config: &Config, args: &InstallArgs, out: &mut dyn Write) -> Result<()> {
    let settings = Settings::read(args.scope.path()?)?;
    let hooks = OurHooks::new(config, args.http.as_deref())?;
    let new = with_ours(&settings.value, &hooks);
    let command = format!(
        "hook command `{}`",
        hooks
            .command
            .get("command")
            .and_then(Json::as_str)
            .unwrap_or("")
    );
    let what = match &args.http {
        Some(url) => format!(
            "http hook to {url} ({} get the {command}: Claude Code sends them to no http hook)",
            NO_HTTP_EVENTS.join(" and ")
        ),
        None => command,
    };
    let scope = args.scope.name();
    let path = settings.path.display();
    if new == settings.value && settings.text.is_some() {
        say!(
            out,
            "already installed in {path} ({scope} scope) on {CLAUDE_CODE_EVENTS} events: {what}; nothing changed"
        );
        return Ok(());
    }
    let text = settings.render(&new);
    if args.dry_run {
        say!(
            out,
            "dry run: nothing written. The change to {path} ({scope} scope):"
        );
        write_diff(
            out,
            &settings.path,
            settings.text.as_deref().unwrap_or(""),
            &text,
        )?;
        return Ok(());
    }
    // The backup keeps the file as it was before our hook was added: a
    // file that already holds ours (another database, the other form) is
    // that backup plus our hook, so the backup stays what uninstall restores.
    let had_ours = census(&settings.value).events > 0;
    let backup = if had_ours {
        None
    } else {
        save_backup(&settings)?
    };
    write_atomically(&settings.path, &text)?;
    say!(
        out,
        "installed in {path} ({scope} scope) on {CLAUDE_CODE_EVENTS} events: {what}"
    );
    match backup {
        Some(b) => say!(out, "the previous file is saved as {}", b.display()),
        None if had_ours => say!(
            out,
            "our earlier hook is replaced; {} still holds the file from before it",
            settings.backup_path().display()
        ),
        None => say!(out, "(the file is new: no backup)"),
    }
    Ok(())
}

fn uninstall(scope: Scope, dry_run: bool, out: &mut dyn Write) -> Result<()> {
    let settings = Settings::read(scope.path()?)?;
    let path = settings.path.display();
    let (stripped, removed) = strip_ours(&settings.value);
    if removed == 0 {
        let why = if settings.text.is_none() {
            "no such file"
        } else {
            "our hook is not in it"
        };
        say!(
            out,
            "nothing to remove from {path} ({} scope): {why}",
            scope.name()
        );
        return Ok(());
    }
    // The file as it was before install when nothing else changed since:
    // the backup's own bytes. A file we created and left empty goes.
    let backup_path = settings.backup_path();
    let backup_text = std::fs::read_to_string(&backup_path).ok();
    let restored = backup_text
        .as_deref()
        .filter(|t| parse_settings(t).is_ok_and(|v| v == stripped));
    let new_text = match (restored, &stripped) {
        (Some(t), _) => Some(t.to_string()),
        (None, Json::Obj(fields)) if fields.is_empty() && backup_text.is_none() => None,
        _ => Some(settings.render(&stripped)),
    };
    if dry_run {
        say!(
            out,
            "dry run: nothing written. The change to {path} ({} scope):",
            scope.name()
        );
        let old = settings.text.as_deref().unwrap_or("");
        write_diff(out, &settings.path, old, new_text.as_deref().unwrap_or(""))?;
        if new_text.is_none() {
            say!(out, "(the file would be removed: it held only our hook)");
        }
        return Ok(());
    }
    let backup = save_backup(&settings)?;
    match &new_text {
        Some(t) => write_atomically(&settings.path, t)?,
        None => std::fs::remove_file(&settings.path)
            .map_err(|e| AggregatorError::io(&settings.path, e))?,
    }
    let events = census(&settings.value).events;
    say!(
        out,
        "removed our hook from {events} events in {path} ({} scope){}",
        scope.name(),
        if new_text.is_none() {
            "; the file held nothing else and is removed"
        } else if restored.is_some() {
            "; the file is back to its bytes before install"
        } else {
            ""
        }
    );
    if let Some(b) = backup {
        say!(out, "the previous file is saved as {}", b.display());
    }
    Ok(())
}

/// Copies the current file to its backup name; `None` when there is no file.
fn save_backup(settings: &Settings) -> Result<Option<PathBuf>> {
    let Some(text) = &settings.text else {
        return Ok(None);
    };
    let backup = settings.backup_path();
    std::fs::write(&backup, text).map_err(|e| AggregatorError::io(&backup, e))?;
    Ok(Some(backup))
}

fn status(out: &mut dyn Write) -> Result<()> {
    for scope in [Scope::User, Scope::Project, Scope::Local] {
        let path = scope.path()?;
        let shown = path.display().to_string();
        let settings = match Settings::read(path) {
            Ok(s) => s,
            Err(e) => {
                say!(out, "{:<8} {shown}: unreadable: {e}", scope.name());
                continue;
            }
        };
        if settings.text.is_none() {
            say!(out, "{:<8} {shown}: no file", scope.name());
            continue;
        }
        let c = census(&settings.value);
        let ours = if c.kinds.is_empty() {
            "not installed".to_string()
        } else {
            let targets: Vec<String> = c
                .kinds
                .iter()
                .map(|k| match k {
                    Ours::Command { db: Some(db) } => format!("database {db}"),
                    Ours::Command { db: None } => "the default database".into(),
                    Ours::Http { url } => format!("http {url}"),
                })
                .collect();
            format!(
                "installed on {} of {CLAUDE_CODE_EVENTS} events, writes {}",
                c.events,
                targets.join(", ")
            )
        };
        say!(
            out,
            "{:<8} {shown}: {ours}; {} other hooks",
            scope.name(),
            c.others
        );
    }
    Ok(())
}

// ----------------------------------------------------------------------- diff

/// A unified diff of two texts, three lines of context.
fn write_diff(out: &mut dyn Write, path: &Path, old: &str, new: &str) -> Result<()> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table, from the end.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    // (tag, old line number, new line number, text)
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            ops.push(('+', i, j, b[j]));
            j += 1;
        } else {
            ops.push(('-', i, j, a[i]));
            i += 1;
        }
    }
    say!(out, "--- {}", path.display());
    say!(out, "+++ {}", path.display());
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        say!(
            out,
            "@@ -{},{old_len} +{},{new_len} @@",
            hunk[0].1 + usize::from(old_len > 0),
            hunk[0].2 + usize::from(new_len > 0)
        );
        for (tag, _, _, line) in hunk {
            say!(out, "{tag}{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_quoting() {
        for w in ["/usr/bin/mpm-aggregate", "/a b/it's here", "", "x\"y"] {
            let line = format!("{} --db {} hook", shell_quote(w), shell_quote("/d b"));
            assert_eq!(
                shlex::split(&line).unwrap(),
                vec![w, "--db", "/d b", "hook"]
            );
        }
    }

    #[test]
    fn key_order_and_indent_survive() {
        let text = "{\n    \"z\": 1,\n    \"a\": [1.5, true, null, {\"y\": \"s\", \"b\": {}}]\n}";
        let v = parse_settings(text).unwrap();
        assert_eq!(render(&v, &indent_of(text), false), "{\n    \"z\": 1,\n    \"a\": [\n        1.5,\n        true,\n        null,\n        {\n            \"y\": \"s\",\n            \"b\": {}\n        }\n    ]\n}");
    }

    #[test]
    fn our_command_is_recognized_and_others_are_not() {
        let cmd = |c: &str| {
            Json::obj(&[
                ("type", Json::Str("command".into())),
                ("command", Json::Str(c.into())),
            ])
        };
        assert_eq!(
            ours(&cmd("/x/mpm-aggregate --db '/a b/db' hook")),
            Some(Ours::Command {
                db: Some("/a b/db".into())
            })
        );
        assert_eq!(
            ours(&cmd("/x/mpm-aggregate-hook --db /d")),
            Some(Ours::Command {
                db: Some("/d".into())
            })
        );
        assert_eq!(ours(&cmd("/x/claude-hook-fast.sh")), None);
        assert_eq!(ours(&cmd("/x/mpm-aggregate-hooks --db /d")), None);
        assert_eq!(ours(&cmd("/x/mpm-aggregate import x")), None);
        assert_eq!(ours(&cmd("python3 tap.py hook")), None);
    }
}
