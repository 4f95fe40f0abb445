//! [`LocalEngine`]: the library API the CLI, the pipeline and tests embed.

use crate::tasks::TaskHub;

use super::state_dir::lock_state_dir;
use super::*;

/// A running local engine. Dropping it stops the HTTP server and leaves RUNNING executions
/// in the store, to be resumed by the next engine started on the same state dir.
pub struct LocalEngine {
    engine: Arc<Engine>,
    addr: Option<SocketAddr>,
    template: Option<LoadedTemplate>,
}

impl LocalEngine {
    /// Opens the store, loads the template, starts the HTTP API (when `config.port` is set)
    /// and resumes the store's RUNNING executions.
    pub async fn start(config: EngineConfig) -> Result<LocalEngine, LocalError> {
        let lock = lock_state_dir(&config.state_dir).await?;
        let store = Arc::new(Store::open(&config.state_dir)?);
        let s3_root = config
            .s3_root
            .clone()
            .unwrap_or_else(|| config.state_dir.join("s3"));
        let engine = Arc::new(Engine {
            locality: config.template_options.locality.clone(),
            store: store.clone(),
            hub: TaskHub::with_log(store.clone()),
            lambdas: config.lambdas.clone(),
            poll_timeout: config.poll_timeout,
            abandoned_polls_take_tasks: config.abandoned_polls_take_tasks,
            time_scale: config.time_scale,
            s3_root,
            secrets: config.secrets.clone(),
            logs: Default::default(),
            tables: Default::default(),
            machines: RwLock::new(BTreeMap::new()),
            running: Mutex::new(HashMap::new()),
            finished: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            event_rules: RwLock::new(Vec::new()),
            deliveries: Mutex::new(Vec::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            delivered: Notify::new(),
            _lock: lock,
        });
        for (arn, name, created) in store.activities()? {
            engine.hub.create_activity(&arn, &name, created);
        }
        for record in store.state_machines()? {
            let name = record.name.clone();
            if let Err(e) = engine.install_machine(record) {
                tracing::warn!(state_machine = %name, error = %e, "stored state machine no longer loads");
            }
        }
        let template = match &config.template {
            Some(path) => {
                let t = load_template(path, &config.template_options)?;
                for a in &t.activities {
                    let info = engine.hub.create_activity(&a.arn, &a.name, Utc::now());
                    store.put_activity(&a.arn, &a.name, &info.created)?;
                }
                for f in &t.functions {
                    engine.lambdas.alias(&f.logical_id, &f.name);
                }
                for r in &t.event_rules {
                    tracing::info!("{}", r.describe());
                }
                for u in &t.unemulated_rules {
                    tracing::info!(rule = %u.id, "not run locally: {}", u.reason);
                }
                *engine.event_rules.write().expect("rules lock") = t.event_rules.clone();
                engine.tables.declare(&t.tables);
                for m in &t.state_machines {
                    let created = engine
                        .machines
                        .read()
                        .expect("machines lock")
                        .get(&m.arn)
                        .map(|x| x.record.created)
                        .unwrap_or_else(Utc::now);
                    engine
                        .install_machine(StateMachineRecord {
                            arn: m.arn.clone(),
                            name: m.name.clone(),
                            definition: m.definition.clone(),
                            role_arn: format!(
                                "arn:aws:iam::{}:role/{}Role",
                                engine.locality.account, m.logical_id
                            ),
                            kind: m.kind.clone(),
                            created,
                        })
                        .map_err(|e| LocalError::Template {
                            path: path.display().to_string(),
                            message: format!(
                                "state machine {} ({}): {e}",
                                m.logical_id,
                                m.definition_path
                                    .as_ref()
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_else(|| "inline definition".into())
                            ),
                        })?;
                }
                Some(t)
            }
            None => None,
        };
        let addr = match config.port {
            Some(port) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| LocalError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?;
                let local = listener.local_addr().map_err(|source| LocalError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
                tokio::spawn(crate::api::serve(listener, engine.clone()));
                Some(local)
            }
            None => None,
        };
        if config.resume {
            let n = engine.resume_running()?;
            if n > 0 {
                tracing::info!(count = n, "resumed running executions");
            }
        }
        Ok(LocalEngine {
            engine,
            addr,
            template,
        })
    }

    /// `http://127.0.0.1:PORT` (the SDK's `endpoint_url`), when serving.
    pub fn endpoint(&self) -> Option<String> {
        self.addr.map(|a| format!("http://{a}"))
    }

    /// The folder standing in for S3 (Distributed Map `ItemReader`/`ResultWriter`): bucket `B`,
    /// key `K` is the file `s3_root/B/K`.
    pub fn s3_root(&self) -> &std::path::Path {
        &self.engine.s3_root
    }

    /// The SQLite database file holding executions.
    pub fn store_path(&self) -> &std::path::Path {
        self.engine.store.path()
    }

    /// The template as loaded, if any.
    pub fn template(&self) -> Option<&LoadedTemplate> {
        self.template.as_ref()
    }

    /// The local ARN of the state machine `name_or_arn` (a name, an ARN or a template
    /// logical id).
    pub fn state_machine_arn(&self, name_or_arn: &str) -> Result<String, LocalError> {
        if name_or_arn.starts_with("arn:") {
            return Ok(name_or_arn.to_string());
        }
        if let Some(t) = &self.template
            && let Some(m) = t
                .state_machines
                .iter()
                .find(|m| m.logical_id == name_or_arn)
        {
            return Ok(m.arn.clone());
        }
        Ok(self.engine.locality.state_machine_arn(name_or_arn))
    }

    /// The local ARN of the activity `name` (its name or template logical id).
    pub fn activity_arn(&self, name: &str) -> String {
        if let Some(t) = &self.template
            && let Some(a) = t.activities.iter().find(|a| a.logical_id == name)
        {
            return a.arn.clone();
        }
        self.engine.locality.activity_arn(name)
    }

    /// Registers a Lambda handler (by function name or template logical id).
    pub fn register_lambda(&self, name: &str, handler: LambdaHandler) {
        self.engine.lambdas.register(name, handler);
    }

    /// Creates (or finds, when the definition is the same) a state machine.
    pub fn create_state_machine(&self, name: &str, definition: &str) -> Result<String, LocalError> {
        let role = format!(
            "arn:aws:iam::{}:role/stepops-local",
            self.engine.locality.account
        );
        Ok(self
            .engine
            .create_state_machine(name, definition, &role, "STANDARD")?
            .0)
    }

    /// Creates an activity; returns its ARN.
    pub fn create_activity(&self, name: &str) -> Result<String, LocalError> {
        Ok(self.engine.create_activity(name)?.0)
    }

    /// Starts an execution of `state_machine` (name, ARN or template logical id); `name`
    /// defaults to a UUID. Returns the execution ARN.
    pub fn start_execution(
        &self,
        state_machine: &str,
        input: &Value,
        name: Option<&str>,
    ) -> Result<String, LocalError> {
        let arn = self.state_machine_arn(state_machine)?;
        Ok(self
            .engine
            .start_execution(&arn, name, Some(&input.to_string()))?
            .0)
    }

    /// The execution's current status (and result when it ended).
    pub fn describe(&self, execution_arn: &str) -> Result<ExecutionOutcome, LocalError> {
        Ok(ExecutionOutcome::from_record(
            &self.engine.execution(execution_arn)?,
        ))
    }

    /// Waits for the execution to end.
    pub async fn wait(&self, execution_arn: &str) -> Result<ExecutionOutcome, LocalError> {
        Ok(ExecutionOutcome::from_record(
            &self.engine.wait(execution_arn).await?,
        ))
    }

    /// Stops a running execution (it ends ABORTED).
    pub fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), LocalError> {
        self.engine.stop_execution(
            execution_arn,
            error.map(str::to_string),
            cause.map(str::to_string),
        )?;
        Ok(())
    }

