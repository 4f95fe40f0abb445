//! Times the library on made-up archives, without the CLI (whose release build is slow):
//! `cargo run --release -p stepops-relationalize --example relz_time -- DIR [MIB] [ARCHIVES]`
//! generates `MIB` MiB of survey documents (default 64) in `ARCHIVES` archives (default 8)
//! under `DIR/input` when they are not there yet, then relationalizes them into `DIR/out`
//! with the survey schema and prints the wall time. Pin it to one core with `taskset -c 0`.

use std::path::Path;
use std::time::Instant;

use stepops_relationalize::Location;
use stepops_relationalize::generate::{SURVEY_SCHEMA, archive, document};
use stepops_relationalize::service::{configure, run_location};

fn generate(dir: &Path, mib: u64, archives: usize) -> std::io::Result<u64> {
    let input = dir.join("input");
    std::fs::create_dir_all(&input)?;
    std::fs::create_dir_all(dir.join("schemas/survey"))?;
    std::fs::write(dir.join("schemas/survey/v1.json"), SURVEY_SCHEMA)?;
    let per_archive = (mib << 20) / archives.max(1) as u64;
    let mut docs = 0u64;
    for a in 0..archives {
        let mut lines = Vec::with_capacity(per_archive as usize + 4096);
        while (lines.len() as u64) < per_archive {
            serde_json::to_writer(&mut lines, &document(docs, 4))?;
            lines.push(b'\n');
            docs += 1;
        }
        let zip = archive(
            &format!("rec-{a:05}"),
            &format!("a{}", a % 4),
            "2024-03-05T10:00:00Z",
            &[("survey.jsonl", &lines)],
        );
        std::fs::write(input.join(format!("rec-{a:05}.zip")), zip)?;
    }
    Ok(docs)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).ok_or("usage: relz_time DIR [MIB] [ARCHIVES]")?);
    let mib = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let archives = args.get(3).map_or(Ok(8), |s| s.parse())?;
    if !dir.join("input").exists() {
        let docs = generate(dir, mib, archives)?;
        eprintln!("generated {docs} documents in {archives} archives");
    }
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let s = |p: &Path| p.display().to_string();
    let relz = configure(&s(&out), Some(&s(&dir.join("schemas"))), None, || {
        unreachable!("local folders only")
    })?;
    let input = Location::parse(&s(&dir.join("input")), false)?;
    let store = input.store(|| unreachable!("local folders only"));
    let start = Instant::now();
    let summary = run_location(&relz, &store, &input, |_, _| {}).await?;
    println!(
        "{} archives, {} documents, {} rows, {} failed: {:.2} s",
        summary.archives,
        summary.documents,
        summary.rows,
        summary.failed,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
