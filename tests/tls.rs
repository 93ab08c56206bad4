//! Real TLS end to end: the tests start their own Postgres clusters with a
//! CA they generate, and run the `sandbox pull` binary against them.
//!
//! Two clusters are started once per test binary and shared:
//! - `tls`: `ssl=on`, a server certificate for `localhost` and `127.0.0.1`
//!   signed by the test CA, and a pg_hba.conf with `hostssl` lines only, so a
//!   pull that succeeds over TCP was encrypted. Role `sbx_pw` must give a
//!   password (scram-sha-256); everyone else is trusted.
//! - `plain`: `ssl=off`, for "TLS required but not offered".
//!
//! Cleanup does not rely on destructors (statics are never dropped): a small
//! reaper shell is spawned first, blocked on `read` from a pipe whose write
//! end this process holds. When the test process ends for any reason (even
//! a panic or SIGKILL) the kernel closes the pipe, `read` returns, and the
//! reaper stops both clusters (`pg_ctl stop -m immediate`) and removes the
//! folder. It runs in its own process group so a Ctrl-C at the terminal
//! does not kill it before it has cleaned up.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{free_port, Run, Sandbox};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// A wrong password: must never appear in anything the tool prints.
const SENTINEL: &str = "S3ntinel-pw-XYZ";
/// `sbx_pw`'s real password: must never be printed nor stored.
const RIGHT_PW: &str = "R1ght-pw-Qq7";
const PW_ROLE: &str = "sbx_pw";
const SOURCE_DB: &str = "sbx_source";
/// A name the server certificate does not list; never resolved, because the
/// URLs using it give `hostaddr=127.0.0.1`.
const ALIAS_HOST: &str = "pg-alias.sandbox.test";

struct Cluster {
    data: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    port: u16,
}

struct Servers {
    tls: Cluster,
    plain: Cluster,
    ca: PathBuf,
    other_ca: PathBuf,
    /// Row count of every public table of `SOURCE_DB` (same on both).
    counts: BTreeMap<String, i64>,
}

static SERVERS: OnceLock<Result<Servers, String>> = OnceLock::new();
/// The write end of the reaper's stdin; closed by the kernel at exit.
static REAPER: OnceLock<Mutex<ChildStdin>> = OnceLock::new();

fn servers() -> &'static Servers {
    // Setup never panics inside the initialiser: a failure is stored, so the
    // other tests report it instead of starting clusters again.
    match SERVERS.get_or_init(|| {
        let started = Instant::now();
        let s = setup();
        if let Ok(s) = &s {
            eprintln!(
                "tls test servers ready in {:?} (tls :{}, plain :{})",
                started.elapsed(),
                s.tls.port,
                s.plain.port,
            );
        }
        s
    }) {
        Ok(s) => s,
        Err(e) => panic!("cannot start the test Postgres clusters: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Server setup
// ---------------------------------------------------------------------------

fn postgres_ids() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 3 && f[0] == "postgres" {
                Some((f[2].parse().ok()?, f[3].parse().ok()?))
            } else {
                None
            }
        })
        .ok_or_else(|| "no `postgres` OS user in /etc/passwd".to_string())
}

/// A command run as the `postgres` OS user (initdb and postgres refuse root).
fn as_postgres(program: &str, root: &Path, ids: (u32, u32)) -> Command {
    let mut c = Command::new(program);
    c.uid(ids.0)
        .gid(ids.1)
        .current_dir(root)
        .env("HOME", root)
        .env("PATH", format!("{PG_BIN}:/usr/bin:/bin"));
    c
}

fn run_ok(mut c: Command, what: &str) -> Result<String, String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn chown_tree(path: &Path, ids: (u32, u32)) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(ids.0), Some(ids.1))
        .map_err(|e| format!("chown {}: {e}", path.display()))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| e.to_string())? {
            chown_tree(&entry.map_err(|e| e.to_string())?.path(), ids)?;
        }
    }
    Ok(())
}

struct Pki {
    ca_pem: String,
    other_ca_pem: String,
    server_crt: String,
    server_key: String,
}

fn make_ca(name: &str) -> Result<(rcgen::Certificate, rcgen::KeyPair), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok((p.self_signed(&key)?, key))
}

