//! What the push transaction needs granted, named before any lock is
//! taken (see [`crate::db::privileges::privilege_check`]).

use crate::db::privileges::Need;
use crate::diff::Diff;
use crate::plan::Plan;

/// Everything the push transaction does that needs a grant (the receipts
/// table's are asked first: `receipts::receipts_access`).
pub(super) fn push_needs(plan: &Plan, diff: &Diff, locked: &[String]) -> Vec<Need> {
    let mut needs = drift_lock_needs(locked);
    needs.extend(schema_needs(plan));
    needs.extend(row_needs(diff));
    needs.extend(hold_off_needs(plan, diff));
    needs.extend(type_needs(plan, diff));
    needs
}

/// Every type the push spells — in the casts of the rows it writes, the
/// columns it creates or adds — used by `table.column`s: a type in a schema
/// the role lacks USAGE on fails the first statement naming it, after the
/// locks (found in the transaction before).
fn type_needs(plan: &Plan, diff: &Diff) -> Vec<Need> {
    let mut users: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut add = |spelling: &str, user: String| {
        users.entry(spelling.to_string()).or_default().push(user);
    };
    for t in &diff.tables {
        for c in &t.columns {
            add(&c.pg_type, format!("{}.{}", t.table, c.name));
        }
    }
    for t in &plan.schema.tables {
        for c in &t.columns {
            add(&c.pg_type, format!("{}.{}", t.name, c.name));
        }
    }
    for a in &plan.schema.added_columns {
        add(&a.column.pg_type, format!("{}.{}", a.table, a.column.name));
    }
    users
        .into_iter()
        .map(|(spelling, mut columns)| {
            columns.sort();
            columns.dedup();
            let shown = if columns.len() > 3 {
                format!("{} and {} more", columns[..3].join(", "), columns.len() - 3)
            } else {
                columns.join(", ")
            };
            Need::TypeUsage {
                why: format!("write {shown}, of type {spelling}"),
                spelling,
            }
        })
        .collect()
}

fn public(table: &str) -> String {
    crate::types::quote_table(table)
}

/// Reading a table for the drift check and locking it against writers.
fn drift_lock_needs(locked: &[String]) -> Vec<Need> {
    locked
        .iter()
        .flat_map(|t| {
            [
                Need::Table {
                    table: public(t),
                    privilege: "SELECT",
                    why: "check it for drift".into(),
                },
                // LOCK TABLE in SHARE ROW EXCLUSIVE mode needs one of these.
                Need::Table {
                    table: public(t),
                    privilege: "UPDATE,DELETE,TRUNCATE",
                    why: "lock it against writers".into(),
                },
            ]
        })
        .collect()
}

/// The plan's DDL: tables it creates (and what their foreign keys
/// reference), columns it adds (and what they reference).
fn schema_needs(plan: &Plan) -> Vec<Need> {
    let mut needs = Vec::new();
    if !plan.schema.tables.is_empty() {
        needs.push(Need::CreateIn {
            schema: "public".into(),
            why: format!(
                "create {}",
                plan.schema
                    .tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    for t in &plan.schema.tables {
        for fk in &t.foreign_keys {
            needs.push(Need::Table {
                table: public(&fk.ref_table),
                privilege: "REFERENCES",
                why: format!("let {} reference it", t.name),
            });
        }
    }
    for a in &plan.schema.added_columns {
        needs.push(Need::Owner {
            table: public(&a.table),
            why: format!("add column {}", a.column.name),
        });
        if let Some(r) = &a.references {
            needs.push(Need::Table {
                table: public(&r.table),
                privilege: "REFERENCES",
                why: format!("let {}.{} reference it", a.table, a.column.name),
            });
        }
    }
    needs
}

/// The diff's rows in tables that exist already (a created table is the
/// push's own).
fn row_needs(diff: &Diff) -> Vec<Need> {
    let mut needs = Vec::new();
    for t in diff.tables.iter().filter(|t| !t.created) {
        for (privilege, n) in [
            ("INSERT", t.phase_inserts.len()),
            ("UPDATE", t.phase_updates.len()),
            ("DELETE", t.phase_deletes.len()),
        ] {
            if n > 0 {
                needs.push(Need::Table {
                    table: public(&t.table),
                    privilege,
                    why: format!("{} {}", privilege.to_lowercase(), crate::words::rows(n)),
                });
            }
        }
    }
    needs
}

/// Holding off a trigger the plan names, on a table the push updates.
fn hold_off_needs(plan: &Plan, diff: &Diff) -> Vec<Need> {
    let mut needs = Vec::new();
    for (table, trigger) in crate::plan::held_off_triggers(&plan.file.hold_off_triggers) {
        if diff
            .tables
            .iter()
            .any(|t| t.table == table && !t.phase_updates.is_empty())
        {
            needs.push(Need::Owner {
                table: public(table),
                why: format!("hold off trigger {trigger}"),
            });
        }
    }
    needs
}
