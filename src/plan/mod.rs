//! The migration plan as data: which tables it reads, its phases, their
//! expectations, and the policies a user may change.

pub mod checks;
pub mod phases;
pub mod rowjson;
pub mod seeds;

use serde::{Deserialize, Serialize};

use crate::catalog::TableRole;

/// The tables a pull takes, declared once in the plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSet {
    /// Must stay byte-identical (new rows aside).
    pub protected: Vec<String>,
    /// Read-only inputs the plan needs by name.
    pub sources: Vec<String>,
    /// Prefix of further source tables taken when present (`dh_`).
    #[serde(default)]
    pub source_prefix: Option<String>,
}

impl TableSet {
    /// Every table the plan names, protected first.
    pub fn named(&self) -> impl Iterator<Item = &str> {
        self.protected
            .iter()
            .chain(self.sources.iter())
            .map(String::as_str)
    }

    pub fn role_of(&self, table: &str) -> TableRole {
        if self.protected.iter().any(|t| t == table) {
            TableRole::Protected
        } else {
            TableRole::Source
        }
    }

    pub fn matches_pattern(&self, table: &str) -> bool {
        self.source_prefix
            .as_deref()
            .is_some_and(|p| table.starts_with(p))
    }
}

/// What a JTBD's strategic priority is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JtbdLinkSource {
    /// The library files and the `function` column must agree; a JTBD they
    /// place under two priorities fails the rehearsal (the seed's reading).
    RequireAgreement,
    /// The library files decide; `function` is ignored.
    Library,
    /// The `function` column decides; the files only list the JTBDs.
    Function,
}

/// What phase 3C does with a library workflow already in `workflows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExistingWorkflowPolicy {
    /// Fail the rehearsal and name the workflows (the seed assumes none exist).
    Fail,
    /// Leave the existing row and import only the missing ones.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    pub jtbd_sp_link: JtbdLinkSource,
    pub existing_library_workflow: ExistingWorkflowPolicy,
}

/// The Rust data move a phase performs; the SQL around it is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    SeedStrategicPriorities,
    MigrateTools,
    CheckWorkflowsSchema,
    MigrateDhWorkflows,
    ImportLibraryWorkflows,
    MigrateTasks,
}

impl Action {
    /// The existing tables this action reads and the tables it writes.
    /// Until the plan file declares each phase's reads and writes, this is
    /// where they are stated, once (tables the target schema creates count
    /// as written wherever they are created).
    fn tables(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Action::SeedStrategicPriorities => {
                (&["jtbd_library"], &["strategic_priorities", "jtbd_library"])
            }
            Action::MigrateTools => (&["dh_tool"], &["tools"]),
            Action::CheckWorkflowsSchema => (&["workflows"], &[]),
            Action::MigrateDhWorkflows => {
                (&["dh_workflow", "dh_use_case", "dh_domain"], &["workflows"])
            }
            Action::ImportLibraryWorkflows => (&["workflows", "jtbd_library"], &["workflows"]),
            Action::MigrateTasks => (&["dh_task", "workflows"], &["tasks"]),
        }
    }
}

/// What an expectation's query must return: one value, or whole rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub name: String,
    pub sql: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_rows: Option<Vec<Vec<serde_json::Value>>>,
}