fn make_pki() -> Result<Pki, rcgen::Error> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let (ca, ca_key) = make_ca("sandbox tls test CA")?;
    let (other_ca, _) = make_ca("sandbox tls test unrelated CA")?;
    let key = KeyPair::generate()?;
    // `new` turns "127.0.0.1" into an IP address SAN.
    let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = p.signed_by(&key, &ca, &ca_key)?;
    Ok(Pki {
        ca_pem: ca.pem(),
        other_ca_pem: other_ca.pem(),
        server_crt: server.pem(),
        server_key: key.serialize_pem(),
    })
}

fn spawn_reaper(root: &Path, ids: (u32, u32)) -> Result<(), String> {
    let script = r#"
trap '' INT TERM HUP
read _ignored
for d in "$1/tls" "$1/plain"; do
  [ -f "$d/postmaster.pid" ] && pg_ctl -D "$d" stop -m immediate -w -t 20 >/dev/null 2>&1
done
rm -rf "$1"
"#;
    let mut child = as_postgres("/bin/sh", root, ids)
        .arg("-c")
        .arg(script)
        .arg("reaper")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot spawn the cleanup shell: {e}"))?;
    let stdin = child.stdin.take().expect("piped stdin");
    REAPER
        .set(Mutex::new(stdin))
        .map_err(|_| "reaper already set".to_string())
}

fn write_conf(c: &Cluster, ssl: bool, root: &Path) -> Result<(), String> {
    let mut conf = format!(
        "\n# sandbox tls tests\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{sock}'\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         shared_buffers = 16MB\n\
         max_connections = 40\n\
         log_connections = on\n\
         password_encryption = 'scram-sha-256'\n\
         ssl = {ssl}\n",
        sock = c.sock.display(),
        ssl = if ssl { "on" } else { "off" },
    );
    if ssl {
        conf.push_str(&format!(
            "ssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            root.join("server.crt").display(),
            root.join("server.key").display()
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(c.data.join("postgresql.conf"))
        .map_err(|e| e.to_string())?;
    f.write_all(conf.as_bytes()).map_err(|e| e.to_string())?;
    let hba = if ssl {
        // No `host`/`hostnossl` lines: a plaintext TCP connection is refused.
        format!(
            "local all all trust\n\
             hostssl all {PW_ROLE} 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n"
        )
    } else {
        "local all all trust\nhost all all 127.0.0.1/32 trust\n".to_string()
    };
    std::fs::write(c.data.join("pg_hba.conf"), hba).map_err(|e| e.to_string())
}

/// Starts a cluster, moving to another port if the chosen one was taken
/// between `free_port` and the bind.
fn start(c: &mut Cluster, root: &Path, ids: (u32, u32)) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..5 {
        c.port = free_port();
        let mut cmd = as_postgres(&format!("{PG_BIN}/pg_ctl"), root, ids);
        cmd.arg("-D")
            .arg(&c.data)
            .arg("-l")
            .arg(&c.log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {}", c.port))
            .arg("start");
        match run_ok(cmd, "pg_ctl start") {
            Ok(_) => return Ok(()),
            Err(e) => {
                let log = std::fs::read_to_string(&c.log).unwrap_or_default();
                last = format!("{e}\n{log}");
                if !log.contains("could not bind") && !log.contains("already in use") {
                    break;
                }
            }
        }
    }
    Err(last)
}

fn socket_client(c: &Cluster, db: &str) -> Result<postgres_sync::Client, String> {
    postgres_sync::Config::new()
        .host_path(&c.sock)
        .port(c.port)
        .user("postgres")
        .dbname(db)
        .connect(postgres_sync::NoTls)
        .map_err(|e| format!("cannot connect over {}: {e}", c.sock.display()))
}

/// Fills `SOURCE_DB` with the fixtures through `sandbox fixtures load`. A
/// failed load fails every test: with empty tables the snapshot checks
/// would compare 0 with 0.
fn load_source(c: &Cluster, sslmode: &str) -> Result<(), String> {
    let mut admin = socket_client(c, "postgres")?;
    // Two statements: CREATE DATABASE cannot run inside the implicit
    // transaction of a multi-statement batch.
    for sql in [
        format!("CREATE ROLE {PW_ROLE} LOGIN SUPERUSER PASSWORD '{RIGHT_PW}'"),
        format!("CREATE DATABASE {SOURCE_DB}"),
    ] {
        admin.batch_execute(&sql).map_err(|e| pg_err(&sql, &e))?;
    }
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{SOURCE_DB}?sslmode={sslmode}",
        c.port
    );
    let loaded = common::sandbox(&["fixtures", "load", "--database-url", &url]);
    if loaded.code != 0 {
        return Err(format!("loading the fixtures failed: {loaded}"));
    }
    Ok(())
}

/// The driver's error with the server's message (its Display is just "db error").
fn pg_err(what: &str, e: &postgres_sync::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{what}: {}: {}", db.code().code(), db.message()),
        None => format!("{what}: {e:?}"),
    }
}

fn table_counts(c: &Cluster) -> Result<BTreeMap<String, i64>, String> {
    let mut client = socket_client(c, SOURCE_DB)?;
    let names: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
            &[],
        )
        .map_err(|e| pg_err("list tables", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = BTreeMap::new();
    for n in names {
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM public.\"{n}\""), &[])
            .map_err(|e| pg_err("count", &e))?
            .get(0);
        out.insert(n, count);
    }
    Ok(out)
}

