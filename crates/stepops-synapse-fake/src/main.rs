//! `stepops-synapse-fake`: starts two fake Synapse stacks (prod and staging, one shared backup
//! folder) with sample rows in prod, prints their URLs, and serves until Ctrl-C. For demos of
//! `stepops local migrate --source synapse+http://… --dest synapse+http://…`.
//! `stepops-synapse-fake bench` measures stepops against the service's sequential client.

use clap::{Parser, Subcommand};
use stepops_synapse_fake::bench;
use stepops_synapse_fake::{FakeOptions, FakeStack};

/// Two fake Synapse stacks on 127.0.0.1 for demos.
///
/// Example: `stepops-synapse-fake --dir .stepops/synapse --rows 20000`, then run the printed
/// `stepops local migrate` command in another terminal.
#[derive(Parser)]
struct Args {
    /// Folder for the stacks' SQLite files and the shared backup folder.
    #[arg(long, default_value = ".stepops/synapse")]
    dir: std::path::PathBuf,
    /// Primary rows per type in the source (prod) stack, on a fresh folder.
    #[arg(long, default_value_t = 10_000)]
    rows: i64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Measures stepops' migration (plan, chunks copied N at once, verify) against the
    /// service's own client run sequentially (per type, per range: backup waited for, then
    /// restore waited for), on fresh fake stacks with the same rows; prints a Markdown table.
    /// Run it in a release build:
    /// cargo run --release -p stepops-synapse-fake -- bench
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Bench(bench)) = args.command {
        print!("{}", bench::measure(&bench.spec()).await?);
        return Ok(());
    }
    std::fs::create_dir_all(&args.dir)?;
    let fresh = !args.dir.join("prod.db").exists();
    let mut stacks = Vec::new();
    for name in ["prod", "staging"] {
        let mut o = FakeOptions::new(name, args.dir.join("backups"));
        o.db = Some(args.dir.join(format!("{name}.db")));
        stacks.push(FakeStack::start(o).await);
    }
    if fresh {
        for t in ["PRINCIPAL", "NODE", "ACL", "FILE_HANDLE", "CHANGE"] {
            stacks[0].seed(t, 1..=args.rows, 2);
        }
    }
    println!("source (prod):    {}", stacks[0].url());
    println!("dest (staging):   {}", stacks[1].url());
    println!(
        "\nstepops local migrate --source '{}' --dest '{}'",
        stacks[0].url(),
        stacks[1].url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
