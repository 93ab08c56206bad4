//! The fixture database: loads, counts, the canonical text of every value,
//! the conflicts variant, refusal/replace, scaling, and jsonb printing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use common::TestDb;
use futures_util::{pin_mut, StreamExt};
use sandbox::fixtures::{self, FixtureOptions, Variant};
use sandbox::pgjson::jsonb_text;
use sandbox::types::{parse_copy_line, quote_ident, TableChecksum, SESSION_SETTINGS};
use tokio_postgres::NoTls;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn opts(variant: Variant, scale: u32) -> FixtureOptions {
    FixtureOptions { variant, scale }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn table_count(client: &tokio_postgres::Client, table: &str) -> u64 {
    count(
        client,
        &format!("SELECT count(*) FROM public.{}", quote_ident(table)),
    )
    .await as u64
}

/// Every table as Postgres prints it under SESSION_SETTINGS, parsed from
/// COPY text format.
async fn pull_table(client: &mut tokio_postgres::Client, table: &str) -> Vec<Vec<Option<String>>> {
    let tx = client.transaction().await.expect("transaction");
    for (name, value) in SESSION_SETTINGS {
        tx.batch_execute(&format!("SET LOCAL {name} = '{value}'"))
            .await
            .expect("SET LOCAL");
    }
    let cols = fixtures::columns(table)
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let stream = tx
        .copy_out(&format!(
            "COPY (SELECT {cols} FROM public.{}) TO STDOUT",
            quote_ident(table)
        ))
        .await
        .expect("COPY TO");
    pin_mut!(stream);
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.expect("COPY data"));
    }
    tx.commit().await.expect("commit");
    data.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| parse_copy_line(line).expect("COPY line"))
        .collect()
}

fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) if s.len() > 160 => {
            let head: String = s.chars().take(120).collect();
            format!("{head:?}… ({} bytes)", s.len())
        }
        Some(s) => format!("{s:?}"),
    }
}

/// Asserts that the multiset of rows in the database equals `rows()`.
async fn assert_canonical(client: &mut tokio_postgres::Client, o: &FixtureOptions) {
    for table in fixtures::tables() {
        let pulled = pull_table(client, table).await;
        let mut db_sum = TableChecksum::new();
        for row in &pulled {
            db_sum.add_row(row);
        }
        let mut gen_sum = TableChecksum::new();
        for row in fixtures::rows(table, o) {
            gen_sum.add_row(&row);
        }
        if db_sum.hex() == gen_sum.hex() {
            continue;
        }
        // Find the first differing value, by primary key (first column).
        let columns = fixtures::columns(table);
        let by_key: HashMap<Option<String>, &Vec<Option<String>>> =
            pulled.iter().map(|r| (r[0].clone(), r)).collect();
        for generated in fixtures::rows(table, o) {
            let Some(db_row) = by_key.get(&generated[0]) else {
                panic!(
                    "{table}: generated row {} is not in the database",
                    show(&generated[0])
                );
            };
            for (c, column) in columns.iter().enumerate() {
                if db_row[c] != generated[c] {
                    panic!(
                        "{table}.{column} differs for key {}:\n  postgres:  {}\n  generated: {}",
                        show(&generated[0]),
                        show(&db_row[c]),
                        show(&generated[c])
                    );
                }
            }
        }
        panic!(
            "{table}: checksums differ ({} rows in the database, {} generated) but no value does",
            db_sum.rows(),
            gen_sum.rows()
        );
    }
}

// ---------------------------------------------------------------------------
// (a) plan variant: counts, catalog, triggers, RLS, keys
// ---------------------------------------------------------------------------

