//! Rebuilds the binary when a migration changes (`sqlx::migrate!` embeds the migrations at
//! compile time, and cargo does not otherwise know it reads that directory), and hands the
//! source's git revision to `--version` as `RESTIC_FLEET_GIT_REV`: taken from the environment
//! when set (a build from a source archive can name its revision), else from `git`, else
//! "unknown" (no git, or not a checkout).
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=RESTIC_FLEET_GIT_REV");
    let rev = std::env::var("RESTIC_FLEET_GIT_REV")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=RESTIC_FLEET_GIT_REV={}", rev.trim());
}

/// The short commit id of HEAD, and tells cargo to run again when HEAD moves (a commit, a
/// checkout). None outside a git checkout or without git.
fn git_revision() -> Option<String> {
    let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names a branch whose ref file (or packed-refs) changes on commit; in a worktree
    // these live in different directories, which --git-path resolves. Only files that exist
    // are named: cargo reruns the script on every build for a missing one.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for path in watch {
        if let Some(p) = git(&["rev-parse", "--git-path", &path])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    Some(rev)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
