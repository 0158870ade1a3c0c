//! Tells the store the newest migration in `migrations/` (`MPM_LATEST_MIGRATION`),
//! so that opening a database already at that version skips the migration
//! runner (whose name parsing alone costs a `hook` process a third of its CPU).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let latest = std::fs::read_dir("migrations")
        .expect("migrations folder")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let version = name.strip_prefix(['V', 'U'])?.split_once("__")?.0;
            version.parse::<i64>().ok()
        })
        .max()
        .expect("at least one migration");
    println!("cargo:rustc-env=MPM_LATEST_MIGRATION={latest}");
    // The program starts once per Claude Code hook: as a position-dependent
    // executable its 50,000 pointers in data are fixed at link time, not
    // relocated (each page written) by the loader at every start.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
            link_hook_statically();
        }
    }
}

/// `mpm-aggregate-hook` runs once per Claude Code hook event, up to 16 at a
/// time on two cores: linked statically, it skips the dynamic loader (a
/// fifth of its CPU, and of a dynamically linked hello world's) at each
/// start. Rust links a static glibc program only with `-C
/// target-feature=+crt-static`, a flag of the whole build (proc macros then
/// fail to build), so the hook alone is linked with `-static`, and this
/// folder of linker scripts, searched first, turns the libraries rustc names
/// for a dynamic program (`-lgcc_s`, `-lc`, `-lm`, …) into their static
/// archives. Where the static archives are not installed, the hook stays
/// dynamic, as every other program.
fn link_hook_statically() {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let archive = |name: &str| -> Option<String> {
        let out = std::process::Command::new(&compiler)
            .arg(format!("-print-file-name={name}"))
            .output()
            .ok()?;
        let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
        // Printed back unchanged when the compiler does not find it.
        (path != name && std::path::Path::new(&path).is_file()).then_some(path)
    };
    let (Some(libc), Some(libgcc), Some(libgcc_eh)) = (
        archive("libc.a"),
        archive("libgcc.a"),
        archive("libgcc_eh.a"),
    ) else {
        println!(
            "cargo:warning=no static glibc (libc.a): mpm-aggregate-hook is linked dynamically"
        );
        return;
    };
    let dir =
        std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("static-hook");
    std::fs::create_dir_all(&dir).expect("static-hook folder");
    let mut scripts = vec![
        (
            "libc.so".to_string(),
            format!("GROUP ( {libc} {libgcc} {libgcc_eh} )"),
        ),
        (
            "libgcc_s.so".to_string(),
            format!("GROUP ( {libgcc_eh} {libgcc} )"),
        ),
    ];
    for lib in ["m", "rt", "dl", "pthread", "util"] {
        if let Some(a) = archive(&format!("lib{lib}.a")) {
            scripts.push((format!("lib{lib}.so"), format!("GROUP ( {a} )")));
        }
    }
    for (name, script) in scripts {
        std::fs::write(
            dir.join(name),
            format!("/* mpm-aggregate's build.rs: the static archive */\n{script}\n"),
        )
        .expect("linker script");
    }
    // All `-L` folders apply to every `-l`, wherever they stand (ld(1)).
    println!(
        "cargo:rustc-link-arg-bin=mpm-aggregate-hook=-L{}",
        dir.display()
    );
    println!("cargo:rustc-link-arg-bin=mpm-aggregate-hook=-static");
    println!("cargo:rerun-if-env-changed=CC");
}
