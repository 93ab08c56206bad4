//! Per-test Postgres databases: each test creates its own and drops it, so
//! tests run in parallel against the one local server.
//!
//! Every database is registered as it is made (a comment on the database
//! naming the host, process id and process start time of the test binary
//! that made it). A killed run cannot drop its databases; the first database
//! made by any later test binary drops every registered database whose
//! process is gone, as sqlx's test support does with its own table.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use postgres_sync::{Client, SimpleQueryMessage};

pub fn admin_url() -> String {
    std::env::var("SANDBOX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub fn postgres_admin(url: &str) -> Client {
    Client::connect(url, postgres_sync::NoTls).unwrap_or_else(|e| {
        panic!(
            "the test Postgres at {url} is unreachable ({e}). Start it \
             (pg_ctlcluster 15 main start) or point SANDBOX_TEST_DATABASE_URL at one."
        )
    })
}

/// The URL with its database name replaced.
pub fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let cut = base.rfind('/').expect("database URL has a path");
    let mut out = format!("{}/{}", &base[..cut], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a registered database's comment starts.
const REGISTERED: &str = "sandbox test database";

/// This process as the registry names it: host, pid, start time (the pid
/// alone could be reused by a later process).
fn owner_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time); the command name (field 2) may hold spaces but
    // ends at the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let start = after.split_whitespace().nth(19)?;
    Some(format!("host={} pid={pid} start={start}", host()))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Drops the registered databases and roles of test processes of this host
/// that no longer run. Once per test binary. Roles after databases: a role
/// cannot go while it owns one. A drop that fails (another binary dropping
/// the same database, a role still owning something elsewhere) is left for
/// a later run.
fn drop_leftovers(admin: &mut Client) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (catalog, name, registered, drop) in [
            (
                "pg_database",
                "datname",
                REGISTERED,
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ),
            (
                "pg_authid",
                "rolname",
                REGISTERED_ROLE,
                "DROP ROLE IF EXISTS {}",
            ),
        ] {
            let rows = admin
                .query(
                    &format!(
                        "SELECT {name}::text, shobj_description(oid, '{catalog}') FROM {catalog} \
                         WHERE shobj_description(oid, '{catalog}') LIKE $1"
                    ),
                    &[&format!("{registered} host={} %", host())],
                )
                .unwrap_or_else(|e| panic!("list the registered test objects in {catalog}: {e}"));
            for r in rows {
                let (object, comment): (String, String) = (r.get(0), r.get(1));
                if !owner_alive(&comment) {
                    let _ = admin.batch_execute(&drop.replace("{}", &quote(&object)));
                }
            }
        }
    });
}

/// Whether the test process named in a registration comment still runs.
fn owner_alive(comment: &str) -> bool {
    comment
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse::<u32>().ok())
        .and_then(owner_of)
        .is_some_and(|owner| comment.ends_with(&owner))
}

/// How a registered role's comment starts.
const REGISTERED_ROLE: &str = "sandbox test role";

/// A role that exists for one test, registered like the databases and
/// dropped afterwards (drop the databases holding its objects first).
pub struct TestRole {
    pub name: String,
}

impl TestRole {
    /// `CREATE ROLE <unique name> <attributes>`, e.g. `LOGIN NOSUPERUSER`.
    pub fn create(tag: &str, attributes: &str) -> TestRole {
        let mut admin = postgres_admin(&admin_url());
        drop_leftovers(&mut admin);
        let name = unique_name(tag);
        admin
            .batch_execute(&format!("CREATE ROLE {} {attributes}", quote(&name)))
            .unwrap_or_else(|e| panic!("cannot create test role {name}: {e}"));
        register(&mut admin, "ROLE", &name, REGISTERED_ROLE);
        TestRole { name }
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        // A failure here leaves a registered role that a later run drops.
        if let Ok(mut c) = Client::connect(&admin_url(), postgres_sync::NoTls) {
            let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote(&self.name)));
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `sbx_<tag>_<pid>_<n>`: unique on the server while this process runs.
fn unique_name(tag: &str) -> String {
    let mut tag: String = tag
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    // Postgres keeps 63 bytes of a name; the unique suffix must survive.
    tag.truncate(40);
    format!(
        "sbx_{tag}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Names this process as the owner of a database or role it made, so a
/// later run can drop it if this one is killed.
fn register(admin: &mut Client, kind: &str, name: &str, registered: &str) {
    let owner = owner_of(std::process::id()).expect("/proc/self/stat is readable");
    admin
        .batch_execute(&format!(
            "COMMENT ON {kind} {} IS '{registered} {owner}'",
            quote(name)
        ))
        .unwrap_or_else(|e| panic!("cannot register test {kind} {name}: {e}"));
}

/// A database that exists for one test and is dropped afterwards.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDb {
    /// Creates a fresh empty database. Panics with a clear message when the
    /// test server is unreachable: a test must never pass by skipping.
    pub fn create(tag: &str) -> TestDb {
        TestDb::make(tag, None, "")
    }

    /// A copy of `template` (which no session may be connected to).
    pub fn from_template(template: &str, tag: &str) -> TestDb {
        TestDb::make(tag, Some(template), "")
    }

    /// A fresh database created with `options` after `CREATE DATABASE name`
    /// (a locale, an encoding: what real projects were created with).
    pub fn with_options(tag: &str, options: &str) -> TestDb {
        TestDb::make(tag, None, options)
    }

    fn make(tag: &str, template: Option<&str>, options: &str) -> TestDb {
        let admin = admin_url();
        let mut client = postgres_admin(&admin);
        drop_leftovers(&mut client);
        let name = unique_name(tag);
        let from = template
            .map(|t| format!(" TEMPLATE {}", quote(t)))
            .unwrap_or_default();
        let create = format!("CREATE DATABASE {}{from} {options}", quote(&name));
        let mut tries = 0;
        while let Err(e) = client.batch_execute(&create) {
            // A template may still show a closing session for a moment.
            tries += 1;
            if template.is_none() || tries >= 50 {
                panic!("cannot create test database {name}: {e}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        register(&mut client, "DATABASE", &name, REGISTERED);
        let url = replace_db(&admin, &name);
        TestDb { name, url, admin }
    }

    pub fn client(&self) -> Client {
        postgres_admin(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A failure here leaves a registered database that the next run drops.
        if let Ok(mut c) = Client::connect(&self.admin, postgres_sync::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(&self.name)
            ));
        }
    }
}

/// How [`text_rows`] shows SQL NULL: not a string any test value holds, so a
/// NULL never passes for the text "NULL".
pub const NULL_TEXT: &str = "<NULL>";

/// Rows as text, through the simple protocol (NULL as [`NULL_TEXT`]).
pub fn text_rows(c: &mut Client, sql: &str) -> Vec<Vec<String>> {
    c.simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or(NULL_TEXT).to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The one value of a one-row, one-column query.
pub fn scalar(c: &mut Client, sql: &str) -> String {
    let rows = text_rows(c, sql);
    assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
    assert_eq!(rows[0].len(), 1, "{sql} returned {} columns", rows[0].len());
    rows[0][0].clone()
}

/// The one number of a one-row, one-column query.
pub fn count(c: &mut Client, sql: &str) -> i64 {
    let v = scalar(c, sql);
    v.parse()
        .unwrap_or_else(|e| panic!("{sql}: {v:?} is not a number ({e})"))
}
