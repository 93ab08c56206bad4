//! Reviewer findings (issue 10) around what real projects leave on the
//! database and the snapshot file: a soft-delete rule added after a push,
//! a role switched by `SET ROLE` on a pooled connection, a snapshot another
//! program holds. Every test that writes compares the WHOLE database
//! before and after.

mod common;

use common::{TestRole, World};

/// The plan fixtures plus `extra` SQL, and the binary's one rehearsed
/// snapshot of the plain fixtures (the additions leave the pulled tables
/// as they are).
fn world(tag: &str, extra: &str) -> World {
    World::loaded(tag, "plan")
        .with_sql(extra)
        .with_shared_snapshot()
}

/// A soft-delete rule the app adds after the push turns the rollback's
/// DELETE of the pushed rows into an UPDATE. Before: the rollback said
/// "workflows: 0 of 227 inserted rows were found", as if the rows were
/// gone. Now it refuses up front, naming the rule, its table and what it
/// does, dry run and --confirm alike, and changes nothing.
#[test]
fn a_soft_delete_rule_added_after_the_push_is_named_by_the_rollback() {
    let w = world("soft_delete_rule", "");
    let receipt = w.push_confirmed();
    w.exec(
        "ALTER TABLE public.workflows ADD COLUMN deleted_at timestamptz;
         CREATE RULE workflows_soft_delete AS ON DELETE TO public.workflows
           DO INSTEAD UPDATE public.workflows SET deleted_at = now() WHERE id = OLD.id;",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "rule workflows_soft_delete on workflows turns DELETE into UPDATE",
            "cannot remove the pushed rows",
            r#"ALTER TABLE public."workflows" DISABLE RULE "workflows_soft_delete""#,
            "nothing was changed",
        ]);
        assert!(!run.all().contains("were found"), "{}", run.show());
        before.assert_same(&w.state(), "a rollback refused over a rule");
    }
    // As advised: with the rule disabled the same receipt rolls back, and
    // the pushed rows are deleted, not marked.
    w.exec("ALTER TABLE public.workflows DISABLE RULE workflows_soft_delete;");
    w.rollback(&receipt, &["--confirm"]).ok();
    assert_eq!(
        w.count("SELECT count(*) FROM public.workflows WHERE deleted_at IS NOT NULL"),
        0
    );
    assert_eq!(
        w.count("SELECT count(*) FROM public.workflows"),
        before.row_count("public.workflows") as i64 - 227
    );
}

/// A `SET ROLE` in effect for the login (`ALTER ROLE app SET role`, or one
/// a pooler left on a reused session) makes the push run as that role:
/// Postgres checks its privileges, not the login's. Before, the refusal
/// said "the connected role lacks privileges" and named no role, so the
/// user granted them to the login role and nothing changed; and a setting
/// made for the login was advised reset on the switched-to role. Now every
/// such message names the role the push runs as (current_user) and, when
/// it differs, the login role (session_user) and the SET ROLE between
/// them. Nothing is written.
#[test]
fn advice_names_the_role_a_set_role_switched_to() {
    // Declared first, so they are dropped after the database.
    let app = TestRole::create("app", "LOGIN");
    let reader = TestRole::create("reader", "NOLOGIN");
    let (app, reader) = (app.name.clone(), reader.name.clone());
    let w = world("set_role", "");
    w.exec(&format!(
        "GRANT USAGE ON SCHEMA public TO {reader}; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}; \
         GRANT USAGE ON SCHEMA public TO {app}; \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {app}; \
         GRANT {reader} TO {app}; ALTER ROLE {app} SET role = '{reader}';"
    ));
    let url = w.url().replacen("postgres@", &format!("{app}@"), 1);
    let before = w.state();
    let run = w.push_as(&url, &[]);
    run.refused(&[
        "INSERT on public.\"workflows\" (to insert 227 rows)",
        &format!("role {reader}, which the transaction runs as (current_user)"),
        &format!("not for {app}, the role the connection logged in as (session_user)"),
        "SET ROLE is in effect",
        &format!("Grant them to {reader}"),
    ]);
    before.assert_same(&w.state(), "a push refused for want of grants");

    // The receipts table, once an admin's push made it: named the same way.
    let receipt = w.push_confirmed();
    let pushed = w.state();
    w.push_as(&url, &[]).code(2).error_has(&[
        &format!("role {reader} cannot use the tool's receipts table"),
        &format!("GRANT USAGE ON SCHEMA sandbox TO \"{reader}\";"),
        &format!("not for {app}, the role the connection logged in as (session_user)"),
    ]);
    pushed.assert_same(&w.state(), "a push refused for want of receipts grants");

    // A setting made for the login role is reset on the login role.
    w.exec(&format!(
        "ALTER ROLE {app} SET default_transaction_read_only = on;"
    ));
    w.push_as(&url, &[]).code(2).error_has(&[
        "default_transaction_read_only = on",
        &format!("ALTER ROLE \"{app}\" RESET default_transaction_read_only"),
    ]);
    pushed.assert_same(&w.state(), "a push refused on a read-only session");
    w.rollback(&receipt, &["--confirm"]).ok();
    w.exec(&format!("ALTER ROLE {app} RESET ALL;"));
}

fn rows(w: &World, sql: &str) -> Vec<Vec<String>> {
    common::text_rows(&mut w.db.client(), sql)
}

/// `created_at` is Postgres's to fill (`now()`), `priority` has a constant
/// default, `note` none.
const ITEMS: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     note text, priority int DEFAULT 5, \
     created_at timestamptz NOT NULL DEFAULT now()); \
     INSERT INTO public.dh_item (id, name, note, priority, created_at) VALUES \
     ('a', 'alpha', 'kept', 7, '2020-01-01 00:00:00+00'), \
     ('b', 'beta', 'kept', 8, '2020-02-02 00:00:00+00');";

