//! Columns the plan adds (target.json `added_columns`) or declares in a
//! table it creates, whose type is one the app declared on Postgres: a
//! domain with a DEFAULT, an enum, an array of an enum. The pull records
//! what each such type is (`_sandbox_target_types`), so the rehearsal
//! fills, compares and checks their values as Postgres will. Each test that
//! writes Postgres compares the whole database before and after.

mod common;

use std::path::{Path, PathBuf};

use common::World;

/// A copy of the built-in plan in `dir` whose target.json adds `added` (each
/// `(column, type)`) to `jtbd_library` in phase 1, and whose phase 1 SQL
/// ends with `phase1_sql`.
fn plan_adding(dir: &Path, added: &[(&str, &str)], phase1_sql: &str) -> PathBuf {
    let plan = common::plan_folder(dir, |_| {});
    let target = plan.join("target.json");
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    for (name, ty) in added {
        schema["added_columns"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "table": "jtbd_library",
                "phase": "1",
                "column": {"name": name, "type": ty}
            }));
    }
    std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    let phase = plan.join("phases/1_strategic_priorities.sql");
    let mut sql = std::fs::read_to_string(&phase).unwrap();
    sql.push_str(&format!("\n{phase1_sql}\n"));
    std::fs::write(&phase, sql).unwrap();
    plan
}

/// One column of the staged table in the snapshot, per value, counted.
fn staged_counts(w: &World, table: &str, column: &str) -> Vec<(Option<String>, i64)> {
    let conn = rusqlite::Connection::open(&w.snapshot).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT CAST({column} AS TEXT), count(*) FROM staged_{table} GROUP BY 1 ORDER BY 1"
        ))
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

/// R10. `ADD COLUMN priority prio` where `prio` is a domain with DEFAULT 3
/// (and `tier` a domain over a domain whose DEFAULT is the inner one's):
/// Postgres fills every existing row with the default. The rehearsal left
/// them NULL, so the phase's `priority + 2` gave NULL, and the push
/// refused after applying ("the remote changed" / not the rehearsed
/// state). Now the working copy fills them as Postgres does, the phase's
/// update is rehearsed from 3, the push applies what the rehearsal showed,
/// and rollback restores the whole database.
#[test]
fn an_added_column_of_a_domain_with_a_default_holds_it_in_existing_rows() {
    let w = World::loaded("r10_domain_default", "plan").with_sql(
        "CREATE DOMAIN public.prio AS int DEFAULT 3;
         CREATE DOMAIN public.tier_base AS text DEFAULT 'normal';
         CREATE DOMAIN public.tier AS public.tier_base CHECK (VALUE <> '');",
    );
    let first = w.scalar("SELECT min(id::text) FROM public.jtbd_library");
    let rows = w.count("SELECT count(*) FROM public.jtbd_library");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_adding(
        dir.path(),
        &[("priority", "prio"), ("tier", "tier")],
        "UPDATE jtbd_library SET priority = priority + 2, tier = tier || '+' \
         WHERE id = (SELECT min(id) FROM jtbd_library);",
    );
    let w = w.with_plan(&plan).rehearsed();
    assert_eq!(
        staged_counts(&w, "jtbd_library", "priority"),
        vec![(Some("3".into()), rows - 1), (Some("5".into()), 1)],
        "the rehearsal fills existing rows with the domain's default, as ADD COLUMN does"
    );
    assert_eq!(
        staged_counts(&w, "jtbd_library", "tier"),
        vec![
            (Some("normal".into()), rows - 1),
            (Some("normal+".into()), 1)
        ],
        "a domain over a domain takes the nearest default down the chain"
    );

    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT priority::text, tier::text, count(*)::text FROM public.jtbd_library \
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        vec![
            vec!["3".to_string(), "normal".into(), (rows - 1).to_string()],
            vec!["5".to_string(), "normal+".into(), "1".into()],
        ]
    );
    assert_eq!(
        w.scalar(&format!(
            "SELECT priority::text FROM public.jtbd_library WHERE id = '{first}'"
        )),
        "5"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// The app's enum, declared in an order its labels' text does not sort in.
const MOOD: &str = "CREATE TYPE public.mood AS ENUM ('zen', 'calm', 'busy');";

/// `plan_adding` with `mood mood` and `moods mood[]` added to
/// `jtbd_library` in phase 1 and `kind mood` a column of the table
/// `tools` that phase 2 creates, whose SQL ends with `phase2_sql`.
fn plan_with_moods(dir: &Path, phase1_sql: &str, phase2_sql: &str) -> PathBuf {
    let plan = plan_adding(dir, &[("mood", "mood"), ("moods", "mood[]")], phase1_sql);
    let target = plan.join("target.json");
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    let tools = schema["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["name"] == "tools")
        .unwrap();
    tools["columns"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "kind", "type": "mood"}));
    std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    let phase = plan.join("phases/2_tools.sql");
    let mut sql = std::fs::read_to_string(&phase).unwrap();
    sql.push_str(&format!("\n{phase2_sql}\n"));
    std::fs::write(&phase, sql).unwrap();
    plan
}

