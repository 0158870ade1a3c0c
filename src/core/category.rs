//! What kind of event it is: Claude Code's hook event names as an enum that keeps
//! unknown names, and the category of an event (SPEC sections 4 and 7).

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

/// Tools of the task list: TodoWrite and Claude Code 2.1's task tools.
pub const TODO_TOOLS: [&str; 4] = ["TodoWrite", "TaskCreate", "TaskUpdate", "TaskList"];

macro_rules! hook_events {
    ($($name:ident),* $(,)?) => {
        /// The canonical event type: Claude Code 2.1's 33 hook event names, the
        /// kinds only a transcript tells (`ApiCall`, `CostState`, `Compact`), and
        /// any other name kept as it came (`Other`), so a future Claude Code
        /// event is stored by name rather than lost.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HookEvent {
            $($name,)*
            Other(String),
        }

        impl HookEvent {
            /// Every named kind, in Claude Code's own order, then ours.
            pub const NAMED: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The kind of an event type name.
            pub fn parse(name: &str) -> HookEvent {
                match name {
                    $(stringify!($name) => HookEvent::$name,)*
                    other => HookEvent::Other(other.to_string()),
                }
            }

            /// The name stored in `events.event_type`.
            pub fn as_str(&self) -> &str {
                match self {
                    $(HookEvent::$name => stringify!($name),)*
                    HookEvent::Other(name) => name,
                }
            }
        }
    };
}

hook_events!(
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    PostToolBatch,
    Notification,
    UserPromptSubmit,
    UserPromptExpansion,
    SessionStart,
    SessionEnd,
    Stop,
    StopFailure,
    SubagentStart,
    SubagentStop,
    PreCompact,
    PostCompact,
    PreModelSwitch,
    PostModelSwitch,
    PermissionRequest,
    PermissionDenied,
    Setup,
    TeammateIdle,
    TaskCreated,
    TaskCompleted,
    Elicitation,
    ElicitationResult,
    ConfigChange,
    WorktreeCreate,
    WorktreeRemove,
    InstructionsLoaded,
    CwdChanged,
    FileChanged,
    DirectoryAdded,
    MessageDisplay,
    // Not hooks: what a transcript tells that no hook does.
    ApiCall,
    CostState,
    Compact,
);

impl HookEvent {
    /// One half of a tool call: its start or its end (failed or not).
    pub fn is_tool_call(&self) -> bool {
        matches!(
            self,
            HookEvent::PreToolUse | HookEvent::PostToolUse | HookEvent::PostToolUseFailure
        )
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the canonical event type is one half of a tool call (see
/// [`HookEvent::is_tool_call`]).
pub fn is_tool_event(event_type: &str) -> bool {
    HookEvent::parse(event_type).is_tool_call()
}

/// The category of an event from its canonical type and, for tool calls, its tool.
///
/// ```
/// use mpm_aggregate::core::{category_for, Category};
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
            Some(t) if TODO_TOOLS.contains(&t) => Category::Todo,
            _ => Category::Tool,
        };
    }
    match event_type {
        "UserPromptSubmit" => Category::Prompt,
        "SubagentStart" => Category::Delegation,
        "Stop" | "SubagentStop" => Category::Response,
        "TaskCreated" | "TaskCompleted" => Category::Todo,
        t if t.starts_with("todo_") => Category::Todo,
        t if t.starts_with("memory") => Category::Memory,
        _ => Category::Meta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_events_round_trip_and_keep_unknown_names() {
        assert_eq!(HookEvent::NAMED.len(), 33 + 3);
        for name in HookEvent::NAMED {
            assert_eq!(HookEvent::parse(name).as_str(), *name);
        }
        let future = HookEvent::parse("SomethingNew");
        assert_eq!(future, HookEvent::Other("SomethingNew".into()));
        assert_eq!(future.as_str(), "SomethingNew");
    }

    #[test]
    fn claude_code_2_1_categories() {
        assert_eq!(
            category_for("PreToolUse", Some("Agent")),
            Category::Delegation
        );
        assert_eq!(
            category_for("PostToolUseFailure", Some("Bash")),
            Category::Tool
        );
        assert_eq!(
            category_for("PostToolUseFailure", Some("Write")),
            Category::File
        );
        assert_eq!(
            category_for("PreToolUse", Some("TaskCreate")),
            Category::Todo
        );
        assert_eq!(category_for("TaskCompleted", None), Category::Todo);
        assert_eq!(category_for("SubagentStop", None), Category::Response);
        assert_eq!(category_for("ApiCall", None), Category::Meta);
    }
}