#[test]
fn plan_variant_loads_with_the_plan_counts() {
    let db = TestDb::create("fx_plan");
    runtime().block_on(async {
        let mut client = connect(&db.url).await;
        let o = opts(Variant::Plan, 1);
        let started = Instant::now();
        let report = fixtures::load(&mut client, &o, false).await.expect("load");
        eprintln!("fixture load, plan, scale 1: {:?}", started.elapsed());

        let expected: BTreeMap<&str, u64> = [
            ("prompts", 3570),
            ("jtbd_library", 371),
            ("workflows", 141),
            ("agents", 190),
            ("personas", 210),
            ("dh_domain", 5),
            ("dh_use_case", 50),
            ("dh_workflow", 116),
            ("dh_task", 343),
            ("dh_tool", 150),
        ]
        .into_iter()
        .collect();
        let reported: BTreeMap<&str, u64> =
            report.tables.iter().map(|(t, n)| (t.as_str(), *n)).collect();
        assert_eq!(
            report.tables.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            fixtures::tables().to_vec()
        );
        for table in fixtures::tables() {
            let n = table_count(&client, table).await;
            assert_eq!(n, fixtures::row_count(table, &o), "{table}");
            assert_eq!(reported[table], n, "{table} (report)");
            if let Some(want) = expected.get(table) {
                assert_eq!(n, *want, "{table}");
            }
            assert!(n > 0, "{table} is empty");
        }
        let protected: u64 = ["prompts", "jtbd_library", "workflows", "agents", "personas"]
            .iter()
            .map(|t| expected[t])
            .sum();
        assert_eq!(protected, 4482);

        // The migration's targets do not exist yet.
        for t in fixtures::MIGRATION_TABLES {
            let n = count(
                &client,
                &format!("SELECT count(*) FROM pg_class WHERE relname = '{t}' AND relnamespace = 'public'::regnamespace"),
            )
            .await;
            assert_eq!(n, 0, "{t} must not exist before the migration");
        }

        // Column names, order and types match the Rust catalog.
        for table in fixtures::tables() {
            let rows = client
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated::text \
                     FROM pg_attribute a WHERE a.attrelid = ('public.' || quote_ident($1))::regclass \
                     AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    &[table],
                )
                .await
                .expect("catalog");
            let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let types: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
            let generated: Vec<String> = rows
                .iter()
                .filter(|r| r.get::<_, String>(2) == "s")
                .map(|r| r.get(0))
                .collect();
            assert_eq!(names, fixtures::columns(table), "{table} columns");
            assert_eq!(types, fixtures::column_types(table), "{table} types");
            assert_eq!(generated, fixtures::generated_columns(table), "{table} generated");

            let pk: Vec<String> = client
                .query(
                    "SELECT a.attname::text FROM pg_constraint c \
                     JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord) ON true \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                     WHERE c.conrelid = ('public.' || quote_ident($1))::regclass AND c.contype = 'p' \
                     ORDER BY k.ord",
                    &[table],
                )
                .await
                .expect("primary key")
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(pk, fixtures::primary_key(table), "{table} primary key");

            let mut fks: Vec<(String, String, String, String)> = client
                .query(
                    "SELECT a.attname::text, c.confrelid::regclass::text, fa.attname::text, \
                            CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' \
                                 WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END \
                     FROM pg_constraint c \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                     JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1] \
                     WHERE c.conrelid = ('public.' || quote_ident($1))::regclass AND c.contype = 'f'",
                    &[table],
                )
                .await
                .expect("foreign keys")
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            fks.sort();
            let mut want: Vec<(String, String, String, String)> = fixtures::foreign_keys(table)
                .iter()
                .map(|(c, t, rc, d)| (c.to_string(), t.to_string(), rc.to_string(), d.to_string()))
                .collect();
            want.sort();
            assert_eq!(fks, want, "{table} foreign keys");
        }

        // The MA allocation holds exactly in the plan variant.
        for (sp, _, lo, hi) in fixtures::SP_ALLOCATION {
            let n = count(
                &client,
                &format!("SELECT count(*) FROM jtbd_library WHERE jtbd_code LIKE 'JTBD-MA-%' AND \"function\" = '{sp}'"),
            )
            .await;
            assert_eq!(n as u32, hi - lo + 1, "{sp}");
        }
        for n in [1u32, 17, 18, 36, 37, 54, 55, 68, 69, 83, 84, 91, 92, 105] {
            let row = client
                .query_one(
                    "SELECT jtbd_code, \"function\" FROM jtbd_library WHERE id = $1",
                    &[&format!("jtbd{n:05}")],
                )
                .await
                .expect("MA row");
            assert_eq!(row.get::<_, String>(0), format!("JTBD-MA-{n:03}"));
            assert_eq!(Some(row.get::<_, String>(1).as_str()), fixtures::allocated_sp(n));
        }
        assert_eq!(count(&client, "SELECT count(*) FROM jtbd_library WHERE jtbd_code LIKE 'JTBD-DH-%'").await, 266);
        assert_eq!(
            count(&client, "SELECT count(*) FROM jtbd_library WHERE jtbd_code LIKE 'JTBD-DH-%' AND \"function\" ~ '^SP0[1-7]$'").await,
            0
        );
        assert_eq!(
            count(&client, "SELECT count(*) FROM workflows WHERE definition->>'source' LIKE '%Operational Library%'").await,
            0
        );
        assert_eq!(
            count(&client, "SELECT count(*) FROM workflows WHERE definition->>'source' IN ('manual', 'template', 'ai_builder')").await,
            141
        );

        // Triggers, RLS, keys.
        for (table, trigger) in fixtures::UPDATED_AT_TRIGGERS {
            let n = count(
                &client,
                &format!(
                    "SELECT count(*) FROM pg_trigger WHERE tgname = '{trigger}' \
                     AND tgrelid = 'public.{table}'::regclass AND NOT tgisinternal"
                ),
            )
            .await;
            assert_eq!(n, 1, "trigger {trigger}");
        }
        let rls_off = count(
            &client,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname IN \
             ('prompts','jtbd_library','workflows','agents','personas','dh_domain','dh_use_case','dh_workflow','dh_task','dh_tool') \
             AND NOT relrowsecurity",
        )
        .await;
        assert_eq!(rls_off, 0);
        let cascade_fks = count(
            &client,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confdeltype = 'c' \
             AND confrelid = 'public.tenants'::regclass AND conrelid::regclass::text LIKE 'dh\\_%'",
        )
        .await;
        assert_eq!(cascade_fks, 5);

        // The trigger fires on UPDATE.
        let tx = client.transaction().await.expect("tx");
        let before: String = tx
            .query_one("SELECT updated_at::text FROM jtbd_library WHERE id = 'jtbd00001'", &[])
            .await
            .expect("before")
            .get(0);
        tx.execute("UPDATE jtbd_library SET title = title WHERE id = 'jtbd00001'", &[])
            .await
            .expect("update");
        let after: String = tx
            .query_one("SELECT updated_at::text FROM jtbd_library WHERE id = 'jtbd00001'", &[])
            .await
            .expect("after")
            .get(0);
        assert_ne!(before, after, "jtbd_library_set_updated_at did not fire");
        tx.rollback().await.expect("rollback");
    });
}

