//! Every subcommand and flag. Environment fallbacks: the database URL comes
//! from `--database-url`, then `SANDBOX_DATABASE_URL`, then `DATABASE_URL`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sandbox",
    version,
    about = "Rehearse a Postgres data migration on a local SQLite snapshot, then push the validated diff",
    long_about = "Pull a snapshot of the plan's tables into one SQLite file, rehearse every phase \
                  and check there, and push the validated diff to Postgres in one checked \
                  transaction with a receipt that can undo it."
)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Colour ok/FAILED: auto (a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: crate::output::ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a snapshot from the bundled fixtures (no server), rehearse it, show the result.
    Demo(DemoArgs),
    /// Manage the synthetic Supabase-like source database used for tests and trials.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
    /// Copy the plan's tables from Postgres into a snapshot file.
    Pull(PullArgs),
    /// Show what a snapshot holds, without a server.
    Status(SnapshotArg),
    /// Run every phase and check of the plan on the snapshot.
    Rehearse(RehearseArgs),
    /// Print the plan in force (phases, policies, expectations, hash), or `plan init DIR`.
    Plan(PlanCommand),
    /// Show what push would apply: DDL, rows to insert, columns to update.
    Diff(DiffArgs),
    /// Apply the rehearsed diff to Postgres (dry run unless --confirm).
    Push(PushArgs),
    /// Undo one push exactly, from its receipt (dry run unless --confirm).
    Rollback(RollbackArgs),
    /// List the receipts of past pushes, from Postgres and from the snapshot.
    Receipts(ReceiptsArgs),
    /// Write the snapshot's last rehearsal as one self-contained HTML page.
    Report(ReportArgs),
    /// Developers: a TCP proxy adding round-trip time and a bandwidth cap (scripts/bench).
    #[command(hide = true)]
    LatencyProxy(LatencyProxyArgs),
}

#[derive(Debug, Args)]
pub struct LatencyProxyArgs {
    /// Address to listen on (port 0 picks one; the chosen address is printed first).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The Postgres server to forward to, HOST:PORT.
    #[arg(long)]
    pub upstream: String,
    /// Round-trip time to add, in milliseconds (half each way).
    #[arg(long, default_value_t = 30)]
    pub rtt_ms: u64,
    /// Bandwidth cap per direction in Mbit/s (0 = none).
    #[arg(long, default_value_t = 200.0)]
    pub mbit: f64,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    #[command(flatten)]
    pub plan: PlanArg,
    /// Write a reviewable SQL script of exactly what push will do.
    #[arg(long, value_parser = file_path)]
    pub sql: Option<PathBuf>,
    /// Replace the --sql file if the path exists (a file or a symbolic link: the
    /// link is replaced, never written through). Without it an existing
    /// path is refused.
    #[arg(long)]
    pub force: bool,
}

/// A database URL given where a file or an id goes (`--snapshot URL`):
/// refused before anything opens a file of that name, saying where the URL
/// goes. clap quotes the value; `main` masks its password.
fn misplaced_url(value: &str, takes: &str) -> Result<(), String> {
    match sandbox::redact::looks_like_url(value) {
        true => Err(format!(
            "this is a database URL, not {takes}: pass the URL with --database-url URL (or set \
             SANDBOX_DATABASE_URL)"
        )),
        false => Ok(()),
    }
}

fn file_path(value: &str) -> Result<PathBuf, String> {
    misplaced_url(value, "a file path")?;
    // Elsewhere `-` means standard input or output; taken as a file name,
    // `diff --sql -` wrote a file called `-` and said nothing odd.
    if value == "-" {
        return Err(
            "`-` (standard input or output) is not supported here: give a file path \
             (`./-` for a file named `-`)"
                .into(),
        );
    }
    Ok(PathBuf::from(value))
}

/// `--allow-writes`: TABLE or SCHEMA.TABLE (whether it exists is asked
/// of the database: push and rollback name a table that does not).
fn table_name(value: &str) -> Result<String, String> {
    misplaced_url(value, "a table name")?;
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(
            "expected TABLE (a table in public) or SCHEMA.TABLE, e.g. audit_log or \
                    app.audit_log"
                .into(),
        );
    }
    Ok(value.to_string())
}

/// `--discard-changes`: TABLE.COLUMN or TABLE.* (whether the push wrote
/// them is asked of the receipt: rollback names what it did not).
fn table_column(value: &str) -> Result<String, String> {
    misplaced_url(value, "a column")?;
    match value.split_once('.') {
        Some((t, c)) if !t.trim().is_empty() && !c.trim().is_empty() && !c.contains('.') => {
            Ok(value.to_string())
        }
        _ => Err(
            "expected TABLE.COLUMN of a table the push wrote (e.g. workflows.updated_at), \
                  or TABLE.* for any of its columns"
                .into(),
        ),
    }
}

