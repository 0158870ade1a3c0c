//! Headless Chromium for the HTML page's tests and bench (also included by
//! `benches/html.rs` through `#[path]`).

/// The flags every run uses: headless, no network of Chromium's own, a fixed
/// window, and 5 s of virtual time for the page's scripts.
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,900",
    "--virtual-time-budget=5000",
];
