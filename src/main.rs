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
    cmd::interrupt::install(match &cli.command {
        Command::Push(_) => {
            "\ninterrupted before COMMIT: nothing was written (Postgres rolls the open \
             transaction back)\n"
        }
        Command::Rollback(_) => {
            "\ninterrupted before COMMIT: nothing was undone (Postgres rolls the open \
             transaction back)\n"
        }
        _ => "",
    });
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
        Ok(code) => cmd::interrupt::exit(code),
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
            let mut report = sandbox::error::ErrorReport::of(&e);
            // A URL pasted into another option (`--variant URL`) is most
            // likely why it failed: say where it goes.
            let advice = if misplaced_url() && !report.message.contains("--database-url") {
                format!(" ({URL_ADVICE})")
            } else {
                String::new()
            };
            report.message = shown(&format!("{}{advice}", report.message));
            if json {
                // Same exit code; the error is data on stdout, as results are.
                let _ = output::print_json(&serde_json::json!({ "error": report }));
            } else {
                let text = shown(&format!("{e:#}{advice}"));
                eprintln!("error: {}", output::visible(&text));
            }
            cmd::interrupt::exit(report.kind.exit_code());
        }
    }
}

/// Help and version print as clap prints them; a wrong command line is a
/// usage error (exit 2), as JSON on stdout when `--json` was asked for.
/// clap quotes the offending argument, which may be a database URL pasted
/// in the wrong place: the text is shown with its password masked, and
/// with where the URL goes.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let wants_json = std::env::args_os().any(|a| a == "--json");
    let is_info = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if is_info {
        e.exit();
    }
    let text = shown(&e.render().to_string());
    // clap's first line is the error itself; the rest is usage advice.
    let first = text.lines().next().unwrap_or("");
    // clap's message already says it when our own value check refused it.
    let url_advice = (misplaced_url() && !first.contains("--database-url")).then_some(URL_ADVICE);
    if wants_json {
        let message = first.trim_start_matches("error: ");
        let message = match url_advice {
            Some(advice) => format!("{message}: {advice}"),
            None => message.to_string(),
        };
        let _ = output::print_json(&serde_json::json!({ "error": {
            "kind": sandbox::error::Kind::Usage,
            "message": message,
            "checks": [],
        }}));
    } else {
        let mut lines: Vec<&str> = text.lines().collect();
        let advice = url_advice.map(|a| format!("  tip: {a}"));
        if let Some(advice) = &advice {
            lines.insert(1, advice);
        }
        eprintln!("{}", output::visible(&lines.join("\n")));
    }
    std::process::exit(sandbox::error::Kind::Usage.exit_code());
}

const URL_ADVICE: &str = "a database URL goes in --database-url URL (or SANDBOX_DATABASE_URL / \
                          DATABASE_URL), nowhere else; its password is not shown";

/// Whether a database URL was given anywhere but as `--database-url`'s value.
fn misplaced_url() -> bool {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        sandbox::redact::looks_like_url(a)
            && !a.starts_with("--database-url=")
            && (i == 0 || args[i - 1] != "--database-url")
    })
}

/// `text` as it may be shown: every password of a URL or `password=` pair
/// in it, and every password given on the command line or in the URL
/// variables, masked (see [`sandbox::redact`]).
fn shown(text: &str) -> String {
    let args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    // Options read from the environment too (SANDBOX_PLAN, ...).
    let env = std::env::vars()
        .filter(|(k, _)| k.starts_with("SANDBOX_") || k == "DATABASE_URL")
        .map(|(_, v)| v);
    let secrets = sandbox::redact::secrets_in(args.chain(env));
    sandbox::redact::redact(text, &secrets)
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
