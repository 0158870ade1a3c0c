//! The category of an event (SPEC section 4): what part of a session it tells about.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `SessionEvent.category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A user prompt.
    Prompt,
    /// A delegation to a sub-agent (Task/Agent tool call, SubagentStart).
    Delegation,
    /// A tool call of any other tool.
    Tool,
    /// A call of a file tool (Read, Write, Edit, MultiEdit, NotebookEdit).
    File,
    /// A todo list update.
    Todo,
    /// A response: Stop or SubagentStop.
    Response,
    /// A memory event.
    Memory,
    /// Everything else: lifecycle, hook bookkeeping, notifications.
    Meta,
}

impl Category {
    /// Every category, in the order reports list them.
    pub const ALL: [Category; 8] = [
        Category::Prompt,
        Category::Delegation,
        Category::Tool,
        Category::File,
        Category::Todo,
        Category::Response,
        Category::Memory,
        Category::Meta,
    ];

    /// The lowercase name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Prompt => "prompt",
            Category::Delegation => "delegation",
            Category::Tool => "tool",
            Category::File => "file",
            Category::Todo => "todo",
            Category::Response => "response",
            Category::Memory => "memory",
            Category::Meta => "meta",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown category '{s}'"))
    }
}

/// Tools whose calls are delegations to a sub-agent.
pub const DELEGATION_TOOLS: [&str; 2] = ["Task", "Agent"];
/// Tools that touch files.
pub const FILE_TOOLS: [&str; 5] = ["Read", "Write", "Edit", "MultiEdit", "NotebookEdit"];
/// Tools that modify the file they name.
pub const WRITE_TOOLS: [&str; 4] = ["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// Whether the canonical event type is a tool call (`PreToolUse`/`PostToolUse`).
pub fn is_tool_event(event_type: &str) -> bool {
    matches!(event_type, "PreToolUse" | "PostToolUse")
}

/// The category of an event from its canonical type and, for tool calls, its tool.
///
/// ```
/// use mpm_aggregate::ingest::{category_for, Category};
/// assert_eq!(category_for("PreToolUse", Some("Task")), Category::Delegation);
/// assert_eq!(category_for("PostToolUse", Some("Edit")), Category::File);
/// assert_eq!(category_for("todo_updated", None), Category::Todo);
/// assert_eq!(category_for("hook_execution", Some("Read")), Category::Meta);
/// ```
pub fn category_for(event_type: &str, tool_name: Option<&str>) -> Category {
    if is_tool_event(event_type) {
        return match tool_name {
            Some(t) if DELEGATION_TOOLS.contains(&t) => Category::Delegation,
            Some(t) if FILE_TOOLS.contains(&t) => Category::File,
            Some("TodoWrite") => Category::Todo,
            _ => Category::Tool,
        };
    }
    match event_type {
        "UserPromptSubmit" => Category::Prompt,
        "SubagentStart" => Category::Delegation,
        "Stop" | "SubagentStop" => Category::Response,
        t if t.starts_with("todo_") => Category::Todo,
        t if t.starts_with("memory") => Category::Memory,
        _ => Category::Meta,
    }
}
