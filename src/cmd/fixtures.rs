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
    println!(
        "Loaded the '{}' fixtures (scale {}) into {} in {}. Next: sandbox pull --database-url {}",
        args.variant,
        args.scale,
        target.redacted(),
        output::millis(started.elapsed().as_millis() as u64),
        // The URL as shown: a password stays masked and must be typed in.
        sandbox::advice::shell_word(target.redacted())
    );
    Ok(0)
}
