use anyhow::Result;
use sandbox::db::postgres::connect;
use sandbox::db::sqlite::Snapshot;
use sandbox::fixtures::{FixtureOptions, Variant};

use crate::cli::{FixturesCommand, FixturesLoadArgs};
use crate::output;

pub fn run(cmd: FixturesCommand, json: bool) -> Result<i32> {
    match cmd {
        FixturesCommand::Load(a) => load(a, json),
        FixturesCommand::Catalog(a) => {
            let snap = Snapshot::open(&a.snapshot)?;
            output::print_json(&sandbox::ops::demo::catalog_from_snapshot(&snap))?;
            Ok(0)
        }
    }
}

pub fn parse_variant(s: &str) -> Result<Variant> {
    s.parse::<Variant>().map_err(|_| {
        sandbox::error::environment(format!(
            "unknown fixture variant '{s}': use plan or conflicts"
        ))
    })
}

fn load(args: FixturesLoadArgs, json: bool) -> Result<i32> {
    let target = crate::database_url(&args.db)?;
    let opts = FixtureOptions {
        variant: parse_variant(&args.variant)?,
        scale: args.scale,
    };
    let started = std::time::Instant::now();
    let report = crate::runtime()?.block_on(async {
        let mut client = connect(&target).await?;
        sandbox::fixtures::load(&mut client, &opts, args.replace).await
    })?;
    if json {
        output::print_json(&serde_json::json!({
            "database": target.redacted(), "variant": args.variant, "scale": args.scale,
            "tables": report.tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        }))?;
        return Ok(0);
    }
    let rows = report
        .tables
        .iter()
        .map(|(t, n)| vec![t.clone(), n.to_string()])
        .collect();
    println!("{}", output::table(&["table", "rows"], rows));
    // The next command must work as pasted and never show the password:
    // with the URL in the environment it needs none; a URL given as a flag
    // is repeated only when it holds no password.
    let next = if args.db.same_without_flag() {
        "sandbox pull".to_string()
    } else if target.config.get_password().is_some() {
        "sandbox pull --database-url URL, with the same --database-url you gave here (its \
         password is not printed)"
            .to_string()
    } else {
        format!(
            "sandbox pull --database-url {}",
            sandbox::advice::shell_word(target.redacted())
        )
    };
    println!(
        "Loaded the '{}' fixtures (scale {}) into {} in {}. Next: {next}",
        args.variant,
        args.scale,
        target.redacted(),
        output::millis(started.elapsed().as_millis() as u64),
    );
    Ok(0)
}
