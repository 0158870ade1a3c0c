//! Transcript discovery: given a transcript `.jsonl`, a session folder, a
//! project folder or the projects folder (default `~/.claude/projects`),
//! lists each session's main transcript and its sub-agents' files with their
//! parsed `.meta.json`, in a deterministic order (sessions by project and id;
//! in a session the main file first, then its sub-agents by file name). Pure
//! `std::fs`: no reading of transcript lines, no database.
//!
//! Claude Code 2.1 layout: `<projects>/<cwd with / as ->/<session>.jsonl`,
//! and `<session>/subagents/agent-<id>.jsonl` + `agent-<id>.meta.json` per
//! sub-agent (nested sub-agents sit in the same flat folder).

use std::fs;
use std::path::{Path, PathBuf};

use super::transcript::{FileKind, SubagentMeta};
use crate::error::{AggregatorError, Result};

/// One sub-agent's transcript file and what its `.meta.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct SubagentFile {
    pub path: PathBuf,
    pub meta: SubagentMeta,
    /// The `.meta.json` path when the file exists.
    pub meta_path: Option<PathBuf>,
    /// Why the `.meta.json` could not be used (unreadable, not JSON); the
    /// sub-agent is still listed, with only its id known.
    pub meta_error: Option<String>,
}

/// One session's transcript files.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFiles {
    pub session_id: String,
    /// The project folder the session's files sit in.
    pub project_dir: PathBuf,
    /// `<session>.jsonl`; `None` when only sub-agent files were found.
    pub main: Option<PathBuf>,
    pub subagents: Vec<SubagentFile>,
}

impl SessionFiles {
    /// The files to read, in order (main first), each with the kind of reader
    /// it needs.
    pub fn files(&self) -> Vec<(PathBuf, FileKind)> {
        let mut out = Vec::with_capacity(1 + self.subagents.len());
        if let Some(m) = &self.main {
            out.push((m.clone(), FileKind::Main));
        }
        for s in &self.subagents {
            out.push((s.path.clone(), FileKind::Subagent(s.meta.clone())));
        }
        out
    }
}

/// What discovery found; `skipped` lists `.jsonl` files it saw but could not
/// place (e.g. an older version's loose `agent-*.jsonl`), so none is ignored
/// without a word.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    pub sessions: Vec<SessionFiles>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Claude Code's projects folder: `$CLAUDE_CONFIG_DIR/projects` when that is
/// set (Claude Code's own override of `~/.claude`), else `~/.claude/projects`.
pub fn default_projects_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("projects"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".claude").join("projects"))
}

/// Lists the transcript files under `path`:
/// - a main transcript `<session>.jsonl`: it and its sub-agents;
/// - a sub-agent's `agent-<id>.jsonl`: that file alone (session from the folder);
/// - a session folder `<session>/` (holding `subagents/`): the main file
///   beside it and the sub-agents;
/// - a project folder (holding `*.jsonl`): each of its sessions;
/// - anything else: each sub-folder taken as a project folder (the projects
///   folder).
pub fn discover(path: &Path) -> Result<Discovery> {
    let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
    let mut found = Discovery::default();
    if meta.is_file() {
        discover_file(path, &mut found)?;
    } else if is_session_dir(path) {
        let session_id = file_name(path);
        let project = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let main = project.join(format!("{session_id}.jsonl"));
        let main = main.is_file().then_some(main);
        found
            .sessions
            .push(session_files(&project, &session_id, main)?);
    } else if has_jsonl(path)? {
        discover_project(path, &mut found)?;
    } else {
        for dir in sorted_entries(path)? {
            if dir.is_dir() {
                discover_project(&dir, &mut found)?;
            }
        }
    }
    Ok(found)
}

