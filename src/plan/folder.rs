//! Where a plan's files come from: a folder on disk, or the built-in plan
//! compiled into the binary (the repository's `schema/` and `seeds/`).

use std::path::{Path, PathBuf};

use crate::error::environment;

use super::{Plan, SeedFile};

/// The built-in plan's files, by path from the repository root. plan.json
/// lives in `schema/`; its paths are relative to that folder.
const BUILTIN: &[(&str, &str)] = &[
    ("schema/plan.json", include_str!("../../schema/plan.json")),
    (
        "schema/target.json",
        include_str!("../../schema/target.json"),
    ),
    (
        "schema/phases/1_strategic_priorities.sql",
        include_str!("../../schema/phases/1_strategic_priorities.sql"),
    ),
    (
        "schema/phases/2_tools.sql",
        include_str!("../../schema/phases/2_tools.sql"),
    ),
    (
        "schema/phases/3A_workflows_schema.sql",
        include_str!("../../schema/phases/3A_workflows_schema.sql"),
    ),
    (
        "schema/phases/3B_dh_workflows.sql",
        include_str!("../../schema/phases/3B_dh_workflows.sql"),
    ),
    (
        "schema/phases/3C_library_workflows.sql",
        include_str!("../../schema/phases/3C_library_workflows.sql"),
    ),
    (
        "schema/phases/4_tasks.sql",
        include_str!("../../schema/phases/4_tasks.sql"),
    ),
];

const BUILTIN_ROOT: &str = "schema";

#[derive(Debug, Clone)]
pub enum PlanSource {
    Builtin,
    /// The folder holding the plan file, and the plan file's name in it
    /// (`plan.json` unless a file was named).
    Dir {
        root: PathBuf,
        plan_file: String,
    },
}

/// `a/b/../c` → `a/c`, on `/`-separated relative paths.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn builtin_files() -> impl Iterator<Item = (String, &'static str)> {
    BUILTIN
        .iter()
        .map(|(p, t)| (p.to_string(), *t))
        .chain(super::seeds::embedded_texts().map(|(p, t)| (p.to_string(), t)))
}

impl PlanSource {
    /// A plan folder, or the plan.json inside one.
    pub fn from_path(p: &Path) -> anyhow::Result<PlanSource> {
        let meta = std::fs::metadata(p)
            .map_err(|e| environment(format!("cannot read plan {}: {e}", p.display())))?;
        if meta.is_dir() {
            return Ok(PlanSource::Dir {
                root: p.to_path_buf(),
                plan_file: "plan.json".to_string(),
            });
        }
        // A plan file named directly: its paths are relative to its folder.
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => Ok(PlanSource::Dir {
                root: if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                },
                plan_file: name.to_string_lossy().into_owned(),
            }),
            _ => Err(environment(format!(
                "{} is not a plan folder: pass the folder that holds plan.json (start one with \
                 `sandbox plan init DIR`)",
                p.display()
            ))),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PlanSource::Builtin => "built-in plan (schema/)".to_string(),
            PlanSource::Dir { root, plan_file } if plan_file == "plan.json" => {
                root.display().to_string()
            }
            PlanSource::Dir { root, plan_file } => root.join(plan_file).display().to_string(),
        }
    }

    /// The plan file itself, for messages about its fields.
    pub fn plan_file(&self) -> String {
        match self {
            PlanSource::Builtin => format!("{BUILTIN_ROOT}/plan.json"),
            PlanSource::Dir { root, plan_file } => root.join(plan_file).display().to_string(),
        }
    }

    /// A file of the plan, by its path relative to plan.json.
    pub fn read(&self, rel: &str) -> anyhow::Result<String> {
        match self {
            PlanSource::Builtin => {
                let want = normalise(&format!("{BUILTIN_ROOT}/{rel}"));
                builtin_files()
                    .find(|(p, _)| *p == want)
                    .map(|(_, t)| t.to_string())
                    .ok_or_else(|| environment(format!("the built-in plan has no file {rel}")))
            }
            PlanSource::Dir { root, plan_file } => {
                let path = if rel == "plan.json" {
                    root.join(plan_file)
                } else {
                    root.join(rel)
                };
                std::fs::read_to_string(&path).map_err(|e| {
                    environment(format!("cannot read plan file {}: {e}", path.display()))
                })
            }
        }
    }

    /// Every seed file under the seed folder `rel` (relative to plan.json).
    pub fn seeds(&self, rel: &str) -> anyhow::Result<Vec<SeedFile>> {
        match self {
            PlanSource::Builtin => {
                let prefix = format!("{}/", normalise(&format!("{BUILTIN_ROOT}/{rel}")));
                let mut out: Vec<SeedFile> = builtin_files()
                    .filter_map(|(p, t)| {
                        p.strip_prefix(&prefix).map(|r| SeedFile {
                            path: r.to_string(),
                            text: t.to_string(),
                        })
                    })
                    .filter(|s| s.path.ends_with(".json"))
                    .collect();
                out.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(out)
            }
            PlanSource::Dir { root, .. } => read_seed_dir(&root.join(rel)),
        }
    }
}

