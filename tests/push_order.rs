//! The order push writes a phase's rows in, and the rehearsal proving it:
//! a plan that frees a UNIQUE value and reuses it in the same phase pushes;
//! one that needs two rows to trade unique values cannot be pushed row by
//! row and fails the rehearsal by name (unless the constraint is
//! DEFERRABLE); a column Postgres filled at the push's own insert and a
//! later phase sets is pushed, not refused as drift. Each test compares the
//! whole database before and after.

mod common;

use common::World;

/// A plan folder in `dir` writing only `dh_item`, one phase per SQL text.
fn item_plan(dir: &std::path::Path, phases: &[&str]) -> std::path::PathBuf {
    let plan = dir.join("plan");
    std::fs::create_dir_all(plan.join("phases")).unwrap();
    let phase_list: Vec<serde_json::Value> = phases
        .iter()
        .enumerate()
        .map(|(n, sql)| {
            let file = format!("phases/{}.sql", n + 1);
            std::fs::write(plan.join(&file), sql).unwrap();
            serde_json::json!({
                "id": (n + 1).to_string(), "name": format!("step {}", n + 1), "sql": file,
                "reads": [], "writes": ["dh_item"], "conflicts": [], "expectations": []
            })
        })
        .collect();
    let file = serde_json::json!({
        "name": "push-order", "description": "unique values moved within a phase",
        "schema": "target.json",
        "tables": {"protected": [], "sources": ["dh_item"]},
        "phases": phase_list, "verification": [], "guards": []
    });
    std::fs::write(
        plan.join("plan.json"),
        serde_json::to_string_pretty(&file).unwrap(),
    )
    .unwrap();
    std::fs::write(
        plan.join("target.json"),
        r#"{"tables": [], "added_columns": []}"#,
    )
    .unwrap();
    plan
}

/// A database holding `dh_item` as `sql` creates it, pulled with the plan
/// of `phases`.
fn item_world(tag: &str, sql: &str, phases: &[&str]) -> World {
    let w = World::empty(tag, sql);
    let plan = item_plan(w.dir.path(), phases);
    w.with_plan(&plan).pulled()
}

/// `(id, name)` of every item, by id.
fn items(w: &World) -> Vec<Vec<String>> {
    common::text_rows(
        &mut w.db.client(),
        "SELECT id, coalesce(name, 'NULL') FROM public.dh_item ORDER BY id",
    )
}

/// Pushes (preflight, then --confirm), checks the items are `expected`,
/// rolls back and checks the whole database is as before.
fn pushes_and_rolls_back(w: &World, expected: &[[&str; 2]]) {
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(items(w), expected, "after the push");
    w.rollback(&receipt, &["--confirm"]).ok();
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
}

const FILLED: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     stamp timestamptz DEFAULT now(), token uuid NOT NULL DEFAULT gen_random_uuid()); \
     INSERT INTO public.dh_item (id, name) VALUES ('a', 'alpha');";

/// Phase 1 inserts a row leaving `stamp` and `token` to Postgres, phase 2
/// sets them: the rehearsal saw NULL there before phase 2, Postgres holds
/// what it filled. The update is the push's own row's: it applies (before:
/// refused as "the remote changed").
#[test]
fn a_value_postgres_filled_at_the_push_s_insert_is_set_by_a_later_phase() {
    let w = item_world(
        "order_filled",
        FILLED,
        &[
            "INSERT INTO dh_item (id, name) VALUES ('c', 'gamma');",
            "UPDATE dh_item SET stamp = '2026-01-01 00:00:00+00', \
             token = '7d1f7c0a-1111-4111-8111-111111111111' WHERE id = 'c';",
        ],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(&w, &[["a", "alpha"], ["c", "gamma"]]);
    // (Rolled back above; push again to read what the later phase set.)
    w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT (stamp = '2026-01-01 00:00:00+00')::text, token::text FROM public.dh_item \
             WHERE id = 'c'"
        ),
        [["true", "7d1f7c0a-1111-4111-8111-111111111111"]]
    );
}
