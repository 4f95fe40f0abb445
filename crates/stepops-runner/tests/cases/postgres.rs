//! The migration steps on real PostgreSQL servers with password authentication, the URLs coming
//! from Secrets Manager and SSM (the real SDK clients against the loopback fake): the
//! destination ends equal to the source, and no password appears in any log line (trace level).

use super::common::{Answer, FakeSfn};
use super::{ARN, options};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stepops_runner::{
    AwsSecretSource, LibraryEngine, LocalFolderStore, MigrationHandler, Resolver, Runner,
    local_sfn_client,
};
use stepops_testkit::PgServer;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn step(fake: &FakeSfn, input: Value) -> Value {
    let t = fake.push(ARN, input);
    match fake.wait_answer(&t, Duration::from_secs(60)).await {
        Answer::Success(v) => v,
        other => panic!("step failed: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_migration_with_secrets_never_logs_a_password() {
    let logs = Buf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // The destination's secret has the RDS shape: it connects with verify-full, here against
    // the test's CA (the secret's sslrootcert; in AWS the instance's RDS bundle).
    let ca = stepops_testkit::TestCa::new();
    let pg = PgServer::start_with(stepops_testkit::PgOptions {
        superuser_password: Some("pw-rds-shape-7".into()),
        tls: Some(ca.server_tls(&["127.0.0.1"], false)),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let password = pg.superuser_password().unwrap().to_owned();
    let src = pg.create_database("src").unwrap();
    pg.create_database("dst").unwrap();
    let schema = "CREATE TABLE items(id bigint PRIMARY KEY, name text NOT NULL, n numeric(12,2));";
    pg.psql(
        "src",
        &format!(
            "{schema} INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 3000) g;"
        ),
    )
    .unwrap();
    pg.psql(
        "dst",
        &format!(
            "{schema} INSERT INTO items SELECT g, 'stale ' || g, NULL FROM generate_series(500, 3500) g;"
        ),
    )
    .unwrap();

    let fake = FakeSfn::start(Duration::from_secs(5)).await;
    fake.set_secret("stepops/dev/source-db", &src);
    fake.set_secret(
        "/stepops/dev/dest-db",
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(),
                "username": "postgres", "password": password, "dbname": "dst",
                "sslrootcert": ca_file.display().to_string()})
        .to_string(),
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(fake.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .load()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let resolver = Arc::new(Resolver::new(
        AwsSecretSource::new(&sdk),
        Duration::from_secs(60),
    ));
    let handler = MigrationHandler::new(
        LibraryEngine,
        resolver.clone(),
        LocalFolderStore::new(dir.path()),
    );
    let stop = CancellationToken::new();
    let runner = Runner::new(
        local_sfn_client(&fake.endpoint()),
        options(3, 5_000),
        handler,
    )
    .with_redactor(move |s| resolver.redact(s));
    let handle = tokio::spawn(runner.run(stop.clone().cancelled_owned()));

    let base = json!({"environment": "dev", "source": {"secret": "stepops/dev/source-db"},
                      "dest": {"parameter": "/stepops/dev/dest-db"}, "config": {}});
    let with = |extra: Value| {
        let mut a = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };
    let plan = step(
        &fake,
        json!({"step": "plan", "args": with(json!({"chunkRows": 1000, "round": 1,
            "manifest": {"bucket": "b", "prefix": "p"}}))}),
    )
    .await;
    assert_eq!(plan["inSync"], json!(false), "{plan}");
    let manifest = std::fs::read_to_string(dir.path().join("b/p/round-1.jsonl")).unwrap();
    let tokens: Vec<String> = manifest
        .lines()
        .map(|l| {
            let chunk: Value = serde_json::from_str(l).unwrap();
            fake.push(
                ARN,
                json!({"step": "copy", "args": with(json!({"chunk": chunk}))}),
            )
        })
        .collect();
    assert!(tokens.len() >= 3, "{manifest}");
    for t in &tokens {
        assert!(matches!(
            fake.wait_answer(t, Duration::from_secs(60)).await,
            Answer::Success(_)
        ));
    }
    let v = step(
        &fake,
        json!({"step": "verify", "args": with(json!({"round": 1, "maxRounds": 2}))}),
    )
    .await;
    assert_eq!(v["converged"], json!(true), "{v}");
    stop.cancel();
    handle.await.unwrap();

    let digest = |db: &str| {
        pg.psql(
            db,
            "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM items t",
        )
        .unwrap()
    };
    assert_eq!(digest("src"), digest("dst"));
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("chunk copied"), "logs were captured");
    assert!(logs.contains("GetSecretValue") || logs.contains("GetParameter"));
    assert!(!logs.contains(&password), "a password reached the logs");
}
