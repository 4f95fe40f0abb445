//! A state machine resource: its definition (inline, `DefinitionUri` or `DefinitionString`)
//! with `DefinitionSubstitutions` applied.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::intrinsics::{Resolver, scalar_text};
use super::{StateMachineSpec, substitute};

impl Resolver<'_> {
    pub(super) fn state_machine(
        &self,
        id: &str,
        resource: &Value,
        name: &str,
        base: &Path,
    ) -> Result<StateMachineSpec, String> {
        let empty = Value::Object(Map::new());
        let props = resource.get("Properties").unwrap_or(&empty);
        let mut definition_path = None;
        let definition: Value = if let Some(uri) = props.get("DefinitionUri") {
            match self.eval(uri, 0)? {
                Some(Value::String(rel)) => {
                    let p = base.join(&rel);
                    let text = std::fs::read_to_string(&p).map_err(|e| {
                        format!(
                            "DefinitionUri {rel}: cannot read {} ({e}); paths are relative to the template",
                            p.display()
                        )
                    })?;
                    let v = serde_json::from_str(&text)
                        .map_err(|e| format!("DefinitionUri {rel}: not valid JSON: {e}"))?;
                    definition_path = Some(p);
                    v
                }
                _ => {
                    return Err("DefinitionUri as an S3 location is not supported locally; \
                         give a path relative to the template"
                        .into());
                }
            }
        } else if let Some(def) = props.get("Definition") {
            self.eval(def, 0)?.unwrap_or(Value::Null)
        } else if let Some(s) = props.get("DefinitionString") {
            let text = self.eval_text(s, 0)?;
            serde_json::from_str(&text).map_err(|e| format!("DefinitionString: not JSON: {e}"))?
        } else {
            return Err(
                "no DefinitionUri, Definition or DefinitionString: nothing to run".to_string(),
            );
        };
        let mut subs = BTreeMap::new();
        if let Some(s) = props.get("DefinitionSubstitutions") {
            match self.eval(s, 0)? {
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        subs.insert(k, scalar_text(&v));
                    }
                }
                None => {}
                Some(other) => {
                    return Err(format!(
                        "DefinitionSubstitutions must be a map, got {other}"
                    ));
                }
            }
        }
        let definition = substitute(definition, &subs)?;
        let kind = props
            .get("Type")
            .or_else(|| props.get("StateMachineType"))
            .map(|v| self.eval_text(v, 0))
            .transpose()?
            .unwrap_or_else(|| "STANDARD".into());
        Ok(StateMachineSpec {
            logical_id: id.to_string(),
            name: name.to_string(),
            arn: self.options.locality.state_machine_arn(name),
            definition: serde_json::to_string_pretty(&definition).expect("JSON serialises"),
            definition_path,
            kind,
        })
    }
}
