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

/// Writes `plan` as a folder: plan.json (its seeds under `seeds/`), the
/// schema, the phase files, the seeds. Refuses a non-empty folder.
pub fn write_copy(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<String>> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| environment(format!("cannot read {}: {e}", dir.display())))?
            .next()
            .is_some()
    {
        return Err(environment(format!(
            "{} exists and is not empty; choose a new folder",
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
    let mut written = Vec::new();
    for (rel, text) in files {
        if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
            return Err(environment(format!(
                "plan file {rel} lies outside the plan folder; cannot copy it"
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
