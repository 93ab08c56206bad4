//! The data moves of the plan's phases, run on the staged copy inside the
//! snapshot file. Each reads rows and writes rows; SQL is only the carrier.
//!
//! Naming: a pulled table `t` has its staged copy `staged_t`; during a
//! rehearsal, TEMP views named `t` point at `staged_t`, so the plan's SQL
//! text reads the rehearsed state on SQLite and the pushed state on
//! Postgres without change.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::checks::{Check, CheckKind};
use super::rowjson::row_to_json;
use super::{ExistingWorkflowPolicy, JtbdLinkSource, Plan, TargetTable};
use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
use crate::db::sqlite::{ident_list, to_sqlite, Snapshot};
use crate::db::staging::{constant_default, staged_add_column_ddl, staged_table_ddl};
use crate::pgjson::jsonb_text;
use crate::types::quote_ident;

/// Namespace of every id the plan creates: UUID v5 of a natural key, so a
/// re-run or another machine produces the same rows.
pub const ID_NAMESPACE: Uuid = Uuid::from_bytes([
    0x67, 0xfd, 0x86, 0xc9, 0x44, 0x39, 0x4e, 0x79, 0xa2, 0x12, 0xd4, 0x2d, 0xa9, 0x34, 0x04, 0x85,
]);

pub const STAGED_PREFIX: &str = "staged_";

pub fn staged(name: &str) -> String {
    format!("{STAGED_PREFIX}{name}")
}

/// The deterministic id of something the plan creates.
pub fn plan_id(kind: &str, key: &str) -> String {
    Uuid::new_v5(&ID_NAMESPACE, format!("{kind}:{key}").as_bytes()).to_string()
}

/// The one rule for what a library workflow is: its `workflow_id`. Two
/// library workflows with the same id are the same workflow, whichever file
/// or source recorded them.
pub fn library_workflow_id(workflow_id: &str) -> String {
    plan_id("library_workflow", workflow_id)
}

/// The workflow a dh_workflow becomes.
pub fn dh_workflow_target_id(dh_workflow_id: &str) -> String {
    plan_id("dh_workflow", dh_workflow_id)
}

/// A strategic priority from the seeds.
#[derive(Debug, Clone)]
pub struct PrioritySeed {
    pub code: String,
    pub name: String,
    pub description: String,
    pub color: String,
    pub icon: String,
    pub position: i64,
}

/// One library workflow from the seed files.
#[derive(Debug, Clone)]
pub struct LibraryWorkflow {
    pub sp_code: String,
    pub file: String,
    pub workflow_id: String,
    pub jtbd_code: String,
    pub name: String,
    /// The whole workflow object as the file holds it.
    pub object: Map<String, Value>,
}

/// What the phases need from the seed files.
#[derive(Debug, Clone)]
pub struct LibraryInput {
    pub priorities: Vec<PrioritySeed>,
    /// (JTBD code, SP code, file) for every JTBD each file lists.
    pub allocation: Vec<(String, String, String)>,
    pub workflows: Vec<LibraryWorkflow>,
}

/// Everything a phase works with.
pub struct PhaseContext<'a> {
    pub conn: &'a Connection,
    pub snapshot: &'a Snapshot,
    pub plan: &'a Plan,
    pub library: &'a LibraryInput,
    /// Timestamp for rows the plan creates (the snapshot's moment), so the
    /// result depends on nothing but the snapshot and the plan.
    pub created_at: String,
}

impl PhaseContext<'_> {
    pub fn pulled(&self, table: &str) -> Result<&TableMeta> {
        self.snapshot.table(table).map(|t| &t.meta).ok_or_else(|| {
            anyhow::anyhow!("the snapshot has no table {table}, which the plan needs")
        })
    }

    /// The current columns of a staged table.
    pub fn staged_meta(&self, table: &str) -> Result<TableMeta> {
        staged_meta(self.conn, self.snapshot, self.plan, table)
    }
}

