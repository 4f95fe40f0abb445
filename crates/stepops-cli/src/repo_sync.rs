//! `stepops repo-sync`: run repository sync definitions from a laptop, or check one (the work
//! is `stepops_reposync`'s).

use std::path::PathBuf;

use stepops_error::Named;
use stepops_pipeline::MemoryPublisher;
use stepops_reposync::service::{Alerts, Installations, run_all};
use stepops_reposync::{SyncError, parse_definitions, read_secret};

const LONG_ABOUT: &str = "\
Make S3 prefixes equal to GitHub branches, as the repo-sync Lambda does every five minutes.

FILE holds one definition, a list, or {definitions: [...]} (YAML or JSON; docs/repo-sync.md).
The GitHub App's key comes from private_key_file, or from the Secrets Manager secret named by
private_key_secret; AWS credentials and region come from the environment (AWS_PROFILE, …;
AWS_ENDPOINT_URL_S3 for a local S3 server). The report (new, modified, deleted, unchanged keys)
is printed as JSON. A failure prints its Stepops.* name and exits with that name's code.

Examples:
  stepops repo-sync check site.yaml             # validate only: no request is made
  stepops repo-sync --config site.yaml --dry-run # the plan; nothing is written
  stepops repo-sync --config site.yaml";

/// Arguments of `stepops repo-sync`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT, args_conflicts_with_subcommands = true)]
pub struct RepoSyncArgs {
    /// The definitions to run.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(subcommand)]
    pub command: Option<RepoSyncCommand>,
}

/// `stepops repo-sync check`.
#[derive(clap::Subcommand, Debug)]
pub enum RepoSyncCommand {
    /// Validate a definition file (every problem listed); makes no request.
    Check {
        /// The definitions to check.
        file: PathBuf,
    },
    /// Benchmark against moto's S3 server on 127.0.0.1 (started here): a generated tree synced
    /// first, again unchanged, then with 1 % of its files changed at the same size; wall
    /// times, requests, peak memory; beside `aws s3 sync` when `aws` is installed.
    Bench {
        /// Files in the tree.
        #[arg(long, default_value_t = 5000)]
        files: usize,
        /// Total size of the tree, MiB.
        #[arg(long, default_value_t = 50)]
        mib: u64,
    },
}

/// Runs `stepops repo-sync`.
pub async fn run(args: RepoSyncArgs) -> anyhow::Result<()> {
    match execute(args).await {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("error: {}: {e}", e.error_name());
            std::process::exit(e.error_name().exit_code());
        }
    }
}

fn read(path: &PathBuf) -> Result<String, SyncError> {
    std::fs::read_to_string(path).map_err(|e| SyncError::Definition {
        problems: vec![format!("cannot read {}: {e}", path.display())],
    })
}

async fn execute(args: RepoSyncArgs) -> Result<(), SyncError> {
    if let Some(RepoSyncCommand::Check { file }) = &args.command {
        let defs = parse_definitions(&read(file)?)?;
        for d in &defs {
            println!("ok: {} -> s3://{}/{}", d.display_name(), d.bucket, d.prefix);
        }
        return Ok(());
    }
    if let Some(RepoSyncCommand::Bench { files, mib }) = &args.command {
        return bench::run(*files, *mib).await;
    }
    let Some(path) = &args.config else {
        return Err(SyncError::Definition {
            problems: vec!["give --config FILE (or `check FILE`); see --help".into()],
        });
    };
    let mut defs = parse_definitions(&read(path)?)?;
    if args.dry_run {
        defs.iter_mut().for_each(|d| d.dry_run = true);
    }
    let config = aws_config::load_from_env().await;
    let s3 = aws_sdk_s3::config::Builder::from(&config);
    let secret = |name| read_secret(&config, name);
    let reports = run_all(
        &defs,
        &s3,
        secret,
        &Installations::default(),
        None::<Alerts<'_, MemoryPublisher>>,
        &std::env::temp_dir(),
    )
    .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&reports).expect("reports serialise")
    );
    Ok(())
}

