//! The fault suite (issue 6): the real `sandbox` binary and a real Postgres,
//! broken on purpose at random moments.
//!
//! - `kill -9` of `push --confirm`, `pull` and `rehearse` mid-way;
//! - the Postgres backend terminated mid-push and mid-pull;
//! - a row lock held on a target table by another session;
//! - eight simultaneous pushes, and writers between pull and push.
//!
//! After every fault the database is compared, row by row (`md5(t::text)` by
//! primary key of every table) and in its schema, with the state before the
//! push and the state a clean push leaves; it must be exactly one of them.
//!
//! CI runs few trials. More come from the environment (`scripts/fault-suite`
//! sets them): `SANDBOX_FAULT_TRIALS` (push kills, default 10),
//! `SANDBOX_FAULT_FILE_TRIALS` (pull and rehearse kills, default 5 each),
//! `SANDBOX_FAULT_TERMINATE_TRIALS` (backend terminations, default 3 each),
//! `SANDBOX_FAULT_RACE_ROUNDS` (default 1), `SANDBOX_FAULT_SEED` (replays the
//! random delays). Each test prints its figures as `FAULT ...` lines and
//! appends them to `SANDBOX_FAULT_REPORT` when set.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    admin_url, postgres_admin, whole_database_state_with, DatabaseState, Proc, Run, Sandbox, TestDb,
};
use sandbox::db::sqlite::Snapshot;

/// No command of the loop may take longer than this on the fixtures; past
/// it, the process is killed and the test fails as a hang. A debug build's
/// rehearse took over 90 s on a 2-core machine with other builds running
/// (a fresh-clone CI beside three helpers' test runs); a hang is endless.
const HANG: Duration = Duration::from_secs(180);

/// `--lock-timeout` a push runs with unless a test says otherwise.
const DEFAULT_LOCK_TIMEOUT_MS: u64 = 10_000;

// ---------------------------------------------------------------------------
// Settings, randomness, figures

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) => default,
    }
}

/// xorshift64*: the delays only need to be spread out and replayable.
struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = match std::env::var("SANDBOX_FAULT_SEED") {
            Ok(v) => v.trim().parse().expect("SANDBOX_FAULT_SEED is a number"),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
            }
        };
        // Each test draws its own sequence from the one seed.
        let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in test.bytes() {
            state = (state ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
        Rng {
            seed,
            state: state | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Trial `i` of `n` gets a uniform draw from the `i`-th of `n` equal
    /// slices of `[0, max]` milliseconds: random moments that still cover
    /// the whole run when there are few trials.
    fn stratified(&mut self, i: usize, n: usize, max: u64) -> u64 {
        let slice = max as f64 / n.max(1) as f64;
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((i as f64 + u) * slice) as u64
    }
}

/// What a test measured, printed as `FAULT <test>: ...` lines.
struct Figures {
    test: &'static str,
    lines: Vec<String>,
}

impl Figures {
    fn new(test: &'static str, rng: &Rng) -> Figures {
        let mut f = Figures {
            test,
            lines: Vec::new(),
        };
        f.add(format!("seed {} (SANDBOX_FAULT_SEED replays it)", rng.seed));
        f
    }

    fn add(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("FAULT {}: {line}", self.test);
        self.lines.push(line);
    }

    /// Appends the figures to `SANDBOX_FAULT_REPORT` (the long mode's summary).
    fn publish(&self) {
        if let Ok(path) = std::env::var("SANDBOX_FAULT_REPORT") {
            use std::io::Write;
            let mut text = String::new();
            for l in &self.lines {
                text.push_str(&format!("FAULT {}: {l}\n", self.test));
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("cannot append to {path}: {e}"));
            f.write_all(text.as_bytes()).unwrap();
        }
    }
}

/// "min/median/max ms" of a list of durations.
fn spread(ms: &[u64]) -> String {
    if ms.is_empty() {
        return "-".into();
    }
    let mut v = ms.to_vec();
    v.sort_unstable();
    format!("{}/{}/{} ms", v[0], v[v.len() / 2], v[v.len() - 1])
}

// ---------------------------------------------------------------------------
// Running the binary

/// A run of the binary in the harness's clean environment; past [`HANG`] it
/// is killed and fails.
fn sandbox(args: &[&str]) -> Run {
    spawn(args).finish()
}

fn spawn(args: &[&str]) -> Proc {
    Sandbox::new(args).timeout(HANG).spawn()
}

fn push_args<'a>(url: &'a str, snapshot: &'a str, lock_timeout: &'a str) -> Vec<&'a str> {
    vec![
        "push",
        "--database-url",
        url,
        "--snapshot",
        snapshot,
        "--confirm",
        "--lock-timeout",
        lock_timeout,
    ]
}