/// `--break-function`: schema.name(argument types), as a rollback's
/// refusal names the function (whether it is one is asked of the database).
fn function_signature(value: &str) -> Result<String, String> {
    misplaced_url(value, "a function")?;
    match value.trim().split_once('(') {
        Some((name, _)) if name.contains('.') && value.trim().ends_with(')') => {
            Ok(value.to_string())
        }
        _ => Err("expected a function as the rollback's refusal names it, \
                  schema.name(argument types), e.g. 'app.open_tasks()' or 'public.f(integer)'"
            .into()),
    }
}

fn receipt_id(value: &str) -> Result<String, String> {
    misplaced_url(value, "a receipt id (see `sandbox receipts`)")?;
    Ok(value.to_string())
}

/// The largest timeout Postgres accepts (its settings are 32-bit ms): a
/// larger flag is a usage error here, not a raw server error after connecting.
const PG_MAX_MS: u64 = i32::MAX as u64;

/// The forms a duration flag takes, as its refusal lists them.
const DURATION_FORMS: &str = "a number of milliseconds (500) or a number with a unit as \
     Postgres writes durations: ms, s, min, h or d (50ms, 2s, 1.5s, 1min), from 1 ms to \
     2147483647 ms";

/// A duration flag (`--lock-timeout`, `--statement-timeout`), in ms. A bare
/// number stays milliseconds, as these flags always took; with a unit it
/// reads as Postgres reads `SET statement_timeout = '2s'` (`50ms`, `2s`,
/// `1min`), so a value copied from a Postgres setting means what it said.
/// Before, `50ms` was refused as "invalid digit found in string". 0 is
/// refused: Postgres reads a zero timeout as "no limit" or "wait forever";
/// and its settings stop at 2147483647 ms.
fn duration_ms(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(if number.is_empty() {
                format!("expected {DURATION_FORMS}")
            } else {
                format!("'{other}' is not a unit of time: expected {DURATION_FORMS}")
            })
        }
    };
    let ms = match number.split_once('.') {
        None => number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor)),
        Some((whole, fraction)) => {
            // Exact in integers (no float rounding): whole milliseconds only.
            let digits = format!("{whole}{fraction}");
            let scale = 10u64.checked_pow(fraction.len() as u32);
            match (digits.parse::<u64>(), scale) {
                (Ok(n), Some(scale)) if !digits.is_empty() => n
                    .checked_mul(factor)
                    .filter(|scaled| scaled % scale == 0)
                    .map(|scaled| scaled / scale),
                _ => None,
            }
        }
    };
    match ms {
        Some(ms) if (1..=PG_MAX_MS).contains(&ms) => Ok(ms),
        Some(ms) => Err(format!(
            "{ms} is not in 1..=2147483647 (milliseconds){}",
            if ms == 0 {
                ": Postgres would read 0 as no limit"
            } else {
                ""
            }
        )),
        None if number.contains('.') && !number.is_empty() => Err(format!(
            "not a whole number of milliseconds: expected {DURATION_FORMS}"
        )),
        None => Err(format!("expected {DURATION_FORMS}")),
    }
}

#[derive(Debug, Args)]
pub struct Timeouts {
    /// How long to keep trying for locks held by other sessions before refusing: milliseconds
    /// (10000) or with a unit (500ms, 10s, 1min), 1 ms to 2147483647 ms.
    /// Locks are tried in attempts of at most 300 ms, so the app never queues behind us longer.
    #[arg(long, value_name = "DURATION", default_value = "10000", value_parser = duration_ms)]
    pub lock_timeout: u64,
    #[command(flatten)]
    pub statement_timeout: StatementTimeout,
}

