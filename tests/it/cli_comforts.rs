//! The comforts of the command line: completion scripts that shells accept,
//! manual pages, and every command's `--help` with a one-line description of
//! each option and an example.

use assert_cmd::Command;
use clap::CommandFactory;

fn mpm(args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("mpm-aggregate").unwrap();
    c.args(args);
    c
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(mpm(args).assert().success().get_output().stdout.clone()).unwrap()
}

#[test]
fn bash_sources_the_completion_script_and_it_completes_the_new_commands() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("mpm-aggregate.bash");
    std::fs::write(&script, stdout(&["completions", "bash"])).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // Sourced, it completes the words of a command line.
    let complete = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            // The function the script registered for the command, called as bash calls it.
            "source \"$0\"; f=$(complete -p mpm-aggregate | sed 's/.*-F \\([^ ]*\\).*/\\1/');
             COMP_WORDS=(mpm-aggregate st); COMP_CWORD=1; $f mpm-aggregate st mpm-aggregate; printf '%s\\n' \"${COMPREPLY[@]}\";
             COMP_WORDS=(mpm-aggregate stats --by ''); COMP_CWORD=3; $f mpm-aggregate '' --by; printf '%s\\n' \"${COMPREPLY[@]}\"",
        )
        .arg(&script)
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&complete.stdout);
    for w in ["start", "stats", "status", "stop", "day", "agent", "tool"] {
        assert!(words.lines().any(|l| l == w), "{w} in {words}");
    }
    for shell in ["zsh", "fish"] {
        let text = stdout(&["completions", shell]);
        assert!(text.contains("search") && text.contains("tail"), "{shell}");
    }
    if let Ok(zsh) = which("zsh") {
        let ok = std::process::Command::new(zsh)
            .arg("-n")
            .arg("-c")
            .arg(stdout(&["completions", "zsh"]))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    mpm(&["completions", "tcsh"]).assert().failure().code(2);
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn man_pages_are_roff_for_the_program_and_each_command() {
    let page = stdout(&["man"]);
    assert!(
        page.contains(".TH mpm-aggregate 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for name in ["search", "stats", "tail", "sessions"] {
        let page = stdout(&["man", name]);
        assert!(
            page.contains(&format!(".TH mpm-aggregate-{name} 1")),
            "{name}"
        );
        assert!(page.contains("\\-\\-db"), "{name}: global options listed");
    }
    let err = String::from_utf8(
        mpm(&["man", "nope"])
            .assert()
            .failure()
            .code(1)
            .get_output()
            .stderr
            .clone(),
    )
    .unwrap();
    assert!(
        err.starts_with("error: invalid format: no command 'nope' (one of: start, stop,"),
        "{err}"
    );
    // `man` reads the page as the program wrote it.
    if let Ok(man) = which("man") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mpm-aggregate-search.1");
        std::fs::write(&file, stdout(&["man", "search"])).unwrap();
        let out = std::process::Command::new(man)
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("Full-text search"));
        }
    }
}

/// Every command and sub-command, with its path.
fn commands(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let p = format!("{path} {}", sub.get_name());
        out.push((p.clone(), sub.clone()));
        commands(sub, p, out);
    }
}

#[test]
fn every_option_has_a_one_line_description_and_every_command_an_example() {
    let mut root = mpm_aggregate::cli::Cli::command();
    root.build();
    let mut all = vec![("mpm-aggregate".to_string(), root.clone())];
    commands(&root, "mpm-aggregate".into(), &mut all);
    assert!(all.len() >= 20, "{}", all.len());
    for (path, cmd) in &all {
        let leaf = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .count()
            == 0;
        assert!(cmd.get_about().is_some(), "{path}: no description");
        if leaf || path == "mpm-aggregate" {
            let after = cmd
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(after.contains("Example"), "{path}: no example in --help");
            assert!(
                after.contains("mpm-aggregate "),
                "{path}: the example runs nothing"
            );
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(!help.trim().is_empty(), "{path}: --{id} has no description");
            assert!(
                !help.contains('\n'),
                "{path}: --{id}'s description is more than a line"
            );
        }
    }
    // As printed.
    let help = stdout(&["search", "--help"]);
    assert!(help.contains("Examples:\n  mpm-aggregate search"), "{help}");
}
