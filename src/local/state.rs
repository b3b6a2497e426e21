//! The device's state directory and the one way files are written into it.
//!
//! The state directory holds what a backup needs when the database is away: the local copy of
//! this device's jobs ([`crate::local::copy`]), the spool of undelivered run records
//! ([`crate::local::spool`]), the lock files that keep runs apart ([`crate::local::locks`]) and the
//! time of each job's last run. Location: `RESTIC_FLEET_STATE_DIR`, else `state_dir` in the config
//! file, else `/var/lib/restic-fleet` as root, `$XDG_STATE_HOME/restic-fleet` otherwise
//! (`~/.local/state/restic-fleet`), `%ProgramData%\restic-fleet` on Windows.
//!
//! Every file that must survive a crash or a power cut whole is written by [`write_atomic`]:
//! a temporary file in the same directory, fsync, rename, fsync of the directory. A reader
//! therefore sees the old file or the new one, never a torn one. Files are private (0600): the
//! local copy holds the repository password.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::domain::private_acl::Object;
use crate::local::config::Config;

pub const ENV_STATE_DIR: &str = "RESTIC_FLEET_STATE_DIR";

/// The state directory of this device.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The directory in force for `config` (not created yet).
    pub fn for_config(config: &Config) -> Self {
        let root = std::env::var_os(ENV_STATE_DIR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| config.state_dir.clone())
            .unwrap_or_else(default_dir);
        Self { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root, created (private) when missing.
    pub fn ensure(&self) -> anyhow::Result<&Path> {
        create_private_dir(&self.root)?;
        Ok(&self.root)
    }

    /// The root, created when missing and made private even when it existed (as `init` does,
    /// so that a directory an older version or an unzip created is closed too).
    pub fn ensure_private(&self) -> anyhow::Result<&Path> {
        create_private_dir(&self.root)?;
        restrict_dir(&self.root)?;
        Ok(&self.root)
    }

    /// `<root>/<sub>`, created (private) when missing.
    pub fn subdir(&self, sub: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(sub);
        create_private_dir(&self.root)?;
        create_private_dir(&dir)?;
        Ok(dir)
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        crate::domain::exit::Failure::failed(format!(
            "cannot create the state directory {}: {e}; create it (writable by this user) or \
             point state_dir in the config file (or RESTIC_FLEET_STATE_DIR) elsewhere",
            dir.display()
        ))
    })?;
    restrict_dir(dir)
}

/// Makes `dir` private: mode 0700 on Unix; on Windows SYSTEM and Administrators only, an
/// access list the files created inside inherit.
fn restrict_dir(dir: &Path) -> anyhow::Result<()> {
    crate::platform::acl::restrict(dir, Object::Directory).map_err(|e| {
        crate::domain::exit::Failure::failed(format!(
            "cannot make the state directory {} private: {e}; run restic-fleet as root \
             (as an Administrator on Windows) or point state_dir elsewhere",
            dir.display()
        ))
        .into()
    })
}

/// The platform default (see the module documentation).
pub fn default_dir() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("restic-fleet")
    }
    #[cfg(unix)]
    {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/restic-fleet");
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
            })
            .unwrap_or_else(|| PathBuf::from(".local/state"));
        base.join("restic-fleet")
    }
}

/// Writes `bytes` to `dir/name` so that after a crash the file is either the old or the new one:
/// temp file in `dir`, mode 0600, fsync, rename over the target, fsync of `dir`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))?;
    tmp.persist(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    sync_dir(dir);
    Ok(path)
}

/// Makes a rename or removal in `dir` durable (a no-op where directories cannot be opened).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_atomic(dir.path(), "a.json", b"one").unwrap();
        write_atomic(dir.path(), "a.json", b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
