//! A real PostgreSQL server for one test: `initdb` into a temporary folder and
//! `pg_ctl start` on a free loopback port, trust authentication, stopped when
//! dropped. As root the server runs as the `postgres` user (PostgreSQL refuses
//! root). The binaries are the newest /usr/lib/postgresql/<version>/bin
//! (`PG_BIN` names another folder); where there are none, Debian's
//! `postgresql` package is installed first (once per test run, as the HTML
//! tests install Chromium), so `cargo test` alone works on a fresh machine. The
//! push benchmark includes this file too.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn bin_dir() -> PathBuf {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let present = std::env::var_os("PG_BIN").is_some()
            || std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("bin/initdb").is_file());
        if !present {
            super::apt::install("postgresql", "the push tests need a PostgreSQL server");
        }
    });
    // PG_BIN, else the newest /usr/lib/postgresql/<version>/bin (Debian's layout).
    let bin = std::env::var_os("PG_BIN").map(PathBuf::from).or_else(|| {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, bin)| bin.join("initdb").is_file())
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    });
    let bin = bin.unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        bin.join("initdb").is_file() && bin.join("pg_ctl").is_file(),
        "PostgreSQL server binaries (initdb, pg_ctl) not found in {}: install them (Debian: apt-get install postgresql) or set PG_BIN",
        bin.display()
    );
    bin
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::tempdir().expect("temp dir");
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let server = PgServer {
            dir,
            bin,
            as_postgres,
            port: free_port(),
        };
        let data = server.data();
        let out = server
            .command("initdb")
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -k {} -c fsync=off -c synchronous_commit=off",
            server.port,
            server.dir.path().display()
        );
        let out = server
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(server.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default()
        );
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls)
            .expect("connect to the test server")
    }

    /// A new, empty database.
    pub fn create_db(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(name)
    }

    pub fn folder(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
