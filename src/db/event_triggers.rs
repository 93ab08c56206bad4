//! Event triggers (`pg_event_trigger`) the plan's DDL would fire. They are
//! database-wide and run the app's functions on the push's CREATE TABLE and
//! ALTER TABLE (and the rollback's DROPs): SQLite has nothing of the kind,
//! so pull records them and the rehearsal lists those the plan's commands
//! match, as "checked on Postgres by the preflight" (where they fire, and
//! what they write is accounted for by the write check).

use anyhow::{Context, Result};
use rusqlite::Connection;
use tokio_postgres::Transaction;

use crate::db::sqlite::Snapshot;
use crate::db::staging::PreflightItem;
use crate::plan::Plan;

/// One event trigger as pull found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTrigger {
    pub name: String,
    /// `ddl_command_start`, `ddl_command_end`, `sql_drop`, `table_rewrite`.
    pub event: String,
    /// `O` (origin), `A` (always), `R` (replica only), `D` (disabled).
    pub enabled: String,
    /// `schema.function(args)` as `regprocedure` prints it.
    pub function: String,
    /// The command tags of its `WHEN TAG IN (…)`; empty for every command.
    pub tags: Vec<String>,
}

/// Every event trigger of the database. `pg_event_trigger` is readable by
/// every role.
pub async fn read_event_triggers(tx: &Transaction<'_>) -> Result<Vec<EventTrigger>> {
    let rows = tx
        .query_typed(
            "SELECT evtname::text, evtevent::text, evtenabled::text, \
                    evtfoid::regprocedure::text, coalesce(evttags, '{}')::text[] \
             FROM pg_catalog.pg_event_trigger ORDER BY 1",
            &[],
        )
        .await
        .context("cannot read the database's event triggers")?;
    Ok(rows
        .iter()
        .map(|r| EventTrigger {
            name: r.get(0),
            event: r.get(1),
            enabled: r.get(2),
            function: r.get(3),
            tags: r.get(4),
        })
        .collect())
}

/// Where pull records them. A file pulled before has no such table: its
/// rehearsals list none, as before.
const DDL: &str = "CREATE TABLE _sandbox_event_triggers (name TEXT PRIMARY KEY, \
                   event TEXT NOT NULL, enabled TEXT NOT NULL, function TEXT NOT NULL, \
                   tags TEXT NOT NULL)";

pub fn write(conn: &Connection, triggers: &[EventTrigger]) -> Result<()> {
    conn.execute_batch(DDL)?;
    let mut put =
        conn.prepare("INSERT INTO _sandbox_event_triggers VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for t in triggers {
        put.execute(rusqlite::params![
            t.name,
            t.event,
            t.enabled,
            t.function,
            serde_json::to_string(&t.tags)?
        ])?;
    }
    Ok(())
}

pub fn read(conn: &Connection) -> Result<Vec<EventTrigger>> {
    if !crate::db::sqlite::table_exists(conn, "main", "_sandbox_event_triggers")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT name, event, enabled, function, tags FROM main._sandbox_event_triggers \
         ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, event, enabled, function, tags) = row?;
        let tags = serde_json::from_str(&tags)
            .with_context(|| format!("_sandbox_event_triggers: tags of {name} are not readable"))?;
        out.push(EventTrigger {
            name,
            event,
            enabled,
            function,
            tags,
        });
    }
    Ok(out)
}

/// One command of the push or its rollback, by the tag Postgres matches
/// event triggers on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: &'static str,
    /// For people: `CREATE TABLE tasks`.
    pub text: String,
    /// Run by the rollback, not the push.
    pub rollback: bool,
    /// Drops an object (fires `sql_drop`).
    pub drops: bool,
    /// Rewrites the table (fires `table_rewrite`).
    pub rewrites: bool,
}

