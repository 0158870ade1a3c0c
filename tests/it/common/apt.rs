//! Debian packages a test needs, installed with apt-get when missing, so that
//! `cargo test` alone works on a fresh machine (CI runs as root). Also
//! included by benches (`#[path]`).

use std::process::Command;

fn apt_get(args: &[&str]) -> bool {
    Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs `package` (updating the package lists first if the install
/// fails); `why` says which tests need it.
pub fn install(package: &str, why: &str) {
    if !apt_get(&["install", "-y", "-qq", package]) {
        assert!(apt_get(&["update", "-qq"]), "apt-get update failed");
        assert!(
            apt_get(&["install", "-y", "-qq", package]),
            "apt-get install -y {package} failed ({why})"
        );
    }
}