#[derive(Debug, Args)]
pub struct StatementTimeout {
    /// Statement timeout inside the transaction, for each statement: milliseconds (600000) or
    /// with a unit (50ms, 2s, 10min), 1 ms to 2147483647 ms; Supabase's default is 2 minutes.
    /// 0 is refused: Postgres would read it as "no limit".
    #[arg(long, value_name = "DURATION", default_value = "600000", value_parser = duration_ms)]
    pub statement_timeout: u64,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    #[command(flatten)]
    pub plan: PlanArg,
    /// Really write. Without it, push runs the whole transaction (the
    /// preflight) and rolls it back.
    #[arg(long)]
    pub confirm: bool,
    /// A table outside the plan that a side effect (an audit trigger, an
    /// event trigger) may write, e.g. `audit_log` or `app.log`. Repeatable.
    #[arg(long = "allow-writes", value_name = "TABLE", value_parser = table_name)]
    pub allow_writes: Vec<String>,
    /// Run and commit even though a trigger that fires for the push, or an
    /// expression Postgres evaluates for its writes (a WHEN clause, CHECK,
    /// default, index expression, policy, rule), calls
    /// what a rollback does not undo (dblink, pgsql-http, lo_export, setval,
    /// an untrusted language): needed for the preflight too, which would
    /// perform those calls.
    #[arg(long)]
    pub allow_external_effects: bool,
    /// Require every pulled table unchanged (the app switched off), not only those the plan reads and writes.
    #[arg(long)]
    pub strict: bool,
    /// Commit even though this push's rollback, rehearsed in its transaction
    /// before COMMIT, would be refused (a trigger raising on the undo, a
    /// constraint it breaks…): `sandbox rollback` will refuse the receipt.
    #[arg(long)]
    pub allow_irreversible: bool,
    #[command(flatten)]
    pub timeouts: Timeouts,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    #[command(flatten)]
    pub plan: PlanArg,
    /// The HTML file to write (no network needed to open it).
    #[arg(long, value_parser = file_path)]
    pub html: PathBuf,
    /// Replace the --html file if the path exists (a file or a symbolic link: the
    /// link is replaced, never written through). Without it an existing
    /// path is refused.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// The snapshot whose copies to list (skipped when the file does not exist).
    #[arg(long, default_value = "sandbox.sqlite", value_parser = file_path)]
    pub snapshot: PathBuf,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// The receipt id printed by `sandbox push` (see `sandbox receipts`).
    #[arg(long, value_parser = receipt_id)]
    pub receipt: String,
    /// The snapshot the push came from: its copy of the receipt is marked
    /// rolled back too (skipped when the file does not exist).
    #[arg(long, default_value = "sandbox.sqlite", value_parser = file_path)]
    pub snapshot: PathBuf,
    /// Really undo. Without it, rollback checks everything and changes nothing.
    #[arg(long)]
    pub confirm: bool,
    /// A table outside the receipt that a side effect of the undo (an audit
    /// trigger logging the deletes) may write. Repeatable; the tables the
    /// push was allowed to write are allowed too.
    #[arg(long = "allow-writes", value_name = "TABLE", value_parser = table_name)]
    pub allow_writes: Vec<String>,
    /// Undo even though a trigger that fires for the undo, or an expression
    /// Postgres evaluates for its writes, calls what a
    /// rollback does not undo (dblink, pgsql-http, lo_export, setval, an
    /// untrusted language): needed for the dry run too.
    #[arg(long)]
    pub allow_external_effects: bool,
    /// Require every pulled table unchanged (the app switched off), not only those the plan reads and writes.
    #[arg(long)]
    pub strict: bool,
    /// Undo even though the app changed this column of rows the push wrote
    /// since the push (e.g. workflows.updated_at, moved by an app save):
    /// the change is discarded (a row the push inserted is deleted with it;
    /// a value the push wrote is put back as before the push), and each
    /// change discarded is listed and recorded in the receipt. TABLE.* for
    /// any column. Repeatable; any other change still refuses.
    #[arg(long = "discard-changes", value_name = "TABLE.COLUMN", value_parser = table_column)]
    pub discard_changes: Vec<String>,
    /// Drop a table or column even though this app function's body uses
    /// it (Postgres does not track function bodies): the function is left
    /// broken until changed, listed and recorded in the receipt. Name it as
    /// the refusal prints it, schema.name(argument types), e.g.
    /// 'app.open_tasks()'. Repeatable; any other such function still refuses.
    #[arg(long = "break-function", value_name = "FUNCTION", value_parser = function_signature)]
    pub break_functions: Vec<String>,
    #[command(flatten)]
    pub timeouts: Timeouts,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    /// The new plan folder to write (review it, then pass it with --plan).
    #[arg(long, value_parser = file_path)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArg {
    /// A plan folder (or its plan.json) instead of the built-in plan (start one with `sandbox plan init DIR`).
    #[arg(long, env = "SANDBOX_PLAN", hide_env_values = true, value_parser = file_path)]
    pub plan: Option<PathBuf>,
    /// A folder of seed files replacing the plan's own seeds.
    #[arg(long, env = "SANDBOX_SEEDS", hide_env_values = true, value_parser = file_path)]
    pub seeds: Option<PathBuf>,
    /// Choose a policy the plan declares, instead of editing the plan (repeatable;
    /// part of the plan hash): e.g. --policy existing_library_workflow=skip.
    #[arg(long = "policy", value_name = "NAME=VALUE")]
    pub policies: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanCommand {
    #[command(subcommand)]
    pub action: Option<PlanAction>,
    #[command(flatten)]
    pub plan: PlanArg,
}

#[derive(Debug, Subcommand)]
pub enum PlanAction {
    /// Write a copy of the plan in force (the built-in one by default) into a new folder, to edit.
    Init {
        /// The folder to create.
        #[arg(value_parser = file_path)]
        dir: PathBuf,
    },
    /// Write a copy of the plan expecting what the snapshot's last rehearsal found (old and new numbers shown).
    Adopt(AdoptArgs),
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    #[command(flatten)]
    pub plan: PlanArg,
    /// Also write the rehearsal as one self-contained HTML page.
    #[arg(long, value_parser = file_path)]
    pub html: Option<PathBuf>,
    /// Replace the --html file if the path exists (a file or a symbolic link: the
    /// link is replaced, never written through). Without it an existing
    /// path is refused.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// Postgres URL (postgres://user[:password]@host[:port]/db[?sslmode=...&sslrootcert=FILE]).
    #[arg(long, env = "SANDBOX_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArg {
    /// The URL from the flag or the environment; `DATABASE_URL` is the last resort.
    pub fn resolve(&self) -> Option<String> {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|s| !s.trim().is_empty())
    }

