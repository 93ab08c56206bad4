//! The whole database as a value: every row of every table in every
//! non-system schema (by primary key, md5 of the row text), and the shape
//! around them (columns, constraints, indexes, triggers with their enabled
//! state, event triggers, views, row-level security). Tests compare two of
//! these to prove a command changed exactly what it should, and nothing
//! anywhere else.
//!
//! Sequences are not part of it: a value drawn stays drawn when its row is
//! rolled back (Postgres's own rule), so tests that move sequences compare
//! their next values apart.

use std::collections::{BTreeMap, BTreeSet};

/// One capture of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseState {
    /// `schema.table` -> row key -> md5 of the row's text.
    pub rows: BTreeMap<String, BTreeMap<String, String>>,
    /// One line per column, constraint, index, trigger, event trigger, view,
    /// RLS flag, schema.
    pub shape: Vec<String>,
}

const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads every table of every user schema in one REPEATABLE READ snapshot.
pub fn whole_database_state(url: &str) -> DatabaseState {
    whole_database_state_with(url, &[])
}

/// The same, with some tables seen through an expression over their row `t`
/// instead of the whole row: for columns that differ between two runs by
/// design (ids, timestamps), e.g. `("sandbox.receipts", "t.diff_hash || ' '
/// || t.status")`. Such a table's rows are keyed by the expression's text.
pub fn whole_database_state_with(url: &str, seen_as: &[(&str, &str)]) -> DatabaseState {
    let mut c = super::postgres_admin(url);
    // The text of a row depends on these; fix them.
    c.batch_execute(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; \
         SET extra_float_digits = 1; SET bytea_output = 'hex'; SET search_path = pg_catalog",
    )
    .expect("session settings");
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres_sync::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .expect("start a read-only transaction");
    let tables: Vec<(String, String, u32)> = tx
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, c.oid FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} ORDER BY 1, 2"
            ),
            &[],
        )
        .expect("list tables")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut rows = BTreeMap::new();
    for (schema, table, oid) in &tables {
        let pk: Vec<String> = tx
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND i.indisprimary \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[oid],
            )
            .expect("primary key")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let key = if pk.is_empty() {
            "md5(t::text)".to_string()
        } else {
            pk.iter()
                .map(|k| format!("coalesce(t.{}::text, 'NULL')", quote(k)))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        };
        let qualified = format!("{schema}.{table}");
        let sql = match seen_as.iter().find(|(t, _)| *t == qualified) {
            Some((_, expr)) => format!(
                "SELECT ({expr})::text, md5(({expr})::text) FROM {}.{} t",
                quote(schema),
                quote(table)
            ),
            None => format!(
                "SELECT {key}, md5(t::text) FROM {}.{} t",
                quote(schema),
                quote(table)
            ),
        };
        let mut by_key = BTreeMap::new();
        for r in tx
            .query(sql.as_str(), &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        {
            let mut k: String = r.get(0);
            // Without a key, equal rows are told apart by a counter.
            while by_key.contains_key(&k) {
                k.push('+');
            }
            by_key.insert(k, r.get::<_, String>(1));
        }
        rows.insert(qualified, by_key);
    }
    let mut shape = Vec::new();
    for sql in [
        format!(
            "SELECT format('schema %s owner %s', n.nspname, n.nspowner::regrole) \
             FROM pg_namespace n WHERE {USER_SCHEMAS} ORDER BY 1"
        ),
        // The position among live columns, as `SELECT *` and COPY see it: a
        // column dropped and added again gets a new attnum, not a new place.
        format!(
            "SELECT format('column %s.%s.%s #%s %s notnull=%s default=%s identity=%s generated=%s', \
                    n.nspname, c.relname, a.attname, \
                    row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum), \
                    format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') \
               AND {USER_SCHEMAS} ORDER BY n.nspname, c.relname, a.attnum"
        ),
        format!(
            "SELECT format('constraint %s.%s %s %s valid=%s', n.nspname, c.relname, con.conname, \
                    pg_get_constraintdef(con.oid), con.convalidated) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS} ORDER BY 1"
        ),
        format!(
            "SELECT format('index %s.%s %s', n.nspname, c.relname, pg_get_indexdef(c.oid)) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('i', 'I') AND {USER_SCHEMAS} ORDER BY 1"
        ),
        format!(
            "SELECT format('trigger %s.%s %s enabled=%s %s', n.nspname, c.relname, t.tgname, \
                    t.tgenabled, pg_get_triggerdef(t.oid)) \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND {USER_SCHEMAS} ORDER BY 1"
        ),
        "SELECT format('event trigger %s on %s enabled=%s', evtname, evtevent, evtenabled) \
         FROM pg_event_trigger ORDER BY 1"
            .to_string(),
        format!(
            "SELECT format('view %s.%s %s', n.nspname, c.relname, pg_get_viewdef(c.oid)) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMAS} ORDER BY 1"
        ),
        // This database's own row and comment (not its name, so that two
        // databases loaded alike compare equal).
        "SELECT format('database owner %s connection limit %s allow connections %s template %s \
                acl %s tablespace %s comment %s', d.datdba::regrole, d.datconnlimit, d.datallowconn, \
                d.datistemplate, d.datacl, d.dattablespace, shobj_description(d.oid, 'pg_database')) \
         FROM pg_database d WHERE d.datname = current_database()"
            .to_string(),
        format!(
            "SELECT format('rls %s.%s %s force=%s', n.nspname, c.relname, c.relrowsecurity, \
                    c.relforcerowsecurity) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} ORDER BY 1"
        ),
    ] {
        for r in tx
            .query(sql.as_str(), &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        {
            shape.push(r.get::<_, String>(0));
        }
    }
    tx.commit().expect("end the read-only transaction");
    DatabaseState { rows, shape }
}