fn setup() -> Result<Servers, String> {
    let ids = postgres_ids()?;
    let root = tempfile::Builder::new()
        .prefix("sandbox-tls-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    chown_tree(&root, ids)?;
    // First, so whatever gets started below is stopped when we exit.
    spawn_reaper(&root, ids)?;

    let pki = make_pki().map_err(|e| format!("certificate generation: {e}"))?;
    let ca = root.join("ca.pem");
    let other_ca = root.join("other-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).map_err(|e| e.to_string())?;
    std::fs::write(&other_ca, &pki.other_ca_pem).map_err(|e| e.to_string())?;
    std::fs::write(root.join("server.crt"), &pki.server_crt).map_err(|e| e.to_string())?;
    std::fs::write(root.join("server.key"), &pki.server_key).map_err(|e| e.to_string())?;
    // Postgres refuses a key readable by others.
    std::fs::set_permissions(
        root.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| e.to_string())?;

    let cluster = |name: &str| Cluster {
        data: root.join(name),
        sock: root.join(format!("{name}-sock")),
        log: root.join(format!("{name}.log")),
        port: 0,
    };
    let mut tls = cluster("tls");
    let mut plain = cluster("plain");
    for dir in [&tls.sock, &plain.sock] {
        std::fs::create_dir(dir).map_err(|e| e.to_string())?;
    }
    chown_tree(&root, ids)?;

    let mut initdb = as_postgres(&format!("{PG_BIN}/initdb"), &root, ids);
    initdb
        .arg("-D")
        .arg(&tls.data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"]);
    run_ok(initdb, "initdb")?;
    // A copy is much faster than a second initdb.
    let mut cp = as_postgres("/bin/cp", &root, ids);
    cp.arg("-a").arg(&tls.data).arg(&plain.data);
    run_ok(cp, "cp -a")?;
    write_conf(&tls, true, &root)?;
    write_conf(&plain, false, &root)?;
    start(&mut tls, &root, ids)?;
    start(&mut plain, &root, ids)?;

    let (loaded_tls, loaded_plain) = std::thread::scope(|s| {
        let a = s.spawn(|| load_source(&tls, "require"));
        let b = s.spawn(|| load_source(&plain, "disable"));
        (
            a.join().expect("load thread"),
            b.join().expect("load thread"),
        )
    });
    loaded_tls?;
    loaded_plain?;
    let counts = table_counts(&tls)?;
    if counts.is_empty() || counts.values().any(|n| *n == 0) {
        return Err(format!(
            "the source database should hold rows in every table after loading: {counts:?}"
        ));
    }
    Ok(Servers {
        tls,
        plain,
        ca,
        other_ca,
        counts,
    })
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// Runs `sandbox pull` from an empty folder of its own; a hung run fails
/// after 40 s.
fn pull(url: &str, out: &Path) -> Run {
    let work = tempfile::tempdir().expect("tempdir");
    let out = out.to_str().expect("UTF-8 path");
    Sandbox::new(&["pull", "--database-url", url, "--out", out])
        .dir(work.path())
        .timeout(Duration::from_secs(40))
        .run()
}

fn url(port: u16, params: &str) -> String {
    format!("postgres://postgres@localhost:{port}/{SOURCE_DB}?{params}")
}

fn ca_param(path: &Path) -> String {
    format!("sslrootcert={}", path.display())
}

fn assert_no_secret(run: &Run) {
    for secret in [SENTINEL, RIGHT_PW] {
        assert!(
            !run.all().contains(secret),
            "a password was printed:\n{run}"
        );
    }
}

fn assert_fails(run: &Run, needles: &[&str]) {
    // Shown with --nocapture, to read the messages people will get.
    eprintln!("{}", run.stderr.trim_end());
    assert_eq!(run.code, 2, "expected exit 2:\n{run}");
    let lower = run.stderr.to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "stderr lacks '{n}':\n{run}"
        );
    }
    assert!(
        run.stderr.trim_start().starts_with("error: "),
        "stderr should be one error paragraph:\n{run}"
    );
    assert_no_secret(run);
}

/// Names of the entries of a folder (to spot stray `.part` files).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn assert_nothing_written(dir: &Path, run: &Run) {
    assert_eq!(
        entries(dir),
        Vec::<String>::new(),
        "a failed pull left files behind:\n{run}"
    );
}

/// Checks the snapshot: where it came from, and that every table holds as
/// many rows as on the server. Returns `source_url`.
fn assert_snapshot(path: &Path, run: &Run) -> String {
    assert_eq!(run.code, 0, "pull failed:\n{run}");
    assert_no_secret(run);
    assert_eq!(
        entries(path.parent().unwrap()),
        vec![path.file_name().unwrap().to_string_lossy().into_owned()],
        "only the snapshot should be in the folder:\n{run}"
    );
    let bytes = std::fs::read(path).expect("snapshot file");
    for secret in [SENTINEL, RIGHT_PW] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a password is stored in the snapshot"
        );
    }
    let db = rusqlite::Connection::open(path).expect("open snapshot");
    let source_url: String = db
        .query_row("SELECT source_url FROM _sandbox_snapshot", [], |r| r.get(0))
        .expect("_sandbox_snapshot row");
    let tables: Vec<(String, i64)> = db
        .prepare("SELECT table_name, rows FROM _sandbox_tables ORDER BY table_name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!tables.is_empty(), "no tables pulled:\n{run}");
    let counts = &servers().counts;
    for (name, rows) in &tables {
        let expected = counts
            .get(name)
            .unwrap_or_else(|| panic!("snapshot has {name}, which the server has not"));
        assert_eq!(rows, expected, "{name}: recorded rows");
        let stored: i64 = db
            .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, *expected, "{name}: rows in the snapshot");
    }
    source_url
}

