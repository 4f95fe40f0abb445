//! The client and the migration steps against the fake service (real HTTP on 127.0.0.1, real
//! SQLite): the wire's id bounds, a whole migration in one process, resumption from the
//! journal, and every named error.

use std::time::Duration;

use stepops_error::{ErrorName, Named};
use stepops_synapse::protocol::{AdminRequest, AdminResponse};
use stepops_synapse::{
    ClientOptions, Journal, MemoryJournal, SynapseClient, SynapseConfig, SynapseError,
};
use stepops_synapse_fake::{FakeOptions, FakeStack, Fault};

async fn pair(dir: &std::path::Path) -> (FakeStack, FakeStack) {
    let s = FakeStack::start(FakeOptions::new("prod", dir.join("backups"))).await;
    let d = FakeStack::start(FakeOptions::new("staging", dir.join("backups"))).await;
    (s, d)
}

fn fast() -> ClientOptions {
    ClientOptions {
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        attempts: 3,
    }
}

fn config() -> SynapseConfig {
    SynapseConfig {
        poll_max_ms: 20,
        ..SynapseConfig::default()
    }
}

/// Runs plan → copy every chunk → verify until converged (at most 4 rounds); returns rounds.
async fn migrate(s: &FakeStack, d: &FakeStack, rows: u64) -> usize {
    let journal = MemoryJournal::default();
    for round in 1..=4 {
        let plan = stepops_synapse::plan(&s.url(), &d.url(), &config(), rows)
            .await
            .unwrap();
        for t in &plan {
            stepops_synapse::copy_chunk(
                &s.url(),
                &d.url(),
                &config(),
                &t.type_name,
                &t.ranges,
                &journal,
            )
            .await
            .unwrap();
        }
        if stepops_synapse::verify(&s.url(), &d.url(), &config(), rows)
            .await
            .unwrap()
            .is_empty()
        {
            return round;
        }
    }
    panic!("not converged in 4 rounds");
}

