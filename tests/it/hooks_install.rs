//! `hooks install|uninstall|status` on the real binary, HOME and the working
//! directory in a temporary folder: a settings file holding claude-mpm's hooks
//! (the shape its installer writes) and a hook of the user's own.

use crate::common::fixture;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mpm_aggregate::core::HookEvent;
use serde_json::Value;

const TOOL_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
];
const MPM_FAST: &str = "claude-hook-fast.sh";
const USERS_OWN: &str = "say 'done'";

fn events() -> &'static [&'static str] {
    &HookEvent::NAMED[..33]
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(env.home().join(".claude")).unwrap();
        std::fs::create_dir_all(env.project()).unwrap();
        env
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn user_settings(&self) -> PathBuf {
        self.home().join(".claude/settings.json")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("mpm-aggregate").unwrap();
        c.current_dir(self.project())
            .env("HOME", self.home())
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("CLAUDE_MPM_AGGREGATOR_DB")
            .env_remove("CLAUDE_MPM_ACTIVITY_DIR")
            .env_remove("RUST_LOG")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The one-line error of a failing command.
    fn fail(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        err
    }

    /// The command our installer writes for this environment: the hook's own
    /// program, installed beside `mpm-aggregate`.
    fn our_command(&self) -> String {
        self.command_of("mpm-aggregate-hook", "")
    }

    /// The same hook as an older install wrote it: `mpm-aggregate … hook`.
    fn our_subcommand(&self) -> String {
        self.command_of("mpm-aggregate", " hook")
    }

    /// `program --db <this project's database>`, then `tail`.
    fn command_of(&self, program: &str, tail: &str) -> String {
        let exe = assert_cmd::cargo::cargo_bin(program);
        let exe = exe.canonicalize().unwrap_or(exe);
        let db = self.project().join(".claude-mpm/aggregator.db");
        format!("{} --db {}{tail}", exe.display(), db.display())
    }
}

/// claude-mpm's settings (its fast hook on every event, as its fixture was
/// written) plus a hook and a setting of the user's own, in the user's own
/// formatting (a one-line entry that a re-render would spread out).
fn users_settings() -> String {
    let mpm = std::fs::read_to_string(fixture("claude-code-2.1/a-mpm-fast/settings.json")).unwrap();
    let with_own = mpm.replacen(
        "  \"Stop\": [\n",
        "  \"Stop\": [\n      { \"hooks\": [ { \"type\": \"command\", \"command\": \"say 'done'\" } ] },\n",
        1,
    );
    let with_own = with_own.replacen("{\n", "{\n  \"model\": \"opus\",\n", 1);
    assert_ne!(with_own, mpm);
    with_own
}

/// The commands of the hooks on one event, in order.
fn commands(settings: &Value, event: &str) -> Vec<String> {
    settings["hooks"][event]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .flat_map(|g| g["hooks"].as_array().unwrap().clone())
        .filter_map(|h| h["command"].as_str().map(str::to_string))
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Positions of `needles` in `text`: strictly increasing when they keep their order.
fn in_order(text: &str, needles: &[String]) -> bool {
    let positions: Vec<usize> = needles
        .iter()
        .map(|n| text.find(n.as_str()).unwrap())
        .collect();
    positions.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn install_keeps_everything_else_and_uninstall_gives_back_the_bytes() {
    let env = Env::new();
    let original = users_settings();
    std::fs::write(env.user_settings(), &original).unwrap();
    let ours = env.our_command();

    let out = env.run(&["hooks", "install"]);
    assert!(out.contains("on 33 events"), "{out}");
    let backup = env.home().join(".claude/settings.json.mpm-aggregate.bak");
    assert!(out.contains(&backup.display().to_string()), "{out}");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);

    let installed_text = std::fs::read_to_string(env.user_settings()).unwrap();
    let installed: Value = serde_json::from_str(&installed_text).unwrap();
    for event in events() {
        let cmds = commands(&installed, event);
        assert_eq!(
            cmds.iter().filter(|c| **c == ours).count(),
            1,
            "{event}: {cmds:?}"
        );
        assert_eq!(
            cmds.last().unwrap(),
            &ours,
            "{event}: ours comes after the others"
        );
        assert!(
            cmds.iter().any(|c| c.ends_with(MPM_FAST)),
            "{event}: claude-mpm's hook"
        );
        assert!(cmds.iter().any(|c| c.contains("hook_tap.py")), "{event}");
        let our_group = installed["hooks"][event]
            .as_array()
            .unwrap()
            .last()
            .unwrap();
        let matcher = our_group.get("matcher").and_then(Value::as_str);
        assert_eq!(
            matcher,
            TOOL_EVENTS.contains(event).then_some("*"),
            "{event}"
        );
    }
    assert!(commands(&installed, "Stop").contains(&USERS_OWN.to_string()));
    assert_eq!(installed["model"], "opus");
    assert_eq!(installed["enableAllProjectMcpServers"], false);
    assert_eq!(installed["permissions"]["allow"], serde_json::json!([]));
    // Key order as it was: top-level keys, then the events.
    let top: Vec<String> = [
        "model",
        "permissions",
        "enableAllProjectMcpServers",
        "hooks",
    ]
    .iter()
    .map(|k| format!("\"{k}\":"))
    .collect();
    assert!(in_order(&installed_text, &top));
    let evs: Vec<String> = events().iter().map(|e| format!("\"{e}\": [")).collect();
    assert!(in_order(&installed_text, &evs));
    assert!(installed_text.ends_with("}\n"));

    // Twice is once.
    let out = env.run(&["hooks", "install"]);
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(
        std::fs::read_to_string(env.user_settings()).unwrap(),
        installed_text
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);

    let out = env.run(&["hooks", "uninstall"]);
    assert!(out.contains("removed our hook from 33 events"), "{out}");
    assert_eq!(
        std::fs::read_to_string(env.user_settings()).unwrap(),
        original
    );
    // Again: nothing to remove, nothing written.
    let out = env.run(&["hooks", "uninstall"]);
    assert!(out.contains("nothing to remove"), "{out}");
    assert_eq!(
        std::fs::read_to_string(env.user_settings()).unwrap(),
        original
    );
}

#[test]
fn an_install_of_the_subcommand_form_is_replaced_by_the_program() {
    let env = Env::new();
    std::fs::write(env.user_settings(), users_settings()).unwrap();
    env.run(&["hooks", "install"]);
    let text = std::fs::read_to_string(env.user_settings()).unwrap();
    let json_str = |s: String| serde_json::to_string(&s).unwrap();
    let old = text.replace(
        &json_str(env.our_command()),
        &json_str(env.our_subcommand()),
    );
    assert_ne!(old, text);
    std::fs::write(env.user_settings(), &old).unwrap();
    // Both forms are ours: status sees it, install swaps it, uninstall removes it.
    let out = env.run(&["hooks", "install"]);
    assert!(!out.contains("nothing changed"), "{out}");
    let installed = read_json(&env.user_settings());
    for event in events() {
        let cmds = commands(&installed, event);
        assert_eq!(
            cmds.iter().filter(|c| **c == env.our_command()).count(),
            1,
            "{event}: {cmds:?}"
        );
        assert!(!cmds.contains(&env.our_subcommand()), "{event}: {cmds:?}");
    }
    std::fs::write(env.user_settings(), &old).unwrap();
    let out = env.run(&["hooks", "uninstall"]);
    assert!(out.contains("removed our hook from 33 events"), "{out}");
}

#[test]
fn uninstall_without_the_backup_still_leaves_only_the_others() {
    let env = Env::new();
    let mpm = std::fs::read_to_string(fixture("claude-code-2.1/a-mpm-fast/settings.json")).unwrap();
    std::fs::write(env.user_settings(), &mpm).unwrap();
    env.run(&["hooks", "install"]);
    std::fs::remove_file(env.home().join(".claude/settings.json.mpm-aggregate.bak")).unwrap();
    env.run(&["hooks", "uninstall"]);
    // Claude Code's own formatting (two spaces, final newline) comes back byte for byte.
    assert_eq!(std::fs::read_to_string(env.user_settings()).unwrap(), mpm);
}

#[test]
fn a_change_made_after_install_is_kept_by_uninstall() {
    let env = Env::new();
    std::fs::write(env.user_settings(), users_settings()).unwrap();
    env.run(&["hooks", "install"]);
    let text = std::fs::read_to_string(env.user_settings()).unwrap();
    std::fs::write(
        env.user_settings(),
        text.replacen("\"model\": \"opus\"", "\"model\": \"sonnet\"", 1),
    )
    .unwrap();
    env.run(&["hooks", "uninstall"]);
    let after = read_json(&env.user_settings());
    assert_eq!(after["model"], "sonnet");
    for event in events() {
        let cmds = commands(&after, event);
        assert!(
            cmds.iter()
                .all(|c| !c.ends_with(" hook") && !c.contains("mpm-aggregate-hook")),
            "{event}: {cmds:?}"
        );
        assert!(cmds.iter().any(|c| c.ends_with(MPM_FAST)), "{event}");
    }
    assert!(commands(&after, "Stop").contains(&USERS_OWN.to_string()));
}

#[test]
fn dry_run_shows_the_change_and_writes_nothing() {
    let env = Env::new();
    // Formatted as Claude Code writes it: the diff only adds lines.
    let original =
        std::fs::read_to_string(fixture("claude-code-2.1/a-mpm-fast/settings.json")).unwrap();
    std::fs::write(env.user_settings(), &original).unwrap();
    let out = env.run(&["hooks", "install", "--dry-run"]);
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert!(
        out.contains(&format!(
            "+            \"command\": \"{}\"",
            env.our_command()
        )),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with('-') && !l.starts_with("---")),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(env.user_settings()).unwrap(),
        original
    );
    let entries: Vec<_> = std::fs::read_dir(env.home().join(".claude"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "no backup, no temporary file");

    // Project scope, no file yet: nothing is created.
    let out = env.run(&["hooks", "install", "--scope", "project", "--dry-run"]);
    assert!(out.contains("+{"), "{out}");
    assert!(!env.project().join(".claude").exists());

    // Uninstall's dry run too.
    env.run(&["hooks", "install"]);
    let installed = std::fs::read_to_string(env.user_settings()).unwrap();
    let out = env.run(&["hooks", "uninstall", "--dry-run"]);
    assert!(
        out.contains(&format!(
            "-            \"command\": \"{}\"",
            env.our_command()
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(env.user_settings()).unwrap(),
        installed
    );
}

#[test]
fn status_reports_each_scope() {
    let env = Env::new();
    std::fs::write(env.user_settings(), users_settings()).unwrap();
    let out = env.run(&["hooks", "status"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("user") && lines[0].contains("not installed; 67 other hooks"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("project") && lines[1].ends_with("no file"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("local") && lines[2].ends_with("no file"),
        "{out}"
    );

    env.run(&["hooks", "install"]);
    env.run(&["--db", "other.db", "hooks", "install", "--scope", "local"]);
    let out = env.run(&["hooks", "status"]);
    let lines: Vec<&str> = out.lines().collect();
    let db = env.project().join(".claude-mpm/aggregator.db");
    assert!(
        lines[0].contains(&format!(
            "installed on 33 of 33 events, writes database {}; 67 other hooks",
            db.display()
        )),
        "{out}"
    );
    assert!(lines[1].ends_with("no file"), "{out}");
    let other = env.project().join("other.db");
    assert!(
        lines[2].contains(&format!(
            "installed on 33 of 33 events, writes database {}; 0 other hooks",
            other.display()
        )),
        "{out}"
    );
}

#[test]
fn project_scope_file_made_by_install_goes_with_uninstall() {
    let env = Env::new();
    let out = env.run(&["hooks", "install", "--scope", "project"]);
    assert!(out.contains("no backup"), "{out}");
    let path = env.project().join(".claude/settings.json");
    let settings = read_json(&path);
    for event in events() {
        assert_eq!(
            commands(&settings, event),
            vec![env.our_command()],
            "{event}"
        );
    }
    env.run(&["hooks", "uninstall", "--scope", "project"]);
    assert!(!path.exists());
}

#[test]
fn claude_config_dir_is_the_user_scope() {
    let env = Env::new();
    let config_dir = env.dir.path().join("cfg");
    let out = env
        .cmd(&["hooks", "install"])
        .env("CLAUDE_CONFIG_DIR", &config_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(config_dir.join("settings.json").is_file());
    assert!(!env.user_settings().exists());
}

#[test]
fn http_form_and_its_uninstall() {
    let env = Env::new();
    let original = users_settings();
    std::fs::write(env.user_settings(), &original).unwrap();
    let url = "http://127.0.0.1:8799/hook";
    env.run(&["hooks", "install", "--http", url]);
    let settings = read_json(&env.user_settings());
    for event in events() {
        let ours = settings["hooks"][event].as_array().unwrap().last().unwrap()["hooks"][0].clone();
        if ["SessionStart", "Setup"].contains(event) {
            // Claude Code runs no http hook on these two: the command writes them.
            assert_eq!(ours["command"], env.our_command().as_str(), "{event}");
        } else {
            assert_eq!(ours["type"], "http", "{event}");
            assert_eq!(ours["url"], url, "{event}");
            assert!(ours.get("command").is_none());
        }
    }
    let out = env.run(&["hooks", "install", "--http", url]);
    assert!(out.contains("nothing changed"), "{out}");
    let out = env.run(&["hooks", "status"]);
    assert!(
        out.contains(&format!(
            "installed on 33 of 33 events, writes http {url}, database "
        )),
        "{out}"
    );
    // Switching to the command form replaces the http hook rather than adding a second one.
    env.run(&["hooks", "install"]);
    let settings = read_json(&env.user_settings());
    let pre = settings["hooks"]["PreToolUse"].to_string();
    assert!(!pre.contains(url), "{pre}");
    assert_eq!(
        commands(&settings, "PreToolUse").last().unwrap(),
        &env.our_command()
    );
    env.run(&["hooks", "uninstall"]);
    assert_eq!(
        std::fs::read_to_string(env.user_settings()).unwrap(),
        original
    );

    let err = env.fail(&["hooks", "install", "--http", "not a url"]);
    assert!(err.contains("--http"), "{err}");
}

#[test]
fn a_malformed_settings_file_is_an_error_and_left_untouched() {
    let env = Env::new();
    for bad in [
        "{\"hooks\": {\"Stop\": [",
        "[1, 2]",
        "{\"hooks\": {\"Stop\": {\"command\": \"x\"}}}",
        "{\"hooks\": \"none\"}",
    ] {
        std::fs::write(env.user_settings(), bad).unwrap();
        for args in [&["hooks", "install"][..], &["hooks", "uninstall"]] {
            let err = env.fail(args);
            assert!(err.contains("settings.json"), "{err}");
            assert_eq!(std::fs::read_to_string(env.user_settings()).unwrap(), bad);
        }
        assert!(!env
            .home()
            .join(".claude/settings.json.mpm-aggregate.bak")
            .exists());
        let out = env.run(&["hooks", "status"]);
        assert!(out.lines().next().unwrap().contains("unreadable"), "{out}");
    }
}

#[test]
fn a_linked_settings_file_stays_a_link() {
    let env = Env::new();
    let dotfiles = env.dir.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let original = users_settings();
    std::fs::write(dotfiles.join("settings.json"), &original).unwrap();
    std::os::unix::fs::symlink(dotfiles.join("settings.json"), env.user_settings()).unwrap();
    env.run(&["hooks", "install"]);
    assert!(env.user_settings().is_symlink());
    let target = std::fs::read_to_string(dotfiles.join("settings.json")).unwrap();
    assert!(target.contains(&env.our_command()));
    env.run(&["hooks", "uninstall"]);
    assert!(env.user_settings().is_symlink());
    assert_eq!(
        std::fs::read_to_string(dotfiles.join("settings.json")).unwrap(),
        original
    );
}

#[test]
fn an_empty_settings_file_comes_back_empty() {
    let env = Env::new();
    std::fs::write(env.user_settings(), "").unwrap();
    env.run(&["hooks", "install"]);
    assert_eq!(
        commands(&read_json(&env.user_settings()), "Stop"),
        vec![env.our_command()]
    );
    env.run(&["hooks", "uninstall"]);
    assert_eq!(std::fs::read_to_string(env.user_settings()).unwrap(), "");
}