/// The commands the push runs (and the rollback, marked) for `plan`:
/// its created tables and added columns, the triggers it holds off, the
/// sequences it moves (`moves_sequences`), and the receipts table a first
/// push creates.
pub fn plan_commands(plan: &Plan, snapshot: &Snapshot, moves_sequences: bool) -> Vec<Command> {
    let cmd = |tag, text: String, rollback, drops, rewrites| Command {
        tag,
        text,
        rollback,
        drops,
        rewrites,
    };
    let mut out = Vec::new();
    for t in &plan.schema.tables {
        out.push(cmd(
            "CREATE TABLE",
            format!("CREATE TABLE {}", t.name),
            false,
            false,
            false,
        ));
        out.push(cmd(
            "ALTER TABLE",
            format!("ALTER TABLE {} ENABLE ROW LEVEL SECURITY", t.name),
            false,
            false,
            false,
        ));
        out.push(cmd(
            "DROP TABLE",
            format!("DROP TABLE {}", t.name),
            true,
            true,
            false,
        ));
    }
    for a in &plan.schema.added_columns {
        // ADD COLUMN rewrites the table only for a default Postgres must
        // compute per row: a domain's volatile one.
        let rewrites = snapshot
            .target_types
            .get(&a.column.pg_type)
            .is_some_and(|m| m.default.is_some() && !m.default_constant);
        out.push(cmd(
            "ALTER TABLE",
            format!("ALTER TABLE {} ADD COLUMN {}", a.table, a.column.name),
            false,
            false,
            rewrites,
        ));
        out.push(cmd(
            "ALTER TABLE",
            format!("ALTER TABLE {} DROP COLUMN {}", a.table, a.column.name),
            true,
            true,
            false,
        ));
    }
    for (table, trigger) in crate::plan::held_off_triggers(&plan.file.hold_off_triggers) {
        for rollback in [false, true] {
            out.push(cmd(
                "ALTER TABLE",
                format!("ALTER TABLE {table} DISABLE/ENABLE TRIGGER {trigger}"),
                rollback,
                false,
                false,
            ));
        }
    }
    if moves_sequences {
        for rollback in [false, true] {
            out.push(cmd(
                "ALTER SEQUENCE",
                "ALTER SEQUENCE … RESTART".into(),
                rollback,
                false,
                false,
            ));
        }
    }
    for (tag, text) in [
        ("CREATE SCHEMA", "CREATE SCHEMA sandbox"),
        ("CREATE TABLE", "CREATE TABLE sandbox.receipts"),
        (
            "ALTER TABLE",
            "ALTER TABLE sandbox.receipts ENABLE ROW LEVEL SECURITY",
        ),
    ] {
        out.push(cmd(
            tag,
            format!("{text} (a first push only)"),
            false,
            false,
            false,
        ));
    }
    out
}

/// Whether `t` fires on `c` in an ordinary session
/// (`session_replication_role = origin`).
fn fires_on(t: &EventTrigger, c: &Command) -> bool {
    if !matches!(t.enabled.as_str(), "O" | "A") {
        return false;
    }
    let event = match t.event.as_str() {
        "ddl_command_start" | "ddl_command_end" => true,
        "sql_drop" => c.drops,
        "table_rewrite" => c.rewrites,
        _ => false,
    };
    event && (t.tags.is_empty() || t.tags.iter().any(|g| g.eq_ignore_ascii_case(c.tag)))
}

/// The commands among `commands` that `t` fires on, as `on the push's
/// CREATE TABLE tasks, …; on a rollback's DROP TABLE tasks`, or None.
pub fn fires_on_commands(t: &EventTrigger, commands: &[Command]) -> Option<String> {
    let on = |rollback: bool| {
        commands
            .iter()
            .filter(|c| c.rollback == rollback && fires_on(t, c))
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
    };
    let (push, rollback) = (on(false), on(true));
    let mut fires = Vec::new();
    if !push.is_empty() {
        fires.push(format!("on the push's {}", push.join(", ")));
    }
    if !rollback.is_empty() {
        fires.push(format!("on a rollback's {}", rollback.join(", ")));
    }
    (!fires.is_empty()).then(|| fires.join("; "))
}