/// The metadata of a staged table: a pulled table plus the columns the plan
/// adds, or a table the plan creates.
pub fn staged_meta(
    conn: &Connection,
    snapshot: &Snapshot,
    plan: &Plan,
    table: &str,
) -> Result<TableMeta> {
    if let Some(t) = plan.schema.tables.iter().find(|t| t.name == table) {
        return Ok(target_meta(t));
    }
    let pulled = snapshot
        .table(table)
        .ok_or_else(|| anyhow::anyhow!("the snapshot has no table {table}"))?;
    let mut meta = pulled.meta.clone();
    let present: HashSet<String> = {
        let mut stmt = conn.prepare(&format!(
            "PRAGMA table_info({})",
            quote_ident(&staged(table))
        ))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<HashSet<_>>>()?;
        names
    };
    for added in plan
        .schema
        .added_columns
        .iter()
        .filter(|a| a.table == table)
    {
        // A column of that name already pulled is the source's own: the
        // rehearsal fails naming it, and the staged table keeps its meaning.
        if present.contains(&added.column.name) && meta.column(&added.column.name).is_none() {
            let ordinal = meta.columns.len() as u32 + 1;
            meta.columns.push(ColumnMeta {
                name: added.column.name.clone(),
                ordinal,
                pg_type: added.column.pg_type.clone(),
                not_null: added.column.not_null,
                ..Default::default()
            });
            if let Some(r) = &added.references {
                meta.constraints.push(ConstraintMeta {
                    ref_table: Some(r.table.clone()),
                    ref_columns: vec![r.column.clone()],
                    ..ConstraintMeta::new(
                        format!("{}_{}_fkey", table, added.column.name),
                        "f",
                        vec![added.column.name.clone()],
                        format!(
                            "FOREIGN KEY ({}) REFERENCES {}({})",
                            added.column.name, r.table, r.column
                        ),
                    )
                });
            }
        }
    }
    Ok(meta)
}

/// A table the plan creates, described like a pulled one.
pub fn target_meta(t: &TargetTable) -> TableMeta {
    let mut constraints = vec![ConstraintMeta::new(
        format!("{}_pkey", t.name),
        "p",
        t.primary_key.clone(),
        format!("PRIMARY KEY ({})", t.primary_key.join(", ")),
    )];
    for (i, u) in t.unique.iter().enumerate() {
        constraints.push(ConstraintMeta::new(
            format!(
                "{}_{}_key{}",
                t.name,
                u.join("_"),
                if i == 0 { String::new() } else { i.to_string() }
            ),
            "u",
            u.clone(),
            format!("UNIQUE ({})", u.join(", ")),
        ));
    }
    for fk in &t.foreign_keys {
        constraints.push(ConstraintMeta {
            ref_table: Some(fk.ref_table.clone()),
            ref_columns: fk.ref_columns.clone(),
            ..ConstraintMeta::new(
                format!("{}_{}_fkey", t.name, fk.columns.join("_")),
                "f",
                fk.columns.clone(),
                format!(
                    "FOREIGN KEY ({}) REFERENCES {}({})",
                    fk.columns.join(", "),
                    fk.ref_table,
                    fk.ref_columns.join(", ")
                ),
            )
        });
    }
    TableMeta {
        name: t.name.clone(),
        role: TableRole::Target,
        columns: t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnMeta {
                name: c.name.clone(),
                ordinal: i as u32 + 1,
                pg_type: c.pg_type.clone(),
                not_null: c.not_null,
                ..Default::default()
            })
            .collect(),
        constraints,
    }
}