fn push(url: &str, snapshot: &Path) -> Run {
    let lt = DEFAULT_LOCK_TIMEOUT_MS.to_string();
    sandbox(&push_args(url, path_str(snapshot), &lt))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A push that committed prints this; "Already applied" is a different line.
fn applied(run: &Run) -> bool {
    run.code == 0 && run.stdout.contains("Applied diff ")
}

fn already_applied(run: &Run) -> bool {
    run.code == 0 && run.stdout.contains("Already applied: receipt ")
}

// ---------------------------------------------------------------------------
// Database state, row by row

/// Everything a push may change, read back from Postgres: the whole
/// database, with the receipts seen by diff hash and status (their ids and
/// timestamps differ per push by design).
fn capture(url: &str) -> DatabaseState {
    whole_database_state_with(
        url,
        &[("sandbox.receipts", "t.diff_hash || ' ' || t.status")],
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Before,
    After,
    Inconsistent,
}

fn classify(now: &DatabaseState, before: &DatabaseState, after: &DatabaseState) -> Outcome {
    if now == before {
        Outcome::Before
    } else if now == after {
        Outcome::After
    } else {
        Outcome::Inconsistent
    }
}

/// `sandbox` backends connected to one database (the tool names itself).
fn sandbox_backends(db: &str) -> Vec<String> {
    let mut c = postgres_admin(&admin_url());
    c.query(
        "SELECT format('pid %s %s xact=%s wait=%s:%s %s', pid, state, \
                CASE WHEN xact_start IS NULL THEN 'no' ELSE 'yes' END, \
                wait_event_type, wait_event, left(query, 60)) \
         FROM pg_stat_activity WHERE datname = $1 AND application_name = 'sandbox' \
           AND pid <> pg_backend_pid()",
        &[&db],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

// ---------------------------------------------------------------------------
// The world a test starts from

/// Runs to the end, noting when the process first had a backend in `db`.
fn run_watching(args: &[&str], db: &str) -> (Run, u64) {
    let mut p = spawn(args);
    let connect = wait_for_backend(&mut p, db);
    let run = p.finish();
    let connect = connect.map(|d| d.as_millis() as u64).unwrap_or(run.millis);
    (run, connect)
}

/// Fixtures loaded into a template database, pulled into `snapshot`, and
/// (when asked) rehearsed, with the state a clean push leaves recorded on a
/// copy. Trials run on further copies of the template.
struct Base {
    template: TestDb,
    dir: tempfile::TempDir,
    snapshot: PathBuf,
    pull_ms: u64,
    rehearse_ms: u64,
    before: DatabaseState,
    after: Option<DatabaseState>,
    push_ms: u64,
    /// When the clean push and pull had a backend: (from, to) ms after spawn.
    push_backend_ms: (u64, u64),
    pull_backend_ms: (u64, u64),
}

impl Base {
    fn new(tag: &str, rehearse: bool, push: bool) -> Base {
        let template = TestDb::create(tag);
        sandbox(&["fixtures", "load", "--database-url", &template.url]).code(0);
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("base.sqlite");
        let (pull, pull_connect) = run_watching(
            &[
                "pull",
                "--database-url",
                &template.url,
                "--out",
                path_str(&snapshot),
            ],
            &template.name,
        );
        pull.code(0);
        let mut rehearse_ms = 0;
        if rehearse {
            let r = sandbox(&["rehearse", "--snapshot", path_str(&snapshot)]);
            r.code(0);
            rehearse_ms = r.millis;
        }
        let before = capture(&template.url);
        assert!(!before.has_schema("sandbox"));
        // Copies are made from it from now on; no session may sit in it.
        postgres_admin(&admin_url())
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
                sandbox::types::quote_ident(&template.name)
            ))
            .unwrap();
        let mut base = Base {
            template,
            dir,
            snapshot,
            pull_ms: pull.millis,
            rehearse_ms,
            before,
            after: None,
            push_ms: 0,
            push_backend_ms: (0, 0),
            pull_backend_ms: (pull_connect, pull.millis),
        };
        if push {
            let db = base.copy("after");
            let snap = base.snapshot_copy("after");
            let lt = DEFAULT_LOCK_TIMEOUT_MS.to_string();
            let (run, connect) = run_watching(&push_args(&db.url, path_str(&snap), &lt), &db.name);
            assert!(applied(&run), "the clean push failed: {}", run.show());
            base.push_ms = run.millis;
            base.push_backend_ms = (connect, run.millis);
            let after = capture(&db.url);
            assert!(after.row_count("sandbox.receipts") == 1, "{after:?}");
            assert_ne!(after.rows, base.before.rows);
            // Same fixtures and same snapshot give the same after-state.
            let again = base.copy("after2");
            let run = self::push(&again.url, &base.snapshot_copy("after2"));
            assert!(applied(&run), "{}", run.show());
            base.push_ms = base.push_ms.min(run.millis);
            let after2 = capture(&again.url);
            assert!(
                after2 == after,
                "two clean pushes on identical databases differ:\n  {}",
                after.differences(&after2)
            );
            base.after = Some(after);
        }
        base
    }

    fn copy(&self, tag: &str) -> TestDb {
        TestDb::from_template(&self.template.name, tag)
    }

    /// A private copy of the base snapshot (a push records its receipt in
    /// the file it pushed from).
    fn snapshot_copy(&self, tag: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{tag}.sqlite"));
        std::fs::copy(&self.snapshot, &p).unwrap();
        p
    }

    fn after(&self) -> &DatabaseState {
        self.after.as_ref().expect("Base built with push = true")
    }
}

// ---------------------------------------------------------------------------
// 1. kill -9 of `push --confirm`

#[test]
fn kill_9_during_push_leaves_exactly_before_or_after() {
    let trials = env_count("SANDBOX_FAULT_TRIALS", 10);
    let base = Base::new("fault_kill_push", true, true);
    let mut rng = Rng::new("kill_push");
    let mut fig = Figures::new("kill -9 push --confirm", &rng);
    // Kill delays span a whole push; the span follows the full pushes the
    // trials run, since the machine's load moves during a long run.
    let mut span = base.push_ms;
    let (mut n_before, mut n_after, mut inconsistent) = (0, 0, Vec::new());
    let (mut exited_first, mut in_txn, mut lingering) = (0, 0, 0);
    let (mut delays, mut repush_ms) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let db = base.copy(&format!("k{i}"));
        let snap = base.snapshot_copy(&format!("k{i}"));
        let delay = rng.stratified(i, trials, span);
        delays.push(delay);
        let lt = DEFAULT_LOCK_TIMEOUT_MS.to_string();
        let mut p = spawn(&push_args(&db.url, path_str(&snap), &lt));
        std::thread::sleep(Duration::from_millis(delay));
        let backends = sandbox_backends(&db.name);
        if backends.iter().any(|b| b.contains("xact=yes")) {
            in_txn += 1;
        }
        let was_running = p.kill9();
        let killed = p.finish();
        if !was_running {
            exited_first += 1;
            killed.code(0);
        }
        let left = sandbox_backends(&db.name);
        if !left.is_empty() {
            lingering += 1;
        }
        let now = capture(&db.url);
        let outcome = classify(&now, &base.before, base.after());
        match outcome {
            Outcome::Before => n_before += 1,
            Outcome::After => n_after += 1,
            Outcome::Inconsistent => {
                inconsistent.push(format!(
                    "trial {i} (kill at {delay} ms, backends then {backends:?}):\n  vs before: {}\n  vs after: {}",
                    base.before.differences(&now),
                    base.after().differences(&now)
                ));
                continue;
            }
        }
        // The next push applies, or finds it applied, within its timeouts.
        let again = push(&db.url, &snap);
        repush_ms.push(again.millis);
        if applied(&again) {
            span = (span + again.millis) / 2;
        }
        match outcome {
            Outcome::Before if !left.is_empty() => assert!(
                applied(&again) || already_applied(&again),
                "trial {i}: {}",
                again.show()
            ),
            Outcome::Before => assert!(applied(&again), "trial {i}: {}", again.show()),
            _ => assert!(already_applied(&again), "trial {i}: {}", again.show()),
        }
        let fin = capture(&db.url);
        assert!(
            &fin == base.after(),
            "trial {i}: after the second push the database is not the clean after-state:\n  {}",
            base.after().differences(&fin)
        );
    }
    fig.add(format!(
        "{trials} trials: before-state {n_before}, after-state {n_after}, inconsistent {}",
        inconsistent.len()
    ));
    fig.add(format!(
        "a clean push took {} ms at the start, {span} ms at the end (kill delays spread over it)",
        base.push_ms
    ));
    fig.add(format!(
        "kill delays {}; killed inside the push transaction {in_txn}; process already done {exited_first}; \
         backend still present right after the kill {lingering}",
        spread(&delays)
    ));
    fig.add(format!(
        "next push --confirm (Applied or Already applied, lock timeout {DEFAULT_LOCK_TIMEOUT_MS} ms): {}",
        spread(&repush_ms)
    ));
    fig.publish();
    assert!(inconsistent.is_empty(), "{}", inconsistent.join("\n"));
    // The delays must actually have landed inside the transaction sometimes.
    if trials >= 5 {
        assert!(in_txn > 0, "no kill landed inside the push transaction");
    }
}

// ---------------------------------------------------------------------------
// 2. kill -9 of `pull` and `rehearse`

fn part_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part"))
        .collect();
    v.sort();
    v
}