fn discover_file(path: &Path, found: &mut Discovery) -> Result<()> {
    let name = file_name(path);
    let Some(stem) = name.strip_suffix(".jsonl") else {
        found
            .skipped
            .push((path.to_path_buf(), "not a .jsonl file".into()));
        return Ok(());
    };
    let parent = path.parent().unwrap_or(Path::new(""));
    if let Some(agent_id) = stem.strip_prefix("agent-") {
        // <project>/<session>/subagents/agent-<id>.jsonl
        if file_name(parent) == "subagents" {
            let session_dir = parent.parent().unwrap_or(Path::new(""));
            let project = session_dir.parent().unwrap_or(Path::new("")).to_path_buf();
            found.sessions.push(SessionFiles {
                session_id: file_name(session_dir),
                project_dir: project,
                main: None,
                subagents: vec![subagent_file(path, agent_id)],
            });
        } else {
            found.skipped.push((
                path.to_path_buf(),
                "sub-agent file outside a <session>/subagents folder".into(),
            ));
        }
        return Ok(());
    }
    found
        .sessions
        .push(session_files(parent, stem, Some(path.to_path_buf()))?);
    Ok(())
}

fn discover_project(dir: &Path, found: &mut Discovery) -> Result<()> {
    let mut sessions: Vec<String> = Vec::new();
    let entries = sorted_entries(dir)?;
    for p in &entries {
        let name = file_name(p);
        if p.is_file() {
            if let Some(stem) = name.strip_suffix(".jsonl") {
                if stem.starts_with("agent-") {
                    // Claude Code 1.x wrote sub-agents here; their session is
                    // only known from their lines.
                    found.skipped.push((
                        p.clone(),
                        "sub-agent file outside a <session>/subagents folder".into(),
                    ));
                } else {
                    sessions.push(stem.to_owned());
                }
            }
        } else if p.is_dir() && is_session_dir(p) && !sessions.contains(&name) {
            // A session folder whose main file is missing (or comes later in
            // the listing: deduplicated below).
            sessions.push(name);
        }
    }
    sessions.sort();
    sessions.dedup();
    for id in sessions {
        let main = dir.join(format!("{id}.jsonl"));
        let main = main.is_file().then_some(main);
        found.sessions.push(session_files(dir, &id, main)?);
    }
    Ok(())
}

fn session_files(project: &Path, session_id: &str, main: Option<PathBuf>) -> Result<SessionFiles> {
    let sub_dir = project.join(session_id).join("subagents");
    let mut subagents = Vec::new();
    if sub_dir.is_dir() {
        for p in sorted_entries(&sub_dir)? {
            let name = file_name(&p);
            let Some(agent_id) = name
                .strip_suffix(".jsonl")
                .and_then(|s| s.strip_prefix("agent-"))
            else {
                continue;
            };
            if p.is_file() {
                subagents.push(subagent_file(&p, agent_id));
            }
        }
    }
    Ok(SessionFiles {
        session_id: session_id.to_owned(),
        project_dir: project.to_path_buf(),
        main,
        subagents,
    })
}