    /// Redrives a FAILED/TIMED_OUT/ABORTED execution: re-runs only what did not succeed.
    pub fn redrive_execution(&self, execution_arn: &str) -> Result<(), LocalError> {
        self.engine.redrive_execution(execution_arn)?;
        Ok(())
    }

    /// Every status-change event delivered to a rule's target so far (see [`Delivery`]).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.engine
            .deliveries
            .lock()
            .expect("deliveries lock")
            .clone()
    }

    /// Waits until no status-change delivery is in flight (after [`LocalEngine::wait`], the
    /// execution's end has then reached its rules' targets).
    pub async fn deliveries_settled(&self) {
        loop {
            let notified = self.engine.delivered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self
                .engine
                .in_flight
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
            {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.engine.shutdown.cancelled() => return,
            }
        }
    }

    /// The execution's history events, oldest first.
    pub fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, LocalError> {
        self.engine.execution(execution_arn)?;
        Ok(self
            .engine
            .store
            .events(execution_arn, 0, usize::MAX >> 1, false)?
            .into_iter()
            .filter_map(|(_, e)| serde_json::from_str(&e).ok())
            .collect())
    }

    /// Stops the server and the executions' tasks and waits for them (RUNNING executions stay
    /// RUNNING in the store).
    pub async fn shutdown(self) {
        self.engine.shutdown.cancel();
        self.engine.tasks.close();
        self.engine.tasks.wait().await;
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        self.engine.shutdown.cancel();
    }
}
