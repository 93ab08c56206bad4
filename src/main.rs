//! `sandbox`: parse, run one command, print the error chain once, exit
//! 0 (ok), 1 (a check failed or a push was refused) or 2 (usage/environment).

mod cli;
mod cmd;
mod html;
mod output;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    // `sandbox plan | head` closes the pipe early: end quietly, as other
    // command-line tools do, rather than panic on the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any
    // thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let json = cli.json;
    output::init_color(cli.color);
    let result = match cli.command {
        Command::Pull(a) => cmd::pull::run(a, json),
        Command::Status(a) => cmd::status::run(a, json),
        Command::Rehearse(a) => cmd::rehearse::run(a, json),
        Command::Plan(a) => cmd::plan::run(a, json),
        Command::Diff(a) => cmd::diff::run(a, json),
        Command::Push(a) => cmd::push::run(a, json),
        Command::Rollback(a) => cmd::rollback::run(a, json),
        Command::Receipts(a) => cmd::receipts::run(a, json),
        Command::Report(a) => cmd::report::run(a, json),
        Command::Fixtures(a) => cmd::fixtures::run(a, json),
        Command::Demo(a) => cmd::demo::run(a, json),
        Command::LatencyProxy(a) => cmd::latency_proxy::run(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let e = if sandbox::db::pg_error::timed_out(&e) {
                e.context(
                    "Postgres cancelled a statement that ran past its statement_timeout \
                     (Supabase caps it at 2 minutes): give it more time with --statement-timeout MS \
                     (pull, push, rollback) or raise the role's (ALTER ROLE ... SET statement_timeout)",
                )
            } else if sandbox::db::sqlite::locked_in_chain(&e) {
                e.context(sandbox::db::sqlite::LOCKED_ADVICE)
            } else {
                e
            };
            let report = sandbox::error::ErrorReport::of(&e);
            if json {
                // Same exit code; the error is data on stdout, as results are.
                let _ = output::print_json(&serde_json::json!({ "error": report }));
            } else {
                eprintln!("error: {}", output::visible(&format!("{e:#}")));
            }
            std::process::exit(report.kind.exit_code());
        }
    }
}

/// Help and version print as clap prints them; a wrong command line is a
/// usage error (exit 2), as JSON on stdout when `--json` was asked for.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let wants_json = std::env::args_os().any(|a| a == "--json");
    let is_info = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !wants_json || is_info {
        e.exit();
    }
    // clap's first line is the error itself; the rest is usage advice.
    let text = e.to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    let _ = output::print_json(&serde_json::json!({ "error": {
        "kind": sandbox::error::Kind::Usage,
        "message": message,
        "checks": [],
    }}));
    std::process::exit(sandbox::error::Kind::Usage.exit_code());
}

/// The database URL from the flag or environment, or a usage error.
pub fn database_url(db: &cli::DatabaseArg) -> anyhow::Result<sandbox::db::postgres::Target> {
    let url = db.resolve().ok_or_else(|| {
        sandbox::error::environment(
            "no database URL: pass --database-url, or set SANDBOX_DATABASE_URL or DATABASE_URL",
        )
    })?;
    sandbox::db::postgres::parse_target(&url)
}

/// A single-threaded runtime: the work is one connection at a time.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