impl DatabaseState {
    /// Whether the schema exists.
    pub fn has_schema(&self, schema: &str) -> bool {
        let line = format!("schema {schema} ");
        self.shape.iter().any(|l| l.starts_with(&line))
    }

    /// Rows of `schema.table`; 0 when there is no such table.
    pub fn row_count(&self, table: &str) -> usize {
        self.rows.get(table).map_or(0, BTreeMap::len)
    }

    /// The same state without one schema (e.g. `sandbox`, whose receipts
    /// differ after a push and its rollback by design).
    pub fn without_schema(&self, schema: &str) -> DatabaseState {
        let prefix = format!("{schema}.");
        let needle = format!(" {schema}.");
        DatabaseState {
            rows: self
                .rows
                .iter()
                .filter(|(t, _)| !t.starts_with(&prefix))
                .map(|(t, r)| (t.clone(), r.clone()))
                .collect(),
            shape: self
                .shape
                .iter()
                .filter(|l| !l.contains(&needle) && !l.starts_with(&format!("schema {schema} ")))
                .cloned()
                .collect(),
        }
    }

    /// What differs, briefly: per table the keys only on one side or
    /// changed, and the shape lines only on one side.
    pub fn differences(&self, other: &DatabaseState) -> String {
        let mut out = Vec::new();
        let names: BTreeSet<&String> = self.rows.keys().chain(other.rows.keys()).collect();
        let empty = BTreeMap::new();
        for t in names {
            let (a, b) = (
                self.rows.get(t).unwrap_or(&empty),
                other.rows.get(t).unwrap_or(&empty),
            );
            if a == b {
                continue;
            }
            let only_a: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
            let only_b: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
            let changed: Vec<&String> = a
                .iter()
                .filter(|(k, v)| b.get(*k).map(|w| w != *v).unwrap_or(false))
                .map(|(k, _)| k)
                .collect();
            out.push(format!(
                "{t}: {} rows only in the first {:?}, {} only in the second {:?}, {} changed {:?}",
                only_a.len(),
                only_a.iter().take(3).collect::<Vec<_>>(),
                only_b.len(),
                only_b.iter().take(3).collect::<Vec<_>>(),
                changed.len(),
                changed.iter().take(3).collect::<Vec<_>>()
            ));
        }
        for l in self
            .shape
            .iter()
            .filter(|l| !other.shape.contains(l))
            .take(8)
        {
            out.push(format!("only in the first: {l}"));
        }
        for l in other
            .shape
            .iter()
            .filter(|l| !self.shape.contains(l))
            .take(8)
        {
            out.push(format!("only in the second: {l}"));
        }
        out.join("\n  ")
    }

    /// Panics, naming what differs, unless the two states are equal.
    pub fn assert_same(&self, other: &DatabaseState, context: &str) {
        if self != other {
            panic!(
                "the database changed ({context}):\n  {}",
                self.differences(other)
            );
        }
    }
}

/// Where every sequence of every user schema stands: `schema.sequence` ->
/// (`last_value`, `is_called`), the two values `nextval()` works from. Not
/// part of [`DatabaseState`] (a draw is never rolled back): a test that
/// proves a command drew nothing compares these apart.
pub fn sequence_positions(url: &str) -> BTreeMap<String, (String, bool)> {
    let mut c = super::postgres_admin(url);
    let names: Vec<String> = c
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' AND {USER_SCHEMAS} ORDER BY 1"
            ),
            &[],
        )
        .expect("list the sequences")
        .iter()
        .map(|r| r.get(0))
        .collect();
    names
        .into_iter()
        .map(|name| {
            let row = c
                .query_one(
                    &format!("SELECT last_value::text, is_called FROM {name}"),
                    &[],
                )
                .unwrap_or_else(|e| panic!("read sequence {name}: {e}"));
            (name, (row.get(0), row.get(1)))
        })
        .collect()
}
