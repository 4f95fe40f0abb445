//! The alert of a run, through the pipeline's `Publisher` (an in-memory recorder here; SNS in
//! AWS): sent when something changed or failed, bounded and counted, never when nothing changed.

mod common;

use common::*;
use stepops_error::{ErrorName, Named};
use stepops_pipeline::MemoryPublisher;
use stepops_reposync::service::{Alerts, Installations, run_all};

#[tokio::test]
async fn changes_and_failures_alert_and_quiet_runs_do_not() {
    let moto = moto().await;
    let names: Vec<String> = (0..25).map(|i| format!("f{i:02}.txt")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), n.as_bytes())).collect();
    let gh = github(Serve::Zip(zipball(&files))).await;
    let client = s3_client(&moto.endpoint);
    client
        .create_bucket()
        .bucket("site-bucket")
        .send()
        .await
        .unwrap();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), KEY_PEM).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut def = definition(&gh.url, "site-bucket", "www/", key_file.path());
    let publisher = MemoryPublisher::default();
    let installations = Installations::default();
    let s3 = s3_config(&moto.endpoint);
    let no_secret = |_name: String| async { unreachable!("the key comes from a file") };
    let run = |def: stepops_reposync::Definition| {
        let (s3, publisher, installations, work) = (&s3, &publisher, &installations, &work);
        async move {
            let alerts = Alerts {
                publisher,
                webhook: None,
                environment: "dev",
            };
            run_all(
                &[def],
                s3,
                no_secret,
                installations,
                Some(alerts),
                work.path(),
            )
            .await
        }
    };
    let reports = run(def.clone()).await.unwrap();
    assert_eq!(reports[0].new.len(), 25);
    let m = publisher.messages();
    assert_eq!(m.len(), 1);
    assert!(
        m[0].subject
            .starts_with("[stepops dev] repo sync acme/site: 25 changed"),
        "{}",
        m[0].subject
    );
    assert_eq!(m[0].status, "SUCCEEDED");
    assert!(
        m[0].text.contains("new (25):") && m[0].text.contains("www/f00.txt"),
        "{}",
        m[0].text
    );
    assert!(
        m[0].text.contains("… and 5 more") && !m[0].text.contains("www/f24.txt"),
        "bounded: {}",
        m[0].text
    );
    assert!(m[0].text.contains(COMMIT));
    // Nothing changed: no alert.
    run(def.clone()).await.unwrap();
    assert_eq!(publisher.messages().len(), 1);
    // A failure alerts with its name.
    def.branch = "gone".into();
    let err = run(def).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound);
    let m = publisher.messages();
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].status, "FAILED");
    assert!(m[1].text.contains("Stepops.NotFound"), "{}", m[1].text);
    assert!(!m[1].text.contains(TOKEN));
}