impl Expectation {
    /// The expected result as rows of text, the form both engines are
    /// compared in.
    pub fn expected_rows(&self) -> Vec<Vec<String>> {
        match (&self.expect, &self.expect_rows) {
            (Some(v), _) => vec![vec![value_text(v)]],
            (None, Some(rows)) => rows
                .iter()
                .map(|r| r.iter().map(value_text).collect())
                .collect(),
            (None, None) => Vec::new(),
        }
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// A query that lists offending rows; it holds when it returns none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub id: String,
    pub name: String,
    pub action: Action,
    #[serde(default)]
    pub expectations: Vec<Expectation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub tables: TableSet,
    pub policies: Policies,
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub verification: Vec<Expectation>,
    #[serde(default)]
    pub guards: Vec<Guard>,
    /// Triggers (`table.trigger`) the push may hold off while it updates
    /// that table. Honoured only for a trigger whose function provably just
    /// stamps `updated_at` (see `db::triggers`); every other trigger fires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hold_off_triggers: Vec<String>,
    /// Tables outside the plan's write set that the push (or rollback) may
    /// write through side effects such as an audit trigger (`audit_log` for
    /// `public.audit_log`, or `schema.table`). Every other write to a table
    /// the plan does not write refuses the push.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_writes: Vec<String>,
}

/// A column of a table or column the plan adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub pg_type: String,
    #[serde(default)]
    pub not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    pub name: String,
    pub phase: String,
    pub columns: Vec<TargetColumn>,
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    #[serde(default)]
    pub foreign_keys: Vec<TargetForeignKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnReference {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedColumn {
    pub table: String,
    pub phase: String,
    pub column: TargetColumn,
    #[serde(default)]
    pub references: Option<ColumnReference>,
}

/// The DDL the plan adds (`schema/target.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSchema {
    #[serde(default)]
    pub comment: String,
    pub tables: Vec<TargetTable>,
    pub added_columns: Vec<AddedColumn>,
}

pub const DEFAULT_PLAN: &str = include_str!("../../schema/plan.json");
pub const TARGET_SCHEMA: &str = include_str!("../../schema/target.json");

/// The plan in force: plan file, target schema and seeds.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PlanFile,
    pub schema: TargetSchema,
    pub tables: TableSet,
    pub library: phases::LibraryInput,
    /// Where the plan came from, for messages.
    pub origin: String,
    /// The command-line options that load this same plan again (`--plan`,
    /// `--seeds`, `--policy`), for advice that must work as given; set by
    /// the command line, empty for the built-in plan.
    pub args: Vec<String>,
    /// Hash over the plan file, the target schema and the seeds: a
    /// rehearsal authorises a push only for the exact plan it ran.
    pub hash: String,
}

impl Plan {
    /// The plan and seeds shipped with the tool (the seed plan's reading).
    pub fn load_default() -> anyhow::Result<Plan> {
        Plan::load(None, None)
    }

