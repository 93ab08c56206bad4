//! The names the plan's DDL claims in schema `public`, as Postgres would
//! choose them: each created table's relation and row type (an existing
//! object of that name makes `CREATE TABLE` fail), and the names Postgres
//! derives for what it creates with them — the primary key's and unique
//! keys' indexes, a serial or identity column's sequence, a foreign key's
//! constraint. Postgres never fails on a derived name: it takes the next
//! free one (`tasks_pkey1`), so a collision there is a difference to
//! report, not a failure.

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::Plan;

/// Postgres's NAMEDATALEN: names are cut to 63 bytes.
const NAMEDATALEN: usize = 64;

/// In which of Postgres's namespaces a name must be free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// `pg_class`: tables, views, indexes, sequences, composite types…
    Relation,
    /// `pg_type`: the row type every table has.
    Type,
    /// `pg_constraint` of the schema (a foreign key's name).
    Constraint,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Relation => "relation",
            Namespace::Type => "type",
            Namespace::Constraint => "constraint",
        }
    }

    pub fn parse(s: &str) -> Option<Namespace> {
        match s {
            "relation" => Some(Namespace::Relation),
            "type" => Some(Namespace::Type),
            "constraint" => Some(Namespace::Constraint),
            _ => None,
        }
    }
}

/// A name the plan's DDL claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedName {
    /// The table whose DDL claims it (created, or given a column).
    pub table: String,
    pub namespace: Namespace,
    pub name: String,
    /// What the plan creates under it, for people (`the sequence of
    /// tasks.id`).
    pub what: String,
    /// Derived by Postgres (not written in target.json): on a collision it
    /// takes another name instead of failing.
    pub derived: bool,
}

/// An existing object holding a name the plan claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameConflict {
    pub table: String,
    pub namespace: Namespace,
    pub name: String,
    /// What holds it now, for people (`sequence public.tasks_id_seq`).
    pub existing: String,
    pub what: String,
    pub derived: bool,
}

impl NameConflict {
    /// The conflict for people: what fails and what to do, or for a
    /// derived name what Postgres does instead.
    pub fn describe(&self) -> String {
        if self.derived {
            format!(
                "{} is already taken by {}: Postgres will give {} another name (the next free \
                 of {}1, {}2, …), so SQL or an app that names it {} reaches the existing object",
                self.name, self.existing, self.what, self.name, self.name, self.name
            )
        } else {
            format!(
                "{} {} is already taken by {}: CREATE TABLE {} would fail on Postgres, which \
                 needs the name for {}. Rename or drop the existing {}, or rename the table in \
                 target.json",
                self.namespace.as_str(),
                self.name,
                self.existing,
                self.table,
                self.what,
                self.existing
            )
        }
    }
}

const DDL: &str = "CREATE TABLE IF NOT EXISTS _sandbox_name_conflicts (\
                   position INTEGER PRIMARY KEY, conflict TEXT NOT NULL)";

/// Records in the snapshot the objects holding a name the plan claims.
pub fn write(conn: &Connection, conflicts: &[NameConflict]) -> Result<()> {
    conn.execute_batch(DDL)?;
    let mut put = conn.prepare("INSERT INTO _sandbox_name_conflicts VALUES (?1, ?2)")?;
    for (i, c) in conflicts.iter().enumerate() {
        put.execute(rusqlite::params![i as i64, serde_json::to_string(c)?])?;
    }
    Ok(())
}

/// What [`write`] recorded; none in a file pulled before it existed.
pub fn read(conn: &Connection) -> Result<Vec<NameConflict>> {
    if !crate::db::sqlite::table_exists(conn, "main", "_sandbox_name_conflicts")? {
        return Ok(Vec::new());
    }
    let mut stmt =
        conn.prepare("SELECT conflict FROM main._sandbox_name_conflicts ORDER BY position")?;
    let texts = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    texts
        .iter()
        .map(|t| {
            serde_json::from_str(t).with_context(|| {
                format!("the snapshot's record of a name conflict is damaged: {t}")
            })
        })
        .collect()
}

