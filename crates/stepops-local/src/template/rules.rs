//! The EventBridge rules of a template that the local engine runs on execution status changes:
//! `AWS::Events::Rule` resources and the `EventBridgeRule` / `CloudWatchEvent` entries of a SAM
//! resource's `Events`, or why a rule is not emulated.

use serde_json::{Map, Value};

use super::intrinsics::{
    Resolver, irrelevant_reason, scalar_text, transformed_input_message, unsupported_message,
};
use super::{FoundRule, FunctionSpec, StateMachineSpec};
use crate::events::{EventPattern, EventRuleSpec, RuleTarget, TargetKind, UnemulatedRule};

impl Resolver<'_> {
    /// An `AWS::Events::Rule`.
    pub(super) fn events_rule(
        &self,
        id: &str,
        resource: &Value,
        functions: &[FunctionSpec],
        machines: &[StateMachineSpec],
    ) -> Result<Vec<FoundRule>, String> {
        let empty = Value::Object(Map::new());
        let props = resource.get("Properties").unwrap_or(&empty);
        let not_run = |reason: String| {
            Ok(vec![Err(UnemulatedRule {
                id: id.to_owned(),
                reason,
            })])
        };
        let Some(raw) = props.get("EventPattern") else {
            return not_run(
                "a schedule rule (no EventPattern): schedules do not run locally; start \
                 executions yourself"
                    .into(),
            );
        };
        let Some(pattern) = self.rule_pattern(raw, props.get("EventBusName"))? else {
            return not_run(self.bus_reason(props.get("EventBusName"))?);
        };
        if !pattern.may_match_status_changes() {
            return not_run(irrelevant_reason());
        }
        if let Some(why) = pattern.unsupported() {
            return Err(unsupported_message(&why));
        }
        if let Some(state) = props.get("State") {
            let state = self.eval_text(state, 0)?;
            if state == "DISABLED" {
                return not_run("State is DISABLED (AWS delivers nothing either)".into());
            }
        }
        let targets = match props.get("Targets") {
            None => Vec::new(),
            Some(t) => match self.eval(t, 0)? {
                Some(Value::Array(items)) => items,
                None => Vec::new(),
                Some(other) => return Err(format!("Targets must be a list, got {other}")),
            },
        };
        if targets.is_empty() {
            return not_run("no Targets".into());
        }
        let mut found = Vec::new();
        for t in &targets {
            let tid = t.get("Id").map(scalar_text).unwrap_or_default();
            for key in ["Input", "InputPath", "InputTransformer"] {
                if t.get(key).is_some() {
                    return Err(transformed_input_message(&format!("target {tid}"), key));
                }
            }
            let arn = t.get("Arn").map(scalar_text).unwrap_or_default();
            if let Some(f) = functions.iter().find(|f| f.arn == arn) {
                found.push(function_target(f));
            } else if let Some(m) = machines.iter().find(|m| m.arn == arn) {
                found.push(machine_target(m));
            } else {
                return Err(format!(
                    "target {tid} ({arn}) is neither a function nor a state machine of this \
                     template: the local engine delivers Step Functions status changes to the \
                     template's functions and state machines only"
                ));
            }
        }
        Ok(vec![Ok(EventRuleSpec {
            id: id.to_owned(),
            pattern,
            targets: found,
        })])
    }

    /// The rules of a SAM resource's `Events` (its `EventBridgeRule` / `CloudWatchEvent`
    /// entries; schedules are listed as not run). `target` is the resource itself: the function
    /// the rule invokes or the state machine it starts.
    pub(super) fn sam_events(
        &self,
        id: &str,
        resource: &Value,
        target: RuleTarget,
    ) -> Result<Vec<FoundRule>, String> {
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_object)
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, ev) in events {
            let rule_id = format!("{id}.{name}");
            let not_run = |reason: String| {
                Err(UnemulatedRule {
                    id: rule_id.clone(),
                    reason,
                })
            };
            let kind = ev.get("Type").map(|t| self.eval_text(t, 0)).transpose()?;
            let empty = Value::Object(Map::new());
            let props = ev.get("Properties").unwrap_or(&empty);
            match kind.as_deref().unwrap_or("") {
                "Schedule" | "ScheduleV2" => {
                    out.push(not_run(
                        "a schedule: schedules do not run locally; start executions yourself"
                            .into(),
                    ));
                }
                "EventBridgeRule" | "CloudWatchEvent" => {
                    let in_event = |m: String| format!("Events.{name}: {m}");
                    let raw = props
                        .get("Pattern")
                        .ok_or_else(|| in_event("an EventBridgeRule needs a Pattern".into()))?;
                    let Some(pattern) = self
                        .rule_pattern(raw, props.get("EventBusName"))
                        .map_err(in_event)?
                    else {
                        out.push(not_run(self.bus_reason(props.get("EventBusName"))?));
                        continue;
                    };
                    if !pattern.may_match_status_changes() {
                        out.push(not_run(irrelevant_reason()));
                        continue;
                    }
                    if let Some(why) = pattern.unsupported() {
                        return Err(in_event(unsupported_message(&why)));
                    }
                    let disabled = match (props.get("State"), props.get("Enabled")) {
                        (Some(s), _) => self.eval_text(s, 0)? == "DISABLED",
                        (None, Some(e)) => self.eval_text(e, 0)? == "false",
                        _ => false,
                    };
                    if disabled {
                        out.push(not_run("disabled (AWS delivers nothing either)".into()));
                        continue;
                    }
                    for key in ["Input", "InputPath", "InputTransformer"] {
                        if props.get(key).is_some() {
                            return Err(in_event(transformed_input_message("the rule", key)));
                        }
                    }
                    out.push(Ok(EventRuleSpec {
                        id: rule_id.clone(),
                        pattern,
                        targets: vec![target.clone()],
                    }));
                }
                _ => {} // Api, SQS, S3, …: not EventBridge rules.
            }
        }
        Ok(out)
    }

    /// The pattern of a rule on the default bus; `None` for a rule on another bus (Step
    /// Functions sends its events to the default bus).
    pub(super) fn rule_pattern(
        &self,
        raw: &Value,
        bus: Option<&Value>,
    ) -> Result<Option<EventPattern>, String> {
        if let Some(b) = bus {
            let b = self.eval_text(b, 0)?;
            if !(b.is_empty() || b == "default" || b.ends_with(":event-bus/default")) {
                return Ok(None);
            }
        }
        let value = match self.eval(raw, 0)? {
            Some(Value::String(text)) => serde_json::from_str(&text)
                .map_err(|e| format!("EventPattern is a string but not JSON: {e}"))?,
            Some(v) => v,
            None => Value::Null,
        };
        EventPattern::parse(&value).map(Some)
    }

    pub(super) fn bus_reason(&self, bus: Option<&Value>) -> Result<String, String> {
        let b = bus.map(|b| self.eval_text(b, 0)).transpose()?;
        Ok(format!(
            "on event bus {}: Step Functions sends its events to the default bus",
            b.unwrap_or_default()
        ))
    }
}

/// A rule's target: `f`, invoked with the event.
pub(super) fn function_target(f: &FunctionSpec) -> RuleTarget {
    RuleTarget {
        kind: TargetKind::Function,
        logical_id: f.logical_id.clone(),
        name: f.name.clone(),
        arn: f.arn.clone(),
    }
}

/// A rule's target: `m`, started with the event as input.
pub(super) fn machine_target(m: &StateMachineSpec) -> RuleTarget {
    RuleTarget {
        kind: TargetKind::StateMachine,
        logical_id: m.logical_id.clone(),
        name: m.name.clone(),
        arn: m.arn.clone(),
    }
}
