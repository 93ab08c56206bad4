//! Reviewer findings (issue 10) around what real projects leave on the
//! database and the snapshot file: a soft-delete rule added after a push,
//! a role switched by `SET ROLE` on a pooled connection, a snapshot another
//! program holds. Every test that writes compares the WHOLE database
//! before and after.

mod common;

use common::World;

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