#[tokio::test]
async fn maximum_id_is_exclusive_on_the_fake_and_the_steps_send_hi_plus_one() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = pair(dir.path()).await;
    s.seed("NODE", 1..=10, 1);
    let c = SynapseClient::from_url(&s.url(), fast()).unwrap();
    let AdminResponse::Backup { backup_file_key } = c
        .run(&AdminRequest::Backup {
            migration_type: "NODE".into(),
            alias_type: "TABLE_NAME".into(),
            batch_size: 5,
            minimum_id: 1,
            maximum_id: 10,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let dc = SynapseClient::from_url(&d.url(), fast()).unwrap();
    let AdminResponse::Restore { restored_row_count } = dc
        .run(&AdminRequest::Restore {
            migration_type: "NODE".into(),
            alias_type: "TABLE_NAME".into(),
            backup_file_key,
            batch_size: 5,
            minimum_row_id: 1,
            maximum_row_id: 10,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        restored_row_count,
        Some(9),
        "id 10 = maximumId is outside the range"
    );
    // The migration's last id arrives: the steps send maximumId = hi + 1.
    migrate(&s, &d, 4).await;
    assert_eq!(s.dump(), d.dump());
    assert!(d.dump().iter().any(|r| r.starts_with("P NODE 10 ")));
}

#[tokio::test]
async fn diverged_destination_converges_and_a_second_run_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = pair(dir.path()).await;
    for t in ["PRINCIPAL", "NODE", "ACL", "CHANGE"] {
        s.seed(t, 1..=300, 2);
        d.seed(t, 1..=300, 2);
    }
    d.seed("NODE", 301..=320, 1); // only on the destination, beyond the source's max
    d.delete("ACL", 7).unwrap(); // missing on the destination
    s.write("NODE", 42, "e1-42").unwrap(); // changed on the source
    s.write_secondary(
        "NODE_REVISION",
        43,
        5,
        "new revision",
        Some(("NODE", "e1-43")),
    )
    .unwrap();
    d.write_secondary(
        "PRINCIPAL_ALIAS",
        9,
        0,
        "stale alias",
        Some(("PRINCIPAL", "e9")),
    )
    .unwrap();
    s.write("CHANGE", 500, "c500").unwrap();
    assert_ne!(s.dump(), d.dump());
    let rounds = migrate(&s, &d, 50).await;
    assert_eq!(s.dump(), d.dump());
    assert_eq!(
        rounds, 2,
        "the change log goes alone in the round after the others"
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    let restores = d.jobs_of("restore");
    let plan = stepops_synapse::plan(&s.url(), &d.url(), &config(), 50)
        .await
        .unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    assert_eq!(d.jobs_of("restore"), restores);
}

#[tokio::test]
async fn a_failed_restore_is_named_and_the_retry_reuses_the_backups() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = pair(dir.path()).await;
    s.seed("NODE", 1..=100, 1);
    let plan = stepops_synapse::plan(&s.url(), &d.url(), &config(), 10)
        .await
        .unwrap();
    let node = &plan[0];
    assert_eq!(node.ranges.len(), 10);
    d.fail_next_job("restore", "Deadlock found when trying to get lock");
    // The chunk backs up two ranges ahead. The second and third backups' starts are answered
    // 300 and 600 ms late: the first restore fails, the chunk stops once the second backup has
    // ended, and the third's start is still in flight then: the chunk waits for it to be
    // recorded before it returns.
    s.answer_job_starts_late("backup", 1, 2, Duration::from_millis(300));
    let journal = MemoryJournal::default();
    let e = stepops_synapse::copy_chunk(
        &s.url(),
        &d.url(),
        &config(),
        "NODE",
        &node.ranges,
        &journal,
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::ServiceFailed);
    assert!(e.to_string().contains("Deadlock found"), "{e}");
    // When the failed chunk returns, every backup it started is in the journal, none of them
    // still being started.
    let backups = s.jobs_of("backup");
    let mut recorded = 0;
    for (lo, hi) in &node.ranges {
        let key = stepops_synapse::range_key("NODE", *lo, *hi);
        let state = journal.load(&key).await.unwrap().unwrap_or_default();
        assert_eq!(state.starting, None, "{key} is still being started");
        recorded += usize::from(state.backup_job_id.is_some() || state.backup_file_key.is_some());
    }
    assert_eq!(recorded, backups, "backups started and recorded");
    let r = stepops_synapse::copy_chunk(
        &s.url(),
        &d.url(),
        &config(),
        "NODE",
        &node.ranges,
        &journal,
    )
    .await
    .unwrap();
    assert_eq!(s.jobs_of("backup") - backups, r.backups_started);
    assert!(
        r.backups_started < 10,
        "backups done before the failure are reused: {r:?}"
    );
    assert_eq!(s.dump(), d.dump());
    for ((kind, t, lo, hi), n) in s.jobs_started() {
        assert!(
            kind != "backup" || n == 1,
            "backup of {t} [{lo}, {hi}) started {n} times"
        );
    }
}

#[tokio::test]
async fn refusals_outages_timeouts_and_malformed_answers_have_names() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _d) = pair(dir.path()).await;
    let bad = SynapseClient::from_url(&s.url_with("migration-admin", "wrong"), fast()).unwrap();
    let e = bad.status().await.unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Unauthorized, "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
    let c = SynapseClient::from_url(&s.url(), fast()).unwrap();
    s.inject(Fault::Status(503), 2);
    assert_eq!(
        c.status().await.unwrap().status,
        "READ_WRITE",
        "two 503s are retried"
    );
    s.inject(Fault::Status(503), 3);
    let e = c.status().await.unwrap_err();
    assert!(
        matches!(e, SynapseError::Unavailable { .. }) && e.error_name() == ErrorName::Transient,
        "{e}"
    );
    s.inject(Fault::Malformed, 1);
    let e = c.type_names().await.unwrap_err();
    assert_eq!(e.error_name(), ErrorName::ServiceFailed, "{e}");
    let slow = SynapseClient::from_url(
        &s.url(),
        ClientOptions {
            request_timeout: Duration::from_millis(200),
            attempts: 1,
            ..fast()
        },
    )
    .unwrap();
    s.inject(Fault::Delay(Duration::from_secs(2)), 1);
    let e = slow.status().await.unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Transient, "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    // A job start is not retried after a timeout (it may have started).
    s.inject(Fault::Delay(Duration::from_secs(2)), 1);
    let e = slow
        .start_job(&AdminRequest::TypeCounts {
            types: vec!["NODE".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Transient);
    s.fail_next_job("typeCounts", "Table 'NODE' doesn't exist");
    let e = c
        .run(&AdminRequest::TypeCounts {
            types: vec!["NODE".into()],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SynapseError::JobFailed { message, .. } if message.contains("doesn't exist")),
        "{e}"
    );
}

#[tokio::test]
async fn the_destination_is_read_only_during_and_read_write_after_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = pair(dir.path()).await;
    let r = stepops_synapse::set_read_only(&d.url(), &config(), true)
        .await
        .unwrap();
    assert!(r.read_only && r.changed);
    assert!(
        d.write("NODE", 1, "x").is_err(),
        "users' writes are refused while READ_ONLY"
    );
    let stay = SynapseConfig {
        remain_read_only: true,
        ..config()
    };
    let r = stepops_synapse::set_read_only(&d.url(), &stay, false)
        .await
        .unwrap();
    assert!(r.read_only && !r.changed && d.status() == "READ_ONLY");
    let r = stepops_synapse::set_read_only(&d.url(), &config(), false)
        .await
        .unwrap();
    assert!(!r.read_only && r.changed && d.status() == "READ_WRITE");
    d.write("NODE", 1, "x").unwrap();
}