/// The server's log line for the session with this application_name.
fn connection_log(c: &Cluster, app: &str) -> Option<String> {
    let needle = format!("application_name={app} ");
    std::fs::read_to_string(&c.log).ok().and_then(|log| {
        log.lines()
            .find(|l| l.contains("connection authorized") && l.contains(&needle))
            .map(str::to_string)
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Case 1: verify-full with the right CA and the host name in the certificate.
#[test]
fn verify_full_with_the_right_ca_pulls_over_tls() {
    let s = servers();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let u = url(
        s.tls.port,
        &format!(
            "sslmode=verify-full&{}&application_name=tls_t1",
            ca_param(&s.ca)
        ),
    );
    let run = pull(&u, &out);
    let source = assert_snapshot(&out, &run);
    assert!(source.contains("sslmode=verify-full"), "{source}");
    assert!(
        source.contains(&format!("localhost:{}", s.tls.port)),
        "{source}"
    );
    assert!(!source.contains(SENTINEL), "{source}");
    // The server saw that very session encrypted.
    let line = connection_log(&s.tls, "tls_t1").expect("a connection log line for tls_t1");
    assert!(line.contains("SSL enabled"), "{line}");

    // The same URL without TLS is refused by the hostssl-only server: the
    // success above could not have been a plaintext session.
    let dir2 = tempfile::tempdir().unwrap();
    let run = pull(
        &url(s.tls.port, "sslmode=disable&application_name=tls_t1_plain"),
        &dir2.path().join("s.sqlite"),
    );
    assert_fails(
        &run,
        &["no pg_hba.conf entry", "no encryption", "sslmode=require"],
    );
    assert_nothing_written(dir2.path(), &run);

    // The password is shown as *** in the stored URL.
    let dir3 = tempfile::tempdir().unwrap();
    let out3 = dir3.path().join("s.sqlite");
    let u = format!(
        "postgres://{PW_ROLE}:{RIGHT_PW}@localhost:{}/{SOURCE_DB}?sslmode=verify-full&{}",
        s.tls.port,
        ca_param(&s.ca)
    );
    let source = assert_snapshot(&out3, &pull(&u, &out3));
    assert!(source.contains(&format!("{PW_ROLE}:***@")), "{source}");
}

/// Case 2: verify-ca accepts a certificate that does not name the host;
/// verify-full refuses it. Also: verify-full by IP works (the certificate
/// lists 127.0.0.1) and verify-ca still checks the chain.
#[test]
fn verify_ca_ignores_the_host_name_but_verify_full_does_not() {
    let s = servers();
    let alias = |params: &str| {
        format!(
            "postgres://postgres@{ALIAS_HOST}:{}/{SOURCE_DB}?hostaddr=127.0.0.1&{params}",
            s.tls.port
        )
    };

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let run = pull(
        &alias(&format!("sslmode=verify-ca&{}", ca_param(&s.ca))),
        &out,
    );
    let source = assert_snapshot(&out, &run);
    assert!(source.contains("sslmode=verify-ca"), "{source}");

    let dir = tempfile::tempdir().unwrap();
    let run = pull(
        &alias(&format!("sslmode=verify-full&{}", ca_param(&s.ca))),
        &dir.path().join("s.sqlite"),
    );
    assert_fails(
        &run,
        &[
            "certificate",
            "does not list the host name",
            ALIAS_HOST,
            "sslmode=verify-ca",
        ],
    );
    assert_nothing_written(dir.path(), &run);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let run = pull(
        &format!(
            "postgres://postgres@127.0.0.1:{}/{SOURCE_DB}?sslmode=verify-full&{}",
            s.tls.port,
            ca_param(&s.ca)
        ),
        &out,
    );
    assert_snapshot(&out, &run);

    let dir = tempfile::tempdir().unwrap();
    let run = pull(
        &alias(&format!("sslmode=verify-ca&{}", ca_param(&s.other_ca))),
        &dir.path().join("s.sqlite"),
    );
    assert_fails(&run, &["certificate", "sslrootcert", "sslmode=verify-ca"]);
    assert_nothing_written(dir.path(), &run);
}

/// Case 3: verify-full with a CA that did not sign the server certificate.
#[test]
fn verify_full_with_the_wrong_ca_is_refused_and_writes_nothing() {
    let s = servers();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let u = format!(
        "postgres://postgres:{SENTINEL}@localhost:{}/{SOURCE_DB}?sslmode=verify-full&{}",
        s.tls.port,
        ca_param(&s.other_ca)
    );
    let run = pull(&u, &out);
    assert_fails(
        &run,
        &["certificate", "not accepted", "sslrootcert", "issuer"],
    );
    assert!(!out.exists());
    assert_nothing_written(dir.path(), &run);
}

/// Case 4: require (and prefer) encrypt without verifying the certificate.
#[test]
fn require_and_prefer_connect_without_a_ca() {
    let s = servers();
    for (mode, app) in [("require", "tls_t4_require"), ("prefer", "tls_t4_prefer")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.sqlite");
        let run = pull(
            &url(
                s.tls.port,
                &format!("sslmode={mode}&application_name={app}"),
            ),
            &out,
        );
        let source = assert_snapshot(&out, &run);
        assert!(source.contains(&format!("sslmode={mode}")), "{source}");
        let line = connection_log(&s.tls, app).expect("connection log line");
        assert!(line.contains("SSL enabled"), "{line}");
    }
}

/// Case 5: A server with ssl=off: TLS modes fail clearly, disable works.
#[test]
fn tls_required_but_not_offered() {
    let s = servers();
    for params in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&{}", ca_param(&s.ca)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let u = format!(
            "postgres://postgres:{SENTINEL}@127.0.0.1:{}/{SOURCE_DB}?{params}",
            s.plain.port
        );
        let run = pull(&u, &dir.path().join("s.sqlite"));
        assert_fails(&run, &["does not offer TLS", "sslmode="]);
        assert_nothing_written(dir.path(), &run);
    }
    // The server itself is fine.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let run = pull(
        &format!(
            "postgres://postgres@127.0.0.1:{}/{SOURCE_DB}?sslmode=disable",
            s.plain.port
        ),
        &out,
    );
    assert_snapshot(&out, &run);
}

