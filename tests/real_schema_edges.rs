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
/// each link and what to do, and writes no snapshot; so does a push when
/// the inheritance came after the pull (exit 1, nothing written); a
/// declarative partition is still pulled (its rows once, through its
/// parent).
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
    // Inheritance added after the pull: the push refuses before writing.
    let w = World::loaded("edge_inherit_push", "plan").with_shared_snapshot();
    w.exec("CREATE TABLE public.workflows_archive () INHERITS (public.workflows);");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "table inheritance (INHERITS) is not supported for the tables the push writes",
            "workflows has the inheritance child workflows_archive",
            "nothing was written",
        ]);
        before.assert_same(&w.state(), "a push refused on inheritance");
    }
    let w = World::loaded("edge_partition", "plan").with_sql(
        "CREATE TABLE public.dh_events (id int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE public.dh_events_2024 PARTITION OF public.dh_events
           FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO public.dh_events VALUES (1, '2024-05-01');",
    );
    w.pull(&[]).ok();
}

/// A column the plan adds with a foreign key to `profiles`, a table the
/// push neither reads nor writes: Postgres takes SHARE ROW EXCLUSIVE on
/// `profiles` for the key's triggers, so the push takes it through its
/// lock attempts. An app transaction with an uncommitted write to
/// `profiles` is waited for and named (pid, application name, table) when
/// it outlasts --lock-timeout, exit 1, nothing written; while the push
/// waits, pg_locks shows it waiting on `profiles` and holding nothing on
/// the tables it has no business with; once the app commits, it applies.
#[test]
fn the_push_takes_the_lock_a_new_foreign_key_needs_on_its_target_in_attempts_naming_the_blocker() {
    let dir = tempfile::tempdir().unwrap();
    let plan = common::plan_folder(dir.path(), |_| {});
    let target = plan.join("target.json");
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    schema["added_columns"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "table": "jtbd_library",
            "phase": "1",
            "column": {"name": "reviewer_id", "type": "uuid"},
            "references": {"table": "profiles", "column": "id"}
        }));
    std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    let w = World::loaded("edge_fk_lock", "plan")
        .with_plan(&plan)
        .rehearsed();

    let mut app = common::postgres_admin(&format!("{}?application_name=profiles_writer", w.url()));
    let app_pid = common::scalar(&mut app, "SELECT pg_backend_pid()::text");
    app.batch_execute("BEGIN; UPDATE public.profiles SET full_name = full_name WHERE false")
        .unwrap();
    let before = w.state();
    w.push(&["--confirm", "--lock-timeout", "1000"]).refused(&[
        &format!("pid {app_pid}"),
        "profiles_writer",
        "holds RowExclusiveLock on profiles",
        "Nothing was written",
    ]);
    before.assert_same(
        &w.state(),
        "a push refused on the foreign key's target lock",
    );

    // Given time, the push waits in attempts: seen waiting on profiles.
    let push_url = format!("{}?application_name=edge_fk_push", w.url());
    let push = common::Sandbox::new(&[
        "push",
        "--database-url",
        &push_url,
        "--snapshot",
        w.snap(),
        "--plan",
        plan.to_str().unwrap(),
        "--confirm",
        "--lock-timeout",
        "120000",
    ])
    .spawn();
    let mut watcher = w.db.client();
    let locks_of_push =
        "SELECT string_agg(DISTINCT c.relname || ':' || l.mode || ':' || l.granted, ' ' \
         ORDER BY c.relname || ':' || l.mode || ':' || l.granted) \
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.application_name = 'edge_fk_push' AND c.relnamespace = 'public'::regnamespace \
           AND c.relkind IN ('r', 'p')";
    // Looked at until seen (each attempt waits up to 300 ms), for at most
    // the push's lock timeout.
    let mut seen = None;
    for _ in 0..24_000 {
        let locks = common::scalar(&mut watcher, locks_of_push);
        // The key's SHARE ROW EXCLUSIVE, or (since the first ACCESS
        // EXCLUSIVE comes with every strong lock the push and its rehearsed
        // undo take, S9) the undo's ACCESS EXCLUSIVE asked in the same
        // attempt: either way not granted, the push waiting on profiles.
        if locks
            .split(' ')
            .any(|l| l.starts_with("profiles:") && l.ends_with(":false"))
        {
            seen = Some(locks);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let locks = seen.unwrap_or_else(|| panic!("the push never waited on profiles"));
    for unrelated in ["organizations", "tenants", "user_sessions", "app_settings"] {
        assert!(
            !locks.contains(&format!("{unrelated}:")),
            "{unrelated}: {locks}"
        );
    }
    // One step, the held table first (656619a): while the key's target is
    // awaited the push holds nothing else, the ADD COLUMN's ACCESS
    // EXCLUSIVE on jtbd_library included (before, taken by name first,
    // it was held through the wait).
    assert!(
        !locks.contains("jtbd_library:"),
        "the written table is held while the target is awaited: {locks}"
    );
    app.batch_execute("COMMIT").unwrap();
    let run = push.finish();
    run.ok();
    assert_eq!(
        w.scalar(
            "SELECT confrelid::regclass::text FROM pg_constraint \
             WHERE conrelid = 'public.jtbd_library'::regclass AND contype = 'f' \
               AND conkey = ARRAY[(SELECT attnum FROM pg_attribute \
                 WHERE attrelid = 'public.jtbd_library'::regclass AND attname = 'reviewer_id')]"
        ),
        "profiles"
    );
    w.rollback(&run.receipt(), &["--confirm"]).ok();
    before.assert_same(&w.state().without_schema("sandbox"), "rollback of the push");
}

/// A foreign key of `workflows` to itself (`parent_id`, a column the plan
/// adds), and a phase that inserts workflows and points an existing one at
/// a new one. The push writes a phase's updates before its inserts (an
/// UPDATE frees unique values new rows reuse), so the UPDATE met a parent
/// not there yet and Postgres refused the push the rehearsal called green.
/// Now the change to the key waits for the inserts, the push applies, and
/// rollback restores the whole database.
#[test]
fn an_update_pointing_a_row_at_one_the_same_phase_inserts_pushes_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    // The existing row's updated_at stamp is held off, as jtbd_library's.
    let plan = common::plan_folder(dir.path(), |p| {
        p["hold_off_triggers"]
            .as_array_mut()
            .unwrap()
            .push("workflows.workflows_set_updated_at".into())
    });
    let target = plan.join("target.json");
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    schema["added_columns"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "table": "workflows",
            "phase": "3A",
            "column": {"name": "parent_id", "type": "uuid"},
            "references": {"table": "workflows", "column": "id"}
        }));
    std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    let phase = plan.join("phases/3B_dh_workflows.sql");
    let new_id = "d398260a-6ee3-5c3f-8a36-acbbf0488c38";
    let w = World::loaded("edge_self_fk", "plan");
    let existing = w.scalar("SELECT min(id::text) FROM public.workflows");
    let mut sql = std::fs::read_to_string(&phase).unwrap();
    sql.push_str(&format!(
        "\nUPDATE workflows SET parent_id = '{new_id}' WHERE id = '{existing}';\n"
    ));
    std::fs::write(&phase, sql).unwrap();
    let w = w.with_plan(&plan).rehearsed();

    let before = w.state();
    let receipt = w.push_confirmed();
    assert_eq!(
        w.scalar(&format!(
            "SELECT parent_id::text FROM public.workflows WHERE id = '{existing}'"
        )),
        new_id
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    before.assert_same(&w.state().without_schema("sandbox"), "rollback of the push");
}

