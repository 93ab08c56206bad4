//! The migration plan as data: a folder holding `plan.json` (tables to
//! pull, policies, phases with their reads and writes, checks), the DDL the
//! plan adds (`target.json`), one SQL file per phase and the seed files.
//! The built-in plan is such a folder in the repository (`schema/` with the
//! seeds in `seeds/`), compiled into the binary so `sandbox demo` works
//! anywhere; `sandbox plan init DIR` writes a copy to edit.

pub mod adopt;
pub mod canonical;
pub mod checks;
pub mod collate;
pub mod folder;
pub mod names;
pub mod null_order;
pub mod policy;
pub mod rowjson;
pub mod seeds;
pub mod sql;
pub mod stage;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::TableRole;
use crate::error::environment;
use folder::PlanSource;

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

/// What a pulled table named `name` would collide with in the snapshot,
/// next to the other pulled tables `pulled`: SQLite's own `sqlite_*`
/// tables, the rehearsal's staged copies
/// (`staged_<table>`), the snapshot's metadata (`_sandbox_*`), the seed
/// tables (`seed_<name>`), the report views (`report_*`) and the row-JSON
/// views (`<table>_jsonb` of a pulled table). Such a table would be
/// overwritten by the first rehearsal, or shadowed by a helper.
pub fn reserved_name(name: &str, pulled: &[&str]) -> Option<&'static str> {
    let lower = name.to_lowercase();
    if lower.starts_with("sqlite_") {
        // SQLite refuses to create such a table ("object name reserved for
        // internal use").
        Some("SQLite reserves names starting with sqlite_ for its own tables")
    } else if lower.starts_with(crate::plan::stage::STAGED_PREFIX) {
        Some("the rehearsal's staged copies are staged_<table>")
    } else if lower.starts_with("_sandbox_") {
        Some("the snapshot's metadata tables are _sandbox_*")
    } else if lower.starts_with("seed_") {
        Some("the plan's seed tables are seed_<name>")
    } else if lower.starts_with("report_") {
        Some("the report views are report_*")
    } else if lower
        .strip_suffix(sql::JSONB_VIEW_SUFFIX)
        .is_some_and(|base| pulled.iter().any(|p| p.to_lowercase() == base))
    {
        Some("the row-JSON view of a pulled table is <table>_jsonb")
    } else {
        None
    }
}

/// A choice the user makes without touching SQL: bound into every phase
/// and check as the named parameter `:name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub value: String,
    /// Every value the plan's SQL knows how to handle.
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
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

/// An expected value in the form query results take
/// ([`crate::types::value_text`]): JSON null is SQL NULL, the string "NULL"
/// is the text.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => crate::types::value_text(Some(s)),
        serde_json::Value::Null => crate::types::value_text(None),
        other => other.to_string(),
    }
}

/// A query that lists offending rows; it holds when it returns none. A
/// phase's conflicts are such queries, run on SQLite right after the phase.
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
    /// The phase's SQL file, relative to plan.json.
    pub sql: String,
    /// Pulled tables the phase reads (besides those it writes).
    #[serde(default)]
    pub reads: Vec<String>,
    /// Tables the phase inserts into, updates or deletes from.
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub conflicts: Vec<Guard>,
    #[serde(default)]
    pub expectations: Vec<Expectation>,
}

/// A view the rehearsal leaves in the snapshot file for people with a DB
/// browser. It reads `staged_*` tables and must use `json_extract`, never
/// `->>` (old SQLite builds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportView {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The DDL the plan adds, relative to plan.json.
    pub schema: String,
    /// The seed folder, relative to plan.json (none: the plan has no seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<String>,
    /// A seed layout the tool validates strictly on load (errors name the
    /// file and JSON path): `operational_library`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_format: Option<String>,
    pub tables: TableSet,
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
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
    #[serde(default)]
    pub report_views: Vec<ReportView>,
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