fn subagent_file(path: &Path, agent_id: &str) -> SubagentFile {
    let meta_path = path.with_file_name(format!("agent-{agent_id}.meta.json"));
    if !meta_path.is_file() {
        return SubagentFile {
            path: path.to_path_buf(),
            meta: SubagentMeta::bare(agent_id),
            meta_path: None,
            meta_error: None,
        };
    }
    let parsed = fs::read_to_string(&meta_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
    let (meta, meta_error) = match parsed {
        Ok(v) if v.is_object() => (SubagentMeta::from_json(agent_id, &v), None),
        Ok(_) => (
            SubagentMeta::bare(agent_id),
            Some("not a JSON object".into()),
        ),
        Err(e) => (SubagentMeta::bare(agent_id), Some(e)),
    };
    SubagentFile {
        path: path.to_path_buf(),
        meta,
        meta_path: Some(meta_path),
        meta_error,
    }
}

fn is_session_dir(p: &Path) -> bool {
    p.join("subagents").is_dir()
}

fn has_jsonl(dir: &Path) -> Result<bool> {
    Ok(sorted_entries(dir)?
        .iter()
        .any(|p| p.is_file() && file_name(p).ends_with(".jsonl")))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        out.push(entry.map_err(|e| io_err(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn io_err(path: &Path, source: std::io::Error) -> AggregatorError {
    AggregatorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_projects() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/claude-code-2.1/a-mpm-fast/transcripts")
    }

    const SID: &str = "1a6c62fb-bc6c-5284-a701-147209c3d822";

    fn names(d: &Discovery) -> Vec<(String, Option<String>, Vec<String>)> {
        d.sessions
            .iter()
            .map(|s| {
                (
                    s.session_id.clone(),
                    s.main.as_ref().map(|m| file_name(m)),
                    s.subagents
                        .iter()
                        .map(|a| a.meta.agent_id.clone())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn every_kind_of_path_finds_the_same_session() {
        let projects = fixture_projects();
        let project = projects.join("-home-dev-work-a-fast-proj");
        let want = vec![(
            SID.to_owned(),
            Some(format!("{SID}.jsonl")),
            vec![
                "a76c31065318c3e84".to_owned(),
                "aa6325b7ea4b16e1d".to_owned(),
            ],
        )];
        for path in [
            projects.clone(),
            project.clone(),
            project.join(SID),
            project.join(format!("{SID}.jsonl")),
        ] {
            let d = discover(&path).unwrap();
            assert_eq!(names(&d), want, "{}", path.display());
            assert!(d.skipped.is_empty());
            let s = &d.sessions[0];
            let files = s.files();
            assert_eq!(files[0].1, FileKind::Main, "main file first");
            for (sub, (p, kind)) in s.subagents.iter().zip(&files[1..]) {
                assert_eq!(&sub.path, p);
                let FileKind::Subagent(meta) = kind else {
                    panic!("sub-agent kind")
                };
                assert!(sub.meta_error.is_none());
                assert!(meta
                    .tool_use_id
                    .as_deref()
                    .is_some_and(|t| t.starts_with("toolu_")));
                assert!(matches!(
                    meta.agent_type.as_deref(),
                    Some("engineer" | "qa")
                ));
                assert_eq!((meta.spawn_depth, meta.finished), (Some(1), Some(true)));
            }
        }
        // A sub-agent's own file: that file alone, with its session.
        let one = project
            .join(SID)
            .join("subagents/agent-aa6325b7ea4b16e1d.jsonl");
        let d = discover(&one).unwrap();
        assert_eq!(
            names(&d),
            vec![(SID.to_owned(), None, vec!["aa6325b7ea4b16e1d".to_owned()])]
        );
        assert_eq!(
            d.sessions[0].subagents[0].meta.agent_type.as_deref(),
            Some("engineer")
        );
    }

    #[test]
    fn odd_layouts_are_listed_or_reported_never_ignored_silently() {
        let dir = tempfile::tempdir().unwrap();
        let proj = dir.path().join("-p");
        std::fs::create_dir_all(proj.join("s2/subagents")).unwrap();
        std::fs::create_dir_all(proj.join("memory")).unwrap();
        std::fs::write(proj.join("s1.jsonl"), "{}\n").unwrap();
        std::fs::write(proj.join("agent-old.jsonl"), "{}\n").unwrap();
        std::fs::write(proj.join("notes.txt"), "x").unwrap();
        // s2: sub-agents without a main file, one meta broken, one missing.
        std::fs::write(proj.join("s2/subagents/agent-b.jsonl"), "").unwrap();
        std::fs::write(proj.join("s2/subagents/agent-b.meta.json"), "{broken").unwrap();
        std::fs::write(proj.join("s2/subagents/agent-a.jsonl"), "").unwrap();
        let d = discover(dir.path()).unwrap();
        assert_eq!(
            names(&d),
            vec![
                ("s1".to_owned(), Some("s1.jsonl".to_owned()), vec![]),
                ("s2".to_owned(), None, vec!["a".to_owned(), "b".to_owned()]),
            ]
        );
        let s2 = &d.sessions[1];
        assert_eq!(
            (
                s2.subagents[0].meta_path.is_none(),
                s2.subagents[0].meta_error.is_none()
            ),
            (true, true)
        );
        assert!(s2.subagents[1].meta_error.is_some());
        assert_eq!(d.skipped.len(), 1);
        assert!(d.skipped[0].0.ends_with("agent-old.jsonl"));
        // Not there at all: an error naming the path.
        let err = discover(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn the_default_projects_folder_follows_claude_config_dir() {
        // Only read here: the variables are the process's, shared by tests.
        let d = default_projects_dir();
        if let Some(cfg) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|c| !c.is_empty()) {
            assert_eq!(d, Some(PathBuf::from(cfg).join("projects")));
        } else if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(d, Some(PathBuf::from(home).join(".claude/projects")));
        }
    }
}