/// An upsert copying `excluded.<column>` of a column its INSERT does not
/// list gives the row what Postgres's default gives the proposed row.
/// Before: the rehearsal showed the working table's internal marker
/// ("\0<not listed by the statement>") as the row's value. Now a constant
/// default (or none: NULL) is staged as Postgres writes it, and pushed so;
/// a default only Postgres computes (`now()`) fails a named check naming
/// the row and the column, and push refuses with nothing written.
#[test]
fn an_upsert_copying_excluded_of_an_unlisted_column_never_shows_the_marker() {
    let w = common::item_world(
        "upsert_excluded_constant",
        ITEMS,
        &["INSERT INTO dh_item (id, name) VALUES ('a', 'alpha-2') \
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, note = excluded.note, \
           priority = excluded.priority;"],
    );
    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    assert!(
        !run.all().contains("not listed by the statement"),
        "{}",
        run.show()
    );
    let before = w.state();
    let receipt = w.push_confirmed();
    // What Postgres itself does with the same statement.
    assert_eq!(
        rows(
            &w,
            "SELECT name, coalesce(note, 'NULL'), priority::text, created_at::text \
             FROM public.dh_item WHERE id = 'a'"
        ),
        [["alpha-2", "NULL", "5", "2020-01-01 00:00:00+00"]],
        "{report:#}"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");

    let w = common::item_world(
        "upsert_excluded_computed",
        ITEMS,
        &[
            "INSERT INTO dh_item (id, name) VALUES ('b', 'beta-2'), ('c', 'gamma') \
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
           created_at = excluded.created_at;",
        ],
    );
    let before = w.state();
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    assert!(
        !run.all().contains("not listed by the statement"),
        "{}",
        run.show()
    );
    let failed: Vec<&str> = common::failed_checks(&report)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["dh_item: upserts copy no column left to Postgres from excluded"],
        "{report:#}"
    );
    let check = common::check_named(&report, failed[0]);
    assert_eq!(common::check_rows(check), ["id=b: created_at"]);
    assert!(
        check["expected"]
            .as_str()
            .unwrap()
            .contains("created_at (default now())"),
        "{check:#}"
    );
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).code(1).clear_error();
        before.assert_same(&w.state(), "a refused push");
    }
}

/// A column a phase adds (here through a domain with a DEFAULT) and sets,
/// then a later phase's REPLACE of the row not listing it: Postgres's
/// UPDATE of the listed columns keeps it. Before: the rehearsal's REPLACE
/// reset it to the domain's default, and the push wrote that over it. A
/// new row leaving it out still gets the default.
#[test]
fn a_replace_keeps_a_column_an_earlier_phase_added_and_set() {
    let w = World::empty(
        "replace_added_column",
        &format!("CREATE DOMAIN public.item_tag AS text DEFAULT 'none'; {ITEMS}"),
    );
    let plan = common::item_plan(
        w.dir.path(),
        &[
            "UPDATE dh_item SET tag = 'set-in-phase-1' WHERE id = 'a';",
            "REPLACE INTO dh_item (id, name) VALUES ('a', 'alpha-2'); \
             INSERT INTO dh_item (id, name, created_at) \
               VALUES ('z', 'zed', '2021-01-01 00:00:00+00');",
        ],
    );
    std::fs::write(
        plan.join("target.json"),
        r#"{"tables": [], "added_columns": [
            {"table": "dh_item", "phase": "1", "column": {"name": "tag", "type": "item_tag"}}
        ]}"#,
    )
    .unwrap();
    let w = w.with_plan(&plan).pulled();
    w.rehearse(&[]).ok().stdout_has("PASSED");
    assert_eq!(
        common::staged_rows(
            &w.snapshot,
            "SELECT id, name, coalesce(tag, 'NULL') FROM staged_dh_item ORDER BY id"
        ),
        [
            ["a", "alpha-2", "set-in-phase-1"],
            ["b", "beta", "none"],
            ["z", "zed", "none"]
        ]
    );
    let before = w.state();
    let receipt = w.push_confirmed();
    assert_eq!(
        rows(&w, "SELECT id, name, tag FROM public.dh_item ORDER BY id"),
        [
            ["a", "alpha-2", "set-in-phase-1"],
            ["b", "beta", "none"],
            ["z", "zed", "none"]
        ]
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// A snapshot another program holds (a DB browser with unsaved changes)
/// when the push commits: the receipt is in the database, and the advice
/// is to let go of the file — it is fine — not to "make it writable", which
/// it is. Before, the warning said "make it writable" whatever the cause.
/// The receipt id stays on stdout and in the warning; pushing again once
/// the file is free records it; the same for a rollback.
#[test]
fn a_locked_snapshot_after_the_commit_is_named_as_locked() {
    let w = world("locked_snapshot", "");
    let before = w.state();
    let hold = || {
        let holder = rusqlite::Connection::open(&w.snapshot).unwrap();
        // A write transaction left open, as a DB browser keeps one.
        holder
            .execute_batch("BEGIN IMMEDIATE; CREATE TABLE browser_edit (x int);")
            .unwrap();
        holder
    };
    let holder = hold();
    let run = w.push(&["--confirm"]);
    drop(holder);
    run.ok().stdout_has("Applied");
    let receipt = run.receipt();
    run.stderr_has(&format!("the receipt {receipt} is in sandbox.receipts"))
        .stderr_has("locked by another program")
        .stderr_has("save or close it there");
    assert!(!run.stderr.contains("make it writable"), "{}", run.show());
    let applied = w.state();
    w.push(&[]).ok().stdout_has("Already applied");
    applied.assert_same(&w.state(), "push again, already applied");

    let snap = w.snap().to_string();
    let holder = hold();
    let run = w.rollback(&receipt, &["--confirm", "--snapshot", &snap]);
    drop(holder);
    run.ok()
        .stdout_has("Rolled back")
        .stderr_has(&format!(
            "receipt {receipt} is rolled back in sandbox.receipts"
        ))
        .stderr_has("locked by another program")
        .stderr_has("save or close it there");
    assert!(!run.stderr.contains("make it writable"), "{}", run.show());
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
    w.rollback(&receipt, &["--confirm", "--snapshot", &snap])
        .ok()
        .stdout_has("marked rolled back too");
}

/// A table the plan creates named `<pulled table>_jsonb` (the row-JSON
/// view the rehearsal gives the plan's SQL) and a pulled table named
/// `sqlite_*` (SQLite keeps those names for itself) are named, with what
/// to do, exit 2. Before: raw SQLite errors.
#[test]
fn tables_named_like_the_snapshot_s_own_objects_are_named() {
    let w = World::empty(
        "reserved_created",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text); \
         INSERT INTO public.dh_item VALUES ('a', 'alpha'); \
         CREATE TABLE public.sqlite_things (id int PRIMARY KEY);",
    );
    let plan = common::item_plan(
        w.dir.path(),
        &["INSERT INTO dh_item_jsonb (id) SELECT id FROM dh_item;"],
    );
    let json = plan.join("plan.json");
    let mut p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    p["phases"][0]["writes"] = serde_json::json!(["dh_item_jsonb"]);
    std::fs::write(&json, serde_json::to_string_pretty(&p).unwrap()).unwrap();
    std::fs::write(
        plan.join("target.json"),
        r#"{"tables": [{"name": "dh_item_jsonb", "phase": "1",
            "columns": [{"name": "id", "type": "text", "not_null": true}],
            "primary_key": ["id"]}], "added_columns": []}"#,
    )
    .unwrap();
    let w = w.with_plan(&plan);
    let before = w.state();
    w.pull(&[]).ok();
    w.rehearse(&[]).code(2).error_has(&[
        "dh_item_jsonb (the row-JSON view of a pulled table is <table>_jsonb)",
        "rename them in the plan's schema file (target.json)",
    ]);
    w.push(&["--confirm"]).code(1).clear_error();
    before.assert_same(&w.state(), "a refused rehearsal and push");

    p["tables"]["sources"] = serde_json::json!(["dh_item", "sqlite_things"]);
    std::fs::write(&json, serde_json::to_string_pretty(&p).unwrap()).unwrap();
    std::fs::remove_file(&w.snapshot).unwrap();
    w.pull(&[])
        .code(2)
        .error_has(&["sqlite_things (SQLite reserves names starting with sqlite_"]);
    assert!(!w.snapshot.exists(), "no snapshot written");
    before.assert_same(&w.state(), "a refused pull");
}