/// Case 6: A wrong password, in each place a URL can hold one.
#[test]
fn wrong_password_is_reported_and_never_printed() {
    let s = servers();
    let p = s.tls.port;
    for u in [
        format!("postgres://{PW_ROLE}:{SENTINEL}@localhost:{p}/{SOURCE_DB}?sslmode=require"),
        format!(
            "postgres://{PW_ROLE}@localhost:{p}/{SOURCE_DB}?password={SENTINEL}&sslmode=verify-full&{}",
            ca_param(&s.ca)
        ),
        format!(
            "host=localhost port={p} user={PW_ROLE} password={SENTINEL} dbname={SOURCE_DB} sslmode=require"
        ),
        // Quoted values hold spaces and '='; the whole value is the password.
        format!(
            "host=localhost port={p} user={PW_ROLE} password='{SENTINEL} {SENTINEL}' \
             dbname={SOURCE_DB} sslmode=require"
        ),
        format!(
            "host=localhost port={p} user={PW_ROLE} password='x {SENTINEL}=1' \
             dbname={SOURCE_DB} sslmode=require"
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let run = pull(&u, &dir.path().join("s.sqlite"));
        assert_fails(&run, &["authentication failed", PW_ROLE, "password is wrong"]);
        assert_nothing_written(dir.path(), &run);
    }
    // The role works with its real password (scram over TLS).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let run = pull(
        &format!("postgres://{PW_ROLE}:{RIGHT_PW}@localhost:{p}/{SOURCE_DB}?sslmode=require"),
        &out,
    );
    let source = assert_snapshot(&out, &run);
    assert!(source.contains("***"), "{source}");
    // The same in key=value form, quoted, with a quoted CA path.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let run = pull(
        &format!(
            "host=localhost port={p} user={PW_ROLE} password='{RIGHT_PW}' dbname={SOURCE_DB} \
             sslmode=verify-full sslrootcert='{}'",
            s.ca.display()
        ),
        &out,
    );
    let source = assert_snapshot(&out, &run);
    assert!(source.contains("password=***"), "{source}");
}