/// Every name the plan's DDL claims, in the order it creates them.
pub fn claimed_names(plan: &Plan) -> Vec<ClaimedName> {
    let mut out = Vec::new();
    let mut claim = |table: &str, namespace, name: String, what: String, derived| {
        out.push(ClaimedName {
            table: table.to_string(),
            namespace,
            name,
            what,
            derived,
        })
    };
    for t in &plan.schema.tables {
        let table = &t.name;
        claim(
            table,
            Namespace::Relation,
            table.clone(),
            "the table".to_string(),
            false,
        );
        claim(
            table,
            Namespace::Type,
            table.clone(),
            "the table's row type".to_string(),
            false,
        );
        claim(
            table,
            Namespace::Relation,
            object_name(table, None, "pkey"),
            format!("the primary key index of {table}"),
            true,
        );
        for u in &t.unique {
            claim(
                table,
                Namespace::Relation,
                object_name(table, Some(&name_addition(u)), "key"),
                format!("the unique index of {table} ({})", u.join(", ")),
                true,
            );
        }
        for c in t.columns.iter().filter(|c| numbered(&c.pg_type)) {
            claim(
                table,
                Namespace::Relation,
                object_name(table, Some(&c.name), "seq"),
                format!("the sequence of {table}.{}", c.name),
                true,
            );
        }
        for fk in &t.foreign_keys {
            claim(
                table,
                Namespace::Constraint,
                object_name(table, Some(&name_addition(&fk.columns)), "fkey"),
                format!("the foreign key of {table} ({})", fk.columns.join(", ")),
                true,
            );
        }
    }
    for a in &plan.schema.added_columns {
        let (table, column) = (&a.table, &a.column.name);
        if numbered(&a.column.pg_type) {
            claim(
                table,
                Namespace::Relation,
                object_name(table, Some(column), "seq"),
                format!("the sequence of the added column {table}.{column}"),
                true,
            );
        }
        if a.references.is_some() {
            claim(
                table,
                Namespace::Constraint,
                object_name(table, Some(column), "fkey"),
                format!("the foreign key of the added column {table}.{column}"),
                true,
            );
        }
    }
    out
}

/// A column type for which Postgres creates a sequence: serial types and
/// identity columns.
pub(crate) fn numbered(pg_type: &str) -> bool {
    let t = pg_type.trim().to_ascii_lowercase();
    serial(&t) || (t.contains("generated") && t.contains("identity"))
}

/// A serial type: Postgres creates a sequence and gives the column its
/// `nextval` as default (an identity column has no default).
pub(crate) fn serial(pg_type: &str) -> bool {
    matches!(
        pg_type.trim().to_ascii_lowercase().as_str(),
        "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
    )
}

/// Postgres's `ChooseIndexNameAddition`: the column names joined by `_`,
/// no longer than a name can be.
fn name_addition(columns: &[String]) -> String {
    let mut out = String::new();
    for c in columns {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(c);
        if out.len() >= NAMEDATALEN {
            break;
        }
    }
    out
}

/// Postgres's `makeObjectName`: `name1_name2_label`, the longer of the two
/// names cut first (at a character boundary) so the whole fits in 63 bytes.
fn object_name(name1: &str, name2: Option<&str>, label: &str) -> String {
    let mut overhead = label.len() + 1;
    let mut n2 = 0;
    if let Some(n) = name2 {
        n2 = n.len();
        overhead += 1;
    }
    let avail = (NAMEDATALEN - 1).saturating_sub(overhead);
    let mut n1 = name1.len();
    while n1 + n2 > avail {
        if n1 > n2 {
            n1 -= 1;
        } else {
            n2 -= 1;
        }
    }
    let clip = |s: &str, mut n: usize| {
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s[..n].to_string()
    };
    let mut out = clip(name1, n1);
    if let Some(n) = name2 {
        out.push('_');
        out.push_str(&clip(n, n2));
    }
    out.push('_');
    out.push_str(label);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_are_cut_as_postgres_cuts_them() {
        assert_eq!(object_name("tasks", None, "pkey"), "tasks_pkey");
        assert_eq!(object_name("tasks", Some("id"), "seq"), "tasks_id_seq");
        let long = "a".repeat(70);
        let name = object_name(&long, Some("id"), "seq");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_id_seq"), "{name}");
        let cols = ["x".repeat(40), "y".repeat(40)];
        let name = object_name("t", Some(&name_addition(&cols)), "key");
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("t_xxx"), "{name}");
        // A multibyte character is never cut in half.
        let name = object_name(&"é".repeat(40), Some("id"), "seq");
        assert!(name.len() <= 63 && name.ends_with("_id_seq"), "{name}");
        assert!(numbered("bigint GENERATED ALWAYS AS IDENTITY"));
        assert!(numbered("BIGSERIAL"));
        assert!(!numbered("uuid"));
    }
}
