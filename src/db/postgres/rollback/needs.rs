//! What the rollback transaction needs granted, named before any lock is
//! taken (see [`crate::db::privileges::privilege_check`]).

use crate::db::privileges::Need;
use crate::receipt::Undo;
use crate::types::quote_ident;

/// Everything the undo does that needs a grant (the receipts table's are
/// asked first: `receipts::receipts_access`).
pub(super) fn rollback_needs(undo: &Undo, strict: bool) -> Vec<Need> {
    let public = |t: &str| format!("public.{}", quote_ident(t));
    let mut needs = Vec::new();
    let written: Vec<&str> = undo.tables.iter().map(|t| t.table.as_str()).collect();
    for t in undo
        .before
        .keys()
        .filter(|t| strict || written.contains(&t.as_str()))
    {
        needs.push(Need::Table {
            table: public(t),
            privilege: "SELECT",
            why: "compare it with its state before the push".into(),
        });
        needs.push(Need::Table {
            table: public(t),
            privilege: "UPDATE,DELETE,TRUNCATE",
            why: "lock it against writers".into(),
        });
    }
    for t in &undo.created_tables {
        needs.push(Need::Owner {
            table: public(t),
            why: "drop it".into(),
        });
    }
    for a in &undo.added_columns {
        needs.push(Need::Owner {
            table: public(&a.table),
            why: format!("drop column {}", a.column),
        });
    }
    for t in undo.tables.iter().filter(|t| !t.created) {
        if !t.inserted_keys.is_empty() {
            needs.push(Need::ReadReferencing {
                table: public(&t.table),
                why: "check that none of its rows references a row the rollback deletes".into(),
            });
            needs.push(Need::Table {
                table: public(&t.table),
                privilege: "DELETE",
                why: format!(
                    "delete the {} the push inserted",
                    crate::words::rows(t.inserted_keys.len())
                ),
            });
        }
        if !t.updates.is_empty() {
            needs.push(Need::Table {
                table: public(&t.table),
                privilege: "UPDATE",
                why: format!("restore {}", crate::words::rows(t.updates.len())),
            });
        }
        if !t.deleted_rows.is_empty() {
            needs.push(Need::Table {
                table: public(&t.table),
                privilege: "INSERT",
                why: format!(
                    "insert again the {} the push deleted",
                    crate::words::rows(t.deleted_rows.len())
                ),
            });
        }
    }
    for (table, trigger) in crate::plan::held_off_triggers(&undo.held_off_triggers) {
        needs.push(Need::Owner {
            table: public(table),
            why: format!("hold off trigger {trigger}"),
        });
    }
    // The types its statements cast to (see `push`'s `type_needs`).
    let mut users: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for t in undo.tables.iter().filter(|t| !t.created) {
        for c in &t.columns {
            users
                .entry(c.pg_type.as_str())
                .or_default()
                .push(format!("{}.{}", t.table, c.name));
        }
    }
    for (spelling, columns) in users {
        let shown = if columns.len() > 3 {
            format!("{} and {} more", columns[..3].join(", "), columns.len() - 3)
        } else {
            columns.join(", ")
        };
        needs.push(Need::TypeUsage {
            spelling: spelling.to_string(),
            why: format!("write {shown} back, of type {spelling}"),
        });
    }
    for s in undo.sequences.iter().filter(|s| s.moved()) {
        needs.push(Need::Owner {
            table: s.qualified(),
            why: format!(
                "move it back to where it was before the push ({})",
                s.before
            ),
        });
    }
    needs
}
