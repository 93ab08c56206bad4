//! The triggers on the tables a push writes, and which of them the push may
//! hold off while it updates rows.
//!
//! A trigger is held off only when the plan names it AND its function can be
//! shown, from `pg_proc`, to do nothing but stamp `updated_at` (a plpgsql
//! body `NEW.updated_at := now(); RETURN NEW;` under any function name, or
//! the `moddatetime` extension on `updated_at`). Holding off such a stamp
//! keeps the rows equal to the rehearsed ones; anything else a trigger does
//! (raise, write a history row, change another column) must happen on
//! Postgres exactly as it would for the app, so every other trigger fires.

use anyhow::Result;
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::plan::checks::{Check, CheckKind};

/// One trigger on a table the push writes, and what the push does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerReport {
    pub table: String,
    pub name: String,
    /// BEFORE, AFTER or INSTEAD OF.
    pub timing: String,
    /// ROW or STATEMENT.
    pub level: String,
    /// INSERT, UPDATE, DELETE, TRUNCATE.
    pub events: Vec<String>,
    pub function: String,
    pub action: TriggerAction,
    /// Why, when it is not simply "fires".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// `pg_trigger.tgenabled` before the push: O, A, R or D.
    #[serde(skip)]
    pub enabled: String,
    /// A BEFORE UPDATE row trigger whose function is proven to do nothing
    /// but stamp updated_at ([`proves_updated_at_stamp`]), held off or not:
    /// what a rollback names when the app's save of a pushed row moved it.
    #[serde(skip)]
    pub stamps_updated_at: bool,
    /// A BEFORE UPDATE row trigger shaped like an updated_at stamp that is
    /// not proven one, because a call in it may resolve to an app
    /// function: which call, to which function, under which path.
    #[serde(skip)]
    pub unproven_stamp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerAction {
    /// Fires on the push's writes, as for any app write.
    Fires,
    /// Disabled for the push's UPDATE of this table and re-enabled, in its
    /// original mode, before COMMIT.
    HeldOff,
    /// Already disabled, or replica-only: it does not fire for anyone; an
    /// event trigger whose event or `WHEN TAG IN` none of the commands run
    /// matches.
    DoesNotFire,
}

impl TriggerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerAction::Fires => "fires",
            TriggerAction::HeldOff => "held off",
            TriggerAction::DoesNotFire => "does not fire",
        }
    }
}

impl TriggerReport {
    /// A BEFORE row trigger on `table` that fires (is not held off): it can
    /// change a row before it is written, which no rehearsal runs — the
    /// likely cause when Postgres holds other values than the tool wrote.
    pub fn rewrites_rows_of(&self, table: &str) -> bool {
        self.table == table
            && self.timing == "BEFORE"
            && self.level == "ROW"
            && self.action == TriggerAction::Fires
    }

    /// `ALTER TABLE … ENABLE … TRIGGER` that restores the mode it had.
    pub fn enable_sql(&self) -> String {
        let mode = match self.enabled.as_str() {
            "A" => "ENABLE ALWAYS",
            "R" => "ENABLE REPLICA",
            _ => "ENABLE",
        };
        format!(
            "ALTER TABLE public.{} {mode} TRIGGER {}",
            crate::types::quote_ident(&self.table),
            crate::types::quote_ident(&self.name)
        )
    }

    pub fn disable_sql(&self) -> String {
        format!(
            "ALTER TABLE public.{} DISABLE TRIGGER {}",
            crate::types::quote_ident(&self.table),
            crate::types::quote_ident(&self.name)
        )
    }
}

