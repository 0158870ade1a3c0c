//! The module layers of `src/` (written at the top of `lib.rs`): data flows one
//! way, so a module may use only the layers below it, never one above nor one
//! beside it, and the core stays pure (no I/O, no SQLite, no async runtime).

use std::path::{Path, PathBuf};

/// Each top-level module and its layer, lowest first, as `lib.rs` states them.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("files", 1),
    ("core", 2),
    ("config", 3),
    ("ingest", 4),
    ("store", 5),
    ("documents", 6),
    ("import", 7),
    ("recorder", 7),
    ("push", 7),
    ("aggregator", 8),
    ("cli", 9),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn layer(name: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// The top-level module a source file belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::X` a file names, in code and in `use crate::{X, …}` lists.
fn uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                for item in list.split([',', '}']) {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push(name);
                    }
                }
            } else {
                found.push(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
    }
    found
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        // The programs (`main.rs`, `src/bin/`) sit above every layer and use
        // the library by its name.
        if module == "lib" || module == "main" || module == "bin" {
            continue;
        }
        let own =
            layer(&module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS and lib.rs"));
        for used in uses(&std::fs::read_to_string(file).unwrap()) {
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!("{}: {module} uses {used}", file.display())),
                None => {} // a re-export at the crate root (`crate::Config`)
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "modules reaching up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_core_is_pure() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    sources(&core, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in [
            "rusqlite",
            "tokio",
            "std::fs",
            "std::net",
            "std::process",
            "std::thread",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                file.display()
            );
        }
    }
}

#[test]
fn lib_rs_states_the_same_layers() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let mut last = 0;
    for (name, _) in LAYERS {
        let at = lib
            .find(&format!("[`{name}`]"))
            .unwrap_or_else(|| panic!("lib.rs lists {name} among its layers"));
        assert!(at >= last, "lib.rs lists {name} out of layer order");
        last = at;
    }
}