/// The DDL the plan adds (`target.json`), with Postgres types; the SQLite
/// staging schema is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSchema {
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub tables: Vec<TargetTable>,
    #[serde(default)]
    pub added_columns: Vec<AddedColumn>,
}

impl TargetSchema {
    /// Every type its columns name (created tables' and added columns'),
    /// as written, each once.
    pub fn type_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<String> = self
            .tables
            .iter()
            .flat_map(|t| &t.columns)
            .chain(self.added_columns.iter().map(|a| &a.column))
            .map(|c| c.pg_type.clone())
            .collect();
        names.into_iter().collect()
    }
}

/// The `(table, trigger)` pairs of a `hold_off_triggers` list
/// (`table.trigger` entries), in order. A plan's list is refused at load
/// unless every entry has that form
/// ([`hold_off_entries_are_table_dot_trigger`]), so nothing is skipped here
/// but a damaged receipt's entry.
pub fn held_off_triggers(named: &[String]) -> impl Iterator<Item = (&str, &str)> {
    named.iter().filter_map(|n| n.split_once('.'))
}

/// Every `hold_off_triggers` entry must be `table.trigger`: one the
/// rehearsal, the diff, push and rollback would each skip (no '.', an empty
/// side) holds off nothing, so a stamp trigger the user meant to hold off
/// would fire and the preflight would refuse with no pointer to the typo.
/// A schema-qualified entry (`public.t.trg`) would be read as table
/// `public`: refused too, the tables are those of `public`.
fn hold_off_entries_are_table_dot_trigger(entries: &[String], file: &str) -> anyhow::Result<()> {
    for entry in entries {
        let well_formed = matches!(
            entry.split_once('.'),
            Some((table, trigger)) if !table.is_empty() && !trigger.is_empty() && !trigger.contains('.')
        );
        if !well_formed {
            return Err(environment(format!(
                "{file}: hold_off_triggers entry \"{entry}\" is not of the form table.trigger \
                 (the table in schema public, unqualified, a '.', then the trigger's name, e.g. \
                 \"jtbd_library.jtbd_library_set_updated_at\"); correct or remove it"
            )));
        }
    }
    Ok(())
}

/// The built-in plan.json, for tests and tools that edit a copy.
pub const DEFAULT_PLAN: &str = include_str!("../../schema/plan.json");

/// One seed file: its path inside the seed folder and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFile {
    pub path: String,
    pub text: String,
}

/// The plan in force.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PlanFile,
    pub schema: TargetSchema,
    pub tables: TableSet,
    /// Each phase's SQL text, parallel to `file.phases`.
    pub phase_sql: Vec<String>,
    /// Every seed file, sorted by path.
    pub seeds: Vec<SeedFile>,
    /// Every other file of the plan folder (a README, notes), sorted by
    /// path: part of the plan, so part of its hash and of its copies.
    pub extra: Vec<folder::ExtraFile>,
    /// Where the plan came from, for messages.
    pub origin: String,
    /// The command-line options that load this same plan again (`--plan`,
    /// `--seeds`, `--policy`), for advice that must work as given; set by
    /// the command line, empty for the built-in plan.
    pub args: Vec<String>,
    /// Hash over every file of the plan folder (plan.json and the schema in
    /// their parsed form, the phase files, the seeds, every other file but
    /// the tool's own output): a rehearsal authorises a push only for the
    /// exact plan it ran.
    pub hash: String,
}

impl Plan {
    /// The plan and seeds shipped with the tool.
    pub fn load_default() -> anyhow::Result<Plan> {
        Plan::load(None, None)
    }

    /// A plan folder (or its plan.json), defaulting to the built-in one;
    /// `seeds_dir` replaces the folder's seeds.
    pub fn load(plan: Option<&Path>, seeds_dir: Option<&Path>) -> anyhow::Result<Plan> {
        let source = match plan {
            None => PlanSource::Builtin,
            Some(p) => PlanSource::from_path(p)?,
        };
        Plan::from_source(&source, seeds_dir)
    }