#[test]
fn kill_9_during_pull_keeps_the_previous_snapshot() {
    let trials = env_count("SANDBOX_FAULT_FILE_TRIALS", 5);
    let base = Base::new("fault_kill_pull", true, false);
    let db = base.copy("src");
    let reference = Snapshot::open(&base.snapshot).unwrap();
    let expected_sum = reference.info.snapshot_checksum.clone();
    drop(reference);
    let mut rng = Rng::new("kill_pull");
    let mut fig = Figures::new("kill -9 pull", &rng);
    let mut span = base.pull_ms;
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("snapshot.sqlite");
    // The previous snapshot holds a rehearsal, so pulling over it needs --force.
    std::fs::copy(&base.snapshot, &target).unwrap();
    let (mut kept, mut replaced, mut broken) = (0, 0, Vec::new());
    let (mut part_at_kill, mut part_left) = (0, 0);
    let (mut delays, mut next_ms) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let previous = std::fs::read(&target).unwrap();
        let parts_before = part_files(work.path());
        let delay = rng.stratified(i, trials, span);
        delays.push(delay);
        let mut p = spawn(&[
            "pull",
            "--database-url",
            &db.url,
            "--out",
            path_str(&target),
            "--force",
        ]);
        std::thread::sleep(Duration::from_millis(delay));
        if part_files(work.path()).len() > parts_before.len() {
            part_at_kill += 1;
        }
        let was_running = p.kill9();
        let run = p.finish();
        if !was_running {
            run.code(0);
        }
        let parts_after = part_files(work.path());
        let new_parts: Vec<&String> = parts_after
            .iter()
            .filter(|n| !parts_before.contains(n))
            .collect();
        if !new_parts.is_empty() {
            part_left += 1;
        }
        for n in &parts_after {
            assert!(
                n.starts_with(".sandbox-pull-") && n.ends_with(".sqlite.part"),
                "an unexpected partial file {n}"
            );
            // A leftover holds production rows: owner-only, like a snapshot.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(work.path().join(n))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{n} is readable by others");
        }
        let now = std::fs::read(&target).unwrap();
        if now == previous {
            kept += 1;
        } else {
            // Replaced: then it is a whole snapshot of the same data.
            match Snapshot::open(&target) {
                Ok(s) if s.info.snapshot_checksum == expected_sum && s.tables.len() == 10 => {
                    replaced += 1
                }
                Ok(s) => broken.push(format!(
                    "trial {i}: a different snapshot under the final name ({} tables, {})",
                    s.tables.len(),
                    s.info.snapshot_checksum
                )),
                Err(e) => broken.push(format!("trial {i}: the final name does not open: {e:#}")),
            }
        }
        // The next pull succeeds, leftovers or not.
        let next_target = work.path().join(format!("next{i}.sqlite"));
        let next = sandbox(&[
            "pull",
            "--database-url",
            &db.url,
            "--out",
            path_str(&next_target),
        ]);
        next.code(0);
        next_ms.push(next.millis);
        span = (span + next.millis) / 2;
        let s = Snapshot::open(&next_target).unwrap();
        assert_eq!(s.info.snapshot_checksum, expected_sum);
        drop(s);
        std::fs::remove_file(&next_target).unwrap();
    }
    // And pulling over the very file the kills were aimed at works.
    sandbox(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        path_str(&target),
        "--force",
    ])
    .code(0);
    assert_eq!(
        Snapshot::open(&target).unwrap().info.snapshot_checksum,
        expected_sum
    );
    let leftovers = part_files(work.path());
    fig.add(format!(
        "a clean pull (scale 1) took {} ms at the start, {span} ms at the end (kill delays spread over it)",
        base.pull_ms
    ));
    fig.add(format!(
        "{trials} trials: previous file byte-identical {kept}, replaced by a complete snapshot {replaced}, broken {}",
        broken.len()
    ));
    fig.add(format!(
        "kill delays {}; a .part file existed at the kill {part_at_kill}; \
         trials leaving a .sandbox-pull-*.sqlite.part behind {part_left} ({} files in the folder at the end, never under the final name)",
        spread(&delays),
        leftovers.len()
    ));
    fig.add(format!("next pull {}", spread(&next_ms)));
    fig.publish();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Every row of the file's rehearsal tables, by rehearsal id, in order.