/// An app trigger that tells another database when a workflow is deleted
/// (dblink: the other connection commits on its own), on `table`
/// (`public.workflows` itself, or an app table a cascade reaches), and
/// the table there that counts what it was told.
fn delete_forwarding_world(tag: &str, table_sql: &str, trigger: &str) -> World {
    let w = world(tag, table_sql);
    let conninfo = w.with_dblink();
    w.exec(&format!(
        "CREATE SCHEMA remote_store;
         CREATE TABLE remote_store.deleted (n int);
         CREATE FUNCTION public.forget_remotely() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           PERFORM dblink_exec('{conninfo}', 'INSERT INTO remote_store.deleted VALUES (1)');
           RETURN NULL;
         END $f$;
         {trigger}",
    ));
    w
}

/// The whole database but the other connection's table and the tool's
/// receipts.
fn but_remote(state: common::DatabaseState) -> common::DatabaseState {
    let mut s = state.without_schema("sandbox");
    s.rows.remove("remote_store.deleted");
    s
}

/// U19: push rehearses its own rollback in its transaction, and that
/// rehearsal deletes the pushed workflows, so an app's ON DELETE trigger
/// calling dblink really told the other database — in the preflight too,
/// which then said "Nothing was written". Before: with
/// --allow-external-effects (which the push needs for that trigger) the
/// preflight left 227 rows in the other connection's table and printed
/// "Nothing was written."; so did --confirm. Now the rollback's checks run
/// but the undo is not rehearsed, by name; nothing reaches the other
/// connection; the preflight says what the allowed calls may have done.
/// The rollback itself still refuses unless allowed, and then does it.
#[test]
fn the_push_does_not_rehearse_a_rollback_whose_delete_trigger_calls_dblink() {
    let w = delete_forwarding_world(
        "u19_delete_dblink",
        "",
        "CREATE TRIGGER workflows_forget AFTER DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.forget_remotely();",
    );
    let remote = || w.count("SELECT count(*) FROM remote_store.deleted");
    let before = w.state();
    w.push(&[]).refused(&[
        "trigger workflows_forget on public.workflows",
        "dblink",
        "--allow-external-effects",
    ]);
    before.assert_same(&w.state(), "a push refused for an external effect");
    let run = w.push(&["--allow-external-effects"]);
    run.ok()
        .stdout_has("Rollback not rehearsed: trigger workflows_forget on public.workflows")
        .stdout_has("calls dblink_exec")
        .stdout_has("No row was kept, but the calls outside the transaction allowed above");
    assert!(!run.all().contains("Nothing was written"), "{}", run.show());
    assert!(!run.all().contains("Rollback rehearsed in the transaction"));
    assert_eq!(
        remote(),
        0,
        "the preflight's rollback rehearsal told the other database"
    );
    before.assert_same(
        &w.state(),
        "a preflight (the other connection's table included)",
    );

    let run = w.push(&["--allow-external-effects", "--confirm"]);
    run.ok()
        .stdout_has("Rollback not rehearsed: trigger workflows_forget on public.workflows");
    assert_eq!(
        remote(),
        0,
        "the push's rollback rehearsal told the other database"
    );
    let receipt = run.receipt();
    let pushed = w.state();
    w.rollback(&receipt, &["--confirm"]).refused(&[
        "trigger workflows_forget on public.workflows",
        "--allow-external-effects",
    ]);
    pushed.assert_same(&w.state(), "a rollback refused for an external effect");
    // Allowed, the dry run does what the rollback does, and says so.
    let run = w.rollback(&receipt, &["--allow-external-effects"]);
    run.ok()
        .stdout_has("No row was kept, but the calls outside the transaction allowed above");
    assert!(!run.all().contains("Nothing was changed"), "{}", run.show());
    assert_eq!(remote(), 227, "the allowed dry run told the other database");
    w.rollback(&receipt, &["--confirm", "--allow-external-effects"])
        .ok();
    assert_eq!(remote(), 454, "the rollback itself, allowed, told it");
    but_remote(before).assert_same(&but_remote(w.state()), "rolled back");
}

