//! `sandbox`: parse, run one command, print the error chain once, exit
//! 0 (ok), 1 (a check failed or a push was refused) or 2 (usage/environment).

mod cli;
mod cmd;
mod output;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Pull(a) => cmd::pull::run(a, json),
        Command::Status(a) => cmd::status::run(a, json),
        Command::Rehearse(a) => cmd::rehearse::run(a, json),
        Command::Plan(a) => cmd::plan::run(a, json),
        Command::Fixtures(_) | Command::Demo(_) => Err(sandbox::error::environment("not yet")),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(sandbox::error::kind_of(&e).exit_code());
        }
    }
}

/// A single-threaded runtime: the work is one connection at a time.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
