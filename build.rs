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
    }
}