/// V2: an undo trigger writing a server file (`COPY … TO '/path'`) and a
/// non-transactional logical message (Supabase Realtime and CDC consumers
/// see it at once). Before, neither was an external effect: the dry run's
/// rehearsed rollback wrote the file and said no row was written. Now the
/// preflight is refused by name without `--allow-external-effects`, and with
/// it the undo is not rehearsed; the file never appears.
#[test]
fn an_undo_trigger_writing_a_server_file_or_a_logical_message_is_an_external_effect() {
    let file = format!("/tmp/sandbox_v2_{}.txt", std::process::id());
    let _ = std::fs::remove_file(&file);
    let w = world(
        "v2_copy_to_file",
        &format!(
            "CREATE FUNCTION public.on_wf_delete() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN COPY (SELECT 'deleted', now()) TO '{file}';
                   PERFORM pg_logical_emit_message(false, 'wf', 'deleted'); RETURN OLD; END $$;
             CREATE TRIGGER wf_copy AFTER DELETE ON public.workflows
               FOR EACH STATEMENT EXECUTE FUNCTION public.on_wf_delete();"
        ),
    );
    let before = w.state();
    w.push(&[]).refused(&[
        "trigger wf_copy on public.workflows",
        "COPY … TO a server file",
        "pg_logical_emit_message (non-transactional",
        "--allow-external-effects",
    ]);
    before.assert_same(&w.state(), "a push refused for an external effect");
    w.push(&["--allow-external-effects"])
        .ok()
        .stdout_has("Rollback not rehearsed: trigger wf_copy on public.workflows");
    before.assert_same(&w.state(), "a preflight");
    assert!(
        !std::path::Path::new(&file).exists(),
        "the preflight's rehearsed rollback wrote {file}"
    );
}

/// V25: an app whose expressions tell another database (dblink) — a
/// trigger's WHEN clause, a CHECK constraint (through a SQL helper), a
/// domain's CHECK, a column default, an index expression (through an
/// IMMUTABLE-declared plpgsql wrapper, on a column: a constant one would be
/// evaluated when any query is planned) and a rule on its audit table, which
/// a trigger fills for each pushed workflow. `remote` is the other
/// database's connection string.
fn telling_expressions(remote: &str) -> String {
    format!(
        "CREATE FUNCTION public.tell(what text) RETURNS boolean LANGUAGE sql AS $f$
           SELECT public.dblink_exec('{remote}', format('INSERT INTO told VALUES (%L)', what))
             IS NOT NULL $f$;
         CREATE FUNCTION public.tell_immutably(what text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
           AS $f$ BEGIN RETURN public.tell(what); END $f$;
         CREATE FUNCTION public.nothing() RETURNS trigger LANGUAGE plpgsql
           AS $f$ BEGIN RETURN NULL; END $f$;
         CREATE DOMAIN public.told_text AS text CONSTRAINT told_check CHECK (public.tell('domain check'));
         CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, workflow_id uuid,
           note public.told_text, told boolean DEFAULT public.tell('default'));
         CREATE INDEX audit_told ON public.audit_log ((public.tell_immutably(note)));
         CREATE RULE audit_told AS ON INSERT TO public.audit_log DO ALSO SELECT public.tell('rule');
         CREATE FUNCTION public.audit_created() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN INSERT INTO public.audit_log (workflow_id, note) VALUES (NEW.id, 'created');
               RETURN NULL; END $f$;
         CREATE TRIGGER workflows_audit_created AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.audit_created();
         CREATE TRIGGER workflows_when AFTER INSERT ON public.workflows
           FOR EACH ROW WHEN (public.tell('when')) EXECUTE FUNCTION public.nothing();
         ALTER TABLE public.jtbd_library ADD CONSTRAINT jtbd_told CHECK (public.tell('check')) NOT VALID;"
    )
}