fn rehearsal_rows(path: &Path) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT id, 'rehearsal|' || rehearsed_at || '|' || plan_hash || '|' || staged_checksum \
         || '|' || passed || '|' || checks_total || '|' || checks_failed FROM _sandbox_rehearsals",
        "SELECT rehearsal_id, 'check|' || seq || '|' || check_name || '|' || expected || '|' \
         || actual || '|' || ok FROM _sandbox_checks",
        "SELECT rehearsal_id, 'row|' || seq || '|' || row_no || '|' || row_text \
         FROM _sandbox_check_rows",
    ] {
        let mut stmt = c.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        out.extend(rows.map(|r| r.unwrap()));
    }
    out.sort();
    out
}

#[test]
fn kill_9_during_rehearse_keeps_the_file_and_its_rehearsals() {
    let trials = env_count("SANDBOX_FAULT_FILE_TRIALS", 5);
    let base = Base::new("fault_kill_rehearse", true, false);
    let mut rng = Rng::new("kill_rehearse");
    let mut fig = Figures::new("kill -9 rehearse", &rng);
    let mut span = base.rehearse_ms;
    let file = base.snapshot_copy("rehearsed");
    let journal = PathBuf::from(format!("{}-journal", file.display()));
    let (mut rolled_back, mut committed) = (0, 0);
    let (mut hot_journal, mut unsealed_journal) = (0, 0);
    let (mut delays, mut next_ms) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let previous = rehearsal_rows(&file);
        let count_before = Snapshot::open(&file).unwrap().rehearsal_count().unwrap();
        let delay = rng.stratified(i, trials, span);
        delays.push(delay);
        let mut p = spawn(&["rehearse", "--snapshot", path_str(&file)]);
        std::thread::sleep(Duration::from_millis(delay));
        let was_running = p.kill9();
        let run = p.finish();
        if !was_running {
            run.code(0);
        }
        // A journal whose header carries SQLite's magic is hot: pages of
        // the file were changed and the next open rolls them back. One
        // killed before its header was sealed never touched the file and is
        // ignored until the next write transaction replaces it.
        const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
        let hot = match std::fs::read(&journal) {
            Ok(bytes) if bytes.starts_with(&JOURNAL_MAGIC) => {
                hot_journal += 1;
                true
            }
            Ok(_) => {
                unsealed_journal += 1;
                false
            }
            Err(_) => false,
        };
        // The file opens in the tool (which rolls a hot journal back) ...
        let status = sandbox(&["status", "--snapshot", path_str(&file)]);
        status.code(0);
        assert!(
            !(hot && journal.exists()),
            "trial {i}: the hot journal outlived the next open"
        );
        // ... holds every earlier rehearsal unchanged, and at most one more.
        let count = Snapshot::open(&file).unwrap().rehearsal_count().unwrap();
        let now = rehearsal_rows(&file);
        let last = previous.iter().map(|(id, _)| *id).max().unwrap_or(0);
        let kept: Vec<(i64, String)> = now.iter().filter(|(id, _)| *id <= last).cloned().collect();
        assert!(
            kept == previous,
            "trial {i}: earlier rehearsal rows changed"
        );
        match count - count_before {
            0 => {
                assert_eq!(now, previous, "trial {i}");
                rolled_back += 1
            }
            1 => committed += 1,
            d => panic!("trial {i}: {d} rehearsals appeared from one run"),
        }
        let ok: String = rusqlite::Connection::open(&file)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "trial {i}");
        assert!(
            status.stdout.contains(&format!("Rehearsals {count}")),
            "trial {i}: {}",
            status.show()
        );
        // ... and rehearsing again passes.
        let again = sandbox(&["rehearse", "--snapshot", path_str(&file)]);
        again.code(0);
        assert!(again.stdout.contains("PASSED"), "{}", again.show());
        next_ms.push(again.millis);
        span = (span + again.millis) / 2;
        assert_eq!(
            Snapshot::open(&file).unwrap().rehearsal_count().unwrap(),
            count + 1
        );
        assert!(
            !journal.exists(),
            "trial {i}: a journal outlived the next rehearsal"
        );
    }
    fig.add(format!(
        "a clean rehearse took {} ms at the start, {span} ms at the end (kill delays spread over it)",
        base.rehearse_ms
    ));
    fig.add(format!(
        "{trials} trials: rehearsal rolled back {rolled_back}, rehearsal committed {committed}, \
         file unreadable 0, earlier rehearsals lost 0"
    ));
    fig.add(format!(
        "kill delays {}; hot journal left by the kill {hot_journal} (rolled back on the next open), \
         unsealed journal {unsealed_journal} (file untouched; replaced by the next write); next rehearse {}",
        spread(&delays),
        spread(&next_ms)
    ));
    fig.publish();
}