// ---------------------------------------------------------------------------
// (b) every value is the text Postgres prints
// ---------------------------------------------------------------------------

#[test]
fn generated_rows_equal_what_postgres_prints() {
    let db = TestDb::create("fx_canon");
    runtime().block_on(async {
        let mut client = connect(&db.url).await;
        let o = opts(Variant::Plan, 1);
        fixtures::load(&mut client, &o, false).await.expect("load");
        assert_canonical(&mut client, &o).await;

        // The hard cases really are in the database.
        let long = count(&client, "SELECT count(*) FROM prompts WHERE octet_length(system_prompt) >= 100 * 1024").await;
        assert!(long >= 3, "long texts: {long}");
        let specials = count(
            &client,
            "SELECT count(*) FROM jtbd_library WHERE avg_execution_time IN ('NaN', 'Infinity', '-Infinity')",
        )
        .await;
        assert_eq!(specials, 3);
        let twenty = count(&client, "SELECT count(*) FROM agents WHERE length(total_consultations::text) = 20").await;
        assert_eq!(twenty, 3);
    });
}

// ---------------------------------------------------------------------------
// (c) conflicts variant
// ---------------------------------------------------------------------------

#[test]
fn conflicts_variant_reproduces_the_real_database() {
    let db = TestDb::create("fx_conflicts");
    runtime().block_on(async {
        let mut client = connect(&db.url).await;
        let o = opts(Variant::Conflicts, 1);
        fixtures::load(&mut client, &o, false).await.expect("load");
        assert_canonical(&mut client, &o).await;

        for table in fixtures::tables() {
            assert_eq!(
                table_count(&client, table).await,
                fixtures::row_count(table, &opts(Variant::Plan, 1)),
                "{table}: same counts as the plan variant"
            );
        }
        assert_eq!(
            count(&client, "SELECT count(*) FROM workflows WHERE definition->>'source' LIKE '%Operational Library%'").await,
            97
        );
        assert_eq!(
            count(&client, "SELECT count(*) FROM workflows WHERE definition->>'source' LIKE 'SP07%'").await,
            0
        );

        // Colliding workflow ids: recorded under two sources.
        let rows = client
            .query(
                "SELECT definition->>'workflow_id', array_agg(definition->>'source' ORDER BY definition->>'source') \
                 FROM workflows WHERE definition->>'source' LIKE '%Operational Library%' \
                 GROUP BY 1 HAVING count(*) > 1 ORDER BY 1",
                &[],
            )
            .await
            .expect("colliding");
        let got: Vec<(String, Vec<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let want: Vec<(String, Vec<String>)> = fixtures::COLLIDING_WORKFLOWS
            .iter()
            .map(|c| {
                let mut sources = vec![
                    format!("{} Operational Library", c.allocated_sp),
                    format!("{} Operational Library", c.other_sp),
                ];
                sources.sort();
                (c.workflow_id.to_string(), sources)
            })
            .collect();
        assert_eq!(got, want);

        // Every imported definition names a real allocation id and its JTBD.
        let bad = count(
            &client,
            "SELECT count(*) FROM workflows WHERE definition->>'source' LIKE '%Operational Library%' AND NOT ( \
               definition->>'workflow_id' ~ '^WF-[0-9]{3}-[AB]$' AND \
               definition->>'jtbd_id' = 'JTBD-MA-' || substr(definition->>'workflow_id', 4, 3))",
        )
        .await;
        assert_eq!(bad, 0);

        // The 11 disagreeing JTBD functions, and nothing else.
        let rows = client
            .query(
                "SELECT jtbd_code, \"function\" FROM jtbd_library WHERE jtbd_code LIKE 'JTBD-MA-%' ORDER BY jtbd_code",
                &[],
            )
            .await
            .expect("MA rows");
        let mut disagreeing = Vec::new();
        for r in &rows {
            let code: String = r.get(0);
            let function: String = r.get(1);
            let n: u32 = code[8..].parse().expect("number");
            if fixtures::allocated_sp(n) != Some(function.as_str()) {
                disagreeing.push((code, function));
            }
        }
        let want: Vec<(String, String)> = fixtures::CONFLICTING_JTBDS
            .iter()
            .map(|c| (c.jtbd_code.to_string(), c.function.to_string()))
            .collect();
        assert_eq!(disagreeing, want);
        for (i, (sp, _, _, _)) in fixtures::SP_ALLOCATION.iter().enumerate() {
            let n = count(
                &client,
                &format!("SELECT count(*) FROM jtbd_library WHERE jtbd_code LIKE 'JTBD-MA-%' AND \"function\" = '{sp}'"),
            )
            .await;
            assert_eq!(n as u32, fixtures::CONFLICTS_FUNCTION_COUNTS[i], "{sp}");
        }
    });
}

// ---------------------------------------------------------------------------
// (d) refusal and --replace
// ---------------------------------------------------------------------------

#[test]
fn load_refuses_existing_tables_unless_replace() {
    let db = TestDb::create("fx_replace");
    runtime().block_on(async {
        let mut client = connect(&db.url).await;
        let o = opts(Variant::Plan, 1);
        fixtures::load(&mut client, &o, false).await.expect("first load");

        let err = fixtures::load(&mut client, &o, false)
            .await
            .expect_err("a second load without replace must refuse");
        let msg = format!("{err:#}");
        assert!(msg.contains("--replace"), "{msg}");
        assert!(msg.contains("public.prompts") && msg.contains("public.dh_tool"), "{msg}");
        // Refusing changed nothing.
        assert_eq!(table_count(&client, "prompts").await, 3570);

        // What a push may have left behind goes with a replace.
        client
            .batch_execute(
                "CREATE TABLE public.tools (id uuid PRIMARY KEY);\
                 CREATE TABLE public.strategic_priorities (id uuid PRIMARY KEY);\
                 CREATE SCHEMA sandbox; CREATE TABLE sandbox.receipts (id int);\
                 ALTER TABLE jtbd_library ADD COLUMN strategic_priority_id uuid;\
                 INSERT INTO workflows (name, definition) VALUES ('extra', '{\"source\": \"dh_workflow\"}');",
            )
            .await
            .expect("simulate a push");
        let report = fixtures::load(&mut client, &opts(Variant::Conflicts, 1), true)
            .await
            .expect("replace");
        assert_eq!(report.tables.len(), fixtures::tables().len());
        assert_eq!(table_count(&client, "workflows").await, 141);
        assert_eq!(
            count(&client, "SELECT count(*) FROM pg_class WHERE relname IN ('tools', 'strategic_priorities', 'tasks')").await,
            0
        );
        assert_eq!(count(&client, "SELECT count(*) FROM pg_namespace WHERE nspname = 'sandbox'").await, 0);
        assert_eq!(
            count(&client, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'jtbd_library'").await,
            47
        );
        assert_eq!(
            count(&client, "SELECT count(*) FROM workflows WHERE definition->>'source' LIKE '%Operational Library%'").await,
            97
        );
    });

    // A database with only a migration target in it is refused too.
    let db = TestDb::create("fx_refuse_tools");
    runtime().block_on(async {
        let mut client = connect(&db.url).await;
        client
            .batch_execute("CREATE TABLE public.tools (id int)")
            .await
            .expect("tools");
        let err = fixtures::load(&mut client, &opts(Variant::Plan, 1), false)
            .await
            .expect_err("must refuse");
        assert!(format!("{err:#}").contains("public.tools"), "{err:#}");
        assert_eq!(
            count(
                &client,
                "SELECT count(*) FROM pg_class WHERE relname = 'prompts'"
            )
            .await,
            0
        );
    });
}

/// `--replace` never drops a real database's tables that share a name with
/// the fixtures: only tables the fixtures created (their comment carries
/// the fixture mark) go, and a database holding any other is refused,
/// naming them, with nothing changed — and without advice to pass
/// `--replace`.
#[test]
fn replace_refuses_a_database_whose_tables_the_fixtures_did_not_create() {
    let db = TestDb::create("fx_real");
    let rt = runtime();
    rt.block_on(async {
        connect(&db.url)
            .await
            .batch_execute(
                "CREATE TABLE public.prompts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
                   name text NOT NULL, body text);\
                 INSERT INTO public.prompts (name, body) \
                   SELECT 'customer prompt ' || g, 'precious' FROM generate_series(1, 50) g;\
                 CREATE TABLE public.tasks (id int PRIMARY KEY);",
            )
            .await
            .expect("a real database's tables");
    });
    let before = common::whole_database_state(&db.url);
    rt.block_on(async {
        let mut client = connect(&db.url).await;
        for replace in [true, false] {
            let err = fixtures::load(&mut client, &opts(Variant::Plan, 1), replace)
                .await
                .expect_err("a real database must be refused");
            let msg = format!("{err:#}");
            assert!(
                msg.contains("public.prompts")
                    && msg.contains("not created by `sandbox fixtures load`"),
                "{msg}"
            );
            assert!(!msg.contains("pass --replace"), "{msg}");
            assert!(msg.contains("Nothing was changed"), "{msg}");
        }
        assert_eq!(table_count(&client, "prompts").await, 50);
    });
    before.assert_same(&common::whole_database_state(&db.url), "a refused replace");
    // A fixture table whose mark was removed is not the fixtures' either.
    let db2 = TestDb::create("fx_unmarked");
    rt.block_on(async {
        let mut other = connect(&db2.url).await;
        fixtures::load(&mut other, &opts(Variant::Plan, 1), false)
            .await
            .expect("load");
        other
            .batch_execute("COMMENT ON TABLE public.workflows IS 'production'")
            .await
            .expect("comment");
        let err = fixtures::load(&mut other, &opts(Variant::Plan, 1), true)
            .await
            .expect_err("unmarked workflows must be refused");
        assert!(
            format!("{err:#}").contains("public.workflows not created"),
            "{err:#}"
        );
    });
}

/// `sandbox fixtures load` into `db`, with `extra` arguments.
fn fixtures_load(db: &TestDb, extra: &[&str]) -> common::Run {
    let mut args = vec!["fixtures", "load", "--database-url", &db.url];
    args.extend_from_slice(extra);
    common::run_sandbox(&args, &[])
}

/// `--replace` drops the fixtures, not the app's objects leaning on them: an
/// app table's foreign key into prompts, and a view on dh_tool, are named
/// in a refusal and the database is left exactly as it was (before, a
/// CASCADE dropped the key and the view without a word).
#[test]
fn replace_refuses_to_drop_app_objects_that_depend_on_the_fixtures() {
    let db = TestDb::create("fx_replace_deps");
    let load = |extra: &[&str]| fixtures_load(&db, extra);
    load(&[]).ok();
    runtime().block_on(async {
        connect(&db.url)
            .await
            .batch_execute(
                "CREATE TABLE public.app_notes (id int PRIMARY KEY, \
                   prompt_id uuid REFERENCES public.prompts (id) ON DELETE CASCADE);\
                 CREATE VIEW public.app_tools AS SELECT id FROM public.dh_tool;",
            )
            .await
            .expect("app objects");
    });
    let before = common::whole_database_state(&db.url);
    load(&["--replace"])
        .code(2)
        .error_has(&["app_notes", "view app_tools", "Nothing was changed"]);
    before.assert_same(&common::whole_database_state(&db.url), "a refused replace");
    // Without them, the replace goes ahead (the sandbox schema with it).
    runtime().block_on(async {
        connect(&db.url)
            .await
            .batch_execute(
                "DROP VIEW public.app_tools; DROP TABLE public.app_notes;\
                 CREATE SCHEMA sandbox; CREATE TABLE sandbox.receipts (id int);",
            )
            .await
            .expect("drop app objects");
    });
    load(&["--replace"]).ok();
}

/// V26: an app's own schema named `sandbox` with its table and data.
/// Before, `--replace` dropped every table in it, exit 0; now they are
/// named, nothing is changed, and only the tool's receipts ever go.
#[test]
fn replace_never_drops_the_app_s_tables_in_a_sandbox_schema() {
    let db = TestDb::create("fx_replace_sandbox");
    let load = |extra: &[&str]| fixtures_load(&db, extra);
    load(&[]).ok();
    runtime().block_on(async {
        connect(&db.url)
            .await
            .batch_execute(
                "CREATE SCHEMA sandbox; CREATE TABLE sandbox.receipts (id int);\
                 CREATE TABLE sandbox.experiments (id int PRIMARY KEY, note text);\
                 INSERT INTO sandbox.experiments VALUES (1, 'app data');",
            )
            .await
            .expect("the app's sandbox schema");
    });
    let before = common::whole_database_state(&db.url);
    load(&["--replace"])
        .code(2)
        .error_has(&["table sandbox.experiments", "Nothing was changed"]);
    before.assert_same(&common::whole_database_state(&db.url), "a refused replace");
}

// ---------------------------------------------------------------------------
// (e) scale
// ---------------------------------------------------------------------------

#[test]
fn scale_multiplies_only_the_untouched_protected_tables() {
    let db = TestDb::create("fx_scale");
    runtime().block_on(async {
        let mut client = connect(&db.url).await;
        let o = opts(Variant::Plan, 3);
        let started = Instant::now();
        fixtures::load(&mut client, &o, false).await.expect("load");
        eprintln!("fixture load, plan, scale 3: {:?}", started.elapsed());
        let one = opts(Variant::Plan, 1);
        for table in fixtures::tables() {
            let n = table_count(&client, table).await;
            let base = fixtures::row_count(table, &one);
            if fixtures::SCALED_TABLES.contains(table) {
                assert_eq!(n, base * 3, "{table}");
            } else {
                assert_eq!(n, base, "{table}");
            }
        }
        assert_eq!(table_count(&client, "prompts").await, 10_710);
        assert_eq!(table_count(&client, "agents").await, 570);
        assert_eq!(table_count(&client, "personas").await, 630);
        // Ids stay unique across blocks.
        assert_eq!(
            count(&client, "SELECT count(DISTINCT id) FROM prompts").await,
            10_710
        );
    });
}

// ---------------------------------------------------------------------------
// (f) jsonb_text against Postgres
// ---------------------------------------------------------------------------

const JSON_DOCUMENTS: &[&str] = &[
    "{}",
    "[]",
    r#"{"a":1,"b":2}"#,
    r#"{"b":1,"a":2,"aa":3,"c":{}}"#,
    r#"{"a":1,"a":2}"#,
    r#"{"x":{"k":1,"k":[1,2]},"x":{"k":3},"y":[{"z":1,"z":null}]}"#,
    r#"{"aaa":1,"b":2,"aaa":3,"b":{"x":1}}"#,
    r#"{"é":1,"e":2,"z":3,"ü":4}"#,
    r#"{"ä":1,"z":2,"aa":3,"中":4,"😀":5}"#,
    r#"{"B":1,"a":2,"A":3,"b":4,"_":5,"0":6}"#,
    r#"{"":1," ":2,"  ":3}"#,
    r#"{"😀":"👩‍🔬 🇪🇺","text":"café","rtl":"مرحبا","cjk":"臨床試験"}"#,
    r#"["\"", "\\", "\/", "\b\f\n\r\t", "\u0001\u001f", "\u007f", "\u00e9\u4e2d", "\ud83d\ude00"]"#,
    r#"{"tab\tkey":"v","new\nkey":1,"quote\"key":2}"#,
    "[0, -0, 0.0, -0.0, 1, -1, 1.5, 1.50, 100, 12.340, 0.10]",
    "[1e2, 1E2, 1e+2, 1e-2, 1.50E+1, 2.5e-3, -1e0, 0e10, 1.0e-10, -12.340e1, 25e-1]",
    "[123456789012345678901234567890, -98765432109876543210.0123456789]",
    "[0.000000000000000000000001, 1e-30, 5e-324, 4.9406564584124654e-324]",
    "1.7976931348623157e308",
    "[1e400]",
    "[1e-400]",
    "-0.000",
    "true",
    "null",
    r#""just a string""#,
    "[[[[[]]]]]",
    r#"{"a":{"b":{"c":{"d":{"e":{}}}}}}"#,
    "  { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : null }  ",
    r#"[1,"1",true,false,null,{},[],1.0,{"a":[]}]"#,
    r#"{"a":[{"b":1,"a":2},{"d":[],"c":{}}],"phases":[{"tasks":[{"owner":"MD","task_id":"T001","duration":"4 hours"}],"phase_number":1}]}"#,
    r#"{"model":"gpt-4","max_tokens":2000,"temperature":0.7,"top_p":1.0}"#,
    r#"{"criteria":["Evidence readiness 100% at key milestones","Launch preparedness score >90%"]}"#,
    r#"{"duration":"4–6 weeks","total_effort":"120–160 hours","source":"SP01 Operational Library","workflow_id":"WF-001-A"}"#,
    r#"{"long": "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789"}"#,
];

#[test]
fn jsonb_text_matches_postgres() {
    assert!(JSON_DOCUMENTS.len() >= 30);
    let db = TestDb::create("fx_pgjson");
    runtime().block_on(async {
        let client = connect(&db.url).await;
        let mut docs: Vec<String> = JSON_DOCUMENTS.iter().map(|s| s.to_string()).collect();
        docs.push(format!("{{\"big\": \"{}\"}}", "x✓".repeat(5000)));
        docs.push(sandbox::pgjson::jsonb_text(
            &fixtures::protected::awkward_jsonb(),
        ));
        for doc in &docs {
            let want: String = client
                .query_one("SELECT $1::text::jsonb::text", &[doc])
                .await
                .unwrap_or_else(|e| panic!("Postgres rejects {doc}: {e}"))
                .get(0);
            let value: serde_json::Value =
                serde_json::from_str(doc).unwrap_or_else(|e| panic!("serde rejects {doc}: {e}"));
            let got = jsonb_text(&value);
            assert_eq!(got, want, "jsonb_text of {doc}");
            // Printing is a fixed point: Postgres prints our text unchanged.
            let again: String = client
                .query_one("SELECT $1::text::jsonb::text", &[&got])
                .await
                .expect("reparse")
                .get(0);
            assert_eq!(again, got);
        }
    });
}

// ---------------------------------------------------------------------------
// The next command, as printed
// ---------------------------------------------------------------------------

/// The `Next:` of a load's output.
fn next_command(run: &common::Run) -> String {
    run.stdout
        .split_once("Next: ")
        .unwrap_or_else(|| panic!("no Next: {}", run.show()))
        .1
        .trim()
        .to_string()
}

/// The command `fixtures load` prints next works as pasted and never shows
/// the password: with the URL in the environment it carries none (before,
/// it carried the URL with `***` for the password, which fails to connect);
/// with the URL as a flag it says to pass the same one.
#[test]
fn the_next_command_works_as_pasted_and_shows_no_password() {
    let db = TestDb::create("fx_next");
    // The test server trusts local connections: the password is only text
    // that must never be shown, and the URL works with it.
    let password = "h7-Next-S3ntinel";
    let with_password = db
        .url
        .replacen("postgres@", &format!("postgres:{password}@"), 1);
    assert_ne!(
        with_password, db.url,
        "the test URL names the user postgres"
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, var) in ["SANDBOX_DATABASE_URL", "DATABASE_URL"].iter().enumerate() {
        let env = [(*var, with_password.as_str())];
        let load = common::run_sandbox(&["fixtures", "load", "--replace"], &env);
        load.ok();
        assert!(!load.all().contains(password), "{}", load.show());
        let next = next_command(&load);
        assert_eq!(next, "sandbox pull", "{}", load.show());
        // Pasted as printed, with the variable still set, it works.
        let out = dir.path().join(format!("pulled-{i}.sqlite"));
        let mut args: Vec<&str> = next.split_whitespace().skip(1).collect();
        args.extend(["--out", out.to_str().unwrap()]);
        common::run_sandbox(&args, &env).ok();
    }
    let load = common::run_sandbox(
        &[
            "fixtures",
            "load",
            "--replace",
            "--database-url",
            &with_password,
        ],
        &[],
    );
    load.ok();
    assert!(!load.all().contains(password), "{}", load.show());
    let next = next_command(&load);
    assert!(
        next.starts_with("sandbox pull --database-url URL, with the same --database-url")
            && !next.contains("***"),
        "{}",
        load.show()
    );
    // A URL without a password is printed as given, and works as pasted.
    let load = common::run_sandbox(
        &["fixtures", "load", "--replace", "--database-url", &db.url],
        &[],
    );
    load.ok();
    let next = next_command(&load);
    assert_eq!(
        next,
        format!(
            "sandbox pull --database-url {}",
            sandbox::advice::shell_word(&db.url)
        )
    );
}