    /// Whether a command run without `--database-url` in this environment
    /// would connect to the same URL (SANDBOX_DATABASE_URL, else
    /// DATABASE_URL): then advice need not carry the URL, whose password
    /// must never be printed.
    pub fn same_without_flag(&self) -> bool {
        let from_environment = std::env::var("SANDBOX_DATABASE_URL")
            .ok()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|s| !s.trim().is_empty());
        from_environment.is_some() && from_environment == self.resolve()
    }
}

#[derive(Debug, Args)]
pub struct SnapshotArg {
    /// The snapshot file.
    #[arg(long, default_value = "sandbox.sqlite", value_parser = file_path)]
    pub snapshot: PathBuf,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Where to write the snapshot.
    #[arg(long, default_value = "sandbox.sqlite", value_parser = file_path)]
    pub out: PathBuf,
    /// Replace an existing snapshot even if it holds rehearsal results.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub statement_timeout: StatementTimeout,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub plan: PlanArg,
    /// Also write the rehearsal as one self-contained HTML page.
    #[arg(long, value_parser = file_path)]
    pub html: Option<PathBuf>,
    /// Which fixture world to build: `plan` (every seed number holds) or `conflicts`.
    #[arg(long, default_value = "plan")]
    pub variant: String,
    /// Where to write the demo snapshot (a demo snapshot there is replaced).
    #[arg(long, default_value = "sandbox-demo.sqlite", value_parser = file_path)]
    pub out: PathBuf,
    /// Replace the --out and --html files if the paths exist (a file or a
    /// symbolic link: the link is replaced, never written through). Without
    /// it an existing path is refused, except a demo snapshot at --out.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Create the fixture tables and rows in a database.
    Load(FixturesLoadArgs),
    /// Print the catalog of a pulled fixture snapshot (maintainers: regenerates fixtures/catalog.json).
    #[command(hide = true)]
    Catalog(FixturesCatalogArgs),
}

#[derive(Debug, Args)]
pub struct FixturesLoadArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// `plan` (every number of the seed plan holds) or `conflicts` (the real database's conflicts).
    #[arg(long, default_value = "plan")]
    pub variant: String,
    /// Multiply the big protected tables (prompts, agents, personas) by N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub scale: u32,
    /// Drop the tables an earlier fixture load created (marked in their comment) and the sandbox schema first; refused, naming them, when a table of a fixture's name was not created by a fixture load or other objects depend on them.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct FixturesCatalogArgs {
    /// A snapshot pulled from a database loaded with `fixtures load`.
    #[arg(long, default_value = "sandbox.sqlite", value_parser = file_path)]
    pub snapshot: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn a_duration_is_milliseconds_or_a_number_with_a_postgres_unit() {
        for (given, ms) in [
            ("500", 500),
            ("50ms", 50),
            ("2s", 2_000),
            ("1.5s", 1_500),
            ("2 s", 2_000),
            ("1min", 60_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("2147483647", 2_147_483_647),
        ] {
            assert_eq!(duration_ms(given), Ok(ms), "{given}");
        }
        for (given, said) in [
            ("0", "0 is not in 1..=2147483647"),
            ("0s", "0 is not in 1..=2147483647"),
            ("3000000000", "3000000000 is not in 1..=2147483647"),
            ("25d", "2160000000 is not in 1..=2147483647"),
            ("50x", "'x' is not a unit of time"),
            ("50 sec", "'sec' is not a unit of time"),
            ("-5", "expected a number of milliseconds"),
            ("ten", "expected a number of milliseconds"),
            ("", "expected a number of milliseconds"),
            ("0.5ms", "not a whole number of milliseconds"),
        ] {
            let e = duration_ms(given).expect_err(given);
            assert!(e.contains(said), "{given}: {e}");
        }
    }
}