/// The same on a column that already exists (`dh_item.parent` references
/// `dh_item.id`): the push points the existing row at the new one after
/// inserting it, and rollback restores the pointer before it deletes the
/// new row (it refused, counting the push's own pointer as a row it did
/// not write), leaving the whole database as before.
#[test]
fn an_existing_self_reference_pointed_at_a_new_row_pushes_and_rolls_back() {
    let w = common::item_world(
        "edge_self_fk_existing",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
         parent text REFERENCES public.dh_item (id)); \
         INSERT INTO public.dh_item (id, name) VALUES ('a', 'alpha'), ('b', 'beta'); \
         UPDATE public.dh_item SET parent = 'b' WHERE id = 'a';",
        &["INSERT INTO dh_item (id, name) VALUES ('c', 'gamma'); \
           UPDATE dh_item SET parent = 'c', name = 'alpha 2' WHERE id = 'a';"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT id, name, coalesce(parent, 'NULL') FROM public.dh_item ORDER BY id"
        ),
        [
            ["a", "alpha 2", "c"],
            ["b", "beta", "NULL"],
            ["c", "gamma", "NULL"]
        ]
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// Issue 10 Q3: a database where `REVOKE USAGE ON LANGUAGE plpgsql FROM
/// PUBLIC` was run, pushed to and rolled back by a Supabase-like owner
/// (`NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS`, owning the tables). The
/// role can run no `DO` block; since 656619a the lock step was one, and
/// the receipts' creation another: push and rollback ended with a raw
/// "permission denied for language plpgsql", exit 2. Neither needs
/// plpgsql now: preflight, push and rollback pass, and the whole database
/// is as before (but for the receipts).
#[test]
fn push_and_rollback_run_where_plpgsql_is_revoked_from_public() {
    // Declared first, so it is dropped after the database it owns.
    let owner = common::TestRole::create(
        "no_plpgsql",
        "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS",
    );
    let role = owner.name.clone();
    let db = common::TestDb::create("edge_no_plpgsql");
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO \"{role}\"; ALTER SCHEMA public OWNER TO \"{role}\";",
            db.name
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    // The fixtures' trigger functions are plpgsql: made before the revoke.
    common::load_fixtures(&url, "plan");
    db.client()
        .batch_execute("REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC")
        .unwrap();
    let denied = common::postgres_admin(&url)
        .batch_execute("DO $$BEGIN END$$")
        .expect_err("the owner may run no DO block");
    assert!(
        denied
            .to_string()
            .contains("permission denied for language plpgsql")
            || format!("{denied:?}").contains("permission denied for language plpgsql"),
        "{denied:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.sqlite");
    let s = snap.to_str().unwrap();
    let before = common::whole_database_state(&db.url);
    common::sandbox(&["pull", "--database-url", &url, "--out", s]).ok();
    common::sandbox(&["rehearse", "--snapshot", s]).ok();
    common::sandbox(&["push", "--database-url", &url, "--snapshot", s])
        .ok()
        .stdout_has("held off");
    before.assert_same(
        &common::whole_database_state(&db.url),
        "the preflight where plpgsql is revoked",
    );
    let run = common::sandbox(&["push", "--database-url", &url, "--snapshot", s, "--confirm"]);
    run.ok();
    assert_eq!(
        common::scalar(&mut db.client(), "SELECT count(*) FROM public.workflows"),
        "368"
    );
    common::sandbox(&[
        "rollback",
        "--database-url",
        &url,
        "--receipt",
        &run.receipt(),
        "--confirm",
    ])
    .ok();
    before.without_schema("sandbox").assert_same(
        &common::whole_database_state(&db.url).without_schema("sandbox"),
        "push and rollback where plpgsql is revoked",
    );
}

/// Polls until a `sandbox` session of the world's database waits for a
/// lock on `public.<table>` (the wait of a lock attempt), for at most 30 s.
fn sandbox_waits_on(w: &World, table: &str) {
    let mut watcher = w.db.client();
    let waiting = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.application_name = 'sandbox' AND a.datname = current_database() \
           AND NOT l.granted AND l.relation = 'public.{table}'::regclass"
    );
    for _ in 0..3000 {
        if common::count(&mut watcher, &waiting) > 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("sandbox was never seen waiting for a lock on {table}");
}

/// `state` without `public.<table>`: its rows and every shape line of it
/// (its columns, constraints, indexes, triggers, row-level security).
fn without_table(state: &common::DatabaseState, table: &str) -> common::DatabaseState {
    let qualified = format!("public.{table}");
    common::DatabaseState {
        rows: state
            .rows
            .iter()
            .filter(|(t, _)| **t != qualified)
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect(),
        shape: state
            .shape
            .iter()
            .filter(|l| {
                let object = l.split(' ').nth(1).unwrap_or("");
                !(object == qualified
                    || object.starts_with(&format!("{qualified}."))
                    || (l.starts_with("index ") && l.contains(&format!(" ON {qualified} "))))
            })
            .cloned()
            .collect(),
    }
}

/// F2 (review of 960a00e): the first lock attempt is NOWAIT, and the
/// give-up rule still counted it as a pause and a 300 ms wait, so a
/// `--lock-timeout` under ~450 ms gave up after it, having waited 0 ms
/// ("1 attempts"), for a lock the app released a moment later. Now a
/// waiting attempt always follows the NOWAIT one: the push is seen waiting
/// on `jtbd_library` (which the app's open transaction writes), the app
/// commits, and the push applies within its 440 ms.
#[test]
fn a_short_lock_timeout_still_waits_one_attempt_after_the_nowait_one() {
    let w = World::loaded("edge_short_lock_timeout", "plan").rehearsed();
    let before = w.state();
    let mut app = common::postgres_admin(&format!("{}?application_name=brief_writer", w.url()));
    app.batch_execute("BEGIN; UPDATE public.jtbd_library SET id = id WHERE false")
        .unwrap();
    let push = w.push_spawned("440");
    sandbox_waits_on(&w, "jtbd_library");
    app.batch_execute("COMMIT").unwrap();
    let run = push.finish();
    run.ok();
    w.rollback_restores(
        &run.receipt(),
        &before,
        "a push that waited once, rolled back",
    );
}

/// Issue 10 Q4: while the push waits for `workflows` (an app transaction
/// writing it), the app renames it and commits. The lock granted then is
/// on no table of that name: the push printed Postgres's raw `relation
/// "public.workflows" does not exist`, exit 2. Now it is a refusal naming
/// the table, saying it was renamed or dropped since the pull and to pull
/// again, exit 1, nothing written (the whole database is as before once
/// the test renames the table back).
#[test]
fn a_table_renamed_while_the_push_waits_for_its_lock_is_refused_by_name() {
    let w = World::loaded("edge_lock_renamed", "plan").rehearsed();
    let before = w.state();
    let mut app = common::postgres_admin(&format!("{}?application_name=renamer", w.url()));
    app.batch_execute("BEGIN; UPDATE public.workflows SET id = id WHERE false")
        .unwrap();
    let push = w.push_spawned("60000");
    sandbox_waits_on(&w, "workflows");
    app.batch_execute("ALTER TABLE public.workflows RENAME TO workflows_renamed; COMMIT")
        .unwrap();
    let run = push.finish();
    run.refused(&[
        "table workflows no longer exists under its name",
        "renamed or dropped since the pull",
        "sandbox pull",
        "nothing was written",
    ]);
    assert!(!run.all().contains("does not exist"), "{}", run.show());
    w.exec("ALTER TABLE public.workflows_renamed RENAME TO workflows");
    before.assert_same(
        &w.state(),
        "a push refused on a table renamed during its wait",
    );
    // Pulled again as advised, it applies.
    w.pull(&["--force"]).ok();
    w.rehearse(&[]).ok();
    w.push(&["--confirm"]).ok();
}

/// Issue 10 Q4: while the rollback waits for `workflows` (an app
/// transaction writing it), the app drops `tools`, a table the push
/// created and the rollback drops. The rollback printed Postgres's raw
/// `relation "public.tools" does not exist`, exit 2. Now it is a refusal
/// naming the table, saying it was renamed or dropped since the push,
/// exit 1, nothing changed but the app's drop; run again, the rollback
/// takes the dropped table for undone and restores the database as it
/// was before the push.
#[test]
fn a_table_dropped_while_the_rollback_waits_for_its_lock_is_refused_by_name() {
    let w = World::loaded("edge_lock_dropped", "plan").rehearsed();
    let before_push = w.state();
    let receipt = w.push_confirmed();
    let pushed = w.state();
    let mut app = common::postgres_admin(&format!("{}?application_name=dropper", w.url()));
    app.batch_execute("BEGIN; UPDATE public.workflows SET id = id WHERE false")
        .unwrap();
    let rollback = w.rollback_spawned(&receipt, "60000");
    sandbox_waits_on(&w, "workflows");
    w.exec("DROP TABLE public.tools");
    app.batch_execute("COMMIT").unwrap();
    let run = rollback.finish();
    run.refused(&[
        "table tools (created by the push) no longer exists under its name",
        "renamed or dropped since the push",
        "nothing was changed",
    ]);
    assert!(!run.all().contains("does not exist"), "{}", run.show());
    without_table(&pushed, "tools").assert_same(
        &w.state(),
        "a rollback refused on a table dropped during its wait",
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    before_push.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "the rollback run again",
    );
}

/// The app's swap of `public.workflows`, sent by the session that holds
/// it while a push or rollback waits for its lock: the table renamed away,
/// another made under its name with its columns, keys and indexes (`LIKE
/// … INCLUDING ALL`) and its rows — the same name and rows, a new oid, and
/// none of its triggers.
const SWAP_WORKFLOWS: &str = "ALTER TABLE public.workflows RENAME TO workflows_old; \
     CREATE TABLE public.workflows (LIKE public.workflows_old INCLUDING ALL); \
     INSERT INTO public.workflows SELECT * FROM public.workflows_old; COMMIT";

/// Puts the swapped `workflows` back: the app's copy dropped, the table
/// the run read renamed back.
const UNSWAP_WORKFLOWS: &str =
    "DROP TABLE public.workflows; ALTER TABLE public.workflows_old RENAME TO workflows";

/// What a run refused on the swapped `workflows` says of it: the oids,
/// where the table the preflight read is, its triggers then and now.
fn replaced_workflows(then: &str, now: &str, triggers: &str) -> String {
    format!(
        "table workflows was replaced since the preflight read it — another table has its name \
         now (oid {then} then, {now} now; the one read then is public.workflows_old now), and its \
         triggers are not the ones the preflight listed ({triggers} then, none now) (seen at the \
         lock step, which may have waited for it meanwhile)"
    )
}

/// Issue 10 (h4 Low 10): while the push waits for `workflows` (an app
/// transaction writing it), the app swaps it ([`SWAP_WORKFLOWS`]): same
/// name, same rows, a new oid, its triggers gone. The lock granted is the
/// new table's, the drift check (by name and content) passes, and the push
/// wrote it as if it were the table its preflight read. Now, under the
/// locks, each locked table's oid is compared with the one read before the
/// lock step: a refusal naming it, with the oids, where the table read is,
/// its triggers then and now, and the preflight to run again (not a fresh
/// pull: its rows are as pulled), exit 1, nothing written (the whole
/// database is as before once the test puts the table back).
#[test]
fn a_table_replaced_while_the_push_waits_for_its_lock_is_refused_by_name() {
    let w = World::loaded("edge_lock_replaced", "plan").rehearsed();
    let before = w.state();
    let then = w.scalar("SELECT 'public.workflows'::regclass::oid::text");
    let triggers = w.scalar(
        "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger \
         WHERE tgrelid = 'public.workflows'::regclass AND NOT tgisinternal",
    );
    let mut app = common::postgres_admin(&format!("{}?application_name=swapper", w.url()));
    app.batch_execute("BEGIN; UPDATE public.workflows SET id = id WHERE false")
        .unwrap();
    let push = w.push_spawned("60000");
    sandbox_waits_on(&w, "workflows");
    app.batch_execute(SWAP_WORKFLOWS).unwrap();
    let now = w.scalar("SELECT 'public.workflows'::regclass::oid::text");
    assert_ne!(then, now);
    let run = push.finish();
    run.refused(&[
        &replaced_workflows(&then, &now, &triggers),
        "nothing was written. Run `sandbox push --snapshot",
        "again to preflight what is there now",
    ]);
    assert!(!run.all().contains("sandbox pull"), "{}", run.show());
    w.exec(UNSWAP_WORKFLOWS);
    before.assert_same(
        &w.state(),
        "a push refused on a table replaced during its wait",
    );
}

/// Issue 10 (h4 Low 10), the rollback's lock wait: while it waits for
/// `workflows` (an app transaction writing it), the app swaps the table
/// ([`SWAP_WORKFLOWS`]). The rollback undid the push in the app's copy,
/// its triggers gone, as if it were the table its preflight read. Now a
/// refusal naming it as the push's refusal does, exit 1, nothing changed
/// but the app's swap; put back, the rollback run again restores the
/// database as it was before the push.
#[test]
fn a_table_replaced_while_the_rollback_waits_for_its_lock_is_refused_by_name() {
    let w = World::loaded("edge_lock_replaced_rb", "plan").rehearsed();
    let before_push = w.state();
    let receipt = w.push_confirmed();
    let pushed = w.state();
    let then = w.scalar("SELECT 'public.workflows'::regclass::oid::text");
    let triggers = w.scalar(
        "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger \
         WHERE tgrelid = 'public.workflows'::regclass AND NOT tgisinternal",
    );
    let mut app = common::postgres_admin(&format!("{}?application_name=swapper", w.url()));
    app.batch_execute("BEGIN; UPDATE public.workflows SET id = id WHERE false")
        .unwrap();
    let rollback = w.rollback_spawned(&receipt, "60000");
    sandbox_waits_on(&w, "workflows");
    app.batch_execute(SWAP_WORKFLOWS).unwrap();
    let now = w.scalar("SELECT 'public.workflows'::regclass::oid::text");
    let run = rollback.finish();
    run.refused(&[
        &format!("refusing to roll back receipt {receipt}"),
        &replaced_workflows(&then, &now, &triggers),
        "nothing was changed. Run the rollback again to check what is there now",
    ]);
    w.exec(UNSWAP_WORKFLOWS);
    pushed.assert_same(
        &w.state(),
        "a rollback refused on a table replaced during its wait",
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    before_push.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "the rollback run again",
    );
}

/// Issue 10 (h1 remainder a): a push that finds its diff applied reads
/// the rows the push wrote without locks (it writes nothing), a round trip
/// after it read which of the push's tables are gone since. The app holds
/// `tasks` (created by the push) while that read waits for it, renames it
/// to `tasks_archive` and commits: the read met Postgres's raw `relation
/// "public.tasks" does not exist` (exit 2). Now what is gone is read again
/// and the rows with it: the table is named as renamed since, found by the
/// oid the receipt recorded, and its rows read there (all remain), exit 0,
/// nothing written.
#[test]
fn a_table_renamed_while_an_applied_push_reads_its_rows_is_named_as_drift() {
    let w = World::loaded("edge_applied_renamed", "plan").rehearsed();
    let receipt = w.push_confirmed();
    let mut app = common::postgres_admin(&format!("{}?application_name=archiver", w.url()));
    app.batch_execute("BEGIN; LOCK TABLE public.tasks IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let push = w.push_spawned("60000");
    sandbox_waits_on(&w, "tasks");
    app.batch_execute("ALTER TABLE public.tasks RENAME TO tasks_archive; COMMIT")
        .unwrap();
    let renamed = w.state();
    let run = push.finish();
    run.ok()
        .stdout_has(&format!("Already applied: receipt {receipt}"))
        .stdout_has(
            "table public.tasks that the push created was renamed since: it is now \
             public.tasks_archive (its rows are read there)",
        )
        .stdout_has("All 727 rows the push inserted remain.");
    assert!(!run.all().contains("does not exist"), "{}", run.show());
    renamed.assert_same(&w.state(), "an applied push after a rename during its read");
}

/// F2 (h5 review): an app's own DROP TABLE, committed in its session while
/// the push's (the rollback's) transaction is open — an ETL job dropping
/// its scratch table — was taken for this transaction's DDL once its own
/// drops (the rehearsed undo's, the rollback's) had deleted catalog rows:
/// "table public.etl_scratch (dropped) — created, changed or dropped in this
/// transaction by a trigger, rule or event trigger …", and the push advised
/// `--allow-irreversible`. A drop this transaction made holds the object's
/// lock until COMMIT; one whose lock it does not hold is another session's.
/// Made deterministic: an app statement trigger on the undo's DELETE of
/// workflows waits for an advisory lock the test holds, and the scratch
/// table is dropped meanwhile. Now the push applies and the rollback
/// restores the database (but for the dropped scratch table). A drop run
/// in the transaction by a trigger is still named (real_schema_ddl).
#[test]
fn a_table_another_session_drops_while_the_push_or_rollback_runs_is_not_theirs() {
    let w = World::loaded("edge_drop_elsewhere", "plan").rehearsed();
    w.exec(
        "CREATE FUNCTION public.etl_wait() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_xact_lock(7, 7); RETURN NULL; END $$;
         CREATE TRIGGER etl_wait AFTER DELETE ON public.workflows
           FOR EACH STATEMENT EXECUTE FUNCTION public.etl_wait();",
    );
    let before = w.state();
    let scratch = |n: u32| {
        w.exec(&format!(
            "CREATE TABLE public.etl_scratch_{n} (id int PRIMARY KEY, note text)"
        ));
    };
    // While `command`'s delete of the pushed workflows waits in the app's
    // trigger, another session drops etl_scratch_{n}; then the trigger
    // goes on.
    let dropped_meanwhile = |n: u32, command: common::Proc| {
        let mut app = common::postgres_admin(&format!("{}?application_name=app", w.url()));
        app.batch_execute("SELECT pg_advisory_lock(7, 7)").unwrap();
        let mut watcher = w.db.client();
        let waiting = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                       WHERE a.application_name = 'sandbox' AND a.datname = current_database() \
                         AND NOT l.granted AND l.locktype = 'advisory'";
        let mut seen = false;
        for _ in 0..3000 {
            if common::count(&mut watcher, waiting) > 0 {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(seen, "sandbox was never seen waiting in the app's trigger");
        w.exec(&format!("DROP TABLE public.etl_scratch_{n}"));
        app.batch_execute("SELECT pg_advisory_unlock(7, 7)")
            .unwrap();
        let run = command.finish();
        assert!(
            !run.all().contains("etl_scratch") && !run.all().contains("--allow-irreversible"),
            "{}",
            run.show()
        );
        run
    };
    scratch(1);
    let run = dropped_meanwhile(1, w.push_spawned("60000"));
    run.ok();
    let receipt = run.receipt();
    scratch(2);
    dropped_meanwhile(2, w.rollback_spawned(&receipt, "60000")).ok();
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
}