/// The command tags among `commands` (for saying which a tag filter missed).
pub fn tags_of(commands: &[Command]) -> Vec<&'static str> {
    let mut tags: Vec<&'static str> = commands.iter().map(|c| c.tag).collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The commands a rollback of `undo` runs, marked as the rollback's: the
/// created tables dropped, the added columns dropped, the held-off
/// triggers disabled and enabled again, sequences restarted.
pub fn undo_commands(undo: &crate::receipt::Undo) -> Vec<Command> {
    let cmd = |tag, text: String, drops| Command {
        tag,
        text,
        rollback: true,
        drops,
        rewrites: false,
    };
    let mut out: Vec<Command> = undo
        .created_tables
        .iter()
        .map(|t| cmd("DROP TABLE", format!("DROP TABLE {t}"), true))
        .collect();
    for a in &undo.added_columns {
        out.push(cmd(
            "ALTER TABLE",
            format!("ALTER TABLE {} DROP COLUMN {}", a.table, a.column),
            true,
        ));
    }
    for (table, trigger) in crate::plan::held_off_triggers(&undo.held_off_triggers) {
        out.push(cmd(
            "ALTER TABLE",
            format!("ALTER TABLE {table} DISABLE/ENABLE TRIGGER {trigger}"),
            false,
        ));
    }
    if !undo.sequences.is_empty() {
        out.push(cmd(
            "ALTER SEQUENCE",
            "ALTER SEQUENCE … RESTART".into(),
            false,
        ));
    }
    out
}

/// The event triggers among `triggers` that `commands` fire, one item each
/// with its event, function and the commands it fires on.
pub fn preflight_items(triggers: &[EventTrigger], commands: &[Command]) -> Vec<PreflightItem> {
    let mut out = Vec::new();
    for t in triggers {
        let Some(fires) = fires_on_commands(t, commands) else {
            continue;
        };
        out.push(PreflightItem {
            table: "(database)".into(),
            kind: "event_trigger".into(),
            name: t.name.clone(),
            detail: format!(
                "{} event trigger, function {}{}: fires {}. What it writes is accounted for by \
                 the preflight's write check (a table outside the plan refuses the push unless \
                 --allow-writes names it); an error it raises fails the preflight",
                t.event,
                t.function,
                if t.tags.is_empty() {
                    " (every command)".to_string()
                } else {
                    format!(" (WHEN TAG IN {})", t.tags.join(", "))
                },
                fires
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(event: &str, enabled: &str, tags: &[&str]) -> EventTrigger {
        EventTrigger {
            name: "t".into(),
            event: event.into(),
            enabled: enabled.into(),
            function: "public.f()".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn an_event_trigger_fires_on_its_event_and_tags_when_enabled() {
        let create = Command {
            tag: "CREATE TABLE",
            text: "CREATE TABLE tasks".into(),
            rollback: false,
            drops: false,
            rewrites: false,
        };
        let drop = Command {
            tag: "DROP TABLE",
            text: "DROP TABLE tasks".into(),
            rollback: true,
            drops: true,
            rewrites: false,
        };
        assert!(fires_on(&trigger("ddl_command_end", "O", &[]), &create));
        assert!(fires_on(
            &trigger("ddl_command_start", "A", &["create table"]),
            &create
        ));
        assert!(!fires_on(
            &trigger("ddl_command_end", "O", &["CREATE FUNCTION"]),
            &create
        ));
        assert!(!fires_on(&trigger("ddl_command_end", "D", &[]), &create));
        assert!(!fires_on(&trigger("ddl_command_end", "R", &[]), &create));
        assert!(!fires_on(&trigger("sql_drop", "O", &[]), &create));
        assert!(fires_on(&trigger("sql_drop", "O", &["DROP TABLE"]), &drop));
        assert!(!fires_on(&trigger("table_rewrite", "O", &[]), &create));
    }
}
