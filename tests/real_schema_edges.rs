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

/// Old-style inheritance around the pulled tables (an archive table that
/// INHERITS workflows; dh_tool made a child of a base table): a pull read
/// the parent with its children's rows, and the push's write accounting
/// blamed the children's row counts on a trigger. The pull refuses, naming
/// each link and what to do, and writes no snapshot; a declarative
/// partition is still pulled (its rows once, through its parent).
#[test]
fn inheritance_around_a_pulled_table_is_refused_at_pull_naming_the_tables() {
    for (tag, sql, named) in [
        (
            "edge_inherit_parent",
            "CREATE TABLE public.workflows_archive (archived_at timestamptz) INHERITS (public.workflows);",
            "workflows has the inheritance child workflows_archive",
        ),
        (
            "edge_inherit_child",
            "CREATE TABLE public.stamped (); ALTER TABLE public.dh_tool INHERIT public.stamped;",
            "dh_tool inherits from stamped",
        ),
    ] {
        let w = World::loaded(tag, "plan").with_sql(sql);
        let run = w.pull(&[]);
        run.code(2);
        for needle in [
            named,
            "table inheritance (INHERITS) is not supported",
            "NO INHERIT",
            "PARTITION BY",
        ] {
            assert!(run.stderr.contains(needle), "{needle}: {}", run.show());
        }
        assert!(!w.snapshot.exists(), "no snapshot is written");
    }
    let w = World::loaded("edge_partition", "plan").with_sql(
        "CREATE TABLE public.dh_events (id int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE public.dh_events_2024 PARTITION OF public.dh_events
           FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO public.dh_events VALUES (1, '2024-05-01');",
    );
    w.pull(&[]).ok();
}