/// Every rule on the tables the push writes (`rule NAME ON EVENT TO table
/// (DO ALSO|DO INSTEAD)`, for the report), and one check refusing, by
/// name, the rules that would make the push do other than the rehearsal:
/// - a rule ON INSERT: the push inserts with COPY, which Postgres runs
///   without rewrite rules, so it would not do for the push what it does
///   for the app's INSERT;
/// - a DO INSTEAD rule on UPDATE or DELETE: Postgres runs the rule's
///   action in place of the push's statement, so the rows are not written
///   as rehearsed (swallowed by DO INSTEAD NOTHING, or redirected). Found
///   only after writing, it looked like another session had changed the
///   rows; it is refused before anything is written.
///
/// DO ALSO rules on UPDATE and DELETE fire for the push's statements, and
/// their writes are counted like any other. A rule that does not fire in
/// the tool's sessions (DISABLE RULE, ENABLE REPLICA RULE) is only listed.
pub async fn rules_check(
    tx: &Transaction<'_>,
    written: &[WrittenTable],
) -> Result<(Vec<String>, Check)> {
    let tables: Vec<String> = written.iter().map(|w| w.name.clone()).collect();
    let rows = tx
        .query_typed(
            "SELECT c.relname::text, r.rulename::text, \
                    CASE r.ev_type WHEN '2' THEN 'UPDATE' WHEN '3' THEN 'INSERT' \
                                   WHEN '4' THEN 'DELETE' ELSE 'SELECT' END, r.is_instead, \
                    r.ev_enabled::text \
             FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname::text = ANY($1) AND r.ev_type <> '1' \
             ORDER BY 1, 2",
            &[(&tables, Type::TEXT_ARRAY)],
        )
        .await?;
    let mut listed = Vec::new();
    let mut found = Vec::new();
    for r in &rows {
        let (table, rule, event, instead): (String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let kind = if instead { "DO INSTEAD" } else { "DO ALSO" };
        // A rule disabled ('D') or enabled for replication only ('R') does
        // not fire in the tool's sessions (pinned to
        // session_replication_role = origin): listed, never refused.
        let enabled: String = r.get(4);
        let silent = match enabled.as_str() {
            "D" => Some("disabled"),
            "R" => Some("enabled for replication only"),
            _ => None,
        };
        if let Some(why) = silent {
            listed.push(format!(
                "rule {rule} ON {event} TO {table} ({kind}; {why}: does not fire for the push)"
            ));
            continue;
        }
        listed.push(format!("rule {rule} ON {event} TO {table} ({kind})"));
        if event == "INSERT" {
            found.push(format!(
                "rule {rule} ON INSERT TO {table} ({kind}): the push inserts with COPY, which does \
                 not apply rules, so it would not do for the push what it does for the app; drop it \
                 or write its effect into the plan"
            ));
        } else if instead {
            found.push(format!(
                "rule {rule} ON {event} TO {table} (DO INSTEAD): Postgres would run the rule's \
                 action in place of the push's {event}, so the rows would not be written as \
                 rehearsed; drop the rule (or make it DO ALSO) for the push, or write its effect \
                 into the plan"
            ));
        }
    }
    Ok((
        listed,
        Check::no_rows(
            "preflight",
            "no INSERT or DO INSTEAD rules on the tables the push writes",
            CheckKind::Guard,
            found,
        ),
    ))
}

/// The rules a rollback's statements would meet: `deletes` are the tables
/// it deletes the pushed rows from, `updates` those where it writes back
/// the values the push overwrote. An enabled DO INSTEAD rule on one of
/// those events makes Postgres run the rule's action in place of the
/// undo's statement — a soft-delete rule (`ON DELETE … DO INSTEAD UPDATE
/// t SET deleted_at = now()`) keeps every pushed row — so the rollback
/// would find "0 of N rows" and say the rows were not found. The check
/// names each such rule, what it turns the statement into, and what to do,
/// before anything is written. A disabled rule (`ALTER TABLE … DISABLE
/// RULE`) does not fire and is not named; DO ALSO rules fire and their
/// writes are counted like a trigger's.
pub async fn undo_rules_check(
    tx: &Transaction<'_>,
    deletes: &[String],
    updates: &[String],
) -> Result<Check> {
    let tables: Vec<String> = deletes.iter().chain(updates).cloned().collect();
    let rows = if tables.is_empty() {
        Vec::new()
    } else {
        tx.query_typed(
            // ev_enabled 'D' never fires and 'R' only under
            // session_replication_role = replica, which the tool pins to
            // origin.
            "SELECT c.relname::text, r.rulename::text, \
                    CASE r.ev_type WHEN '2' THEN 'UPDATE' ELSE 'DELETE' END, \
                    pg_catalog.pg_get_ruledef(r.oid) \
             FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname::text = ANY($1) AND r.is_instead \
               AND r.ev_type IN ('2', '4') AND r.ev_enabled IN ('O', 'A') \
             ORDER BY 1, 2",
            &[(&tables, Type::TEXT_ARRAY)],
        )
        .await?
    };
    let mut found = Vec::new();
    for r in &rows {
        let (table, rule, event, definition): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let applies = match event.as_str() {
            "DELETE" => deletes.contains(&table),
            _ => updates.contains(&table),
        };
        if !applies {
            continue;
        }
        let (what, undoes) = if event == "DELETE" {
            ("remove the pushed rows", "deleting them")
        } else {
            ("restore the values the push overwrote", "writing them back")
        };
        let table_sql = format!("public.{}", crate::types::quote_ident(&table));
        let rule_sql = crate::types::quote_ident(&rule);
        found.push(format!(
            "rule {rule} on {table} turns {event} into {}: the rollback cannot {what} without \
             bypassing it, and it bypasses none of the database's rules. Disable it for the \
             rollback (`ALTER TABLE {table_sql} DISABLE RULE {rule_sql};`, then `ENABLE RULE \
             {rule_sql}` after) or drop it, or undo these rows yourself instead of {undoes} \
             through the rule",
            instead_action(&definition)
        ));
    }
    Ok(Check::no_rows(
        "preflight",
        "no DO INSTEAD rule replaces the rollback's DELETE or UPDATE",
        CheckKind::Guard,
        found,
    ))
}

/// What a DO INSTEAD rule runs, from `pg_get_ruledef`: `UPDATE`,
/// `INSERT`, `DELETE`, `nothing`, or `several statements` (a
/// parenthesised list).
fn instead_action(definition: &str) -> String {
    let Some((_, action)) = definition.split_once(" DO INSTEAD") else {
        return "something else".to_string();
    };
    let action = action.trim_start();
    if action.starts_with('(') {
        return "several statements".to_string();
    }
    match action.split_whitespace().next() {
        Some(w) if w.eq_ignore_ascii_case("NOTHING") || w.starts_with("NOTHING") => {
            "nothing".to_string()
        }
        Some(w) => w.trim_end_matches(';').to_ascii_uppercase(),
        None => "something else".to_string(),
    }
}

/// A table the push writes and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenTable {
    pub name: String,
    pub updates: bool,
}

/// Who names the triggers to hold off: the plan (the push), or the
/// receipt the push wrote (the rollback, which takes no plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldOffBy {
    Plan,
    Receipt,
}

impl HeldOffBy {
    fn who(self) -> &'static str {
        match self {
            HeldOffBy::Plan => "the plan",
            HeldOffBy::Receipt => "the receipt",
        }
    }
}

/// Every user trigger on the written tables (schema public), with the
/// action the push takes, plus one check: every trigger the plan asks to
/// hold off exists and is a proven `updated_at` stamp. `named` holds
/// `table.trigger` entries from the plan; `commands` is the DDL the
/// transaction runs, which decides the event triggers that fire.
pub async fn plan_triggers(
    tx: &Transaction<'_>,
    written: &[WrittenTable],
    named: &[String],
    commands: &[crate::db::event_triggers::Command],
) -> Result<(Vec<TriggerReport>, Check)> {
    let (reports, check, _) =
        held_off_triggers(tx, written, named, HeldOffBy::Plan, commands).await?;
    Ok((reports, check))
}

/// [`plan_triggers`] for the rollback: `named` is the receipt's
/// `held_off_triggers`. A trigger it names that is no longer on its table
/// under that name (the app dropped or renamed it since the push) needs no
/// hold-off: not a refusal, but returned, each said for a person (the
/// third value). A renamed one fires for the restore like any trigger the
/// receipt does not name; the read-back of the restored values guards
/// what it changes there.
pub async fn receipt_triggers(
    tx: &Transaction<'_>,
    written: &[WrittenTable],
    named: &[String],
    commands: &[crate::db::event_triggers::Command],
) -> Result<(Vec<TriggerReport>, Check, Vec<String>)> {
    held_off_triggers(tx, written, named, HeldOffBy::Receipt, commands).await
}

