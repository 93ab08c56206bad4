//! What real schemas hold around the plan's tables beyond the common cases:
//! exclusion constraints, a foreign key of a table to itself, the locks a
//! push takes on the tables its foreign keys reference, inheritance. A
//! green rehearsal must predict the push, and a refusal must name what
//! refused.

mod common;

use common::{failed_checks, preflight, World};

/// An exclusion constraint (`EXCLUDE USING gist`) on a table the push
/// writes: SQLite cannot evaluate it, so the rehearsal lists it for the
/// preflight like a CHECK (it was neither checked nor listed); the new rows
/// break it (all get the same constant default), and the preflight is a
/// named refusal — constraint, table, row key, exit 1 — that changes
/// nothing.
#[test]
fn an_exclusion_constraint_is_listed_for_the_preflight_and_a_violation_is_named() {
    let w = World::loaded("edge_exclusion", "plan")
        .with_sql(
            "ALTER TABLE public.workflows ADD COLUMN slot int4range;
             ALTER TABLE public.workflows ADD CONSTRAINT workflows_slot_free
               EXCLUDE USING gist (slot WITH &&);
             ALTER TABLE public.workflows ALTER COLUMN slot SET DEFAULT '[1,2)';",
        )
        .pulled();
    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    assert!(failed_checks(&report).is_empty());
    let items = preflight(&report);
    assert!(
        items.contains(&(
            "workflows.workflows_slot_free".to_string(),
            "exclusion".to_string(),
            "EXCLUDE USING gist (slot WITH &&)".to_string()
        )),
        "{items:#?}"
    );
    let human = w.rehearse(&[]);
    human.ok().stdout_has("workflows_slot_free");

    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "exclusion constraint \"workflows_slot_free\"",
            "table public.workflows",
            "constraint workflows_slot_free",
            "row id=",
        ]);
        before.assert_same(&w.state(), "a push refused by an exclusion constraint");
    }
}