// ---------------------------------------------------------------------------
// 3. The backend terminated mid-push and mid-pull

/// Waits until the process has a backend in `db` (or ends). Returns the
/// time it took.
fn wait_for_backend(p: &mut Proc, db: &str) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if !sandbox_backends(db).is_empty() {
            return Some(t0.elapsed());
        }
        if !p.running() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// `pg_terminate_backend` on every `sandbox` backend of `db`; how many died.
fn terminate(db: &str) -> i64 {
    let mut c = postgres_admin(&admin_url());
    c.query_one(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'sandbox' AND datname = $1 AND pid <> pg_backend_pid()",
        &[&db],
    )
    .unwrap()
    .get(0)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(160).collect()
}

#[test]
fn backend_terminated_mid_push_exits_2_and_writes_nothing() {
    let trials = env_count("SANDBOX_FAULT_TERMINATE_TRIALS", 3);
    let base = Base::new("fault_term_push", true, true);
    let mut rng = Rng::new("terminate_push");
    let mut fig = Figures::new("pg_terminate_backend mid-push", &rng);
    let (mut hit, mut missed) = (0, 0);
    let mut messages = BTreeMap::new();
    let mut delays = Vec::new();
    fig.add(format!(
        "clean push had its backend from {} to {} ms; delays after the backend appears uniform across that window",
        base.push_backend_ms.0, base.push_backend_ms.1
    ));
    for i in 0..trials {
        let db = base.copy(&format!("t{i}"));
        let snap = base.snapshot_copy(&format!("t{i}"));
        let lt = DEFAULT_LOCK_TIMEOUT_MS.to_string();
        let mut p = spawn(&push_args(&db.url, path_str(&snap), &lt));
        let connected = wait_for_backend(&mut p, &db.name);
        let (from, to) = base.push_backend_ms;
        let delay = rng.stratified(i, trials, to.saturating_sub(from));
        delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        let killed = if connected.is_some() {
            terminate(&db.name)
        } else {
            0
        };
        let run = p.finish();
        let now = capture(&db.url);
        if killed > 0 && run.code != 0 {
            hit += 1;
            run.code(2).clear_error();
            *messages.entry(first_line(&run.stderr)).or_insert(0) += 1;
            assert!(
                now == base.before,
                "trial {i}: terminated push left something:\n  {}",
                base.before.differences(&now)
            );
            // Nothing stale is left: the next push applies.
            let again = push(&db.url, &snap);
            assert!(applied(&again), "trial {i}: {}", again.show());
        } else {
            // Terminated after COMMIT, or the push was already done.
            missed += 1;
            assert!(applied(&run), "trial {i}: {}", run.show());
        }
        let fin = capture(&db.url);
        assert!(
            &fin == base.after(),
            "trial {i}:\n  {}",
            base.after().differences(&fin)
        );
    }
    fig.add(format!(
        "{trials} trials: terminated mid-transaction {hit} (exit 2, before-state, next push applied), \
         after the commit/too late {missed}; delays after connect {}",
        spread(&delays)
    ));
    for (m, n) in &messages {
        fig.add(format!("message ({n}x): {m}"));
    }
    fig.publish();
    assert!(
        trials == 0 || hit > 0,
        "no termination landed inside the push"
    );
}