/// Inserts one row (Postgres text values, in `meta` column order).
pub fn insert_row(
    conn: &Connection,
    sqlite_table: &str,
    meta: &TableMeta,
    values: &[Option<String>],
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote_ident(sqlite_table),
        ident_list(&meta.column_names()),
        vec!["?"; meta.columns.len()].join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let converted = meta
        .columns
        .iter()
        .zip(values)
        .map(|(c, v)| to_sqlite(c, v.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    stmt.execute(rusqlite::params_from_iter(converted))
        .with_context(|| format!("cannot insert into {sqlite_table}"))?;
    Ok(())
}

/// Builds a row for `meta` from named values. A column the plan gives no
/// value gets its constant default, as on Postgres; one Postgres fills
/// (identity, generated, a computed default) stays NULL, meaning "not set";
/// any other gets NULL, which a NOT NULL column turns into a named failure.
fn row_from_map(
    meta: &TableMeta,
    mut values: HashMap<&str, Option<String>>,
    missing: &mut Vec<String>,
) -> Vec<Option<String>> {
    meta.columns
        .iter()
        .map(|c| match values.remove(c.name.as_str()) {
            Some(v) => v,
            None => {
                let v = constant_default(c).map(str::to_string);
                if v.is_none() && c.required() && !c.filled_by_postgres() {
                    missing.push(format!("{}.{}", meta.name, c.name));
                }
                v
            }
        })
        .collect()
}

/// Creates the tables and columns the plan adds in this phase, in the staged
/// copy.
pub fn apply_phase_ddl(conn: &Connection, plan: &Plan, phase_id: &str) -> Result<()> {
    for t in plan.schema.tables.iter().filter(|t| t.phase == phase_id) {
        let meta = target_meta(t);
        conn.execute_batch(&staged_table_ddl(&meta, &staged(&t.name))?)?;
    }
    for a in plan
        .schema
        .added_columns
        .iter()
        .filter(|a| a.phase == phase_id)
    {
        let exists: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM pragma_table_info('{}') WHERE name = ?",
                staged(&a.table).replace('\'', "''")
            ),
            [&a.column.name],
            |r| r.get(0),
        )?;
        // Already at the source: the rehearsal's check names it.
        if exists > 0 {
            continue;
        }
        let column = ColumnMeta {
            name: a.column.name.clone(),
            pg_type: a.column.pg_type.clone(),
            ..Default::default()
        };
        conn.execute_batch(&staged_add_column_ddl(&staged(&a.table), &column)?)?;
    }
    Ok(())
}

fn read_all(
    ctx: &PhaseContext<'_>,
    sqlite_table: &str,
    meta: &TableMeta,
) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    ctx.snapshot.for_each_row(sqlite_table, meta, |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

fn col_index(meta: &TableMeta, name: &str) -> Result<usize> {
    meta.columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "table {} has no column {name}, which the plan uses",
                meta.name
            )
        })
}

fn json_text(map: Map<String, Value>) -> String {
    jsonb_text(&Value::Object(map))
}

fn missing_check(phase: &str, missing: Vec<String>) -> Check {
    let mut uniq: Vec<String> = missing;
    uniq.sort();
    uniq.dedup();
    Check::no_rows(
        phase,
        "NOT NULL columns without a value",
        CheckKind::Conflict,
        uniq,
    )
}

