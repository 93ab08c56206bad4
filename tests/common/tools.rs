//! Command-line tools the tests drive (pgbouncer, psql, sqlite3). A missing
//! one is installed by `.ci/install-deps` (Debian's packages, under a file
//! lock so parallel test binaries do not race), so plain `cargo test` passes
//! on a fresh machine; where that cannot work (not root, no sudo) the test
//! fails saying what to install. Never a skip. Also small file and network
//! helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the tool is: on PATH, or in /usr/sbin (pgbouncer lives there and
/// /usr/sbin is not on every user's PATH).
fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The path of `tool`, installing it first when it is missing. Panics with
/// the installer's message when it cannot be had.
pub fn require_tool(tool: &str) -> PathBuf {
    if let Some(p) = find(tool) {
        return p;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/install-deps");
    eprintln!("note: {tool} is missing; installing it with {script}");
    let out = Command::new("bash")
        .arg(script)
        .arg(tool)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{tool} is missing and bash cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "{tool} is missing and {script} could not install it ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    find(tool).unwrap_or_else(|| panic!("{script} succeeded but {tool} is still not found"))
}

/// Copies a folder tree (seed folders a test then edits).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server the test
/// starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `psql -f script` on the database at `url`, stopping at the first error
/// (the reviewable `diff --sql` script, run as a user would).
pub fn psql_file(url: &str, script: &Path) -> super::Run {
    let out = Command::new(require_tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    super::Run::of_output(&format!("psql -f {}", script.display()), &out)
}