/// V25: the search for calls outside the transaction read only trigger
/// functions. Before: a dry run (`push --allow-writes audit_log`) ran every
/// expression above for real — the other database got 1016 rows (227 each
/// from the WHEN clause, the domain's CHECK, the default and the rule, 105
/// from the CHECK on the 105 updated jtbd_library rows, 3 from the index),
/// and the output said no row was written. Now each is named (what, where,
/// the chain of calls) and refuses the preflight and --confirm before
/// anything runs; nothing reaches the other database. Allowed, the push runs
/// them, and the rollback refuses the undo by name (its CHECK runs again on
/// the restored rows) without telling the other database anything.
#[test]
fn calls_outside_the_transaction_in_where_clauses_checks_defaults_indexes_and_rules_refuse() {
    let other = common::TestDb::create("v25_other");
    other
        .client()
        .batch_execute("CREATE TABLE told (what text)")
        .unwrap();
    let w = world("v25_expressions", "");
    w.with_dblink();
    let (host, port, user, password) = w.loopback();
    let password = password
        .map(|p| format!(" password={p}"))
        .unwrap_or_default();
    let remote = format!(
        "host={host} port={port} dbname={} user={user}{password}",
        other.name
    );
    w.exec(&telling_expressions(&remote));
    let told = || common::count(&mut other.client(), "SELECT count(*) FROM told");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(&[&["--allow-writes", "audit_log"], confirm].concat())
            .refused(&[
                "WHEN clause of trigger workflows_when on public.workflows (function tell(text) → \
                 dblink_exec(…)): calls dblink_exec(…) (dblink)",
                "CHECK constraint jtbd_told on public.jtbd_library (function tell(text) → dblink_exec",
                "CHECK constraint told_check of domain told_text (column note of public.audit_log) \
                 (function tell(text) → dblink_exec",
                "default of column told on public.audit_log (function tell(text) → dblink_exec",
                "index audit_told on public.audit_log (function tell_immutably(text) → tell(text) → \
                 dblink_exec",
                "rule audit_told on public.audit_log (function tell(text) → dblink_exec",
                "--allow-external-effects",
            ]);
        assert_eq!(told(), 0, "a refused push told the other database");
        before.assert_same(&w.state(), "a push refused for its expressions' calls");
    }
    // Allowed: the push runs them (the consent given), and says the undo is
    // not rehearsed, the CHECK being evaluated again for the restored rows.
    let run = w.push(&[
        "--allow-writes",
        "audit_log",
        "--allow-external-effects",
        "--confirm",
    ]);
    run.ok()
        .stdout_has("Rollback not rehearsed: CHECK constraint jtbd_told on public.jtbd_library");
    let receipt = run.receipt();
    let told_by_push = told();
    assert!(told_by_push > 0, "the allowed push made its calls");
    let pushed = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "CHECK constraint jtbd_told on public.jtbd_library (function tell(text) → dblink_exec",
            "--allow-external-effects",
        ]);
        assert_eq!(
            told(),
            told_by_push,
            "a refused rollback told the other database"
        );
        pushed.assert_same(&w.state(), "a rollback refused for its expressions' calls");
    }
}

/// U19, through a foreign key: the rollback's delete of the pushed
/// workflows runs the ON DELETE CASCADE of an app table, whose statement
/// trigger fires even though no row there references them. Before: no
/// check looked at that table; the preflight exited 0, "Nothing was
/// written", with the other connection told by the rollback rehearsal.
/// Now it is named as reached by the foreign key and refused before
/// anything runs; allowed, the rollback is not rehearsed.
#[test]
fn a_trigger_a_cascade_reaches_is_checked_before_the_rollback_is_rehearsed() {
    let w = delete_forwarding_world(
        "u19_cascade_dblink",
        "CREATE TABLE public.workflow_notes (
           workflow_id uuid REFERENCES public.workflows ON DELETE CASCADE, note text);",
        "CREATE TRIGGER notes_forget AFTER DELETE ON public.workflow_notes
           FOR EACH STATEMENT EXECUTE FUNCTION public.forget_remotely();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "trigger notes_forget on public.workflow_notes (a foreign key's ON DELETE/UPDATE \
             action reaches it)",
            "dblink",
        ]);
        before.assert_same(&w.state(), "a push refused for an external effect");
    }
    let run = w.push(&["--allow-external-effects"]);
    run.ok()
        .stdout_has("Rollback not rehearsed: trigger notes_forget on public.workflow_notes");
    assert!(!run.all().contains("Nothing was written"), "{}", run.show());
    before.assert_same(
        &w.state(),
        "a preflight (the other connection's table included)",
    );
}

/// An app logging its workflows: an AFTER INSERT trigger appends an audit
/// row per workflow, an AFTER DELETE trigger deletes the workflow's audit
/// rows — the app's own among them.
const AUDITED: &str = "
CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, workflow_id uuid, note text);
CREATE FUNCTION public.audit_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit_log (workflow_id, note) VALUES (NEW.id, 'created'); RETURN NULL; END $$;
CREATE TRIGGER workflows_audit_created AFTER INSERT ON public.workflows
  FOR EACH ROW EXECUTE FUNCTION public.audit_created();
CREATE FUNCTION public.audit_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN DELETE FROM public.audit_log WHERE workflow_id = OLD.id; RETURN NULL; END $$;
CREATE TRIGGER workflows_audit_forget AFTER DELETE ON public.workflows
  FOR EACH ROW EXECUTE FUNCTION public.audit_forget();";