/// Phase 1: the strategic priorities and each Medical Affairs JTBD's link.
pub fn seed_strategic_priorities(ctx: &PhaseContext<'_>, phase: &str) -> Result<Vec<Check>> {
    let sp_meta = ctx.staged_meta("strategic_priorities")?;
    let mut missing = Vec::new();
    let mut sp_ids: HashMap<String, String> = HashMap::new();
    for p in &ctx.library.priorities {
        let id = plan_id("strategic_priority", &p.code);
        sp_ids.insert(p.code.clone(), id.clone());
        let row = row_from_map(
            &sp_meta,
            HashMap::from([
                ("id", Some(id)),
                ("code", Some(p.code.clone())),
                ("name", Some(p.name.clone())),
                ("description", Some(p.description.clone())),
                ("color", Some(p.color.clone())),
                ("icon", Some(p.icon.clone())),
                ("position", Some(p.position.to_string())),
                ("created_at", Some(ctx.created_at.clone())),
            ]),
            &mut missing,
        );
        insert_row(ctx.conn, &staged("strategic_priorities"), &sp_meta, &row)?;
    }

    // Where each JTBD sits according to the library files.
    let mut by_library: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (jtbd, sp, file) in &ctx.library.allocation {
        by_library
            .entry(jtbd.clone())
            .or_default()
            .push((sp.clone(), file.clone()));
    }
    let jtbd_meta = ctx.pulled("jtbd_library")?.clone();
    let (id_i, code_i, fn_i) = (
        col_index(&jtbd_meta, "id")?,
        col_index(&jtbd_meta, "jtbd_code")?,
        col_index(&jtbd_meta, "function")?,
    );
    let rows = read_all(ctx, &staged("jtbd_library"), &jtbd_meta)?;
    let mut two_sps = Vec::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut seen_codes = HashSet::new();
    for row in &rows {
        let (Some(id), code) = (row[id_i].clone(), row[code_i].clone().unwrap_or_default()) else {
            continue;
        };
        let function = row[fn_i].clone().unwrap_or_default();
        let function_sp = sp_ids.contains_key(&function).then(|| function.clone());
        let library = by_library.get(&code);
        if library.is_some() {
            seen_codes.insert(code.clone());
        }
        let library_sps: Vec<&String> = {
            let mut v: Vec<&String> = library
                .map(|l| l.iter().map(|(sp, _)| sp).collect())
                .unwrap_or_default();
            v.sort();
            v.dedup();
            v
        };
        let chosen = match ctx.plan.file.policies.jtbd_sp_link {
            JtbdLinkSource::Function => function_sp.clone(),
            JtbdLinkSource::Library | JtbdLinkSource::RequireAgreement => {
                let mut candidates: Vec<String> =
                    library_sps.iter().map(|s| s.to_string()).collect();
                if ctx.plan.file.policies.jtbd_sp_link == JtbdLinkSource::RequireAgreement {
                    if let Some(f) = &function_sp {
                        if !library_sps.is_empty() && !candidates.contains(f) {
                            candidates.push(f.clone());
                        }
                    }
                }
                if candidates.len() > 1 {
                    let files: Vec<String> = library
                        .map(|l| l.iter().map(|(sp, f)| format!("{sp} in {f}")).collect())
                        .unwrap_or_default();
                    two_sps.push(format!(
                        "{id} {code}: {} (function column says {})",
                        files.join(", "),
                        if function.is_empty() {
                            "nothing".to_string()
                        } else {
                            function.clone()
                        }
                    ));
                    None
                } else {
                    candidates.into_iter().next()
                }
            }
        };
        if let Some(sp) = chosen {
            if let Some(sp_id) = sp_ids.get(&sp) {
                links.push((id, sp_id.clone()));
            }
        }
    }
    let unknown: Vec<String> = by_library
        .iter()
        .filter(|(code, _)| !seen_codes.contains(*code))
        .map(|(code, files)| {
            format!(
                "{code} (listed in {})",
                files
                    .iter()
                    .map(|(_, f)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let mut stmt = ctx.conn.prepare(&format!(
        "UPDATE {} SET strategic_priority_id = ? WHERE id = ?",
        quote_ident(&staged("jtbd_library"))
    ))?;
    for (id, sp) in &links {
        stmt.execute([sp, id])?;
    }
    Ok(vec![
        Check::no_rows(
            phase,
            "JTBDs under two strategic priorities",
            CheckKind::Conflict,
            two_sps,
        ),
        Check::no_rows(
            phase,
            "library JTBDs missing from jtbd_library",
            CheckKind::Conflict,
            unknown,
        ),
        missing_check(phase, missing),
    ])
}

/// Phase 2: every dh_tool row becomes a tool; id and name stay, every other
/// column goes into `metadata`.
pub fn migrate_tools(ctx: &PhaseContext<'_>, phase: &str) -> Result<Vec<Check>> {
    let tool_meta = ctx.staged_meta("tools")?;
    let src = ctx.pulled("dh_tool")?.clone();
    let (id_i, name_i) = (col_index(&src, "id")?, col_index(&src, "name")?);
    let mut missing = Vec::new();
    for row in read_all(ctx, "dh_tool", &src)? {
        let metadata = row_to_json(&src, &row, &["id", "name"]).map_err(anyhow::Error::msg)?;
        let out = row_from_map(
            &tool_meta,
            HashMap::from([
                ("id", row[id_i].clone()),
                ("name", row[name_i].clone()),
                ("metadata", Some(json_text(metadata))),
            ]),
            &mut missing,
        );
        insert_row(ctx.conn, &staged("tools"), &tool_meta, &out)?;
    }
    Ok(vec![missing_check(phase, missing)])
}

/// The workflows columns phases 3B and 3C write.
const WORKFLOW_COLUMNS: &[&str] = &[
    "id",
    "name",
    "description",
    "definition",
    "status",
    "is_public",
    "created_at",
    "updated_at",
];

/// Phase 3A: the seed's "enhance schema" step. Everything a migrated
/// workflow carries goes into `definition`, so no column is added; the
/// phase proves the columns the later phases write exist with the types
/// they expect.
pub fn check_workflows_schema(ctx: &PhaseContext<'_>, phase: &str) -> Result<Vec<Check>> {
    let meta = ctx.pulled("workflows")?;
    let mut problems = Vec::new();
    for name in WORKFLOW_COLUMNS {
        match meta.column(name) {
            None => problems.push(format!("workflows.{name} is missing")),
            Some(c) if *name == "definition" && c.pg_type != "jsonb" => {
                problems.push(format!("workflows.definition is {}, not jsonb", c.pg_type))
            }
            Some(_) => {}
        }
    }
    for c in &meta.columns {
        if c.required()
            && !WORKFLOW_COLUMNS.contains(&c.name.as_str())
            && constant_default(c).is_none()
            && !c.filled_by_postgres()
        {
            problems.push(format!(
                "workflows.{} is NOT NULL without default; the plan gives it no value",
                c.name
            ));
        }
    }
    Ok(vec![Check::no_rows(
        phase,
        "workflows has the columns the plan writes",
        CheckKind::Conflict,
        problems,
    )])
}

/// Phase 3B: each dh_workflow becomes a workflow whose definition holds
/// every dh_workflow column, `source: dh_workflow`, and its use case and
/// domain.
pub fn migrate_dh_workflows(ctx: &PhaseContext<'_>, phase: &str) -> Result<Vec<Check>> {
    let wf_meta = ctx.staged_meta("workflows")?;
    let src = ctx.pulled("dh_workflow")?.clone();
    let uc = ctx.pulled("dh_use_case")?.clone();
    let dom = ctx.pulled("dh_domain")?.clone();
    let mut domains: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let (d_id, d_code, d_name) = (
        col_index(&dom, "id")?,
        col_index(&dom, "code")?,
        col_index(&dom, "name")?,
    );
    for r in read_all(ctx, "dh_domain", &dom)? {
        if let Some(id) = r[d_id].clone() {
            domains.insert(id, (r[d_code].clone(), r[d_name].clone()));
        }
    }
    let mut use_cases: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let (u_id, u_code, u_dom) = (
        col_index(&uc, "id")?,
        col_index(&uc, "code")?,
        col_index(&uc, "domain_id")?,
    );
    for r in read_all(ctx, "dh_use_case", &uc)? {
        if let Some(id) = r[u_id].clone() {
            use_cases.insert(id, (r[u_code].clone(), r[u_dom].clone()));
        }
    }
    let (id_i, name_i, desc_i, uc_i) = (
        col_index(&src, "id")?,
        col_index(&src, "name")?,
        col_index(&src, "description")?,
        col_index(&src, "use_case_id")?,
    );
    let (created_i, updated_i) = (
        col_index(&src, "created_at")?,
        col_index(&src, "updated_at")?,
    );
    let mut missing = Vec::new();
    let mut unresolved = Vec::new();
    for row in read_all(ctx, "dh_workflow", &src)? {
        let Some(dh_id) = row[id_i].clone() else {
            continue;
        };
        let mut def = row_to_json(&src, &row, &[]).map_err(anyhow::Error::msg)?;
        def.insert("source".into(), Value::String("dh_workflow".into()));
        let uc_id = row[uc_i].clone().unwrap_or_default();
        match use_cases.get(&uc_id) {
            Some((uc_code, dom_id)) => {
                def.insert("use_case_code".into(), opt_json(uc_code));
                def.insert("domain_id".into(), opt_json(dom_id));
                let (dc, dn) = dom_id
                    .as_ref()
                    .and_then(|d| domains.get(d))
                    .cloned()
                    .unwrap_or((None, None));
                if dom_id.is_some() && dc.is_none() && dn.is_none() {
                    unresolved.push(format!(
                        "dh_workflow {dh_id}: domain {} not in dh_domain",
                        dom_id.clone().unwrap_or_default()
                    ));
                }
                def.insert("domain_code".into(), opt_json(&dc));
                def.insert("domain_name".into(), opt_json(&dn));
            }
            None => unresolved.push(format!(
                "dh_workflow {dh_id}: use case {uc_id} not in dh_use_case"
            )),
        }
        let out = row_from_map(
            &wf_meta,
            HashMap::from([
                ("id", Some(dh_workflow_target_id(&dh_id))),
                ("name", row[name_i].clone()),
                ("description", row[desc_i].clone()),
                ("definition", Some(json_text(def))),
                ("status", Some("active".to_string())),
                ("is_public", Some("t".to_string())),
                ("created_at", row[created_i].clone()),
                ("updated_at", row[updated_i].clone()),
            ]),
            &mut missing,
        );
        insert_row(ctx.conn, &staged("workflows"), &wf_meta, &out)?;
    }
    Ok(vec![
        Check::no_rows(
            phase,
            "dh_workflow links to use case and domain resolve",
            CheckKind::Conflict,
            unresolved,
        ),
        missing_check(phase, missing),
    ])
}

fn opt_json(v: &Option<String>) -> Value {
    v.clone().map(Value::String).unwrap_or(Value::Null)
}

/// Phase 3C: the Medical Affairs workflows of the library files, linked to
/// their JTBD. A library workflow already in `workflows` (same
/// `workflow_id`) is handled by the plan's policy: `fail` imports as the
/// seed plan would and fails the check naming the rows; `skip` leaves the
/// existing one.
pub fn import_library_workflows(ctx: &PhaseContext<'_>, phase: &str) -> Result<Vec<Check>> {
    let wf_meta = ctx.staged_meta("workflows")?;
    let mut existing: HashMap<String, Vec<String>> = HashMap::new();
    {
        let mut stmt = ctx.conn.prepare(&format!(
            "SELECT id, json_extract(definition, '$.workflow_id'), json_extract(definition, '$.source') \
             FROM {} WHERE json_extract(definition, '$.source') LIKE '%Operational Library%'",
            quote_ident(&staged("workflows"))
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, wf, source) = row?;
            if let Some(wf) = wf {
                existing
                    .entry(wf)
                    .or_default()
                    .push(format!("{id} ({})", source.unwrap_or_default()));
            }
        }
    }
    let jtbd_meta = ctx.pulled("jtbd_library")?.clone();
    let (j_id, j_code) = (
        col_index(&jtbd_meta, "id")?,
        col_index(&jtbd_meta, "jtbd_code")?,
    );
    let mut jtbd_ids: HashMap<String, String> = HashMap::new();
    for r in read_all(ctx, &staged("jtbd_library"), &jtbd_meta)? {
        if let (Some(id), Some(code)) = (r[j_id].clone(), r[j_code].clone()) {
            jtbd_ids.insert(code, id);
        }
    }
    let mut already = Vec::new();
    let mut missing = Vec::new();
    let mut unlinked = Vec::new();
    for wf in &ctx.library.workflows {
        if let Some(found) = existing.get(&wf.workflow_id) {
            already.push(format!(
                "{} from {}: already in workflows as {}",
                wf.workflow_id,
                wf.file,
                found.join(", ")
            ));
            if ctx.plan.file.policies.existing_library_workflow == ExistingWorkflowPolicy::Skip {
                continue;
            }
        }
        let mut def = wf.object.clone();
        match jtbd_ids.get(&wf.jtbd_code) {
            Some(id) => {
                def.insert("jtbd_library_id".into(), Value::String(id.clone()));
            }
            None => unlinked.push(format!(
                "{} ({}): JTBD {} not in jtbd_library",
                wf.workflow_id, wf.file, wf.jtbd_code
            )),
        }
        def.insert(
            "strategic_priority".into(),
            Value::String(wf.sp_code.clone()),
        );
        let summary = |key: &str| {
            def.get(key).map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
        };
        let description = format!(
            "{} for {} ({}, {} phases, {} tasks)",
            wf.name,
            wf.jtbd_code,
            summary("duration").unwrap_or_default(),
            summary("phase_count").unwrap_or_default(),
            summary("task_count").unwrap_or_default()
        );
        let out = row_from_map(
            &wf_meta,
            HashMap::from([
                ("id", Some(library_workflow_id(&wf.workflow_id))),
                ("name", Some(wf.name.clone())),
                ("description", Some(description)),
                ("definition", Some(json_text(def))),
                ("status", Some("active".to_string())),
                ("is_public", Some("t".to_string())),
                ("created_at", Some(ctx.created_at.clone())),
                ("updated_at", Some(ctx.created_at.clone())),
            ]),
            &mut missing,
        );
        if let Err(e) = insert_row(ctx.conn, &staged("workflows"), &wf_meta, &out) {
            // Same workflow_id twice in the input is the same workflow: the
            // primary key refuses the second one, which the report names.
            already.push(format!("{} from {}: {e:#}", wf.workflow_id, wf.file));
        }
    }
    // The same workflow id recorded under two library sources in the
    // existing data: the database itself already disagrees about which
    // library the workflow belongs to.
    let mut colliding: Vec<String> = existing
        .iter()
        .filter(|(_, found)| found.len() > 1)
        .map(|(wf, found)| format!("{wf}: {}", found.join(", ")))
        .collect();
    colliding.sort();
    let colliding_check = Check::no_rows(
        phase,
        "workflow ids recorded under two library sources",
        CheckKind::Conflict,
        colliding,
    );
    let mut policy_name = "library workflows already present".to_string();
    if ctx.plan.file.policies.existing_library_workflow == ExistingWorkflowPolicy::Skip {
        policy_name.push_str(" (policy skip: left as they are)");
        let skipped = already.len();
        let mut c = Check::no_rows(phase, &policy_name, CheckKind::Conflict, already);
        c.ok = true;
        c.actual = format!("{skipped} skipped");
        return Ok(vec![
            c,
            colliding_check,
            Check::no_rows(
                phase,
                "library workflows whose JTBD is missing",
                CheckKind::Conflict,
                unlinked,
            ),
            missing_check(phase, missing),
        ]);
    }
    Ok(vec![
        Check::no_rows(phase, &policy_name, CheckKind::Conflict, already),
        colliding_check,
        Check::no_rows(
            phase,
            "library workflows whose JTBD is missing",
            CheckKind::Conflict,
            unlinked,
        ),
        missing_check(phase, missing),
    ])
}

/// Phase 4: each dh_task becomes a task of the workflow its dh_workflow
/// became; the whole dh_task row is kept in `metadata`.
pub fn migrate_tasks(ctx: &PhaseContext<'_>, phase: &str) -> Result<Vec<Check>> {
    let task_meta = ctx.staged_meta("tasks")?;
    let src = ctx.pulled("dh_task")?.clone();
    let (id_i, wf_i, code_i, title_i) = (
        col_index(&src, "id")?,
        col_index(&src, "workflow_id")?,
        col_index(&src, "code")?,
        col_index(&src, "title")?,
    );
    let mut migrated: HashSet<String> = HashSet::new();
    {
        let mut stmt = ctx.conn.prepare(&format!(
            "SELECT id FROM {}",
            quote_ident(&staged("workflows"))
        ))?;
        for id in stmt.query_map([], |r| r.get::<_, String>(0))? {
            migrated.insert(id?);
        }
    }
    let mut orphans = Vec::new();
    let mut missing = Vec::new();
    for row in read_all(ctx, "dh_task", &src)? {
        let metadata = row_to_json(&src, &row, &[]).map_err(anyhow::Error::msg)?;
        let target = row[wf_i].as_deref().map(dh_workflow_target_id);
        if let Some(t) = &target {
            if !migrated.contains(t) {
                orphans.push(format!(
                    "dh_task {}: workflow {} was not migrated",
                    row[id_i].clone().unwrap_or_default(),
                    row[wf_i].clone().unwrap_or_default()
                ));
            }
        }
        let out = row_from_map(
            &task_meta,
            HashMap::from([
                ("id", row[id_i].clone()),
                ("workflow_id", target),
                ("code", row[code_i].clone()),
                ("title", row[title_i].clone()),
                ("metadata", Some(json_text(metadata))),
            ]),
            &mut missing,
        );
        insert_row(ctx.conn, &staged("tasks"), &task_meta, &out)?;
    }
    Ok(vec![
        Check::no_rows(
            phase,
            "tasks whose workflow was not migrated",
            CheckKind::Conflict,
            orphans,
        ),
        missing_check(phase, missing),
    ])
}