#[test]
fn backend_terminated_mid_pull_exits_2_and_leaves_no_file() {
    let trials = env_count("SANDBOX_FAULT_TERMINATE_TRIALS", 3);
    let base = Base::new("fault_term_pull", false, false);
    let db = base.copy("src");
    let mut rng = Rng::new("terminate_pull");
    let mut fig = Figures::new("pg_terminate_backend mid-pull", &rng);
    let work = tempfile::tempdir().unwrap();
    let (mut hit, mut missed) = (0, 0);
    let mut messages = BTreeMap::new();
    let mut delays = Vec::new();
    fig.add(format!(
        "clean pull had its backend from {} to {} ms; delays after the backend appears uniform across that window",
        base.pull_backend_ms.0, base.pull_backend_ms.1
    ));
    for i in 0..trials {
        let out = work.path().join(format!("s{i}.sqlite"));
        let mut p = spawn(&["pull", "--database-url", &db.url, "--out", path_str(&out)]);
        let connected = wait_for_backend(&mut p, &db.name);
        let (from, to) = base.pull_backend_ms;
        let delay = rng.stratified(i, trials, to.saturating_sub(from));
        delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        let killed = if connected.is_some() {
            terminate(&db.name)
        } else {
            0
        };
        let run = p.finish();
        if killed > 0 && run.code != 0 {
            hit += 1;
            run.code(2).clear_error();
            *messages.entry(first_line(&run.stderr)).or_insert(0) += 1;
            assert!(!out.exists(), "trial {i}: a snapshot was written");
            assert!(
                part_files(work.path()).is_empty(),
                "trial {i}: {:?}",
                part_files(work.path())
            );
        } else {
            missed += 1;
            run.code(0);
            let s = Snapshot::open(&out).unwrap();
            assert_eq!(s.tables.len(), 10);
        }
    }
    fig.add(format!(
        "{trials} trials: terminated mid-pull {hit} (exit 2, no snapshot, no .part file), too late {missed}; delays {}",
        spread(&delays)
    ));
    for (m, n) in &messages {
        fig.add(format!("message ({n}x): {m}"));
    }
    fig.publish();
    assert!(
        trials == 0 || hit > 0,
        "no termination landed inside the pull"
    );
}

// ---------------------------------------------------------------------------
// 4. A row lock held by another session

#[test]
fn a_held_row_lock_refuses_within_the_lock_timeout_naming_the_blocker() {
    let base = Base::new("fault_lock", true, true);
    let rng = Rng::new("lock");
    let mut fig = Figures::new("row lock held on jtbd_library", &rng);
    let db = base.copy("l");
    let snap = base.snapshot_copy("l");
    let mut blocker = postgres_admin(&db.url);
    let pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    blocker
        .batch_execute("BEGIN; UPDATE jtbd_library SET title = title WHERE id = 'jtbd00001'")
        .unwrap();
    let run = sandbox(&push_args(&db.url, path_str(&snap), "1000"));
    run.code(1);
    assert!(
        run.stderr.contains(&format!("pid {pid}")) && run.stderr.contains("jtbd_library"),
        "the blocker (pid {pid}) is not named: {}",
        run.show()
    );
    // Its statement is shown by shape: the app's literals stay out of logs.
    assert!(
        // (The row itself is named by its key, `row id=jtbd00001`: a row the
        // push writes, not the app's literal.)
        run.stderr.contains("WHERE id = ?") && !run.stderr.contains("'jtbd00001'"),
        "the blocker's literal is printed: {}",
        run.show()
    );
    assert!(
        run.millis < 15_000,
        "a 1000 ms lock timeout took {} ms to refuse",
        run.millis
    );
    let now = capture(&db.url);
    assert!(
        now == base.before,
        "refused push wrote:\n  {}",
        base.before.differences(&now)
    );
    fig.add(format!(
        "push --lock-timeout 1000 refused (exit 1) in {} ms naming pid {pid}: {}",
        run.millis,
        first_line(&run.stderr)
    ));
    blocker.batch_execute("ROLLBACK").unwrap();
    let again = push(&db.url, &snap);
    assert!(applied(&again), "{}", again.show());
    let fin = capture(&db.url);
    assert!(&fin == base.after(), "{}", base.after().differences(&fin));
    fig.add(format!(
        "after the blocker rolled back: Applied in {} ms, state equals a clean push",
        again.millis
    ));
    fig.publish();
}