/// R11. Values that are no label of the enum, written into an enum column
/// the plan adds, into each element of an enum array it adds, and into an
/// enum column of a table it creates: the rehearsal passed them and the
/// push failed on Postgres ("invalid input value for enum mood"). Now
/// each is a failed check naming the column, the enum's labels, the row
/// and the value (exit 1), and nothing is staged for a push.
#[test]
fn values_no_label_of_an_added_or_created_enum_column_fail_the_rehearsal() {
    let w = World::loaded("r11_enum_labels", "plan").with_sql(MOOD);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_with_moods(
        dir.path(),
        "UPDATE jtbd_library SET mood = 'angry', moods = '{calm,furious}' \
         WHERE id = (SELECT min(id) FROM jtbd_library);",
        "UPDATE tools SET kind = 'sleepy' WHERE id = (SELECT min(id) FROM tools);",
    );
    let w = w.with_plan(&plan).pulled();
    let first = w.scalar("SELECT min(id::text) FROM public.jtbd_library");
    let run = w.rehearse(&[]);
    run.code(1);
    let out = run.all();
    for needle in [
        "jtbd_library.mood: a value of enum mood (zen, calm, busy)",
        "'angry'",
        "jtbd_library.moods: each array element a value of enum mood (zen, calm, busy)",
        "element 2 'furious'",
        "tools.kind: a value of enum mood (zen, calm, busy)",
        "'sleepy'",
        &first,
    ] {
        assert!(out.contains(needle), "{needle} not in:\n{out}");
    }
    let before = w.state();
    w.push(&["--confirm"]).code(1);
    before.assert_same(&w.state(), "a push of a failed rehearsal");
}

/// R11, the rest of it: an enum column the plan adds compares in the
/// enum's declared order while the phases run, as on Postgres (`mood >
/// 'zen'` holds for 'busy', declared after it, though 'busy' < 'zen' as
/// text; the rehearsal compared the text), its labels and arrays of them
/// push as rehearsed, and rollback restores the whole database.
#[test]
fn an_added_enum_column_compares_in_declared_order_and_pushes() {
    let w = World::loaded("r11_enum_order", "plan").with_sql(MOOD);
    let first = w.scalar("SELECT min(id::text) FROM public.jtbd_library");
    let rows = w.count("SELECT count(*) FROM public.jtbd_library");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_with_moods(
        dir.path(),
        "UPDATE jtbd_library SET mood = CASE WHEN id = (SELECT min(id) FROM jtbd_library) \
         THEN 'busy' ELSE 'zen' END, moods = '{zen,busy}'; \
         UPDATE jtbd_library SET mood = 'calm', moods = '{calm}' WHERE mood > 'zen';",
        "UPDATE tools SET kind = 'busy';",
    );
    let w = w.with_plan(&plan).rehearsed();
    let before = w.state();
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            &format!(
                "SELECT mood::text, moods::text, count(*)::text, bool_or(id = '{first}')::text \
                 FROM public.jtbd_library GROUP BY 1, 2 ORDER BY 1"
            )
        ),
        vec![
            vec![
                "calm".to_string(),
                "{calm}".into(),
                "1".into(),
                "true".into()
            ],
            vec![
                "zen".to_string(),
                "{zen,busy}".into(),
                (rows - 1).to_string(),
                "false".into()
            ],
        ],
        "'busy' > 'zen' in the enum's declared order, as Postgres compares it"
    );
    assert_eq!(
        w.scalar("SELECT string_agg(DISTINCT kind::text, ',') FROM public.tools"),
        "busy"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// R10, volatile defaults: `ADD COLUMN seen_at stamp` (a domain DEFAULT
/// now()) and `token tok` (DEFAULT gen_random_uuid()) — Postgres computes
/// each existing row's value, which the rehearsal cannot know: they stay
/// NULL there, the push reads back what Postgres gave every row, the
/// phase's update of one row does not expect NULL, the after-state
/// comparison covers the rest, and rollback (which drops the columns)
/// counts those values as the push's and restores the whole database.
/// Before, the push refused after applying.
#[test]
fn an_added_column_of_a_domain_with_a_volatile_default_pushes_and_rolls_back() {
    let w = World::loaded("r10_volatile_default", "plan").with_sql(
        "CREATE DOMAIN public.stamp AS timestamptz DEFAULT now();
         CREATE DOMAIN public.tok AS uuid DEFAULT gen_random_uuid();",
    );
    let first = w.scalar("SELECT min(id::text) FROM public.jtbd_library");
    let rows = w.count("SELECT count(*) FROM public.jtbd_library");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_adding(
        dir.path(),
        &[("seen_at", "stamp"), ("token", "tok")],
        "UPDATE jtbd_library SET seen_at = '2024-01-01 00:00:00+00' \
         WHERE id = (SELECT min(id) FROM jtbd_library);",
    );
    let w = w.with_plan(&plan).rehearsed();
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        w.scalar(&format!(
            "SELECT seen_at = '2024-01-01 00:00:00+00' FROM public.jtbd_library WHERE id = '{first}'"
        )),
        "t"
    );
    assert_eq!(
        w.count(
            "SELECT count(*) FROM public.jtbd_library \
             WHERE seen_at IS NOT NULL AND seen_at <> '2024-01-01 00:00:00+00'"
        ),
        rows - 1,
        "Postgres filled the other rows"
    );
    assert_eq!(
        w.count("SELECT count(DISTINCT token) FROM public.jtbd_library"),
        rows,
        "a volatile default gives each row its own value"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}