/// A row changed without a new etag is invisible to the batch checksums (the service's own
/// limit); `fullTableChecksum` finds it once both stacks are READ_ONLY and copies the type
/// whole, and is refused while a stack is READ_WRITE.
#[tokio::test]
async fn the_full_table_checksum_finds_a_row_changed_without_a_new_etag() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = pair(dir.path()).await;
    for stack in [&s, &d] {
        stack.seed("NODE", 1..=300, 1);
        stack.seed("ACL", 1..=300, 1);
    }
    d.write_keeping_etag("NODE", 150, "edited by hand").unwrap();
    assert_ne!(s.dump(), d.dump());
    let full = SynapseConfig {
        full_table_checksum: true,
        ..config()
    };
    let refused = stepops_synapse::plan(&s.url(), &d.url(), &full, 100)
        .await
        .unwrap_err();
    assert_eq!(refused.error_name(), ErrorName::InvalidInput, "{refused}");
    assert!(refused.to_string().contains("READ_ONLY"), "{refused}");

    s.set_status("READ_ONLY");
    d.set_status("READ_ONLY");
    let blind = stepops_synapse::plan(&s.url(), &d.url(), &config(), 100)
        .await
        .unwrap();
    assert!(blind.is_empty(), "batch checksums cannot see it: {blind:?}");
    let plan = stepops_synapse::plan(&s.url(), &d.url(), &full, 100)
        .await
        .unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(plan[0].type_name, "NODE");
    assert_eq!(plan[0].ranges.first().map(|r| r.0), Some(1));
    assert_eq!(plan[0].ranges.last().map(|r| r.1), Some(300));
    let journal = MemoryJournal::default();
    stepops_synapse::copy_chunk(&s.url(), &d.url(), &full, "NODE", &plan[0].ranges, &journal)
        .await
        .unwrap();
    assert_eq!(s.dump(), d.dump());
    assert!(
        stepops_synapse::verify(&s.url(), &d.url(), &full, 100)
            .await
            .unwrap()
            .is_empty()
    );
}
