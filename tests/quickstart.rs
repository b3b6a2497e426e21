//! The README's quick start, run as written: its shell block is read from README.md (so the
//! README cannot drift from what is tested) and each machine's lines run in bash, in order,
//! against the private PostgreSQL of scripts/test.sh, with a recording fake `systemctl`; the
//! last line, `restic-fleet status`, must be green (exit 0).
//!
//! Three "machines" are three home directories. What a reader fills in is filled in here, and
//! nothing else is changed: the server's address and the database name, the admin password
//! (`db roles` reads it and the viewer's from standard input), the repository and the path
//! backed up (directories of the test), and the `init` line, which is the one `device enroll`
//! printed. Because the test may run as root, the places root would write outside the test are
//! moved into web1's home: the config and state directory by their variables, the units by
//! `sync --unit-dir`, restic's cache by `$CACHE_DIRECTORY` (as systemd sets it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const ADMIN_PW: &str = "admin-pw";
const VIEWER_PW: &str = "viewer-pw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Machine {
    Server,
    Admin,
    Web1,
}

/// The quick start's lines (a line ending in `\` joined with the next), comments included.
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = &readme[readme
        .find("\n## Quick start\n")
        .expect("a Quick start section")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("\n```").expect("the block's end")];
    block
        .replace("\\\n", " ")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The machine a comment line moves to, if it names one.
fn machine_of(comment: &str) -> Option<Machine> {
    if comment.contains("database server") {
        Some(Machine::Server)
    } else if comment.contains("admin machine") {
        Some(Machine::Admin)
    } else if comment.contains("On web1") {
        Some(Machine::Web1)
    } else {
        None
    }
}

/// The block cut into runs of lines on one machine.
fn segments(lines: &[String]) -> Vec<(Machine, Vec<String>)> {
    let mut out: Vec<(Machine, Vec<String>)> = Vec::new();
    for line in lines {
        if line.trim_start().starts_with('#') {
            let m = machine_of(line).unwrap_or_else(|| panic!("which machine? {line}"));
            out.push((m, Vec::new()));
        } else {
            out.last_mut()
                .expect("the block starts by naming a machine")
                .1
                .push(line.clone());
        }
    }
    out
}

struct World {
    dir: tempfile::TempDir,
    host: String,
    db: String,
    fakebin: PathBuf,
}

impl World {
    fn home(&self, m: Machine) -> PathBuf {
        let h = self.dir.path().join(format!("{m:?}").to_lowercase());
        std::fs::create_dir_all(&h).unwrap();
        h
    }

    /// A line as the reader would type it on this test's fleet.
    fn fill_in(&self, line: &str) -> String {
        line.replace("db.example.com", &self.host)
            .replace("backup_control", &self.db)
            .replace("ADMIN_PASSWORD", ADMIN_PW)
            .replace(
                "sftp:backup@nas:/srv/restic",
                self.dir.path().join("repo").to_str().unwrap(),
            )
            .replace(
                " /var/www",
                &format!(" {}", self.dir.path().join("www").display()),
            )
    }

    /// Runs one machine's lines in one bash, stopping at the first that fails.
    fn run(&self, m: Machine, lines: &[String]) -> Output {
        let home = self.home(m);
        let script = format!("set -euxo pipefail\n{}\n", lines.join("\n"));
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(&home)
            .env("HOME", &home)
            .env("PATH", path_with(&self.fakebin))
            .env(
                "RESTIC_FLEET_CONFIG",
                home.join(".config/restic-fleet/config.toml"),
            )
            .env("RESTIC_FLEET_STATE_DIR", home.join("state"))
            .env("CACHE_DIRECTORY", home.join("cache"))
            .env_remove("DATABASE_URL")
            .env_remove("RESTIC_FLEET_DEVICE_ID")
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_REPOSITORY")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME");
        let port = self.host.rsplit(':').next().unwrap();
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", port)
            .env("PGUSER", "postgres")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("bash");
        // `db roles` asks for backup_admin's and backup_viewer's passwords.
        let input = format!("{ADMIN_PW}\n{VIEWER_PW}\n");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).ok();
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }
}

/// A recording `systemctl` and the binary under test, first on PATH.
fn fake_bin(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("systemctl.log");
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_restic-fleet"), bin.join("restic-fleet"))
        .unwrap();
    (bin, log)
}

#[tokio::test]
async fn the_readme_quick_start_ends_with_a_green_status() {
    let dir = tempfile::tempdir().unwrap();
    let (fakebin, systemctl_log) = fake_bin(dir.path());
    let admin = admin_url();
    let host = admin
        .trim_start_matches("postgres://postgres@")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let world = World {
        db: format!("qs_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        host,
        fakebin,
        dir,
    };
    let www = world.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "<h1>web1</h1>\n").unwrap();

    let lines = quick_start();
    assert!(
        lines.len() <= 20,
        "the quick start has {} lines",
        lines.len()
    );
    let mut init_line: Option<String> = None;
    let mut last = None;
    for (machine, lines) in segments(&lines) {
        let lines: Vec<String> = lines
            .iter()
            .map(|l| match (machine, l.trim_start()) {
                (Machine::Web1, t) if t.starts_with("restic-fleet init ") => init_line
                    .clone()
                    .expect("device enroll printed an init line before web1's turn"),
                (Machine::Web1, t) if t.starts_with("restic-fleet sync") => format!(
                    "{} --unit-dir {}",
                    world.fill_in(l),
                    world.home(Machine::Web1).join("units").display()
                ),
                _ => world.fill_in(l),
            })
            .collect();
        let out = world.run(machine, &lines);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{machine:?} stopped:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        // enroll prints the init line and, on a line of its own, the URL pasted at its prompt.
        let printed = stdout(&out);
        let init = printed
            .lines()
            .find(|l| l.trim_start().starts_with("restic-fleet init "));
        let url = printed
            .lines()
            .find(|l| l.trim_start().starts_with("postgres://"));
        if let (Some(init), Some(url)) = (init, url) {
            init_line = Some(format!("{} <<< '{}'", init.trim(), url.trim()));
        }
        last = Some((machine, lines));
    }
    // The last line was `status` on the admin machine, and it exited 0 above.
    let (machine, lines) = last.unwrap();
    assert_eq!(machine, Machine::Admin);
    assert_eq!(
        lines.last().unwrap().split('#').next().unwrap().trim(),
        "restic-fleet status"
    );

    // web1 logs in with its own role, never the admin's.
    let init_line = init_line.unwrap();
    assert!(init_line.contains("postgres://fleet_") && !init_line.contains("backup_admin"));
    let device_config = std::fs::read_to_string(
        world
            .home(Machine::Web1)
            .join(".config/restic-fleet/config.toml"),
    )
    .unwrap();
    assert!(
        device_config.contains("postgres://fleet_")
            && device_config.contains("device_id = \"web1\""),
        "{device_config}"
    );
    // sync enabled the job's timer and its own through systemctl.
    let calls = calls(&systemctl_log);
    assert!(
        calls
            .iter()
            .any(|c| c.contains("enable --now restic-fleet-job-")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("enable --now restic-fleet-sync.timer")),
        "{calls:?}"
    );
    // And the admin sees the backup as the status says.
    let out = world.run(Machine::Admin, &["restic-fleet status --json".to_string()]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["jobs"][0]["verdict"], "ok", "{status:#}");
    assert_eq!(status["jobs"].as_array().unwrap().len(), 1);
}