/// [`plan_triggers`] and [`receipt_triggers`]: the triggers `by` names.
async fn held_off_triggers(
    tx: &Transaction<'_>,
    written: &[WrittenTable],
    named: &[String],
    by: HeldOffBy,
    commands: &[crate::db::event_triggers::Command],
) -> Result<(Vec<TriggerReport>, Check, Vec<String>)> {
    let who = by.who();
    let tables: Vec<String> = written.iter().map(|w| w.name.clone()).collect();
    let rows = tx
        .query_typed(
            "SELECT c.relname::text, t.tgname::text, t.tgtype::int4, t.tgenabled::text, \
                    t.tgfoid::regprocedure::text, l.lanname::text, p.prosrc, \
                    coalesce((SELECT e.extname::text FROM pg_catalog.pg_depend d \
                              JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid \
                              WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid \
                                AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e' \
                              LIMIT 1), ''), \
                    pg_catalog.encode(t.tgargs, 'escape'), \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid \
                            AND a.attname = 'updated_at' AND NOT a.attisdropped), \
                    (SELECT pg_catalog.substr(s, 13) FROM pg_catalog.unnest(p.proconfig) s \
                     WHERE s LIKE 'search_path=%' LIMIT 1), \
                    current_user::text, \
                    (SELECT g.reset_val FROM pg_catalog.pg_settings g WHERE g.name = 'search_path'), \
                    ARRAY(SELECT n2.nspname::text FROM pg_catalog.pg_proc p2 \
                          JOIN pg_catalog.pg_namespace n2 ON n2.oid = p2.pronamespace \
                          WHERE p2.proname = ANY($2) AND n2.nspname <> 'pg_catalog' ORDER BY p2.oid), \
                    ARRAY(SELECT p2.proname::text FROM pg_catalog.pg_proc p2 \
                          JOIN pg_catalog.pg_namespace n2 ON n2.oid = p2.pronamespace \
                          WHERE p2.proname = ANY($2) AND n2.nspname <> 'pg_catalog' ORDER BY p2.oid), \
                    ARRAY(SELECT n2.nspname::text FROM pg_catalog.pg_type y \
                          JOIN pg_catalog.pg_namespace n2 ON n2.oid = y.typnamespace \
                          WHERE y.typname = ANY($3) AND n2.nspname <> 'pg_catalog' ORDER BY y.oid), \
                    ARRAY(SELECT y.typname::text FROM pg_catalog.pg_type y \
                          JOIN pg_catalog.pg_namespace n2 ON n2.oid = y.typnamespace \
                          WHERE y.typname = ANY($3) AND n2.nspname <> 'pg_catalog' ORDER BY y.oid) \
             FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid \
             JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
             WHERE n.nspname = 'public' AND c.relname::text = ANY($1) AND NOT t.tgisinternal \
             ORDER BY 1, 2",
            &[
                (&tables, Type::TEXT_ARRAY),
                (&STAMP_FUNCTIONS.to_vec(), Type::TEXT_ARRAY),
                (&STAMP_TYPES.to_vec(), Type::TEXT_ARRAY),
            ],
        )
        .await?;
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    let mut app_path_source: Option<String> = None;
    for r in &rows {
        let table: String = r.get(0);
        let name: String = r.get(1);
        let tgtype: i32 = r.get(2);
        let enabled: String = r.get(3);
        let function: String = r.get(4);
        let language: String = r.get(5);
        let source: String = r.get(6);
        let extension: String = r.get(7);
        let args: Vec<String> = r
            .get::<_, String>(8)
            .split("\\000")
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        let has_updated_at: bool = r.get(9);
        let own_path: Option<String> = r.get(10);
        let lookup = NameLookup {
            user: r.get(11),
            app_path: r.get::<_, Option<String>>(12).unwrap_or_default(),
            functions: r
                .get::<_, Vec<String>>(13)
                .into_iter()
                .zip(r.get::<_, Vec<String>>(14))
                .collect(),
            types: r
                .get::<_, Vec<String>>(15)
                .into_iter()
                .zip(r.get::<_, Vec<String>>(16))
                .collect(),
        };
        let before = tgtype & 2 != 0;
        let row_level = tgtype & 1 != 0;
        let mut events = Vec::new();
        for (bit, ev) in [
            (4, "INSERT"),
            (16, "UPDATE"),
            (8, "DELETE"),
            (32, "TRUNCATE"),
        ] {
            if tgtype & bit != 0 {
                events.push(ev.to_string());
            }
        }
        let timing = if tgtype & 64 != 0 {
            "INSTEAD OF"
        } else if before {
            "BEFORE"
        } else {
            "AFTER"
        };
        let qualified = format!("{table}.{name}");
        let is_named = named.iter().any(|n| n == &qualified);
        let updated = written.iter().any(|w| w.name == table && w.updates);
        let mut report = TriggerReport {
            table: table.clone(),
            name: name.clone(),
            timing: timing.to_string(),
            level: if row_level { "ROW" } else { "STATEMENT" }.to_string(),
            events: events.clone(),
            function: function.clone(),
            action: TriggerAction::Fires,
            note: String::new(),
            enabled: enabled.clone(),
            stamps_updated_at: false,
            unproven_stamp: None,
        };
        let stamp = if !has_updated_at {
            Err(format!("{table} has no updated_at column"))
        } else if !(before && row_level && tgtype & 16 != 0) {
            Err("not a BEFORE UPDATE FOR EACH ROW trigger".to_string())
        } else {
            proves_updated_at_stamp(&language, &source, &extension, &args)
        };
        // The stamp's shape is proven; its calls are the catalog's only if
        // no schema searched before pg_catalog has a function (or type) of
        // their names.
        let shadowed = match (&stamp, language.as_str()) {
            (Ok(()), "plpgsql") => lookup.shadowed(&source, own_path.as_deref()),
            _ => None,
        };
        // Where the app's default path comes from, when it is the one
        // that finds the app's function: read once, only then.
        let shadowed = match shadowed {
            Some(why) if own_path.is_none() => {
                if app_path_source.is_none() {
                    app_path_source =
                        Some(crate::db::postgres::search_path::app_path(tx).await?.source);
                }
                Some(format!(
                    "{why} ({})",
                    app_path_source.as_deref().unwrap_or_default()
                ))
            }
            other => other,
        };
        report.stamps_updated_at = stamp.is_ok() && shadowed.is_none();
        report.unproven_stamp = shadowed.clone();
        // The tool's sessions run as session_replication_role = origin
        // (pinned, see `tx`): a disabled trigger and a replica-only one
        // fire for none of its writes, so neither is held off nor enabled
        // — it is left as the app set it.
        if enabled == "D" {
            report.action = TriggerAction::DoesNotFire;
            report.note =
                format!(
                "disabled by the app (DISABLE TRIGGER): fires for no one, so it is {}left disabled",
                if is_named { format!("not held off ({who} names it) but ") } else { String::new() }
            );
        } else if enabled == "R" {
            report.action = TriggerAction::DoesNotFire;
            report.note = format!(
                "enabled by the app for replication only (ENABLE REPLICA): does not fire under \
                 session_replication_role = origin, which the tool runs as, so it is {}left as it is",
                if is_named { format!("not held off ({who} names it) but ") } else { String::new() }
            );
        } else if let (true, Ok(()), Some(why)) = (is_named || updated, &stamp, &shadowed) {
            // Shaped like a stamp, but what it calls may be the app's: it
            // fires as for the app, and its writes are accounted for.
            report.note = format!(
                "{}not held off: {why}, so it may do more than stamp updated_at",
                if is_named {
                    format!("named by {who}, but ")
                } else {
                    String::new()
                }
            );
        } else if is_named {
            match &stamp {
                Ok(()) if updated => {
                    report.action = TriggerAction::HeldOff;
                    report.note = if enabled == "A" {
                        format!(
                            "named by {who}; its function only stamps updated_at (enabled \
                             ALWAYS, and so again after the updates)"
                        )
                    } else {
                        format!("named by {who}; its function only stamps updated_at")
                    };
                }
                Ok(()) => {
                    report.note = match by {
                        HeldOffBy::Plan => {
                            "named by the plan, but the push does not update this table".into()
                        }
                        HeldOffBy::Receipt => {
                            "named by the receipt, but the undo does not update this table".into()
                        }
                    }
                }
                Err(why) => problems.push(match by {
                    HeldOffBy::Plan => format!(
                        "{qualified} (function {function}): the plan asks to hold it off, but \
                         {why}; only a pure updated_at stamp may be held off. Remove it from \
                         hold_off_triggers to let it fire"
                    ),
                    // The rollback takes no plan: the hold-off is the
                    // push's, and what the rollback proves again.
                    HeldOffBy::Receipt => format!(
                        "{qualified} (function {function}): the receipt holds it off (recorded at \
                         the push, which proved it a pure updated_at stamp), but {why}; only \
                         a pure updated_at stamp may be held off, and the rollback never lets a \
                         trigger the push held off fire for the restore. To roll back, put \
                         {function} back to a pure stamp as at the push (a plpgsql body \
                         `NEW.updated_at := now(); RETURN NEW;`), or point the trigger at such a \
                         function, and run the rollback again"
                    ),
                }),
            }
        } else if stamp.is_ok() && updated {
            report.note = match by {
                HeldOffBy::Plan => {
                    "only stamps updated_at; name it in the plan's hold_off_triggers to hold it off"
                        .into()
                }
                HeldOffBy::Receipt => {
                    "only stamps updated_at; the receipt does not hold it off, so it fires for \
                     the restore"
                        .into()
                }
            };
        }
        reports.push(report);
    }
    // Event triggers fire on the DDL this transaction runs (`commands`:
    // the push's, and the rollback's it rehearses; the rollback's DROPs);
    // what they write is caught by the write accounting, and they are
    // listed so the user sees them coming. One with a `WHEN TAG IN (…)`
    // fires only on a command of those tags.
    let tags = crate::db::event_triggers::tags_of(commands);
    for t in crate::db::event_triggers::read_event_triggers(tx).await? {
        let fires = crate::db::event_triggers::fires_on_commands(&t, commands);
        let enabled = t.enabled.clone();
        reports.push(TriggerReport {
            table: "(event trigger)".into(),
            name: t.name.clone(),
            timing: t.event.clone(),
            level: "DDL".into(),
            events: vec![if t.tags.is_empty() {
                "any DDL".to_string()
            } else {
                t.tags.join(" OR ")
            }],
            function: t.function.clone(),
            // Event triggers follow session_replication_role too.
            action: if fires.is_some() {
                TriggerAction::Fires
            } else {
                TriggerAction::DoesNotFire
            },
            note: match (enabled.as_str(), fires) {
                ("D", _) => "disabled by the app: does not fire".into(),
                ("R", _) => "enabled by the app for replication only: does not fire under \
                             session_replication_role = origin, which the tool runs as"
                    .into(),
                (_, Some(on)) => format!("fires {on}"),
                (_, None) if !t.tags.is_empty() => format!(
                    "its WHEN TAG IN ({}) matches none of the commands run here ({}): does not fire",
                    t.tags.join(", "),
                    tags.join(", ")
                ),
                (_, None) => format!(
                    "its event {} comes with none of the commands run here: does not fire",
                    t.event
                ),
            },
            enabled,
            stamps_updated_at: false,
            unproven_stamp: None,
        });
    }
    let mut not_there = Vec::new();
    for n in named {
        let found = reports
            .iter()
            .any(|r| &format!("{}.{}", r.table, r.name) == n);
        if found {
            continue;
        }
        match by {
            HeldOffBy::Plan => problems.push(format!(
                "{n}: the plan asks to hold it off, but no such trigger is on a table the push writes"
            )),
            // Dropped or renamed by the app since the push: nothing to
            // hold off under that name.
            HeldOffBy::Receipt => {
                let (table, trigger) = n.split_once('.').unwrap_or(("", n.as_str()));
                // Another proven stamp firing on the table the undo updates
                // is most likely the one held off, renamed: firing for the
                // restore, it would stamp updated_at of every restored row,
                // which the push left alone. No read-back sees that (the
                // undo restores only the columns the push wrote).
                let stamps: Vec<&TriggerReport> = reports
                    .iter()
                    .filter(|r| {
                        r.table == table
                            && r.stamps_updated_at
                            && r.action == TriggerAction::Fires
                            && written.iter().any(|w| w.name == table && w.updates)
                    })
                    .collect();
                if let Some(other) = stamps.first() {
                    problems.push(format!(
                        "{n}, which the receipt holds off (recorded at the push), is no longer on \
                         {table}, but {table}.{} (function {}) is, a proven updated_at stamp the \
                         receipt does not name: the same trigger renamed since the push, it \
                         seems. It would fire for the restore and stamp updated_at of every row \
                         the undo restores, which the push left alone (it held the stamp off). \
                         Rename it back (`ALTER TRIGGER {} ON public.{} RENAME TO {}`) and run \
                         the rollback again: the rollback holds it off under that name",
                        other.name,
                        other.function,
                        crate::types::quote_ident(&other.name),
                        crate::types::quote_ident(table),
                        crate::types::quote_ident(trigger)
                    ));
                    continue;
                }
                not_there.push(if written.iter().any(|w| w.name == table) {
                    format!("{n} is no longer on {table}: nothing to hold off")
                } else {
                    format!(
                        "{n}: the undo does not write {table}, so {trigger} has nothing to be \
                         held off for"
                    )
                });
            }
        }
    }
    let check = Check::no_rows(
        "triggers",
        &format!("held off by {who}: only proven updated_at stamps"),
        CheckKind::Integrity,
        problems,
    );
    Ok((reports, check, not_there))
}

