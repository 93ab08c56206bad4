//! Files the user names for output (`diff --sql`, `report --html`,
//! `rehearse --html`, `demo --html`/`--out`, the snapshot of `pull --out`).
//! Each is written under a temporary name in the same folder and renamed
//! over the path, so a crash never leaves half a file and a symbolic link
//! at the path is replaced, never written through into its target. An
//! existing path (a file, a folder, a link, dangling or not) is somebody's
//! work: it is replaced only with `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use tempfile::NamedTempFile;

use crate::error::environment;

/// Refuses (exit 2) a path that exists, unless `force`. A link counts
/// whatever it points at: following it would write into its target.
pub fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) => Err(exists(path, &m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(environment(format!("cannot check {}: {e}", path.display()))),
    }
}

fn exists(path: &Path, m: &std::fs::Metadata) -> anyhow::Error {
    let what = if m.file_type().is_symlink() {
        // Replacing the link leaves what it points at as it is.
        "exists (a symbolic link; --force replaces the link, not what it points at)"
    } else if m.is_dir() {
        "exists and is a folder"
    } else {
        "exists"
    };
    environment(format!(
        "{} {what}: nothing was written. Choose another path, or pass --force to replace it",
        path.display()
    ))
}

/// The folder a file at `path` goes in (`.` for a bare name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An empty temporary file in the folder of `path` (mode 0600), to be
/// renamed over it once complete: a rename within one folder is atomic.
/// `what` names the file in an error (`the snapshot`), `advice` says how to
/// choose another folder (`with --out`).
pub fn temp_beside(
    path: &Path,
    prefix: &str,
    suffix: &str,
    what: &str,
    advice: &str,
) -> Result<NamedTempFile> {
    let dir = folder_of(path);
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile_in(&dir)
        .map_err(|e| {
            // The io error names our temporary file; the folder is what the
            // user chose and can fix.
            environment(format!(
                "cannot write {what} in {}: {}; choose a writable folder{advice}",
                dir.display(),
                std::io::Error::from(e.kind())
            ))
        })
}

/// Moves a complete temporary file to `path`: over whatever is there with
/// `force`, else only if nothing is (checked by the rename itself, so a
/// file that appeared meanwhile is not lost either).
pub fn put_in_place(tmp: NamedTempFile, path: &Path, force: bool) -> Result<()> {
    let placed = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    placed
        .map(|_| ())
        .map_err(|e| match std::fs::symlink_metadata(path) {
            Ok(m) if !force => exists(path, &m),
            _ => environment(format!("cannot write {}: {}", path.display(), e.error)),
        })
}

/// Writes `bytes` to `path` (owner-only: these files hold production rows)
/// through a temporary file beside it; an existing path only with `force`.
pub fn write_replacing(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    refuse_existing(path, force)?;
    let mut tmp = temp_beside(path, ".sandbox-", ".part", &path.display().to_string(), "")?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| environment(format!("cannot write {}: {e}", path.display())))?;
    put_in_place(tmp, path, force)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn an_existing_path_is_kept_unless_forced_and_a_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("out.html");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = dir.path().join("dangling.html");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for path in [&target, &link, &dangling] {
            let e = write_replacing(path, b"new", false).unwrap_err();
            assert!(format!("{e:#}").contains("--force"), "{e:#}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        write_replacing(&link, b"new", true).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let fresh = dir.path().join("fresh.sql");
        write_replacing(&fresh, b"x", false).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}