/// `stepops repo-sync bench`: starts moto, runs `stepops_reposync::bench` and `aws s3 sync`.
mod bench {
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant, SystemTime};

    use stepops_reposync::bench::{Run, change_one_percent, make_tree, peak_memory_mib, timed_run};
    use stepops_reposync::{Definition, S3Target, SyncError};

    fn fail(m: String) -> SyncError {
        SyncError::Local {
            path: "bench".into(),
            message: m,
        }
    }

    fn print(r: &Run) {
        let q = &r.requests;
        let n = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "stepops  {:<28} {:>7.2} s  uploaded {:>5}  requests: list {} get {} head {} put {} delete {}",
            r.name,
            r.seconds,
            r.uploaded,
            n(&q.list),
            n(&q.get),
            n(&q.head),
            n(&q.put),
            n(&q.delete)
        );
    }

    /// `aws s3 sync`, timed; prints how many files it uploaded.
    fn aws_sync(name: &str, endpoint: &str, dir: &Path, extra: &[&str]) -> Result<(), SyncError> {
        let start = Instant::now();
        let out = Command::new("aws")
            .args([
                "s3",
                "sync",
                &dir.display().to_string(),
                "s3://bench/awscli/",
                "--endpoint-url",
                endpoint,
                "--no-progress",
            ])
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| fail(format!("aws: {e}")))?;
        let uploads = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("upload:"))
            .count();
        println!(
            "aws cli  {name:<28} {:>7.2} s  uploaded {uploads:>5}",
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Sets every file's modification time to now (what a fresh extraction does).
    fn touch(dir: &Path, rels: &[String]) -> Result<(), SyncError> {
        for rel in rels {
            let f = std::fs::File::options()
                .write(true)
                .open(dir.join(rel))
                .map_err(|e| fail(e.to_string()))?;
            f.set_modified(SystemTime::now())
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }

    pub async fn run(files: usize, mib: u64) -> Result<(), SyncError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(e.to_string()))?
            .port();
        let mut moto = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot start moto's server (scripts/install-deps.sh): {e}"
                ))
            })?;
        let result = run_on(&format!("http://127.0.0.1:{port}"), port, files, mib).await;
        let _ = moto.kill();
        let _ = moto.wait();
        result
    }

    async fn run_on(endpoint: &str, port: u16, files: usize, mib: u64) -> Result<(), SyncError> {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ));
        let client = stepops_reposync::s3_client(&conf, "us-east-1");
        client
            .create_bucket()
            .bucket("bench")
            .send()
            .await
            .map_err(|e| fail(format!("create bucket: {e}")))?;
        let target = S3Target::new(client);
        let tmp = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
        let dir = tmp.path();
        let rels = make_tree(dir, files, mib * 1024 * 1024)?;
        println!("tree: {files} files, {mib} MiB, moto's S3 server at {endpoint}");
        let def: Definition = serde_norway::from_str(
            "organization: bench\nrepository: tree\nbranch: main\napp_id: \"1\"\ninstallation_id: 1\nprivate_key_file: unused\nbucket: bench\nregion: us-east-1\nprefix: stepops/\n",
        )
        .map_err(|e| fail(e.to_string()))?;
        print(&timed_run("first sync", &def, &target, dir, &rels).await?);
        print(&timed_run("no change", &def, &target, dir, &rels).await?);
        let aws = Command::new("aws").arg("--version").output().is_ok();
        if aws {
            aws_sync("first sync", endpoint, dir, &[])?;
            aws_sync("no change", endpoint, dir, &[])?;
            touch(dir, &rels)?;
            aws_sync("no change, fresh extraction", endpoint, dir, &[])?;
        }
        let changed = change_one_percent(dir, &rels)?;
        println!("changed {changed} files (same size)");
        print(&timed_run("1 % changed", &def, &target, dir, &rels).await?);
        if aws {
            aws_sync("1 % changed, --size-only", endpoint, dir, &["--size-only"])?;
            aws_sync("1 % changed", endpoint, dir, &[])?;
        } else {
            println!("aws cli: not installed (pip install awscli): not compared");
        }
        if let Some(m) = peak_memory_mib() {
            println!("stepops peak memory (VmHWM): {m:.1} MiB");
        }
        Ok(())
    }
}