/// Every `*.json` file under `dir` (any depth), by `/`-separated path.
pub fn read_seed_dir(dir: &Path) -> anyhow::Result<Vec<SeedFile>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SeedFile>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| environment(format!("cannot read seed folder {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| environment(format!("cannot read seed folder {}: {e}", dir.display())))?;
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                environment(format!("cannot read seed file {}: {e}", path.display()))
            })?;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push(SeedFile { path: rel, text });
        }
    }
    Ok(())
}

/// Marks a file the tool writes (the HTML report, the `diff --sql` script)
/// on its first line: such a file is output, never part of a plan, so a
/// report written into a plan folder leaves the plan hash alone.
pub const GENERATED_MARK: &str = "@generated by sandbox";

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Version-control folders: history, not the plan.
const VCS_DIRS: &[&str] = &[".git", ".hg", ".svn", ".bzr", ".jj"];

/// A file of a plan folder that the plan does not read itself (a README,
/// notes, a query kept for later): covered by the hash all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// `rel` (relative to the plan folder) as a `/`-separated path inside the
/// folder, or None when it leads outside.
pub fn inside(rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// The files the plan reads, by path inside the folder: what the hash
/// already covers in their own form, so the folder walk skips them.
pub struct ReadFiles {
    pub files: std::collections::BTreeSet<String>,
    /// The seed folder inside the plan folder, if it is inside: every
    /// `*.json` under it is a seed (covered as a seed, or replaced by
    /// `--seeds`).
    pub seed_dir: Option<String>,
}

impl ReadFiles {
    fn covers(&self, rel: &str) -> bool {
        self.files.contains(rel)
            || self.seed_dir.as_deref().is_some_and(|d| {
                rel.ends_with(".json") && (d.is_empty() || rel.starts_with(&format!("{d}/")))
            })
    }
}

/// Every other file of the plan folder `root`, sorted by path, for the
/// hash: whatever the filesystem's order, the same folder gives the same
/// list. Skipped: version-control folders, SQLite databases (by their
/// header) with their -journal/-wal/-shm files, and files whose first line
/// carries [`GENERATED_MARK`]. A symbolic link is followed when it leads to
/// a file inside the folder; one leading outside, to a folder or nowhere is
/// refused, as is a file that cannot be read: a plan is the folder, whole.
pub fn extra_files(root: &Path, read: &ReadFiles) -> anyhow::Result<Vec<ExtraFile>> {
    let real_root = std::fs::canonicalize(root)
        .map_err(|e| environment(format!("cannot read plan folder {}: {e}", root.display())))?;
    let mut out = Vec::new();
    walk_plan(&real_root, root, "", read, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk_plan(
    real_root: &Path,
    dir: &Path,
    prefix: &str,
    read: &ReadFiles,
    out: &mut Vec<ExtraFile>,
) -> anyhow::Result<()> {
    let unreadable = |path: &Path, e: std::io::Error| {
        environment(format!(
            "cannot read {} in the plan folder: {e}; the plan hash covers every file of the \
             folder, so make it readable or move it out",
            path.display()
        ))
    };
    let entries = std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(|e| unreadable(&path, e))?;
        if kind.is_dir() {
            if !VCS_DIRS.contains(&name.as_str()) {
                walk_plan(real_root, &path, &format!("{rel}/"), read, out)?;
            }
            continue;
        }
        if kind.is_symlink() {
            check_link(real_root, &path)?;
        } else if !kind.is_file() {
            return Err(environment(format!(
                "{} in the plan folder is neither a file nor a folder; the plan hash covers \
                 every file of the folder: move it out",
                path.display()
            )));
        }
        if read.covers(&rel) {
            continue;
        }
        // A snapshot can be large: known by its header before reading it.
        if is_sqlite_file(&path) || sqlite_companion(&path) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| unreadable(&path, e))?;
        if generated(&bytes) {
            continue;
        }
        out.push(ExtraFile { path: rel, bytes });
    }
    Ok(())
}

/// A symbolic link in a plan folder must lead to a file inside it: the plan
/// is what the folder holds, and a copy of the folder must be the same plan.
fn check_link(real_root: &Path, link: &Path) -> anyhow::Result<()> {
    let shown = std::fs::read_link(link)
        .map(|t| t.display().to_string())
        .unwrap_or_default();
    let target = std::fs::canonicalize(link).map_err(|e| {
        environment(format!(
            "{} in the plan folder is a symbolic link to {shown}, which cannot be read ({e}): \
             remove it or point it at a file of the folder",
            link.display()
        ))
    })?;
    if !target.starts_with(real_root) {
        return Err(environment(format!(
            "{} in the plan folder is a symbolic link leading outside the folder (to {}): a plan \
             is what its folder holds, so copy the file in instead",
            link.display(),
            target.display()
        )));
    }
    if target.is_dir() {
        return Err(environment(format!(
            "{} in the plan folder is a symbolic link to a folder ({shown}): link the files, or \
             copy the folder in",
            link.display()
        )));
    }
    Ok(())
}

/// A report or `diff --sql` script: the tool's output, never a plan's.
fn generated(bytes: &[u8]) -> bool {
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or(bytes);
    first_line
        .windows(GENERATED_MARK.len())
        .any(|w| w == GENERATED_MARK.as_bytes())
}

/// A database's -journal, -wal or -shm file: their own headers are not
/// fixed (a WAL index has none), so they are known by name next to their
/// database.
fn sqlite_companion(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ["-journal", "-wal", "-shm"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|db| is_sqlite_file(&path.with_file_name(db)))
    })
}