/// U16: `push --allow-writes audit_log` consented to the push's inserts
/// there, not to a rollback deleting the app's audit rows. Before: the
/// rollback inherited the allowance and `--confirm` deleted all 247 rows
/// (227 the push's trigger wrote, 20 the app's), exit 0. Now the dry run
/// and --confirm refuse (exit 1), naming the table, the kind and the count,
/// and change nothing; with the rollback's own `--allow-writes audit_log`
/// it goes ahead and says what it deleted.
#[test]
fn a_rollback_does_not_inherit_the_push_s_allowance_to_delete() {
    let w = world("rollback_inherits_delete", AUDITED);
    let before_push = w.state();
    // V16: the push's rehearsal of its undo judges by the rollback's own
    // allowance. Before: it ran under the push's whole allowance and said
    // "it would undo this push" with no word of the refusal below.
    w.push(&["--allow-writes", "audit_log"])
        .ok()
        .stdout_has("only with consent of its own")
        .stdout_has(
            "public.audit_log — the undo deleted 227 rows there (0 inserted, 0 updated, 227 \
             deleted; written by ",
        )
        .stdout_has("trigger workflows_audit_forget on public.workflows (function audit_forget())")
        .stdout_has("add --allow-writes public.audit_log to the rollback");
    before_push.assert_same(&w.state(), "a preflight");
    let run = w.push(&["--confirm", "--allow-writes", "audit_log"]);
    run.ok().stdout_has("public.audit_log: 227 rows");
    // The rollback it advises carries the consent listed above (before:
    // `sandbox rollback --receipt … --confirm`, which refuses).
    let undo_with = run
        .stdout
        .lines()
        .find(|l| l.contains("undo with: sandbox rollback"))
        .unwrap_or_default();
    assert!(
        undo_with.ends_with("--allow-writes public.audit_log --confirm"),
        "{}",
        run.show()
    );
    let receipt = run.receipt();
    // The app adds its own audit rows about the pushed workflows.
    w.exec(
        "INSERT INTO public.audit_log (workflow_id, note) \
         SELECT workflow_id, 'reviewed by the app' FROM public.audit_log ORDER BY id LIMIT 20;",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "public.audit_log — the undo deleted 247 rows there (0 inserted, 0 updated, 247 \
             deleted; written by ",
            "trigger workflows_audit_forget on public.workflows (function audit_forget())",
            "The push's --allow-writes public.audit_log covered the push's own writes there \
             (227 inserted, 0 updated, 0 deleted)",
            "add --allow-writes public.audit_log to the rollback",
            "nothing was changed",
        ]);
        before.assert_same(&w.state(), "a rollback refused for the app's audit rows");
    }
    // Allowed by the rollback itself: done, and said.
    w.rollback(&receipt, &["--confirm", "--allow-writes", "audit_log"])
        .ok()
        .stdout_has(
            "Deleted or updated rows the undo did not write, in tables outside the receipt \
             (allowed by this rollback's --allow-writes; they may have been the app's): \
             public.audit_log: 247 rows (0 inserted, 0 updated, 247 deleted)",
        );
    before_push
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "allowed rollback");
}

/// Runs `args` and sends it SIGINT every 2 ms, from the moment `start`
/// (polled every millisecond on a connection of the test's) says so until
/// it ends: a user pressing Ctrl-C again and again.
fn interrupted_from(
    w: &World,
    args: &[&str],
    mut start: impl FnMut(&mut postgres_sync::Client) -> bool,
) -> common::Run {
    let mut watcher = postgres_sync::Client::connect(w.url(), postgres_sync::NoTls).unwrap();
    let mut proc = common::Sandbox::new(args).spawn();
    let mut started = false;
    // `running` reaps only a process that has ended: until then the pid
    // is the child's (alive, or a zombie a signal does not harm).
    while proc.running() {
        if !started {
            started = start(&mut watcher);
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(proc.pid() as i32, libc::SIGINT) };
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    proc.finish()
}

/// The tool's backend has sent COMMIT (it is running it or ran it last).
fn commit_sent(c: &mut postgres_sync::Client) -> bool {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'sandbox' AND query = 'COMMIT'",
        &[],
    )
    .map(|r| r.get::<_, i64>(0) > 0)
    .unwrap_or(false)
}

/// The tool has connected, `delay` ago.
fn connected_for(delay: std::time::Duration) -> impl FnMut(&mut postgres_sync::Client) -> bool {
    let mut since = None;
    move |c| {
        if since.is_none() {
            let seen = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'sandbox'",
                    &[],
                )
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false);
            if seen {
                since = Some(std::time::Instant::now());
            }
        }
        since.is_some_and(|s| s.elapsed() >= delay)
    }
}

