//! The fake's HTTP endpoints (under `/repo/v1`) and its asynchronous jobs, each run on its own
//! thread after the stack's `job_delay`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use serde_json::{Value, json};
use stepops_testkit::http::{Recorded, Reply};

use crate::{Fault, Inner, Job, lock, store};

const PKG: &str = "org.sagebionetworks.repo.model.migration.";

fn reason(status: u16, text: &str) -> Reply {
    Reply::json(status, json!({"reason": text}))
}

pub(crate) fn respond(inner: &Arc<Inner>, req: &Recorded) -> Reply {
    if let Some(fault) = {
        let mut f = lock(&inner.faults);
        (!f.is_empty()).then(|| f.remove(0))
    } {
        match fault {
            Fault::Status(s) => return reason(s, "injected fault"),
            Fault::Malformed => {
                return Reply::new(200, "application/json", "{\"jobId\": 12, \"not\": [json");
            }
            Fault::Delay(d) => return answer(inner, req).delayed(d),
        }
    }
    answer(inner, req)
}

fn authorized(inner: &Inner, req: &Recorded) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", inner.opts.key, inner.opts.secret));
    req.header("authorization") == Some(&format!("Basic {expected}"))
}

fn answer(inner: &Arc<Inner>, req: &Recorded) -> Reply {
    if !authorized(inner, req) {
        return reason(401, "The service key or its secret is not valid");
    }
    let Some(path) = req.path.strip_prefix("/repo/v1") else {
        return reason(404, "not found");
    };
    let names = |primary: bool| {
        let mut list = Vec::new();
        for d in &inner.opts.types {
            list.push(d.name.clone());
            if !primary {
                list.extend(d.secondaries.iter().cloned());
            }
        }
        Reply::json(200, json!({"list": list}))
    };
    match (req.method.as_str(), path) {
        ("GET", "/migration/types/names") => names(false),
        ("GET", "/migration/primarytypes/names") => names(true),
        ("GET", "/admin/synapse/status") => Reply::json(200, lock(&inner.status).clone()),
        ("PUT", "/admin/synapse/status") => {
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return reason(400, "not JSON");
            };
            if !matches!(
                body["status"].as_str(),
                Some("READ_WRITE" | "READ_ONLY" | "DOWN")
            ) {
                return reason(400, "status must be READ_WRITE, READ_ONLY or DOWN");
            }
            *lock(&inner.status) = body.clone();
            Reply::json(200, body)
        }
        ("POST", "/admin/asynchronous/job") => start_job(inner, &req.body),
        ("GET", p) if p.starts_with("/admin/asynchronous/job/") => {
            let id = &p["/admin/asynchronous/job/".len()..];
            match lock(&inner.jobs).get(id) {
                Some(j) => Reply::json(200, j.status.clone()),
                None => reason(404, &format!("no job {id}")),
            }
        }
        _ => reason(404, &format!("no endpoint {} {path}", req.method)),
    }
}

fn start_job(inner: &Arc<Inner>, body: &[u8]) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return reason(400, "the body is not JSON");
    };
    if body["concreteType"] != json!(format!("{PKG}AsyncMigrationRequest")) {
        return reason(400, "concreteType must be AsyncMigrationRequest");
    }
    let request = body["adminRequest"].clone();
    let ct = request["concreteType"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches(PKG)
        .to_owned();
    let kind = match ct.as_str() {
        "AsyncMigrationTypeCountsRequest" => "typeCounts",
        "CalculateOptimalRangeRequest" => "optimalRange",
        "BackupTypeRangeRequest" => "backup",
        "RestoreTypeRequest" => "restore",
        "BatchChecksumRequest" => "batchChecksum",
        "AsyncMigrationTypeChecksumRequest" => "typeChecksum",
        other => return reason(400, &format!("unknown adminRequest concreteType {other:?}")),
    };
    let t = request["migrationType"].as_str().unwrap_or("").to_owned();
    let (lo, hi) = match kind {
        "restore" => (
            request["minimumRowId"].as_i64(),
            request["maximumRowId"].as_i64(),
        ),
        _ => (request["minimumId"].as_i64(), request["maximumId"].as_i64()),
    };
    let bounded = !matches!(kind, "typeCounts" | "typeChecksum");
    if kind != "typeCounts"
        && (inner.def(&t).is_none() || (bounded && (lo.is_none() || hi.is_none())))
    {
        return reason(
            400,
            &format!("{ct}: unknown migrationType {t:?} or missing id bounds"),
        );
    }
    let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(0));
    *lock(&inner.started)
        .entry((kind.to_owned(), t.clone(), lo, hi))
        .or_default() += 1;
    let late_starts = lock(&inner.late_starts).clone();
    let late = late_starts.filter(|l| l.kind == kind).and_then(|l| {
        let n = inner.jobs_of(kind).checked_sub(l.after)?;
        (1..=l.count).contains(&n).then(|| l.by * n as u32)
    });
    let id = inner.next_job.fetch_add(1, Ordering::SeqCst).to_string();
    let status = json!({"jobId": id, "jobState": "PROCESSING", "etag": "x", "startedOn": "now"});
    lock(&inner.jobs).insert(
        id.clone(),
        Job {
            status: status.clone(),
            kind: kind.to_owned(),
        },
    );
    let failure = {
        let mut f = lock(&inner.fail_jobs);
        f.iter().position(|(k, _)| k == kind).map(|i| f.remove(i).1)
    };
    let inner = inner.clone();
    std::thread::spawn(move || {
        std::thread::sleep(inner.opts.job_delay);
        let result = match failure {
            Some(message) => Err(anyhow::anyhow!(message)),
            None => run_job(&inner, kind, &t, lo, hi, &request),
        };
        let mut jobs = lock(&inner.jobs);
        let job = jobs.get_mut(&id).expect("a job started");
        job.status = match result {
            Ok(resp) => json!({"jobId": id, "jobState": "COMPLETE", "responseBody": {
                "concreteType": format!("{PKG}AsyncMigrationResponse"), "adminResponse": resp}}),
            Err(e) => json!({"jobId": id, "jobState": "FAILED", "errorMessage": e.to_string(),
                "errorDetails": format!("org.sagebionetworks.FakeException: {e}\n\tat fake")}),
        };
    });
    let reply = Reply::json(201, status);
    match late {
        Some(by) => reply.delayed(by),
        None => reply,
    }
}