/// The functions a proven stamp's body may call by name, and the types it
/// may name in a cast ([`CURRENT_TIME`]); `current_timestamp`,
/// `localtimestamp` and `AT TIME ZONE` are grammar, bound to pg_catalog.
const STAMP_FUNCTIONS: &[&str] = &[
    "now",
    "timezone",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
];
const STAMP_TYPES: &[&str] = &["text"];

/// What an unqualified name in a stamp's body could resolve to: the
/// functions and types of [`STAMP_FUNCTIONS`] and [`STAMP_TYPES`] outside
/// pg_catalog (`(schema, name)`), and the paths a trigger may run under.
struct NameLookup {
    user: String,
    /// The path app sessions get (`pg_settings.reset_val`).
    app_path: String,
    functions: Vec<(String, String)>,
    types: Vec<(String, String)>,
}

impl NameLookup {
    /// Why the calls of a stamp `source` may not be pg_catalog's: a
    /// function or type of a name it uses in a schema its path searches
    /// before pg_catalog. The path is the function's own `SET search_path`
    /// when it has one; else the trigger runs under the session's, which
    /// is the tool's pinned path or the app's (the push's writes run
    /// under the app's), so both are read.
    fn shadowed(&self, source: &str, own_path: Option<&str>) -> Option<String> {
        let body = normalise_plpgsql(source);
        // Said as what it is: a path SET on the function, or, with none,
        // the session's — the tool's own or the app's default, which the
        // push's and the undo's writes run under.
        let paths: Vec<(String, &str)> = match own_path {
            Some(p) => vec![(p.to_string(), "the search_path SET on the function")],
            None => vec![
                (
                    crate::db::postgres::search_path::PINNED.to_string(),
                    "the function sets no search_path of its own, so it runs under the \
                     session's: the tool's pinned search_path",
                ),
                (
                    self.app_path.clone(),
                    "the function sets no search_path of its own, so it runs under the \
                     session's, and the push's and the undo's row writes run under the app's: \
                     the app's default search_path",
                ),
            ],
        };
        for (path, whose) in &paths {
            let ahead = searched_before_catalog(path, &self.user);
            let hit = |found: &[(String, String)], name: &str| {
                found
                    .iter()
                    .find(|(schema, n)| n == name && ahead.contains(schema))
                    .map(|(schema, _)| schema.clone())
            };
            for name in STAMP_FUNCTIONS {
                if !calls(&body, name) {
                    continue;
                }
                if let Some(schema) = hit(&self.functions, name) {
                    return Some(format!(
                        "its {name}() could call {schema}.{name}() instead of pg_catalog.{name}(): \
                         {whose} `{path}` searches {schema} before pg_catalog"
                    ));
                }
            }
            for name in STAMP_TYPES {
                if !body.contains(&format!("::{name}")) {
                    continue;
                }
                if let Some(schema) = hit(&self.types, name) {
                    return Some(format!(
                        "its ::{name} could name type {schema}.{name} instead of pg_catalog.{name}: \
                         {whose} `{path}` searches {schema} before pg_catalog"
                    ));
                }
            }
        }
        None
    }
}

