//! Executions: start (a run in the background), resume at start-up, describe, stop, redrive,
//! wait for the end.

use super::*;

impl Engine {
    pub(crate) fn start_execution(
        self: &Arc<Self>,
        state_machine_arn: &str,
        name: Option<&str>,
        input: Option<&str>,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let machine = self.machine(state_machine_arn)?;
        let name = match name {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        if !valid_name(&name) {
            return Err(api(
                ApiErrorKind::InvalidName,
                format!("Invalid Name: '{name}'"),
            ));
        }
        let input_text = input.filter(|s| !s.is_empty()).unwrap_or("{}");
        let input_value: Value = serde_json::from_str(input_text).map_err(|e| {
            api(
                ApiErrorKind::InvalidExecutionInput,
                format!("Invalid Execution Input: not valid JSON ({e})"),
            )
        })?;
        let arn = self.locality.execution_arn(&machine.record.name, &name);
        if let Some(existing) = self.store.execution(&arn).map_err(internal)? {
            let same_input =
                serde_json::from_str::<Value>(&existing.input).ok() == Some(input_value.clone());
            if existing.status == "RUNNING" && same_input {
                return Ok((existing.arn, existing.start_date));
            }
            return Err(api(
                ApiErrorKind::ExecutionAlreadyExists,
                format!("Execution Already Exists: '{arn}'"),
            ));
        }
        let start = Utc::now();
        let info = ExecutionInfo {
            execution_arn: arn.clone(),
            name: name.clone(),
            state_machine_arn: machine.record.arn.clone(),
            state_machine_name: machine.record.name.clone(),
            role_arn: machine.record.role_arn.clone(),
            start_time: start,
            redrive_count: 0,
        };
        let record = ExecutionRecord {
            arn: arn.clone(),
            name,
            state_machine_arn: machine.record.arn.clone(),
            definition: machine.record.definition.clone(),
            status: "RUNNING".into(),
            input: input_value.to_string(),
            output: None,
            error: None,
            cause: None,
            start_date: start,
            stop_date: None,
            redrive_count: 0,
            redrive_date: None,
            info: serde_json::to_string(&info).expect("info serialises"),
        };
        self.store.insert_execution(&record).map_err(internal)?;
        self.status_changed(&arn);
        self.spawn_run(
            record,
            Some(machine.definition.clone()),
            info,
            input_value,
            None,
        );
        Ok((arn, start))
    }

    /// Runs (or resumes) one execution in the background.
    pub(super) fn spawn_run(
        self: &Arc<Self>,
        record: ExecutionRecord,
        definition: Option<Arc<Definition>>,
        info: ExecutionInfo,
        input: Value,
        resume: Option<Snapshot>,
    ) {
        let definition = match definition {
            Some(d) => d,
            None => match Definition::parse(&record.definition) {
                Ok(d) => Arc::new(d),
                Err(e) => {
                    let _ = self.store.finish_execution(
                        &record.arn,
                        "FAILED",
                        None,
                        Some("States.Runtime"),
                        Some(&format!("The stored definition no longer loads: {e}")),
                        &Utc::now(),
                    );
                    self.status_changed(&record.arn);
                    self.finished.notify_waiters();
                    return;
                }
            },
        };
        let stop = StopSignal::new();
        self.running
            .lock()
            .expect("running lock")
            .insert(record.arn.clone(), RunningExecution { stop: stop.clone() });
        let engine = self.clone();
        let dispatcher: Arc<dyn stepops_asl::TaskDispatcher> =
            Arc::new(Dispatcher::new(Arc::downgrade(self)));
        let store: Arc<dyn ExecutionStore> = Arc::new(StoreAdapter(self.store.clone()));
        let options = RunOptions {
            time_scale: self.time_scale,
            s3_root: Some(self.s3_root.clone()),
        };
        let shutdown = self.shutdown.clone();
        let arn = record.arn.clone();
        self.tasks.spawn(async move {
            let run = stepops_asl::run(
                definition,
                info,
                input,
                resume,
                dispatcher,
                store,
                options,
                stop.clone(),
            );
            let result = tokio::select! {
                r = run => r,
                // The engine is going away: leave the execution RUNNING; the next engine on
                // this state dir resumes it from its snapshot.
                _ = shutdown.cancelled() => return,
            };
            engine.running.lock().expect("running lock").remove(&arn);
            let now = Utc::now();
            let (status, output, error, cause) = match result {
                ExecutionResult::Succeeded { output } => {
                    ("SUCCEEDED", Some(output.to_string()), None, None)
                }
                ExecutionResult::Failed { error, cause } => ("FAILED", None, error, cause),
                ExecutionResult::Aborted => {
                    let (e, c) = stop.reason();
                    ("ABORTED", None, e, c)
                }
                ExecutionResult::TimedOut => (
                    "TIMED_OUT",
                    None,
                    Some("States.Timeout".to_string()),
                    Some("The execution exceeded its TimeoutSeconds.".to_string()),
                ),
            };
            if let Err(e) = engine.store.finish_execution(
                &arn,
                status,
                output.as_deref(),
                error.as_deref(),
                cause.as_deref(),
                &now,
            ) {
                tracing::error!(execution = %arn, error = %e, "cannot record the end of an execution");
            }
            tracing::info!(execution = %arn, status, "execution ended");
            // Deliveries are counted before the waiters wake: `wait` + `deliveries_settled`
            // sees this execution's end notified.
            engine.status_changed(&arn);
            engine.finished.notify_waiters();
        });
    }

    /// Resumes every RUNNING execution of the store.
    pub(super) fn resume_running(self: &Arc<Self>) -> Result<usize, LocalError> {
        let running = self.store.executions(None, Some("RUNNING"))?;
        let n = running.len();
        for record in running {
            let info: ExecutionInfo = match serde_json::from_str(&record.info) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(execution = %record.arn, error = %e, "unreadable execution info; not resumed");
                    continue;
                }
            };
            let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
            let snapshot = self
                .store
                .snapshot(&record.arn)?
                .and_then(|s| serde_json::from_str(&s).ok())
                .map(Snapshot);
            tracing::info!(execution = %record.arn, "resuming execution");
            self.spawn_run(record, None, info, input, snapshot);
        }
        Ok(n)
    }

    pub(crate) fn execution(&self, arn: &str) -> Result<ExecutionRecord, ApiError> {
        if states_resource(arn).is_none_or(|(k, _)| k != "execution") {
            return Err(api(
                ApiErrorKind::InvalidArn,
                format!("Invalid Arn: '{arn}' is not an execution ARN"),
            ));
        }
        self.store.execution(arn).map_err(internal)?.ok_or_else(|| {
            api(
                ApiErrorKind::ExecutionDoesNotExist,
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })
    }

    pub(crate) fn stop_execution(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<DateTime<Utc>, ApiError> {
        let record = self.execution(arn)?;
        if record.status != "RUNNING" {
            return Ok(record.stop_date.unwrap_or_else(Utc::now));
        }
        let running = self.running.lock().expect("running lock");
        if let Some(r) = running.get(arn) {
            r.stop.stop(error, cause);
        }
        Ok(Utc::now())
    }

    pub(crate) fn redrive_execution(
        self: &Arc<Self>,
        arn: &str,
    ) -> Result<DateTime<Utc>, ApiError> {
        let record = self.execution(arn)?;
        if !matches!(record.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
            return Err(api(
                ApiErrorKind::ExecutionNotRedrivable,
                format!(
                    "Execution Not Redrivable: '{arn}' is {}; only FAILED, TIMED_OUT and ABORTED executions can be redriven",
                    record.status
                ),
            ));
        }
        let snapshot = self
            .store
            .snapshot(arn)
            .map_err(internal)?
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map(Snapshot)
            .ok_or_else(|| {
                api(
                    ApiErrorKind::ExecutionNotRedrivable,
                    format!("Execution Not Redrivable: '{arn}' has no recorded progress"),
                )
            })?;
        let redriven = stepops_asl::redrive(&snapshot).map_err(|e| {
            api(
                ApiErrorKind::ExecutionNotRedrivable,
                format!("Execution Not Redrivable: {e}"),
            )
        })?;
        let mut info: ExecutionInfo = serde_json::from_str(&record.info)
            .map_err(|e| api(ApiErrorKind::InternalFailure, e.to_string()))?;
        info.redrive_count = record.redrive_count + 1;
        let now = Utc::now();
        let info_text = serde_json::to_string(&info).expect("info serialises");
        let snap_text = serde_json::to_string(&redriven.0).expect("snapshot serialises");
        self.store
            .redrive_execution(arn, info.redrive_count, &now, &info_text, &snap_text)
            .map_err(internal)?;
        self.status_changed(arn);
        let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
        let mut record = record;
        record.status = "RUNNING".into();
        self.spawn_run(record, None, info, input, Some(redriven));
        Ok(now)
    }

    /// Waits until the execution is no longer RUNNING.
    pub(crate) async fn wait(&self, arn: &str) -> Result<ExecutionRecord, ApiError> {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = self.execution(arn)?;
            if record.status != "RUNNING" {
                return Ok(record);
            }
            tokio::select! {
                _ = notified => {}
                _ = self.shutdown.cancelled() => {
                    return Err(api(ApiErrorKind::InternalFailure, "the engine is shutting down"));
                }
            }
        }
    }
}