/// Case 7: Everything else that can be wrong with the URL or the server.
#[test]
fn connection_problems_each_get_a_specific_message() {
    let s = servers();
    let p = s.tls.port;
    let closed = free_port();
    let missing_ca = tempfile::tempdir().unwrap().path().join("no-such-ca.pem");
    let junk_dir = tempfile::tempdir().unwrap();
    let junk_ca = junk_dir.path().join("junk.pem");
    std::fs::write(&junk_ca, "this is not a certificate\n").unwrap();
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!(
                "postgres://postgres:{SENTINEL}@127.0.0.1:{closed}/{SOURCE_DB}?sslmode=require"
            ),
            vec![
                "cannot reach Postgres".into(),
                format!("127.0.0.1:{closed}"),
                "connection refused".into(),
            ],
        ),
        (
            format!("postgres://postgres:{SENTINEL}@no-such-host.invalid:{p}/{SOURCE_DB}"),
            vec![
                "cannot resolve the host".into(),
                "no-such-host.invalid".into(),
            ],
        ),
        (
            format!("postgres://postgres:{SENTINEL}@localhost:{p}/no_such_db?sslmode=require"),
            vec![
                "database 'no_such_db' does not exist".into(),
                format!("localhost:{p}"),
            ],
        ),
        (
            format!("postgres://postgres:{SENTINEL}@localhost:notaport/{SOURCE_DB}"),
            vec!["not a valid URL".into(), "port".into()],
        ),
        (
            format!("postgres://postgres:{SENTINEL}@localhost:{p}/{SOURCE_DB}?sslmode=sometimes"),
            vec!["unknown sslmode 'sometimes'".into(), "verify-full".into()],
        ),
        (
            format!(
                "postgres://postgres:{SENTINEL}@localhost:{p}/{SOURCE_DB}?sslmode=verify-full&{}",
                ca_param(&missing_ca)
            ),
            vec![
                "cannot read sslrootcert".into(),
                missing_ca.display().to_string(),
            ],
        ),
        (
            format!(
                "postgres://postgres:{SENTINEL}@localhost:{p}/{SOURCE_DB}?sslmode=verify-full&{}",
                ca_param(&junk_ca)
            ),
            vec![
                "holds no PEM certificate".into(),
                junk_ca.display().to_string(),
            ],
        ),
        (
            format!("host=localhost port={p} password={SENTINEL} nonsense"),
            vec!["neither a postgres:// URL nor key=value".into()],
        ),
    ];
    for (u, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let run = pull(&u, &dir.path().join("s.sqlite"));
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_fails(&run, &needles);
        assert_nothing_written(dir.path(), &run);
    }
}