/// Whether a normalised body calls `name(`, as a whole identifier.
fn calls(body: &str, name: &str) -> bool {
    let call = format!("{name}(");
    body.match_indices(&call).any(|(i, _)| {
        !body[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.')
    })
}

/// The schemas `path` searches before pg_catalog for functions and types:
/// those listed ahead of it, or none when it is not listed (then Postgres
/// searches it first). `"$user"` is `user`'s schema; pg_temp is never
/// searched for functions, and for types only where listed.
fn searched_before_catalog(path: &str, user: &str) -> Vec<String> {
    let mut schemas = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = path.chars().peekable();
    let push = |item: &mut String, schemas: &mut Vec<String>| {
        let t = item.trim();
        if !t.is_empty() {
            schemas.push(t.to_string());
        }
        item.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => {
                quoted = !quoted;
                // Marks the item as quoted: its case is kept.
                current.push('\u{0}');
            }
            ',' if !quoted => push(&mut current, &mut schemas),
            c if quoted => current.push(c),
            c => current.extend(c.to_lowercase()),
        }
    }
    push(&mut current, &mut schemas);
    let schemas: Vec<String> = schemas
        .into_iter()
        .map(|s| {
            let s = s.replace('\u{0}', "");
            if s == "$user" {
                user.to_string()
            } else {
                s
            }
        })
        .collect();
    match schemas.iter().position(|s| s == "pg_catalog") {
        Some(i) => schemas[..i].to_vec(),
        None => vec![],
    }
}