fn run_job(
    inner: &Inner,
    kind: &str,
    t: &str,
    lo: i64,
    hi: i64,
    r: &Value,
) -> anyhow::Result<Value> {
    let num = |k: &str| {
        r[k].as_i64()
            .ok_or_else(|| anyhow::anyhow!("{k} is missing"))
    };
    Ok(match kind {
        "typeCounts" => {
            let types: Vec<String> = serde_json::from_value(r["types"].clone())?;
            json!({"concreteType": format!("{PKG}MigrationTypeCounts"), "list": store::counts(&inner.db(), &types)?})
        }
        "optimalRange" => {
            json!({"concreteType": format!("{PKG}CalculateOptimalRangeResponse"), "migrationType": t,
            "ranges": store::optimal_ranges(&inner.db(), t, lo, hi, num("optimalRowsPerRange")?)?})
        }
        "batchChecksum" => {
            json!({"concreteType": format!("{PKG}BatchChecksumResponse"), "migrationType": t,
            "cheksums": store::batch_checksums(&inner.db(), t, r["salt"].as_str().unwrap_or(""), lo, hi, num("batchSize")?)?})
        }
        "typeChecksum" => {
            // The service's full-table checksum (a table checksum): refused while READ_WRITE.
            let status = lock(&inner.status)["status"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if status == "READ_WRITE" {
                anyhow::bail!(
                    "a full-table checksum can only be computed while the stack is READ_ONLY (it is {status})"
                );
            }
            let def = inner.def(t).expect("checked");
            json!({"concreteType": format!("{PKG}MigrationTypeChecksum"), "type": t,
                   "checksum": store::table_checksum(&inner.db(), &def)?})
        }
        "backup" => {
            let n = inner.next_job.fetch_add(1, Ordering::SeqCst);
            let key = format!("{}-{t}-{lo}-{hi}-{n}.json", inner.opts.name);
            let def = inner.def(t).expect("checked");
            store::backup(&inner.db(), &def, lo, hi, &inner.opts.backup_dir.join(&key))?;
            json!({"concreteType": format!("{PKG}BackupTypeResponse"), "backupFileKey": key})
        }
        "restore" => {
            let key = r["backupFileKey"].as_str().unwrap_or("").to_owned();
            if key.is_empty() || key.contains('/') || key.contains("..") {
                anyhow::bail!("backupFileKey {key:?} is not a key of the backup bucket");
            }
            let def = inner.def(t).expect("checked");
            restore_one_at_a_time(inner, t, || {
                store::restore(
                    &mut inner.db(),
                    &def,
                    lo,
                    hi,
                    &inner.opts.backup_dir.join(&key),
                )
            })?
        }
        _ => unreachable!("kinds are checked at start"),
    })
}

/// Runs a restore of `t`, recording a violation when another restore of `t` runs (or when the
/// change log is restored beside any other type).
fn restore_one_at_a_time(
    inner: &Inner,
    t: &str,
    f: impl FnOnce() -> anyhow::Result<i64>,
) -> anyhow::Result<Value> {
    {
        let mut r = lock(&inner.restoring);
        let others: usize = r
            .iter()
            .filter(|(k, _)| k.as_str() != t)
            .map(|(_, n)| *n)
            .sum();
        if r.get(t).copied().unwrap_or(0) > 0 {
            lock(&inner.violations).push(format!("two restores of {t} at once"));
        }
        let change_log = inner.opts.types.last().map(|d| d.name.as_str());
        if others > 0
            && (Some(t) == change_log || r.get(change_log.unwrap_or("")).copied().unwrap_or(0) > 0)
        {
            lock(&inner.violations).push(format!("the change log restored beside {t}"));
        }
        *r.entry(t.to_owned()).or_default() += 1;
    }
    // Long enough for an overlapping restore to be seen.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let result = f();
    *lock(&inner.restoring).entry(t.to_owned()).or_default() -= 1;
    let n = result?;
    Ok(json!({"concreteType": format!("{PKG}RestoreTypeResponse"), "restoredRowCount": n}))
}