/// A SQLite database (a snapshot), by the header every one starts with.
fn is_sqlite_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == SQLITE_HEADER)
}

/// Writes `plan` as a folder: plan.json (its seeds under `seeds/`), the
/// schema, the phase files, the seeds. Only into a new folder or an empty
/// one: a file, a symbolic link (it would be written through, into what it
/// points at) or a folder holding anything is refused, and there is no
/// `--force` — replacing a folder would delete what is in it.
pub fn write_copy(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<String>> {
    let taken = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Some("a symbolic link"),
        Ok(m) if !m.is_dir() => Some("a file"),
        Ok(_) => std::fs::read_dir(dir)
            .map_err(|e| environment(format!("cannot read {}: {e}", dir.display())))?
            .next()
            .is_some()
            .then_some("a folder that is not empty"),
        Err(_) => None,
    };
    if let Some(what) = taken {
        return Err(environment(format!(
            "{} exists and is {what}: nothing was written; choose a new folder",
            dir.display()
        )));
    }
    let mut file = plan.file.clone();
    if file.seeds.is_some() || !plan.seeds.is_empty() {
        file.seeds = Some("seeds".to_string());
    }
    let mut files: Vec<(String, String)> = vec![
        (
            "plan.json".to_string(),
            serde_json::to_string_pretty(&file)? + "\n",
        ),
        (
            plan.file.schema.clone(),
            serde_json::to_string_pretty(&plan.schema)? + "\n",
        ),
    ];
    for (p, sql) in plan.file.phases.iter().zip(&plan.phase_sql) {
        files.push((p.sql.clone(), sql.clone()));
    }
    for s in &plan.seeds {
        files.push((format!("seeds/{}", s.path), s.text.clone()));
    }
    let extra = plan.extra.iter().map(|f| (f.path.clone(), f.bytes.clone()));
    let own = files.len();
    let mut written = Vec::new();
    for (i, (rel, text)) in files
        .into_iter()
        .map(|(p, t)| (p, t.into_bytes()))
        .chain(extra)
        .enumerate()
    {
        if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
            return Err(environment(format!(
                "plan file {rel} lies outside the plan folder; cannot copy it"
            )));
        }
        if i >= own && written.contains(&rel) {
            return Err(environment(format!(
                "{rel} of plan {} would overwrite the copy's own {rel}: rename it first",
                plan.origin
            )));
        }
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| environment(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| environment(format!("cannot write {}: {e}", path.display())))?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(normalise("schema/../seeds/x.json"), "seeds/x.json");
        assert_eq!(normalise("schema/./phases/1.sql"), "schema/phases/1.sql");
    }

    #[test]
    fn a_copy_has_the_same_hash() {
        let plan = Plan::load_default().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("p");
        plan.write_copy(&target).unwrap();
        let copy = Plan::load(Some(&target), None).unwrap();
        assert_eq!(copy.hash, plan.hash);
        assert_eq!(copy.seeds, plan.seeds);
        assert!(plan.write_copy(&target).is_err(), "a non-empty folder");
    }
}