fn receipts_with_status(w: &World, status: &str) -> Vec<String> {
    if w.count(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'sandbox' AND tablename = 'receipts'",
    ) == 0
    {
        return vec![];
    }
    rows(
        w,
        &format!("SELECT id::text FROM sandbox.receipts WHERE status = '{status}' ORDER BY 1"),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// H8 U14: Ctrl-C right after COMMIT of `push --confirm` (or `rollback
/// --confirm`) ended the process (exit 130) before it printed the receipt:
/// the push was applied and the user never learned it. Now an interrupt
/// before COMMIT ends the run saying nothing was written (or undone), and
/// one after COMMIT is sent waits until the receipt line is printed. SIGINT
/// is sent again and again from chosen moments (at COMMIT, and early);
/// whatever each run did, the database and the output agree: never applied
/// (or rolled back) without its line. The whole database is compared
/// before and after each run that says it wrote nothing, and at the end.
#[test]
fn ctrl_c_never_hides_a_committed_push_or_rollback() {
    let w = world("ctrl_c", "");
    let before = w.state();
    let push: Vec<&str> = vec![
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--confirm",
    ];
    let (mut applied_after_interrupt, mut nothing_written) = (0, 0);
    for trial in 0..6 {
        let state = w.state();
        let applied = receipts_with_status(&w, "applied");
        let run = if trial % 2 == 0 {
            interrupted_from(&w, &push, commit_sent)
        } else {
            let delay = std::time::Duration::from_millis(200 * (trial as u64 / 2));
            interrupted_from(&w, &push, connected_for(delay))
        };
        let now_applied = receipts_with_status(&w, "applied");
        let new: Vec<&String> = now_applied
            .iter()
            .filter(|r| !applied.contains(r))
            .collect();
        let receipt = match new.as_slice() {
            [] => {
                assert!(
                    run.stderr.contains("nothing was written"),
                    "trial {trial}: not applied, and it does not say so: {}",
                    run.show()
                );
                state.assert_same(&w.state(), "a push interrupted before COMMIT");
                nothing_written += 1;
                continue;
            }
            [receipt] => receipt.to_string(),
            more => panic!("one push applied {more:?}"),
        };
        assert!(
            run.stdout.contains(&format!("Receipt {receipt}")),
            "trial {trial}: push applied (receipt {receipt} in sandbox.receipts) without its \
             receipt line: {}",
            run.show()
        );
        if run.code != 0 {
            applied_after_interrupt += 1;
        }
        // Undo it, interrupted at its COMMIT: rolled back with its line, or
        // nothing undone and it says so.
        let rollback = [
            "rollback",
            "--database-url",
            w.url(),
            "--receipt",
            &receipt,
            "--confirm",
        ];
        let run = interrupted_from(&w, &rollback, commit_sent);
        if receipts_with_status(&w, "rolled_back").contains(&receipt) {
            assert!(
                run.stdout
                    .contains(&format!("Rolled back receipt {receipt}")),
                "trial {trial}: rolled back without saying so: {}",
                run.show()
            );
        } else {
            assert!(
                run.stderr.contains("nothing was undone"),
                "trial {trial}: not rolled back, and it does not say so: {}",
                run.show()
            );
            w.rollback(&receipt, &["--confirm"]).ok();
        }
        before
            .without_schema("sandbox")
            .assert_same(&w.state().without_schema("sandbox"), "push, then rollback");
    }
    assert!(
        applied_after_interrupt > 0 && nothing_written > 0,
        "the interrupts hit no COMMIT ({applied_after_interrupt}) or no early moment \
         ({nothing_written})"
    );
}

/// U15: what the rehearsal took from the pulled catalog around a column
/// changed on Postgres before the push. The rehearsal staged the pushed
/// workflows with the pull-time constant default and the push writes it
/// explicitly, so a default changed or added since would be silently
/// overridden; a collation or NOT NULL changed since means the rehearsal
/// compared and checked under other rules. Before: the drift check
/// compared column names and types only, and push applied (priority 5 on
/// 227 rows where Postgres now gives 7). Now each change refuses the push
/// before anything is written, naming table, column, what it was at pull
/// and what it is now, with the advice to pull again and rehearse; undone,
/// the push goes through as rehearsed.
#[test]
fn a_column_definition_changed_since_the_pull_refuses_the_push_by_name() {
    let w = World::loaded("u15_definitions", "plan")
        .with_sql(
            "ALTER TABLE public.workflows ADD COLUMN priority int DEFAULT 5,
               ADD COLUMN settings jsonb, ADD COLUMN label text;",
        )
        .rehearsed();
    let cases = [
        (
            "ALTER TABLE public.workflows ALTER COLUMN priority SET DEFAULT 7",
            "workflows.priority: default was 5 at pull, is 7 now",
            "ALTER TABLE public.workflows ALTER COLUMN priority SET DEFAULT 5",
        ),
        (
            "ALTER TABLE public.workflows ALTER COLUMN settings SET DEFAULT '{}'",
            "workflows.settings: default was none at pull, is '{}'::jsonb now",
            "ALTER TABLE public.workflows ALTER COLUMN settings DROP DEFAULT",
        ),
        (
            "ALTER TABLE public.workflows ALTER COLUMN label TYPE text COLLATE \"C\"",
            "workflows.label: collation was the database default at pull, is C now",
            "ALTER TABLE public.workflows ALTER COLUMN label TYPE text COLLATE \"default\"",
        ),
        (
            "ALTER TABLE public.workflows ALTER COLUMN priority SET NOT NULL",
            "workflows.priority: NOT NULL was no at pull, is yes now",
            "ALTER TABLE public.workflows ALTER COLUMN priority DROP NOT NULL",
        ),
    ];
    for (change, named, undo) in cases {
        w.exec(change);
        let before = w.state();
        for confirm in [&[][..], &["--confirm"][..]] {
            let run = w.push(confirm);
            run.refused(&[
                "not in the state the snapshot was pulled from",
                "workflows column definitions unchanged since pull",
                named,
                "Take a fresh snapshot and rehearse it",
            ]);
            before.assert_same(&w.state(), change);
        }
        w.exec(undo);
    }
    w.push_confirmed();
    assert_eq!(
        w.count("SELECT count(*) FROM public.workflows WHERE priority = 5"),
        368,
        "every workflow, pushed or not, has the default the rehearsal staged"
    );
}

/// U20: columns the app added after the push — to `tasks`, a table the
/// push created, and to `workflows`, on the rows the push inserted — are
/// unknown to the receipt, so "unchanged since the push" never read them.
/// Before: the rollback dropped `tasks` with the app's notes in it and
/// deleted the 227 pushed workflows with the app's ratings, exit 0. Now
/// the dry run and --confirm refuse (exit 1), naming each table, column
/// and how many of the rows the undo removes hold a value there, and
/// change nothing; a column that is all NULL there (`tools.app_flag`) is
/// only named. (`app_rating`'s DEFAULT fills every row: values all the
/// same, but values the undo would delete all the same.) With `--discard-changes` for those columns the undo goes
/// ahead and reports what it discarded; the app's ratings of the pulled
/// workflows stay.
#[test]
fn a_rollback_refuses_to_destroy_columns_the_app_added() {
    let w = world("app_added_columns", "");
    let before_push = w.state();
    let pulled = before_push.row_count("public.workflows") as i64;
    let receipt = w.push_confirmed();
    w.exec(
        "ALTER TABLE public.tasks ADD COLUMN app_note text;
         UPDATE public.tasks SET app_note = 'the app''s note'
           WHERE id IN (SELECT id FROM public.tasks ORDER BY id LIMIT 3);
         ALTER TABLE public.tools ADD COLUMN app_flag int;
         ALTER TABLE public.workflows ADD COLUMN app_rating int DEFAULT 5;",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "tasks.app_note: a non-NULL value in 3 rows of the table, which the push created and \
             the undo drops",
            "workflows.app_rating: a non-NULL value in 227 rows the push inserted, which the undo \
             deletes",
            "--discard-changes workflows.app_rating --discard-changes tasks.app_note",
            "nothing was changed",
        ]);
        assert!(!run.all().contains("tools.app_flag:"), "{}", run.show());
        before.assert_same(&w.state(), "a rollback refused over the app's columns");
    }
    w.rollback(
        &receipt,
        &[
            "--confirm",
            "--discard-changes",
            "tasks.app_note",
            "--discard-changes",
            "workflows.*",
        ],
    )
    .ok()
    .stdout_has("tasks.app_note: a non-NULL value in 3 rows of the table")
    .stdout_has("discarded (--discard-changes workflows.*)")
    .stdout_has("all NULL where the undo removes rows, so nothing is lost: tools.app_flag");
    assert_eq!(
        w.count("SELECT count(*) FROM public.workflows WHERE app_rating = 5"),
        pulled
    );
    w.exec("ALTER TABLE public.workflows DROP COLUMN app_rating;");
    before_push.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "rollback discarding the app's columns, their column then dropped",
    );
}

