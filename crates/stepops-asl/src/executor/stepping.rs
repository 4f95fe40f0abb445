//! Stepping a frame: one state after another, each with its retries and catches, and the
//! children of Parallel and Map states.

use super::*;

impl Exec {
    /// Runs one frame from its current state to its end.
    pub fn run_frame(
        self: Arc<Self>,
        machine: Arc<Machine>,
        id: u64,
        outer: Arc<Map<String, Value>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Value, Stop>> {
        Box::pin(async move {
            {
                let mut g = self.lock();
                let n = g.node(id);
                // Resumed after the frame had already finished (a crash before the parent
                // recorded it): its result stands.
                if n.status == NodeStatus::Succeeded {
                    return Ok(n.output.clone().unwrap_or(Value::Null));
                }
                n.status = NodeStatus::Running;
            }
            loop {
                if cancel.is_cancelled() {
                    self.lock().node(id).status = NodeStatus::Aborted;
                    return Err(Stop::Cancelled);
                }
                let (state_name, input, own_vars, retries) = {
                    let mut g = self.lock();
                    let n = g.node(id);
                    (
                        n.state.clone(),
                        n.input.clone(),
                        n.vars.clone(),
                        n.retries.iter().sum::<u32>(),
                    )
                };
                let Some(state) = machine.states.get(&state_name).cloned() else {
                    let f = Failure::new(
                        "States.Runtime",
                        format!(
                            "the snapshot names state '{state_name}', which the definition does not have"
                        ),
                    );
                    self.finish_failed(id, &f);
                    return Err(Stop::Failed(f));
                };
                let entered_time = Utc::now();
                let entered = {
                    let mut g = self.lock();
                    let e = g.emit(
                        id,
                        &format!("{}StateEntered", state.type_name()),
                        Some("stateEnteredEventDetails"),
                        {
                            let mut d = payload("input", &input);
                            d["name"] = Value::String(state.name.clone());
                            d
                        },
                    );
                    g.node(id).entered = e;
                    e
                };
                self.dirty.notify_one();
                let mut vars = (*outer).clone();
                vars.extend(own_vars);
                let child_outer = Arc::new(vars.clone());
                let cx = StateContext {
                    context: self.context(&state, entered_time, retries),
                    state: state.clone(),
                    node: id,
                    entered,
                    vars,
                    outer: child_outer,
                    cancel: cancel.clone(),
                };
                let result = self.clone().run_state(&cx, input).await;
                let result = match result {
                    Ok(step) => {
                        let size = serde_json::to_vec(&step.output)
                            .map(|v| v.len())
                            .unwrap_or(0);
                        if size > PAYLOAD_LIMIT {
                            Err(Stop::Failed(Failure::new(
                                "States.DataLimitExceeded",
                                format!(
                                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                                    state.name
                                ),
                            )))
                        } else {
                            Ok(step)
                        }
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(step) => {
                        let mut g = self.lock();
                        let mut details = payload("output", &step.output);
                        details["name"] = Value::String(state.name.clone());
                        if !step.assigned.is_empty() {
                            let assigned: Map<String, Value> = step
                                .assigned
                                .iter()
                                .map(|(k, v)| (k.clone(), Value::String(to_json(v))))
                                .collect();
                            details["assignedVariables"] = Value::Object(assigned);
                            details["assignedVariablesDetails"] = json!({"truncated": false});
                        }
                        g.emit(
                            id,
                            &format!("{}StateExited", state.type_name()),
                            Some("stateExitedEventDetails"),
                            details,
                        );
                        let children = {
                            let n = g.node(id);
                            n.vars.extend(step.assigned);
                            n.retries.clear();
                            n.map = None;
                            std::mem::take(&mut n.children)
                        };
                        for c in children {
                            g.drop_subtree(c);
                        }
                        let n = g.node(id);
                        match step.next {
                            Some(next) => {
                                n.state = next;
                                n.input = step.output;
                            }
                            None => {
                                n.status = NodeStatus::Succeeded;
                                n.input = Value::Null;
                                n.vars.clear();
                                n.output = Some(step.output.clone());
                                drop(g);
                                self.dirty.notify_one();
                                return Ok(step.output);
                            }
                        }
                        drop(g);
                        self.dirty.notify_one();
                    }
                    Err(Stop::Failed(f)) => {
                        self.finish_failed(id, &f);
                        return Err(Stop::Failed(f));
                    }
                    Err(Stop::Cancelled) => {
                        self.lock().node(id).status = NodeStatus::Aborted;
                        self.dirty.notify_one();
                        return Err(Stop::Cancelled);
                    }
                }
                // Let the recorder (and sibling frames) run between transitions.
                tokio::task::yield_now().await;
            }
        })
    }

    pub(super) fn finish_failed(&self, id: u64, f: &Failure) {
        let mut g = self.lock();
        let n = g.node(id);
        n.status = NodeStatus::Failed;
        n.error = f.error.clone();
        n.cause = f.cause.clone();
        drop(g);
        self.dirty.notify_one();
    }

    /// Runs one state (with its Retry/Catch) and returns where to go next.
    pub(super) async fn run_state(
        self: Arc<Self>,
        cx: &StateContext,
        raw: Value,
    ) -> Result<Step, Stop> {
        let state = &cx.state;
        match &state.kind {
            Kind::Pass { result } => {
                let eff = cx.input_path(&raw)?;
                let eff = match &state.parameters {
                    Some(p) => cx.template(p, &eff)?,
                    None => eff,
                };
                let result = result.clone().unwrap_or(eff);
                let out = cx.result_path(&state.result_path, &raw, result.clone())?;
                let out = cx.output_path(out)?;
                let assigned = cx.assign(state.assign.as_ref(), &result)?;
                Ok(Step {
                    output: out,
                    next: state.next.clone(),
                    assigned,
                })
            }
            Kind::Succeed => {
                let eff = cx.input_path(&raw)?;
                let out = cx.output_path(eff)?;
                Ok(Step {
                    output: out,
                    next: None,
                    assigned: Map::new(),
                })
            }
            Kind::Fail { error, cause } => {
                let scope = cx.scope(&raw);
                let resolve = |f: &Option<StrOrPath>| -> Result<Option<String>, Stop> {
                    match f {
                        None => Ok(None),
                        Some(StrOrPath::Literal(s)) => Ok(Some(s.clone())),
                        Some(StrOrPath::Path { field, expr }) => {
                            let v = if stepops_asl_data::intrinsic::is_intrinsic(expr) {
                                stepops_asl_data::intrinsic::evaluate(expr, &scope)
                                    .map_err(|e| cx.fail(e))?
                            } else {
                                let p =
                                    JsonPath::parse(expr).map_err(|e| cx.runtime(e.to_string()))?;
                                p.read(&scope).ok_or_else(|| {
                                    cx.fail(stepops_asl_data::template::path_not_found(
                                        &p, field, &scope,
                                    ))
                                })?
                            };
                            Ok(Some(match v {
                                Value::String(s) => s,
                                other => to_json(&other),
                            }))
                        }
                    }
                };
                let error = resolve(error)?;
                let cause = resolve(cause)?;
                Err(Stop::Failed(Failure { error, cause }))
            }
            Kind::Choice { choices, default } => {
                let eff = cx.input_path(&raw)?;
                let mut chosen: Option<(String, Option<&Value>)> = None;
                for (rule, assign) in choices {
                    if rule.matches(&cx.scope(&eff)).map_err(|e| cx.fail(e))? {
                        chosen =
                            Some((rule.next().unwrap_or_default().to_owned(), assign.as_ref()));
                        break;
                    }
                }
                let (next, assign) = match chosen {
                    Some(c) => c,
                    None => match default {
                        Some(d) => (d.clone(), None),
                        None => {
                            return Err(Stop::Failed(Failure::new(
                                "States.NoChoiceMatched",
                                cx.prefixed("No Matches!"),
                            )));
                        }
                    },
                };
                let out = cx.output_path(eff.clone())?;
                // The state's Assign applies whatever the outcome; a matched rule's own Assign
                // is evaluated against the same values and wins on conflicts.
                let mut assigned = cx.assign(state.assign.as_ref(), &eff)?;
                assigned.extend(cx.assign(assign, &eff)?);
                Ok(Step {
                    output: out,
                    next: Some(next),
                    assigned,
                })
            }
            Kind::Wait(spec) => {
                let eff = cx.input_path(&raw)?;
                let d = self.wait_duration(cx, spec, &eff)?;
                self.sleep(d, &cx.cancel).await?;
                let out = cx.output_path(eff.clone())?;
                let assigned = cx.assign(state.assign.as_ref(), &eff)?;
                Ok(Step {
                    output: out,
                    next: state.next.clone(),
                    assigned,
                })
            }
            Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_) => {
                self.run_with_retry(cx, raw).await
            }
        }
    }

    pub(super) fn wait_duration(
        &self,
        cx: &StateContext,
        spec: &WaitSpec,
        eff: &Value,
    ) -> Result<Duration, Stop> {
        let until = |t: DateTime<Utc>| {
            let secs = (t - Utc::now()).num_milliseconds().max(0) as f64 / 1000.0;
            self.scaled(secs)
        };
        match spec {
            WaitSpec::Seconds(n) => Ok(self.scaled(*n as f64)),
            WaitSpec::Timestamp(s) => Ok(parse_timestamp(s).map(until).unwrap_or_default()),
            WaitSpec::SecondsPath(p) => {
                let v = read_or_invalid(p, &cx.scope(eff)).map_err(|c| cx.runtime(c))?;
                let shown = match &v {
                    Value::String(s) => s.clone(),
                    other => to_json(other),
                };
                if let Some(n) = v.as_i64() {
                    if n < 0 {
                        return Err(cx.runtime(format!(
                            "The SecondsPath parameter references a negative value: {} == {shown}",
                            p.as_str()
                        )));
                    }
                    return Ok(self.scaled(n as f64));
                }
                if let Some(n) = v.as_u64() {
                    return Ok(self.scaled(n as f64));
                }
                Err(cx.runtime(format!(
                    "The SecondsPath parameter cannot be parsed as a long value: {} == {shown}",
                    p.as_str()
                )))
            }
            WaitSpec::TimestampPath(p) => {
                let v = read_or_invalid(p, &cx.scope(eff)).map_err(|c| cx.runtime(c))?;
                let shown = match &v {
                    Value::String(s) => s.clone(),
                    other => to_json(other),
                };
                match v.as_str().and_then(parse_timestamp) {
                    Some(t) => Ok(until(t)),
                    None => Err(cx.runtime(format!(
                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {shown}",
                        p.as_str()
                    ))),
                }
            }
        }
    }

    /// Task, Parallel and Map: attempts with Retry, then Catch.
    pub(super) async fn run_with_retry(
        self: Arc<Self>,
        cx: &StateContext,
        raw: Value,
    ) -> Result<Step, Stop> {
        let (state, cancel) = (&cx.state, &cx.cancel);
        let eff = cx.input_path(&raw)?;
        loop {
            let attempt = match &state.kind {
                Kind::Task(spec) => self.clone().run_task(cx, spec, &eff, cancel).await,
                Kind::Parallel { branches } => {
                    self.clone().run_parallel(cx, branches, &eff, cancel).await
                }
                Kind::Map(spec) => self.clone().run_map(cx, spec, &eff, cancel).await,
                _ => unreachable!("only Task, Parallel and Map retry"),
            };
            match attempt {
                Ok(result) => {
                    let selected = match &state.result_selector {
                        Some(sel) => cx.template(sel, &result)?,
                        None => result,
                    };
                    let out = cx.result_path(&state.result_path, &raw, selected.clone())?;
                    let out = cx.output_path(out)?;
                    let assigned = cx.assign(state.assign.as_ref(), &selected)?;
                    return Ok(Step {
                        output: out,
                        next: state.next.clone(),
                        assigned,
                    });
                }
                Err(Stop::Cancelled) => return Err(Stop::Cancelled),
                Err(Stop::Failed(f)) => {
                    if let Some(delay) = self.retry_delay(cx, &f) {
                        // A retried Map/Parallel runs again from scratch.
                        {
                            let mut g = self.lock();
                            let children = std::mem::take(&mut g.node(cx.node).children);
                            g.node(cx.node).map = None;
                            for c in children {
                                g.drop_subtree(c);
                            }
                        }
                        self.dirty.notify_one();
                        self.sleep(delay, cancel).await?;
                        continue;
                    }
                    if let Some(c) = state
                        .catch
                        .iter()
                        .find(|c| error_matches(&c.error_equals, f.error.as_deref()))
                    {
                        return self.caught(cx, c, &raw, f);
                    }
                    return Err(Stop::Failed(f));
                }
            }
        }
    }

    pub(super) fn caught(
        &self,
        cx: &StateContext,
        c: &Catcher,
        raw: &Value,
        f: Failure,
    ) -> Result<Step, Stop> {
        let mut err = Map::new();
        if let Some(e) = f.error {
            err.insert("Error".into(), Value::String(e));
        }
        if let Some(c) = f.cause {
            err.insert("Cause".into(), Value::String(c));
        }
        let err = Value::Object(err);
        let out = cx.result_path(&c.result_path, raw, err.clone())?;
        let assigned = cx.assign(c.assign.as_ref(), &err)?;
        {
            let mut g = self.lock();
            let children = std::mem::take(&mut g.node(cx.node).children);
            for ch in children {
                g.drop_subtree(ch);
            }
        }
        Ok(Step {
            output: out,
            next: Some(c.next.clone()),
            assigned,
        })
    }

    /// The delay before the next attempt, or None when no retrier applies (or they ran out).
    pub(super) fn retry_delay(&self, cx: &StateContext, f: &Failure) -> Option<Duration> {
        let (i, r) = cx
            .state
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| error_matches(&r.error_equals, f.error.as_deref()))?;
        let mut g = self.lock();
        let n = g.node(cx.node);
        if n.retries.len() < cx.state.retry.len() {
            n.retries.resize(cx.state.retry.len(), 0);
        }
        let used = n.retries[i];
        if used >= r.max_attempts {
            return None;
        }
        n.retries[i] += 1;
        drop(g);
        let mut delay = r.interval_seconds * r.backoff_rate.powi(used as i32);
        if let Some(max) = r.max_delay_seconds {
            delay = delay.min(max);
        }
        if r.full_jitter {
            delay *= rand::random::<f64>();
        }
        Some(self.scaled(delay))
    }