    /// A user's plan file and seed folder, each defaulting to the built-in one.
    pub fn load(
        plan: Option<&std::path::Path>,
        seeds_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Plan> {
        let (text, origin) = match plan {
            None => (
                DEFAULT_PLAN.to_string(),
                "built-in plan (schema/plan.json)".to_string(),
            ),
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| {
                    crate::error::environment(format!("cannot read plan file {}: {e}", p.display()))
                })?,
                p.display().to_string(),
            ),
        };
        let seeds = match seeds_dir {
            None => seeds::load_embedded(),
            Some(dir) => seeds::load_seeds(dir),
        }
        .map_err(|e| crate::error::environment(format!("seed files are not valid: {e}")))?;
        Plan::from_parts(&text, &origin, &seeds)
    }

    pub fn from_parts(text: &str, origin: &str, seeds: &seeds::Seeds) -> anyhow::Result<Plan> {
        let file: PlanFile = serde_json::from_str(text).map_err(|e| {
            crate::error::environment(format!(
                "plan {origin} is not valid: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let schema: TargetSchema = serde_json::from_str(TARGET_SCHEMA)
            .map_err(|e| crate::error::environment(format!("target schema is not valid: {e}")))?;
        let all = file
            .phases
            .iter()
            .flat_map(|p| {
                p.expectations
                    .iter()
                    .map(move |e| (format!("phase {}", p.id), e))
            })
            .chain(
                file.verification
                    .iter()
                    .map(|e| ("verification".to_string(), e)),
            );
        for (place, e) in all {
            if e.expect.is_some() == e.expect_rows.is_some() {
                return Err(crate::error::environment(format!(
                    "plan {origin}: {place} expectation '{}' needs exactly one of `expect` or `expect_rows`",
                    e.name
                )));
            }
        }
        let library = library_input(seeds);
        let hash = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            // Hash the parsed form so whitespace edits do not invalidate a
            // rehearsal, while any change of meaning does.
            h.update(serde_json::to_vec(&file)?);
            h.update(serde_json::to_vec(&schema)?);
            h.update(seeds_fingerprint(seeds)?.as_bytes());
            hex::encode(h.finalize())
        };
        Ok(Plan {
            tables: file.tables.clone(),
            file,
            schema,
            library,
            origin: origin.to_string(),
            args: Vec::new(),
            hash,
        })
    }
}

impl Plan {
    /// Tables whose content the plan's phases read: what must not have
    /// changed since the pull (drift-checked, and locked against writers
    /// during a push). Tables in neither this set nor [`Plan::write_set`]
    /// are left to the app.
    pub fn read_set(&self) -> std::collections::BTreeSet<String> {
        self.file
            .phases
            .iter()
            .flat_map(|p| p.action.tables().0.iter())
            .map(|t| t.to_string())
            .collect()
    }

    /// Tables the push writes: rows inserted or updated, columns added,
    /// tables created.
    pub fn write_set(&self) -> std::collections::BTreeSet<String> {
        let mut out: std::collections::BTreeSet<String> = self
            .file
            .phases
            .iter()
            .flat_map(|p| p.action.tables().1.iter())
            .map(|t| t.to_string())
            .collect();
        out.extend(self.schema.tables.iter().map(|t| t.name.clone()));
        out.extend(self.schema.added_columns.iter().map(|a| a.table.clone()));
        out
    }
}

/// Digest of the seeds' content, part of the plan hash.
fn seeds_fingerprint(seeds: &seeds::Seeds) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in &seeds.priorities {
        h.update(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                p.code, p.name, p.description, p.color, p.icon, p.position
            )
            .as_bytes(),
        );
    }
    // File names, not paths: the same seeds give the same hash wherever
    // they are read from.
    for (jtbd, sp, file) in library_input(seeds).allocation {
        h.update(format!("{jtbd}\t{sp}\t{file}\n").as_bytes());
    }
    for (_, wf) in seeds.workflows() {
        h.update(serde_json::to_vec(&wf.raw)?);
    }
    Ok(hex::encode(h.finalize()))
}

/// What the phases need from the seeds.
pub fn library_input(seeds: &seeds::Seeds) -> phases::LibraryInput {
    let file_name = |f: &seeds::LibraryFile| {
        f.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| f.path.display().to_string())
    };
    phases::LibraryInput {
        priorities: seeds
            .priorities
            .iter()
            .map(|p| phases::PrioritySeed {
                code: p.code.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                color: p.color.clone(),
                icon: p.icon.clone(),
                position: p.position,
            })
            .collect(),
        allocation: seeds
            .files
            .iter()
            .flat_map(|f| {
                f.jtbds.iter().map(move |j| {
                    (
                        j.jtbd_id.clone(),
                        f.strategic_priority.clone(),
                        file_name(f),
                    )
                })
            })
            .collect(),
        workflows: seeds
            .workflows()
            .map(|(f, w)| phases::LibraryWorkflow {
                sp_code: f.strategic_priority.clone(),
                file: file_name(f),
                workflow_id: w.workflow_id.clone(),
                jtbd_code: w.jtbd_id.clone(),
                name: w.workflow_name.clone(),
                object: w.raw.as_object().cloned().unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod read_write_set_tests {
    use super::*;

    #[test]
    fn the_built_in_plan_never_touches_prompts_agents_personas() {
        let plan = Plan::load_default().unwrap();
        let touched: Vec<String> = plan.read_set().union(&plan.write_set()).cloned().collect();
        for t in ["prompts", "agents", "personas"] {
            assert!(!touched.contains(&t.to_string()), "{t} in {touched:?}");
        }
        for t in [
            "jtbd_library",
            "workflows",
            "tasks",
            "tools",
            "strategic_priorities",
        ] {
            assert!(plan.write_set().contains(t), "{t} not written");
        }
        for t in [
            "dh_tool",
            "dh_task",
            "dh_workflow",
            "jtbd_library",
            "workflows",
        ] {
            assert!(plan.read_set().contains(t), "{t} not read");
        }
    }
}
