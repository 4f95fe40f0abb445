//! Status changes delivered to the EventBridge rules' targets, in the background: a Lambda
//! handler is invoked asynchronously with the event, a state machine started with the event as
//! input (the delivery lasts until that execution ends, so that
//! [`crate::LocalEngine::deliveries_settled`] covers what it does).

use super::*;

impl Engine {
    /// Sends the execution's status change to every matching rule's targets, in the
    /// background (EventBridge invokes Lambda targets asynchronously).
    pub(super) fn status_changed(self: &Arc<Self>, arn: &str) {
        let rules = self.event_rules.read().expect("rules lock").clone();
        if rules.is_empty() {
            return;
        }
        let record = match self.store.execution(arn) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(execution = %arn, error = %e, "cannot read the execution for its status-change event");
                return;
            }
        };
        let event = status_change_event(&self.locality, &record);
        for rule in rules.iter().filter(|r| r.pattern.matches(&event)) {
            for target in &rule.targets {
                self.in_flight
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let engine = self.clone();
                let (rule, target) = (rule.id.clone(), target.clone());
                let (event, status, arn) =
                    (event.clone(), record.status.clone(), record.arn.clone());
                self.tasks.spawn(async move {
                    let shutdown = engine.shutdown.clone();
                    let deliver = engine.deliver(&rule, &target, event, status, arn);
                    tokio::select! {
                        d = deliver => {
                            let mut all = engine.deliveries.lock().expect("deliveries lock");
                            if all.len() >= MAX_DELIVERIES_KEPT {
                                all.remove(0);
                            }
                            all.push(d);
                        }
                        _ = shutdown.cancelled() => {}
                    }
                    engine
                        .in_flight
                        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    engine.delivered.notify_waiters();
                });
            }
        }
    }

    pub(super) async fn deliver(
        self: &Arc<Self>,
        rule: &str,
        target: &crate::events::RuleTarget,
        event: Value,
        status: String,
        arn: String,
    ) -> Delivery {
        let (result, attempts) = match target.kind {
            crate::events::TargetKind::StateMachine => {
                (self.start_target(rule, target, &event, &arn).await, 1)
            }
            crate::events::TargetKind::Function => {
                self.invoke_target(rule, target, &event, &status, &arn)
                    .await
            }
        };
        Delivery {
            rule: rule.to_owned(),
            target: target.logical_id.clone(),
            execution_arn: arn,
            status,
            event,
            result,
            attempts,
        }
    }

    /// Invokes the function `target` with `event` (up to 3 attempts, as Lambda retries an
    /// asynchronous invocation twice): its result or last error, and the attempts made.
    async fn invoke_target(
        &self,
        rule: &str,
        target: &crate::events::RuleTarget,
        event: &Value,
        status: &str,
        arn: &str,
    ) -> (Result<Value, (String, String)>, u32) {
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let outcome = match self
                .lambdas
                .resolve(&target.logical_id)
                .or_else(|| self.lambdas.resolve(&target.name))
            {
                None => Err((
                    "Lambda.ResourceNotFoundException".to_owned(),
                    format!(
                        "rule {rule} targets {} but no in-process handler is registered for it (registered: {})",
                        target.logical_id,
                        self.lambdas.names().join(", ")
                    ),
                )),
                Some(h) => match crate::lambda::invoke(h, &target.name, event.clone()).await {
                    crate::lambda::Invocation::Ok(v) => Ok(v),
                    crate::lambda::Invocation::Err(e, c) => Err((e, c)),
                },
            };
            match outcome {
                Ok(v) => {
                    tracing::info!(rule, function = %target.logical_id, execution = %arn, status = %status, "status change delivered");
                    break Ok(v);
                }
                Err((e, c)) if attempts < 3 && e != "Lambda.ResourceNotFoundException" => {
                    tracing::warn!(rule, function = %target.logical_id, execution = %arn, error = %e, cause = %c, attempt = attempts, "status-change delivery failed; retrying");
                    let delay = Duration::from_secs_f64(f64::from(attempts) * self.time_scale);
                    tokio::time::sleep(delay).await;
                }
                Err((e, c)) => {
                    tracing::error!(rule, function = %target.logical_id, execution = %arn, error = %e, cause = %c, attempts, "status-change delivery failed");
                    break Err((e, c));
                }
            }
        };
        (result, attempts)
    }

    /// Starts `target` with `event` as input (as EventBridge does) and waits for it to end:
    /// `{executionArn, status}`, or why it could not start.
    async fn start_target(
        self: &Arc<Self>,
        rule: &str,
        target: &crate::events::RuleTarget,
        event: &Value,
        arn: &str,
    ) -> Result<Value, (String, String)> {
        let started = self.start_execution(&target.arn, None, Some(&event.to_string()));
        let started = match started {
            Ok((started, _)) => started,
            Err(e) => {
                tracing::error!(rule, state_machine = %target.logical_id, execution = %arn, error = %e, "status change: cannot start the target state machine");
                return Err(("States.StartExecutionFailed".to_owned(), e.to_string()));
            }
        };
        tracing::info!(rule, state_machine = %target.logical_id, execution = %arn, started = %started, "status change delivered: execution started");
        match self.wait(&started).await {
            Ok(record) => Ok(json!({"executionArn": started, "status": record.status})),
            Err(e) => Err(("States.Runtime".to_owned(), e.to_string())),
        }
    }
}