    /// Resolves an integer field given literally or by path (Task timeouts).
    pub fn int_field(
        &self,
        cx: &StateContext,
        f: &Option<IntOrPath>,
        input: &Value,
        name: &str,
    ) -> Result<Option<u64>, Stop> {
        match f {
            None => Ok(None),
            Some(IntOrPath::Literal(n)) => Ok(Some(*n)),
            Some(IntOrPath::Path(p)) => {
                let v = read_or_invalid(p, &cx.scope(input)).map_err(|c| cx.runtime(c))?;
                match v.as_u64() {
                    Some(n) if n > 0 => Ok(Some(n)),
                    _ => Err(cx.runtime(format!(
                        "The {name}Path field refers to value \"{}\" which is not a valid positive integer: {}",
                        match &v {
                            Value::String(s) => s.clone(),
                            o => to_json(o),
                        },
                        p.as_str()
                    ))),
                }
            }
        }
    }

    /// Runs child frames (Parallel branches or Map items) with at most `limit` at once.
    /// Each result is reported to `on_done` as it arrives; returning `false` from it cancels
    /// the rest (fail fast). Results come back by index; skipped ones are `None`.
    #[allow(clippy::type_complexity)]
    pub async fn run_children(
        self: &Arc<Self>,
        children: Vec<(u64, Arc<Machine>)>,
        outer: Arc<Map<String, Value>>,
        limit: usize,
        cancel: &CancellationToken,
        mut on_start: impl FnMut(usize),
        mut on_done: impl FnMut(usize, &Result<Value, Stop>) -> bool,
    ) -> Vec<Option<Result<Value, Stop>>> {
        let token = cancel.child_token();
        let mut results: Vec<Option<Result<Value, Stop>>> = vec![None; children.len()];
        let mut todo = Vec::new();
        {
            let g = self.lock();
            for (i, (id, _)) in children.iter().enumerate() {
                match g.tree.nodes.get(id).map(|n| n.status) {
                    Some(NodeStatus::Succeeded) => {
                        results[i] =
                            Some(Ok(g.tree.nodes[id].output.clone().unwrap_or(Value::Null)));
                    }
                    Some(NodeStatus::Failed) => {
                        let n = &g.tree.nodes[id];
                        results[i] = Some(Err(Stop::Failed(Failure {
                            error: n.error.clone(),
                            cause: n.cause.clone(),
                        })));
                    }
                    _ => todo.push(i),
                }
            }
        }
        // Earlier failures (resume of a tolerant Map) are reported first.
        for (i, r) in results.iter().enumerate() {
            if let Some(r) = r
                && r.is_err()
                && !on_done(i, r)
            {
                token.cancel();
            }
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while running.len() < limit && next < todo.len() && !token.is_cancelled() {
                let i = todo[next];
                next += 1;
                let (id, m) = children[i].clone();
                on_start(i);
                let fut = self.clone().run_frame(m, id, outer.clone(), token.clone());
                running.push(async move { (i, fut.await) });
            }
            let Some((i, r)) = running.next().await else {
                break;
            };
            if !on_done(i, &r) {
                token.cancel();
            }
            results[i] = Some(r);
        }
        results
    }
}