/// R4 (h1): an archive trigger the app adds after the push (BEFORE DELETE,
/// RETURN NULL for the rows it keeps) makes the undo's DELETE skip rows
/// without an error. Before: "workflows: 217 of 227 inserted rows were
/// found" — every row was there, and neither the trigger nor a row was
/// named. Now the refusal says how many are still there, their keys and
/// the trigger that kept them; dry run and --confirm alike change nothing.
#[test]
fn a_trigger_keeping_pushed_rows_from_the_undo_s_delete_is_named() {
    let w = world("archive_trigger_keeps_rows", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE FUNCTION public.archive_instead() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF OLD.id::text LIKE '0%' THEN RETURN NULL; END IF; RETURN OLD; END $$;
         CREATE TRIGGER workflows_archive BEFORE DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.archive_instead();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "workflows: the undo's DELETE removed",
            "are still there (keys include 0",
            "a BEFORE DELETE trigger on workflows returned NULL for them",
            "workflows_archive (function archive_instead()",
        ]);
        before.assert_same(&w.state(), "a refused rollback");
    }
}

/// Drops the replication slots whose name starts with its prefix, even when
/// the test panics: a slot left reserved pins WAL on the test server.
struct SlotsNamed(String);

impl SlotsNamed {
    fn count(&self) -> i64 {
        common::count(
            &mut common::postgres_admin(&common::admin_url()),
            &format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '{}%'",
                self.0
            ),
        )
    }
}

impl Drop for SlotsNamed {
    fn drop(&mut self) {
        let _ = common::postgres_admin(&common::admin_url()).batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name LIKE '{}%' AND NOT active",
            self.0
        ));
    }
}

/// F5: replication slots are not transactional. Before: a trigger firing
/// for the push's inserts creating a physical slot (reserved: it pins WAL
/// until dropped), and one for its rehearsed undo dropping a replica's
/// slot, passed the preflight, which said "Nothing was written" while a
/// slot was made (and the replica's gone); push --confirm exited 0 and made
/// another. Now both are named, by trigger and function, as calls outside
/// the transaction: the preflight and --confirm refuse (exit 1) before
/// anything runs; no slot is made or dropped.
#[test]
fn a_trigger_creating_or_dropping_a_replication_slot_is_an_external_effect() {
    let slots = SlotsNamed(format!("f5_{}_", std::process::id()));
    let w = world(
        "f5_replication_slots",
        &format!(
            "CREATE FUNCTION public.wf_slot() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_create_physical_replication_slot(
                     '{p}' || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, true);
                   RETURN NULL; END $$;
             CREATE TRIGGER wf_slot AFTER INSERT ON public.workflows
               FOR EACH STATEMENT EXECUTE FUNCTION public.wf_slot();
             CREATE FUNCTION public.wf_forget() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_drop_replication_slot('{p}replica'); RETURN NULL; END $$;
             CREATE TRIGGER wf_forget AFTER DELETE ON public.workflows
               FOR EACH STATEMENT EXECUTE FUNCTION public.wf_forget();
             SELECT pg_create_physical_replication_slot('{p}replica');",
            p = slots.0
        ),
    );
    assert_eq!(slots.count(), 1, "the replica's slot");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "trigger wf_slot on public.workflows (function wf_slot()): calls \
             pg_create_physical_replication_slot, which creates a replication slot",
            "trigger wf_forget on public.workflows (function wf_forget()): calls \
             pg_drop_replication_slot, which drops a replication slot",
            "--allow-external-effects",
        ]);
        assert!(!run.all().contains("Applied"), "{}", run.show());
        before.assert_same(&w.state(), "a push refused for a replication slot");
        assert_eq!(
            slots.count(),
            1,
            "a slot made or dropped by {confirm:?}: {}",
            run.show()
        );
    }
}
