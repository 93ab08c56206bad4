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