    pub fn from_source(source: &PlanSource, seeds_dir: Option<&Path>) -> anyhow::Result<Plan> {
        let origin = source.describe();
        let text = source.read("plan.json")?;
        let file: PlanFile = serde_json::from_str(&text).map_err(|e| {
            environment(format!(
                "plan {origin} is not valid: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        hold_off_entries_are_table_dot_trigger(&file.hold_off_triggers, &source.plan_file())?;
        let schema_text = source.read(&file.schema)?;
        let schema: TargetSchema = serde_json::from_str(&schema_text).map_err(|e| {
            environment(format!(
                "{} of plan {origin} is not valid: {e} (line {}, column {})",
                file.schema,
                e.line(),
                e.column()
            ))
        })?;
        let mut phase_sql = Vec::new();
        for p in &file.phases {
            phase_sql.push(source.read(&p.sql)?);
        }
        // The strict validator first: its errors name the file and path.
        if let Some(format) = &file.seed_format {
            let rel = file.seeds.as_deref().unwrap_or("seeds");
            validate_seed_format(format, source, rel, seeds_dir)?;
        }
        let seeds = match (seeds_dir, &file.seeds) {
            (Some(dir), _) => folder::read_seed_dir(dir)?,
            (None, Some(rel)) => source.seeds(rel)?,
            (None, None) => Vec::new(),
        };
        let extra = match source {
            PlanSource::Builtin => Vec::new(),
            PlanSource::Dir { root, plan_file } => {
                let mut files: std::collections::BTreeSet<String> =
                    [plan_file.as_str(), file.schema.as_str()]
                        .into_iter()
                        .chain(file.phases.iter().map(|p| p.sql.as_str()))
                        .filter_map(folder::inside)
                        .collect();
                files.insert(plan_file.clone());
                let read = folder::ReadFiles {
                    files,
                    seed_dir: file.seeds.as_deref().and_then(folder::inside),
                };
                folder::extra_files(root, &read)?
            }
        };
        let mut plan = Plan {
            extra,
            tables: file.tables.clone(),
            file,
            schema,
            phase_sql,
            seeds,
            origin,
            args: Vec::new(),
            hash: String::new(),
        };
        plan.validate()?;
        plan.hash = plan.compute_hash()?;
        Ok(plan)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let origin = &self.origin;
        for (name, p) in &self.file.policies {
            if !p.values.contains(&p.value) {
                return Err(environment(format!(
                    "plan {origin}: policy {name} is '{}', not one of {}",
                    p.value,
                    p.values.join(", ")
                )));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for p in &self.file.phases {
            if !ids.insert(p.id.as_str()) {
                return Err(environment(format!(
                    "plan {origin}: phase id {} is used twice",
                    p.id
                )));
            }
        }
        for t in &self.schema.tables {
            if !ids.contains(t.phase.as_str()) {
                return Err(environment(format!(
                    "plan {origin}: table {} is created in phase {}, which the plan does not have",
                    t.name, t.phase
                )));
            }
        }
        // target.json's types become the push's DDL: one type name each,
        // never a clause or a statement (`text DEFAULT …`, `text; DROP …`).
        let typed = self
            .schema
            .tables
            .iter()
            .flat_map(|t| t.columns.iter().map(move |c| (t.name.as_str(), c)))
            .chain(
                self.schema
                    .added_columns
                    .iter()
                    .map(|a| (a.table.as_str(), &a.column)),
            );
        for (table, c) in typed {
            crate::types::sql_type_name(&c.pg_type).map_err(|e| {
                environment(format!(
                    "plan {origin}: {} column {table}.{}: {e} — write one type as Postgres \
                     prints it (text, numeric(10,2), timestamp with time zone, uuid[], \
                     schema.my_enum); defaults and constraints are not part of a type",
                    self.file.schema, c.name
                ))
            })?;
        }
        for a in &self.schema.added_columns {
            // The column is added empty and filled by its phase's updates;
            // a NOT NULL the rehearsal and the push would both ignore is
            // refused rather than silently dropped.
            if a.column.not_null {
                return Err(environment(format!(
                    "plan {origin}: {} column {}.{}: \"not_null\" is not supported on an added \
                     column (it is added empty, then filled by the plan's updates); remove it, \
                     and add the constraint after the push if every row holds a value",
                    self.file.schema, a.table, a.column.name
                )));
            }
            if !ids.contains(a.phase.as_str()) {
                return Err(environment(format!(
                    "plan {origin}: column {}.{} is added in phase {}, which the plan does not have",
                    a.table, a.column.name, a.phase
                )));
            }
        }
        let all = self
            .file
            .phases
            .iter()
            .flat_map(|p| {
                p.expectations
                    .iter()
                    .map(move |e| (format!("phase {}", p.id), e))
            })
            .chain(
                self.file
                    .verification
                    .iter()
                    .map(|e| ("verification".to_string(), e)),
            );
        for (place, e) in all {
            if e.expect.is_some() == e.expect_rows.is_some() {
                return Err(environment(format!(
                    "plan {origin}: {place} expectation '{}' needs exactly one of `expect` or `expect_rows`",
                    e.name
                )));
            }
        }
        Ok(())
    }

    fn compute_hash(&self) -> anyhow::Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // plan.json in its parsed form, so whitespace edits do not
        // invalidate a rehearsal while any change of meaning does. Where
        // the seeds live is no part of the meaning: their content is.
        let mut file = serde_json::to_value(&self.file)?;
        if let Some(o) = file.as_object_mut() {
            o.remove("seeds");
        }
        h.update(serde_json::to_vec(&file)?);
        h.update(serde_json::to_vec(&self.schema)?);
        for (p, sql) in self.file.phases.iter().zip(&self.phase_sql) {
            h.update(format!("\nphase {} {}\n", p.id, sql.len()).as_bytes());
            h.update(sql.as_bytes());
        }
        for s in &self.seeds {
            h.update(format!("\nseed {} {}\n", s.path, s.text.len()).as_bytes());
            h.update(s.text.as_bytes());
        }
        for f in &self.extra {
            h.update(format!("\nfile {} {}\n", f.path, f.bytes.len()).as_bytes());
            h.update(&f.bytes);
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Sets a policy to one of its declared values (a different plan: the
    /// hash changes).
    pub fn set_policy(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let Some(p) = self.file.policies.get_mut(name) else {
            let known: Vec<&str> = self.file.policies.keys().map(String::as_str).collect();
            return Err(environment(format!(
                "plan {} has no policy {name} (policies: {})",
                self.origin,
                known.join(", ")
            )));
        };
        if !p.values.iter().any(|v| v == value) {
            return Err(environment(format!(
                "policy {name} cannot be '{value}': use one of {}",
                p.values.join(", ")
            )));
        }
        p.value = value.to_string();
        self.hash = self.compute_hash()?;
        Ok(())
    }

    /// Tables the plan creates.
    pub fn created_tables(&self) -> Vec<String> {
        self.schema.tables.iter().map(|t| t.name.clone()).collect()
    }

    pub fn creates(&self, table: &str) -> bool {
        self.schema.tables.iter().any(|t| t.name == table)
    }

    /// Pulled tables the plan writes (a phase's `writes`, or a column the
    /// plan adds), in the order of the first phase writing each. Staged
    /// copies are made of these.
    pub fn written_pulled_tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for phase in &self.file.phases {
            let added = self
                .schema
                .added_columns
                .iter()
                .filter(|a| a.phase == phase.id)
                .map(|a| &a.table);
            for t in phase.writes.iter().chain(added) {
                if !self.creates(t) && !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
        out
    }

    /// Every table whose staged form may differ from the pull: written
    /// pulled tables first, then the tables the plan creates.
    pub fn staged_tables(&self) -> Vec<String> {
        let mut out = self.written_pulled_tables();
        out.extend(self.created_tables());
        out
    }

    /// Tables whose content the plan's phases read (declared `reads`, and
    /// the pulled tables they write, which an UPDATE reads): what must not
    /// have changed since the pull (drift-checked, and locked against
    /// writers during a push). Tables in neither this set nor
    /// [`Plan::write_set`] are left to the app.
    pub fn read_set(&self) -> BTreeSet<String> {
        self.file
            .phases
            .iter()
            .flat_map(|p| p.reads.iter())
            .cloned()
            .chain(self.written_pulled_tables())
            .filter(|t| !self.creates(t))
            .collect()
    }

    /// The tables the plan protects or reads and does not write, as
    /// `schema.table`: the rehearsal's result rests on their rows, so no
    /// `--allow-writes` covers a write to one, in the push or its
    /// rollback (whose receipt records them).
    pub fn protected_tables(&self) -> Vec<String> {
        let writes = self.write_set();
        let mut out: Vec<String> = self
            .tables
            .protected
            .iter()
            .cloned()
            .chain(self.read_set())
            .filter(|t| !writes.contains(t))
            .map(|t| crate::db::writes::qualify(&t))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Tables the push writes: rows inserted, updated or deleted, columns
    /// added, tables created.
    pub fn write_set(&self) -> BTreeSet<String> {
        self.staged_tables().into_iter().collect()
    }

    /// The index of the first phase writing `table` (its DDL phase for a
    /// created table): the order push applies tables in.
    pub fn first_write(&self, table: &str) -> Option<usize> {
        if let Some(t) = self.schema.tables.iter().find(|t| t.name == table) {
            return self.phase_index(&t.phase);
        }
        self.file.phases.iter().position(|p| {
            p.writes.iter().any(|w| w == table)
                || self
                    .schema
                    .added_columns
                    .iter()
                    .any(|a| a.table == table && a.phase == p.id)
        })
    }

    /// The last phase writing `table`: the updates of existing rows are
    /// applied there, after every row they may refer to exists.
    pub fn last_write(&self, table: &str) -> Option<usize> {
        self.file.phases.iter().rposition(|p| {
            p.writes.iter().any(|w| w == table)
                || self
                    .schema
                    .added_columns
                    .iter()
                    .any(|a| a.table == table && a.phase == p.id)
        })
    }

    pub fn phase_index(&self, id: &str) -> Option<usize> {
        self.file.phases.iter().position(|p| p.id == id)
    }

    /// The policies as (name, value), for binding into SQL.
    pub fn policy_values(&self) -> Vec<(String, String)> {
        self.file
            .policies
            .iter()
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect()
    }

    /// Writes a copy of this plan (the built-in one by default) into `dir`:
    /// plan.json, the schema, the phase files and the seeds under
    /// `seeds/`. The copy has the same hash.
    pub fn write_copy(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        folder::write_copy(self, dir)
    }
}

fn validate_seed_format(
    format: &str,
    source: &PlanSource,
    seeds_rel: &str,
    seeds_dir: Option<&Path>,
) -> anyhow::Result<()> {
    if format != "operational_library" {
        return Err(environment(format!(
            "seed_format '{format}' is unknown: the tool validates `operational_library`; remove \
             the field to load the seeds as they are"
        )));
    }
    let result = match (seeds_dir, source) {
        (Some(dir), _) => seeds::load_seeds(dir),
        (None, PlanSource::Builtin) => seeds::load_embedded(),
        (None, PlanSource::Dir { root, .. }) => seeds::load_seeds(&root.join(seeds_rel)),
    };
    result
        .map(|_| ())
        .map_err(|e| environment(format!("seed files are not valid: {e}")))
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