// ---------------------------------------------------------------------------
// 5. Races

#[test]
fn eight_simultaneous_pushes_apply_exactly_once() {
    let rounds = env_count("SANDBOX_FAULT_RACE_ROUNDS", 1);
    let racers = 8;
    let base = Base::new("fault_race", true, true);
    let rng = Rng::new("race");
    let mut fig = Figures::new("8 simultaneous push --confirm", &rng);
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut wall = Vec::new();
    for round in 0..rounds {
        let db = base.copy(&format!("r{round}"));
        let snap = base.snapshot_copy(&format!("r{round}"));
        let lt = DEFAULT_LOCK_TIMEOUT_MS.to_string();
        let t0 = Instant::now();
        let procs: Vec<Proc> = (0..racers)
            .map(|_| spawn(&push_args(&db.url, path_str(&snap), &lt)))
            .collect();
        let runs: Vec<Run> = procs.into_iter().map(Proc::finish).collect();
        wall.push(t0.elapsed().as_millis() as u64);
        let mut applied_n = 0;
        for r in &runs {
            let kind = if applied(r) {
                applied_n += 1;
                "Applied".to_string()
            } else if already_applied(r) {
                "Already applied".to_string()
            } else {
                r.code(1).clear_error();
                format!("exit 1: {}", first_line(&r.stderr))
            };
            *tally.entry(kind).or_insert(0) += 1;
        }
        assert_eq!(
            applied_n,
            1,
            "round {round}: {:?}",
            runs.iter().map(Run::show).collect::<Vec<_>>()
        );
        let fin = capture(&db.url);
        assert!(
            &fin == base.after(),
            "round {round}: not the state of a single push:\n  {}",
            base.after().differences(&fin)
        );
        assert_eq!(fin.row_count("sandbox.receipts"), 1);
        // The file records the one receipt too.
        let recorded: i64 = rusqlite::Connection::open(&snap)
            .unwrap()
            .query_row("SELECT count(*) FROM _sandbox_receipts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(recorded, 1, "round {round}");
    }
    fig.add(format!(
        "{rounds} round(s) x {racers} processes: {tally:?}; wall {}",
        spread(&wall)
    ));
    fig.publish();
}

#[test]
fn writers_between_pull_and_push_are_refused_with_nothing_written() {
    let base = Base::new("fault_writers", true, false);
    let rng = Rng::new("writers");
    let mut fig = Figures::new("writers between pull and push", &rng);
    // The last two write the app's tables (the plan neither reads nor
    // writes them): drift-checked only with --strict (tests/live.rs shows
    // push going ahead without it).
    let cases: [(&str, &str, &str, bool); 5] = [
        (
            "update a protected row",
            "UPDATE jtbd_library SET title = title || ' (edited)' WHERE id = 'jtbd00002'",
            "jtbd_library",
            false,
        ),
        (
            "update a dh_* row",
            "UPDATE dh_tool SET name = name || ' v2' WHERE id = (SELECT id FROM dh_tool ORDER BY id LIMIT 1)",
            "dh_tool",
            false,
        ),
        (
            "insert a row",
            "INSERT INTO workflows (name, definition) VALUES ('written after the pull', '{}')",
            "workflows",
            false,
        ),
        (
            "delete a row",
            "DELETE FROM prompts WHERE id = (SELECT id FROM prompts ORDER BY id LIMIT 1)",
            "prompts",
            true,
        ),
        (
            "add a column",
            "ALTER TABLE personas ADD COLUMN nickname text",
            "personas",
            true,
        ),
    ];
    for (i, (what, sql, table, strict)) in cases.iter().enumerate() {
        let db = base.copy(&format!("w{i}"));
        let snap = base.snapshot_copy(&format!("w{i}"));
        let mut c = postgres_admin(&db.url);
        let changed = c.execute(*sql, &[]).unwrap();
        drop(c);
        let written = capture(&db.url);
        assert!(written != base.before, "{what}: the writer changed nothing");
        let lt = DEFAULT_LOCK_TIMEOUT_MS.to_string();
        let mut args = push_args(&db.url, path_str(&snap), &lt);
        if *strict {
            args.push("--strict");
        }
        let run = sandbox(&args);
        run.code(1).clear_error();
        assert!(
            run.stderr.contains(table) && run.stderr.contains("nothing was written"),
            "{what}: the refusal does not name {table}: {}",
            run.show()
        );
        let now = capture(&db.url);
        assert!(
            now == written,
            "{what}: the refused push wrote:\n  {}",
            written.differences(&now)
        );
        assert!(!now.has_schema("sandbox"));
        fig.add(format!(
            "{what} ({changed} row(s)): exit 1 in {} ms, 0 rows written: {}",
            run.millis,
            first_line(&run.stderr)
        ));
    }
    fig.publish();
}

/// Issue 10: a connection lost during COMMIT leaves the outcome unknown
/// to the client, and push and rollback say so (one rule, shared), with
/// how to learn it; a COMMIT the server answers with an error rolled back.
/// Before (main b593f62): a rollback whose connection was cut after the
/// server took its COMMIT said "COMMIT of the rollback failed; nothing was
/// undone" while the undo had landed (the receipt rolled back, the whole
/// database as before the push). Faults: a proxy that cuts the first
/// COMMIT, passing it to the server or not, or answers it with an ERROR
/// itself (a deferred trigger cannot raise at COMMIT: the rollback sets
/// its constraints IMMEDIATE).
#[test]
fn a_commit_cut_off_says_its_outcome_is_unknown_and_how_to_learn_it() {
    use std::sync::atomic::Ordering::SeqCst;
    let w = common::World::loaded("commit_cut", "plan").with_shared_snapshot();
    let before = w.state();
    let unknown = "the connection failed during COMMIT, so whether the rollback landed is unknown";
    // Cut after the server took the COMMIT: the undo landed.
    let receipt = w.push_confirmed();
    let proxy = common::CommitCut::start(w.url(), common::AtCommit::Forward);
    let run = w.rollback_as(&proxy.url, &receipt, &["--confirm"]);
    assert_eq!(proxy.cuts.load(SeqCst), 1, "{}", run.show());
    settled(&w);
    assert_ne!(run.code, 0, "{}", run.show());
    assert!(run.stderr.contains(unknown), "{}", run.show());
    assert!(
        run.stderr.contains(&format!(
            "Run `sandbox rollback --receipt {receipt}` against the same"
        )),
        "{}",
        run.show()
    );
    assert!(!run.all().contains("nothing was undone"), "{}", run.show());
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "a rollback whose COMMIT landed",
    );
    // What the message advises tells it.
    w.rollback(&receipt, &[])
        .ok()
        .stdout_has("Already rolled back");
    // Cut before the server saw it: nothing was undone, and the same
    // command says the rollback is still to do.
    let receipt = w.push_confirmed();
    let pushed = w.state();
    let proxy = common::CommitCut::start(w.url(), common::AtCommit::Drop);
    let run = w.rollback_as(&proxy.url, &receipt, &["--confirm"]);
    assert_eq!(proxy.cuts.load(SeqCst), 1, "{}", run.show());
    settled(&w);
    assert!(run.stderr.contains(unknown), "{}", run.show());
    pushed.assert_same(&w.state(), "a rollback whose COMMIT never arrived");
    let dry = w.rollback(&receipt, &[]);
    dry.ok();
    assert!(
        !dry.stdout.contains("Already rolled back"),
        "{}",
        dry.show()
    );
    // The server answers COMMIT with an error (a serialization failure,
    // as the proxy sends it; the server never got the COMMIT and rolls
    // back): nothing was undone, and said so.
    let proxy = common::CommitCut::start(w.url(), common::AtCommit::Refuse);
    let run = w.rollback_as(&proxy.url, &receipt, &["--confirm"]);
    assert_eq!(proxy.cuts.load(SeqCst), 1, "{}", run.show());
    settled(&w);
    assert_ne!(run.code, 0, "{}", run.show());
    assert!(
        run.stderr
            .contains("COMMIT failed; Postgres rolled the rollback back, nothing was undone")
            && run.stderr.contains("could not serialize access"),
        "{}",
        run.show()
    );
    assert!(!run.stderr.contains("unknown"), "{}", run.show());
    pushed.assert_same(&w.state(), "a rollback whose COMMIT the server refused");
    w.rollback_restores(&receipt, &before, "the rollback, once COMMIT goes through");
    // The push goes by the same rule: cut after its COMMIT landed, and its
    // advice (run it again) says "Already applied".
    let proxy = common::CommitCut::start(w.url(), common::AtCommit::Forward);
    let run = w.push_as(&proxy.url, &["--confirm"]);
    assert_eq!(proxy.cuts.load(SeqCst), 1, "{}", run.show());
    settled(&w);
    assert!(
        run.stderr
            .contains("the connection failed during COMMIT, so whether the push landed is unknown"),
        "{}",
        run.show()
    );
    w.push(&["--confirm"]).ok().stdout_has("Already applied");
}

/// Waits until no other session is connected to the world's database: the
/// server has finished with a COMMIT whose connection the proxy cut (the
/// client gives up at once; the server may still be committing).
fn settled(w: &common::World) {
    let started = Instant::now();
    while w.count(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    ) > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cut session is still there after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