/// Case 8: An unusable --out folder is named; nothing is left behind.
#[test]
fn unusable_out_folder_is_named() {
    let s = servers();
    let u = url(s.tls.port, "sslmode=require");
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing").join("sub");
    let run = pull(&u, &missing.join("s.sqlite"));
    assert_fails(
        &run,
        &[
            "cannot write the snapshot in",
            &missing.display().to_string(),
            "--out",
        ],
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let run = pull(&u, &file.join("s.sqlite"));
    assert_fails(
        &run,
        &["cannot write the snapshot in", &file.display().to_string()],
    );

    // Permission bits do not stop root; check them only as another user.
    let ro = dir.path().join("read-only");
    std::fs::create_dir(&ro).unwrap();
    if std::fs::metadata(&ro).unwrap().uid() != 0 {
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let run = pull(&u, &ro.join("s.sqlite"));
        assert_fails(
            &run,
            &["cannot write the snapshot in", &ro.display().to_string()],
        );
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(entries(dir.path()), vec!["a-file", "read-only"]);
    assert_eq!(entries(&ro), Vec::<String>::new());
}

/// A pull that fails after the temporary file was created (the database
/// lacks the plan's tables) removes it.
#[test]
fn failure_after_the_file_was_started_leaves_no_part_file() {
    let s = servers();
    let dir = tempfile::tempdir().unwrap();
    let run = pull(
        &format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&{}",
            s.tls.port,
            ca_param(&s.ca)
        ),
        &dir.path().join("s.sqlite"),
    );
    assert_fails(&run, &["has no table", "in schema public"]);
    assert_nothing_written(dir.path(), &run);
}

/// The whole loop — load, pull, rehearse, push, rollback — over
/// `sslmode=verify-full` with the CA file, in a database of its own.
#[test]
fn push_and_rollback_over_verify_full() {
    let s = servers();
    let db = "sbx_tls_push";
    {
        let mut c = socket_client(&s.tls, "postgres").expect("socket connection");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .expect("drop the push database");
        c.batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create the push database");
    }
    let u = format!(
        "postgres://postgres@localhost:{}/{db}?sslmode=verify-full&{}&application_name=tls_push",
        s.tls.port,
        ca_param(&s.ca)
    );
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.sqlite");
    let snap_s = snap.to_str().unwrap();
    for args in [
        vec!["fixtures", "load", "--database-url", &u],
        vec!["pull", "--database-url", &u, "--out", snap_s],
        vec!["rehearse", "--snapshot", snap_s],
        vec![
            "push",
            "--database-url",
            &u,
            "--snapshot",
            snap_s,
            "--confirm",
            "--json",
        ],
    ] {
        common::sandbox(&args).ok();
    }
    let mut c = socket_client(&s.tls, db).expect("socket connection");
    let count =
        |c: &mut postgres_sync::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut c, "SELECT count(*) FROM workflows"), 368);
    assert_eq!(count(&mut c, "SELECT count(*) FROM tasks"), 343);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        ),
        105
    );
    let line = connection_log(&s.tls, "tls_push").expect("a connection log line for tls_push");
    assert!(line.contains("SSL enabled"), "{line}");
    let receipt: String = c
        .query_one("SELECT id::text FROM sandbox.receipts", &[])
        .unwrap()
        .get(0);
    common::sandbox(&[
        "rollback",
        "--database-url",
        &u,
        "--receipt",
        &receipt,
        "--confirm",
    ])
    .ok();
    assert_eq!(count(&mut c, "SELECT count(*) FROM workflows"), 141);
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_tables WHERE tablename IN ('tasks', 'tools', 'strategic_priorities')"), 0);
}