/// Ok when the function provably does nothing but set `updated_at` to the
/// current time and return the row; otherwise, why not.
pub fn proves_updated_at_stamp(
    language: &str,
    source: &str,
    extension: &str,
    args: &[String],
) -> std::result::Result<(), String> {
    match language {
        "c" if extension == "moddatetime" && source.trim() == "moddatetime" => {
            if args.len() == 1 && args[0] == "updated_at" {
                Ok(())
            } else {
                Err(format!(
                    "its moddatetime trigger sets {:?}, not updated_at",
                    args
                ))
            }
        }
        "plpgsql" => {
            let body = normalise_plpgsql(source);
            let err = || {
                format!(
                    "its function body does more than `NEW.updated_at := now(); RETURN NEW;`: {}",
                    source.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            };
            let inner = body
                .strip_prefix("begin")
                .and_then(|b| b.strip_suffix(';').or(Some(b)))
                .and_then(|b| b.strip_suffix("end"))
                .ok_or_else(err)?;
            let statements: Vec<&str> = inner.split(';').filter(|s| !s.is_empty()).collect();
            if statements.len() != 2 || statements[1] != "returnnew" {
                return Err(err());
            }
            let assign = statements[0];
            let rhs = [
                "new.updated_at:=",
                "new.updated_at=",
                "new.\"updated_at\":=",
                "new.\"updated_at\"=",
            ]
            .iter()
            .find_map(|p| assign.strip_prefix(p))
            .ok_or_else(err)?;
            if CURRENT_TIME.contains(&rhs) {
                Ok(())
            } else {
                Err(err())
            }
        }
        other => Err(format!(
            "its function is written in {other}, which the tool cannot read"
        )),
    }
}

/// Expressions for "now", with all whitespace removed and lower-cased.
const CURRENT_TIME: &[&str] = &[
    "now()",
    "current_timestamp",
    "clock_timestamp()",
    "statement_timestamp()",
    "transaction_timestamp()",
    "localtimestamp",
    "timezone('utc',now())",
    "now()attimezone'utc'",
    "(now()attimezone'utc')",
    "timezone('utc'::text,now())",
    "(now()attimezone'utc'::text)",
];

/// The body without comments and whitespace, lower-cased outside quoted
/// identifiers (whose case is significant).
fn normalise_plpgsql(source: &str) -> String {
    let mut out = String::new();
    let mut chars = source.chars().peekable();
    let mut in_ident = false;
    while let Some(c) = chars.next() {
        if in_ident {
            out.push(c);
            if c == '"' {
                in_ident = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_ident = true;
                out.push(c);
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            c if c.is_whitespace() => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// How `pg_trigger.tgenabled` reads to a user.
pub(crate) fn enabled_as_said(mode: &str) -> &'static str {
    match mode {
        "O" => "enabled",
        "A" => "enabled always",
        "R" => "enabled on replicas only",
        "D" => "disabled",
        _ => "in an unknown state",
    }
}

/// One check, just before COMMIT: every trigger of the tables the
/// transaction wrote (those of `triggers`, read before it wrote them) is
/// the trigger it was at the start — the same oid, under the same name,
/// with the same definition (events, WHEN clause, function, arguments) and
/// enabled state — and none was made on them, except on `dropped` tables
/// (the rollback's own DROP). `changes` is the DDL check's reading of the
/// catalog rows this transaction wrote ([`crate::db::ddl::transaction_ddl`]):
/// one comparison, by oid, against one record of the start, serves both
/// checks. The DDL check takes a held-off trigger's row for the tool's own
/// DISABLE and ENABLE only when it is as it was; this one names every
/// change on the written tables whatever --allow-writes says, said from
/// `before` ("the push", "the rollback"). By name, an event trigger firing
/// on the hold-off's ENABLE could leave the stamp disabled (R6), or rename
/// it away and make a never-firing copy under its name (Q1), and the push
/// committed.
pub fn triggers_as_they_were(
    phase: &str,
    changes: &[crate::db::ddl::CatalogChange],
    triggers: &[TriggerReport],
    dropped: &[String],
    before: &str,
) -> Check {
    use crate::db::ddl::TriggerDifference as D;
    let tables: Vec<String> = triggers
        .iter()
        .filter(|t| t.table != "(event trigger)" && !dropped.contains(&t.table))
        .map(|t| format!("public.{}", t.table))
        .collect();
    let by = "by an event trigger or a function it ran";
    let changed: Vec<String> = changes
        .iter()
        .filter(|c| c.catalog == "pg_trigger" && !c.internal)
        .filter(|c| c.table.as_ref().is_some_and(|t| tables.contains(t)))
        .filter_map(|c| {
            let states = c.trigger.as_ref()?;
            let table = c.table.as_deref().unwrap_or_default();
            let Some(was) = &states.before else {
                let name = states.now.as_ref().map_or("?", |n| n.name.as_str());
                // A copy made under the name of one renamed away or dropped
                // is said to be another trigger, not the one of that name.
                let named_so = changes.iter().any(|o| {
                    o.table == c.table
                        && o.trigger
                            .as_ref()
                            .and_then(|s| s.before.as_ref())
                            .is_some_and(|b| b.name == name)
                });
                let what = if named_so {
                    format!("a new trigger, not the one named so before {before}")
                } else {
                    format!("not there before {before}, there now")
                };
                return Some(format!(
                    "trigger {name} on {table}: {what} (created inside this transaction: {by})"
                ));
            };
            if states.now.is_none() {
                return Some(format!(
                    "trigger {} on {table}: {} before {before}, gone now (dropped inside this \
                     transaction: {by})",
                    was.name,
                    enabled_as_said(&was.enabled)
                ));
            }
            let said: Vec<String> = states
                .differences()
                .iter()
                .filter_map(|d| match d {
                    D::Renamed { to, .. } => Some(format!("renamed to {to}")),
                    D::Definition { before: b, now: n } => {
                        Some(format!("definition before {before}: {b}; now: {n}"))
                    }
                    D::Enabled { before: b, now: n } => Some(format!(
                        "{} before {before}, {} now",
                        enabled_as_said(b),
                        enabled_as_said(n)
                    )),
                    D::Created | D::Gone => None,
                })
                .collect();
            (!said.is_empty()).then(|| {
                format!(
                    "trigger {} on {table}: {} (changed inside this transaction: {by})",
                    was.name,
                    said.join(", ")
                )
            })
        })
        .collect();
    Check::no_rows(
        phase,
        &format!("triggers of the written tables as they were before {before}"),
        CheckKind::Guard,
        changed,
    )
}

/// A trigger held off that is not held off any more, as
/// [`held_off_enabled_again`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHeldOff {
    /// The trigger with its table, what became of it and when, and the
    /// event triggers likely behind it.
    pub said: String,
    /// Its name now belongs to another trigger, or it is gone: the
    /// hold-off's DISABLE and ENABLE (by name) no longer reach the trigger
    /// proven a stamp.
    pub replaced: bool,
}

/// The triggers of `public.table` named in `held_off`, followed by the oid
/// they had at the start (`ddl::record_start_sql`), that are not held off
/// now, while the push or rollback holds them off: something its own
/// `DISABLE TRIGGER` fired (an app's event trigger on `ddl_command_end`)
/// enabled one again, so the stamp fires on the updates and, re-enabled
/// once more before COMMIT, looks at the end exactly as it started; or
/// replaced it — renamed it away (or dropped it) and made another trigger,
/// enabled, under its name: that one fires on the updates, unproven, and
/// the hold-off's ENABLE by name would not reach the stamp. (A replacement
/// left disabled fires on nothing here; the DDL check before COMMIT names
/// it, `ddl::OwnDdl`.)
/// Each is said with its table, its mode now, a definition replaced in
/// place (`CREATE OR REPLACE TRIGGER` enables it too), for a replacement
/// both triggers (by oid: what the held-off one is named now, and where
/// the one under its name comes from), and the enabled event triggers
/// whose function names it or creates, renames or enables triggers.
/// `when` says at which point it was found (`before the updates ran`).
/// One unnamed statement, to pipeline behind the DISABLE (or in front of
/// the ENABLE) at no extra round trip. Empty: all still off.
pub async fn held_off_enabled_again(
    tx: &Transaction<'_>,
    table: &str,
    held_off: &[String],
    when: &str,
) -> Result<Vec<NotHeldOff>> {
    let rel = "pg_catalog.to_regclass($1)";
    let rows = tx
        .query_typed(
            &format!(
                "WITH held AS ( \
                   SELECT h.name, {was} AS was FROM pg_catalog.unnest($2::text[]) h(name)), \
                 found AS ( \
                   SELECT h.name, h.was, \
                          coalesce(h.was, (SELECT x.oid FROM pg_catalog.pg_trigger x \
                                           WHERE x.tgrelid = {rel} AND x.tgname::text = h.name \
                                             AND NOT x.tgisinternal)) AS held_oid \
                   FROM held h) \
                 SELECT f.name, t.tgname::text, t.tgenabled::text, {changed}, \
                   f.was IS NOT NULL AND t.oid IS NULL, o.oid::int8, o.tgenabled::text, {o_was}, \
                   t.oid::int8, \
                   (SELECT pg_catalog.string_agg(pg_catalog.format('event trigger %s on %s \
                             (function %s.%s())', e.evtname, e.evtevent, n.nspname, p.proname), \
                           '; ' ORDER BY e.evtname) \
                      FROM pg_catalog.pg_event_trigger e \
                      JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid \
                      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                     WHERE e.evtenabled IN ('O', 'A') \
                       AND (pg_catalog.strpos(pg_catalog.lower(p.prosrc), pg_catalog.lower(f.name)) > 0 \
                         OR p.prosrc ~* 'enable\\s+((always|replica)\\s+)?trigger' \
                         OR p.prosrc ~* 'create\\s+(or\\s+replace\\s+)?trigger' \
                         OR p.prosrc ~* 'alter\\s+trigger')) \
                 FROM found f \
                 LEFT JOIN pg_catalog.pg_trigger t ON t.oid = f.held_oid \
                 LEFT JOIN pg_catalog.pg_trigger o ON o.tgrelid = {rel} AND o.tgname::text = f.name \
                   AND NOT o.tgisinternal AND o.oid IS DISTINCT FROM f.held_oid \
                 WHERE t.tgenabled <> 'D' OR o.tgenabled <> 'D' OR (f.was IS NOT NULL AND t.oid IS NULL) \
                 ORDER BY 1",
                was = crate::db::ddl::trigger_oid_at_start("$3", "h.name"),
                changed = crate::db::ddl::trigger_definition_change("t"),
                o_was = crate::db::ddl::trigger_name_at_start("o.oid"),
            ),
            &[
                (
                    &format!("public.{}", crate::types::quote_ident(table)),
                    Type::TEXT,
                ),
                (&held_off, Type::TEXT_ARRAY),
                (&format!("public.{table}"), Type::TEXT),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let now_named: Option<String> = r.get(1);
            let mode: Option<String> = r.get(2);
            let definition = r
                .get::<_, Option<String>>(3)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            let dropped: bool = r.get(4);
            let other: Option<i64> = r.get(5);
            let other_mode: Option<String> = r.get(6);
            let other_was: Option<String> = r.get(7);
            let held_oid: Option<i64> = r.get(8);
            let by = r.get::<_, Option<String>>(9).map_or_else(
                || {
                    "no enabled event trigger's function names it or creates, renames or enables \
                     triggers: look for one calling a function that does, or building the command"
                        .to_string()
                },
                |e| {
                    format!(
                        "event triggers whose function names it or creates, renames or enables \
                         triggers: {e}"
                    )
                },
            );
            let head = format!("trigger {name} on public.{table}");
            let Some(other) = other else {
                if dropped {
                    return NotHeldOff {
                        said: format!(
                            "{head}, held off (DISABLE TRIGGER), was dropped {when}; {by}"
                        ),
                        replaced: true,
                    };
                }
                let renamed = now_named
                    .filter(|n| n != &name)
                    .map(|n| format!(" (renamed to {n})"))
                    .unwrap_or_default();
                return NotHeldOff {
                    said: format!(
                        "{head}{renamed}{definition}, held off (DISABLE TRIGGER), was enabled \
                         again ({}) {when}; {by}",
                        enabled_as_said(mode.as_deref().unwrap_or_default())
                    ),
                    replaced: false,
                };
            };
            let from = match other_was {
                None => "made inside this transaction".to_string(),
                Some(was) if was == name => "there at the start".to_string(),
                Some(was) => format!("named {was} at the start"),
            };
            let held = match (dropped, held_oid, now_named) {
                (true, _, _) | (_, None, _) | (_, _, None) => {
                    "the trigger held off is gone (dropped)".to_string()
                }
                (false, Some(oid), Some(now)) => format!(
                    "the trigger held off (oid {oid}) is now named {now} ({}{definition})",
                    enabled_as_said(mode.as_deref().unwrap_or_default())
                ),
            };
            NotHeldOff {
                said: format!(
                    "{head}, held off (DISABLE TRIGGER), was replaced {when}: its name now \
                     belongs to another trigger (oid {other}, {from}, {}), and {held}; {by}",
                    enabled_as_said(other_mode.as_deref().unwrap_or_default())
                ),
                replaced: true,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_do_instead_rule_s_action_is_read_from_its_definition() {
        for (def, action) in [
            (
                "CREATE RULE r AS\n    ON DELETE TO public.t DO INSTEAD  UPDATE public.t SET d = now()\n  WHERE (t.id = old.id);",
                "UPDATE",
            ),
            ("CREATE RULE r AS\n    ON DELETE TO public.t DO INSTEAD NOTHING;", "nothing"),
            (
                "CREATE RULE r AS\n    ON UPDATE TO public.t DO INSTEAD ( INSERT INTO a VALUES (1);\n UPDATE b SET x = 1; );",
                "several statements",
            ),
        ] {
            assert_eq!(instead_action(def), action, "{def}");
        }
    }

    fn plpgsql(src: &str) -> std::result::Result<(), String> {
        proves_updated_at_stamp("plpgsql", src, "", &[])
    }

    #[test]
    fn plain_stamps_under_any_name_are_proven() {
        for src in [
            "\nBEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND;\n",
            "begin new.updated_at = now(); return new; end",
            "BEGIN -- stamp\n NEW.\"updated_at\" = CURRENT_TIMESTAMP; /* why */ RETURN NEW; END;",
            "BEGIN NEW.updated_at = timezone('utc', now()); RETURN NEW; END;",
            "BEGIN NEW.updated_at = now() AT TIME ZONE 'UTC'; RETURN NEW; END;",
        ] {
            assert_eq!(plpgsql(src), Ok(()), "{src}");
        }
    }

    #[test]
    fn anything_more_is_not_a_stamp() {
        for src in [
            "BEGIN RAISE EXCEPTION 'append-only'; END;",
            "BEGIN INSERT INTO hist SELECT OLD.*; NEW.updated_at := now(); RETURN NEW; END;",
            "BEGIN NEW.updated_at := now(); NEW.version := OLD.version + 1; RETURN NEW; END;",
            "BEGIN NEW.updated_at := now(); RETURN OLD; END;",
            "BEGIN NEW.\"Updated_At\" := now(); RETURN NEW; END;",
            "BEGIN NEW.created_at := now(); RETURN NEW; END;",
            "BEGIN NEW.updated_at := '2020-01-01'; RETURN NEW; END;",
            "BEGIN IF true THEN NEW.updated_at := now(); END IF; RETURN NEW; END;",
        ] {
            assert!(plpgsql(src).is_err(), "{src}");
        }
        assert!(proves_updated_at_stamp("sql", "select 1", "", &[]).is_err());
    }

    #[test]
    fn a_path_searches_pg_catalog_first_unless_it_lists_it_later() {
        assert_eq!(searched_before_catalog("app, pg_catalog", "u"), ["app"]);
        assert_eq!(
            searched_before_catalog("\"$user\", \"My App\" ,PG_CATALOG, public", "u"),
            ["u", "My App"]
        );
        assert!(searched_before_catalog("public, extensions, pg_temp", "u").is_empty());
        assert!(searched_before_catalog("\"\"", "u").is_empty());
        assert!(searched_before_catalog("pg_catalog, app", "u").is_empty());
    }

    #[test]
    fn a_stamp_s_now_is_the_app_s_when_its_path_finds_that_first() {
        let lookup = NameLookup {
            user: "postgres".into(),
            app_path: "\"$user\", public".into(),
            functions: vec![("app".into(), "now".into())],
            types: vec![],
        };
        let stamp = "BEGIN NEW.updated_at := now(); RETURN NEW; END;";
        let why = lookup.shadowed(stamp, Some("app, pg_catalog")).unwrap();
        assert!(why.contains("could call app.now()"), "{why}");
        assert!(why.contains("SET on the function"), "{why}");
        assert_eq!(lookup.shadowed(stamp, Some("app")), None);
        assert_eq!(lookup.shadowed(stamp, None), None);
        let current = "BEGIN NEW.updated_at := current_timestamp; RETURN NEW; END;";
        assert_eq!(lookup.shadowed(current, Some("app, pg_catalog")), None);
        let app_default = NameLookup {
            app_path: "app, pg_catalog".into(),
            ..lookup
        };
        let why = app_default.shadowed(stamp, None).unwrap();
        assert!(why.contains("the app's default search_path"), "{why}");
        // W15: a function without a path is not said to have one.
        assert!(
            why.contains("the function sets no search_path of its own")
                && !why.contains("SET on the function"),
            "{why}"
        );
    }

    #[test]
    fn moddatetime_on_updated_at_only() {
        let args = |a: &str| vec![a.to_string()];
        assert_eq!(
            proves_updated_at_stamp("c", "moddatetime", "moddatetime", &args("updated_at")),
            Ok(())
        );
        assert!(
            proves_updated_at_stamp("c", "moddatetime", "moddatetime", &args("created_at"))
                .is_err()
        );
        assert!(proves_updated_at_stamp("c", "moddatetime", "", &args("updated_at")).is_err());
    }

    /// Q1: the re-read before COMMIT matches by oid. The stamp renamed away
    /// and left disabled, and a copy under its name, are two lines; a
    /// trigger as it was, one on another table and one on a table the
    /// rollback drops are none.
    #[test]
    fn triggers_are_compared_by_oid_not_by_name() {
        use crate::db::ddl::{CatalogChange, TriggerState, TriggerStates};
        let stamp = |name: &str, enabled: &str, definition: &str| TriggerState {
            name: name.into(),
            enabled: enabled.into(),
            definition: definition.into(),
        };
        let fires = "BEFORE UPDATE ON public.jtbd_library FOR EACH ROW EXECUTE FUNCTION f()";
        let never = "BEFORE UPDATE ON public.jtbd_library FOR EACH ROW WHEN (false) \
                     EXECUTE FUNCTION f()";
        let row =
            |table: &str, before: Option<TriggerState>, now: Option<TriggerState>| CatalogChange {
                catalog: "pg_trigger".into(),
                table: Some(format!("public.{table}")),
                gone: now.is_none(),
                trigger: Some(TriggerStates { before, now }),
                ..Default::default()
            };
        let on = |table: &str| TriggerReport {
            table: table.into(),
            name: "set_updated_at".into(),
            timing: "BEFORE".into(),
            level: "ROW".into(),
            events: vec!["UPDATE".into()],
            function: "f()".into(),
            action: TriggerAction::HeldOff,
            note: String::new(),
            enabled: "O".into(),
            stamps_updated_at: true,
            unproven_stamp: None,
        };
        let changes = vec![
            row(
                "jtbd_library",
                Some(stamp("set_updated_at", "O", fires)),
                Some(stamp("stamp_kept", "D", fires)),
            ),
            row(
                "jtbd_library",
                None,
                Some(stamp("set_updated_at", "O", never)),
            ),
            row(
                "workflows",
                Some(stamp("set_updated_at", "O", fires)),
                Some(stamp("set_updated_at", "O", fires)),
            ),
            row("apps", None, Some(stamp("audit", "O", fires))),
            row("tasks", Some(stamp("audit", "O", fires)), None),
        ];
        let triggers = [on("jtbd_library"), on("workflows"), on("tasks")];
        let check =
            triggers_as_they_were("writes", &changes, &triggers, &["tasks".into()], "the push");
        assert_eq!(
            check.rows,
            vec![
                "trigger set_updated_at on public.jtbd_library: renamed to stamp_kept, enabled \
                 before the push, disabled now (changed inside this transaction: by an event \
                 trigger or a function it ran)"
                    .to_string(),
                "trigger set_updated_at on public.jtbd_library: a new trigger, not the one named \
                 so before the push (created inside this transaction: by an event trigger or a \
                 function it ran)"
                    .to_string(),
            ]
        );
    }
}
