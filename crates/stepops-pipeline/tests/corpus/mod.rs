//! The validate-input bad-input corpus (`tests/data/bad-inputs.json`), shared by the handler's
//! test (validate_input.rs) and the state machine's (statemachine.rs).

use serde_json::Value;
use stepops_pipeline::StackEnvironment;

/// One case: an execution input and the named error and cause fragment it must fail with.
pub struct BadInput {
    pub name: String,
    pub input: Value,
    pub error: String,
    pub cause: String,
}

impl BadInput {
    /// What is wrong with a failure `error` / `cause` for this case, if anything: another name,
    /// a cause without the case's fragment, or a cause that shows the corpus' password.
    pub fn mismatch(&self, error: &str, cause: &str) -> Option<String> {
        let name = &self.name;
        if cause.contains("hunter2") {
            return Some(format!("{name}: the cause leaks a password: {cause}"));
        }
        (error != self.error || !cause.contains(&self.cause)).then(|| {
            format!(
                "{name}: got {error} / {cause:?}, want {} / …{}…",
                self.error, self.cause
            )
        })
    }
}

/// The corpus' stack (its own environment and allowed targets) and its cases.
pub fn bad_inputs() -> (StackEnvironment, Vec<BadInput>) {
    let corpus: Value =
        serde_json::from_str(include_str!("../data/bad-inputs.json")).expect("corpus parses");
    let text = |v: &Value| v.as_str().expect("corpus field is a string").to_owned();
    let stack = stepops_pipeline::stack_environment(
        &text(&corpus["stack"]["environment"]),
        &text(&corpus["stack"]["allowedTargets"]),
    )
    .expect("corpus stack parses");
    let cases: Vec<BadInput> = corpus["cases"]
        .as_array()
        .expect("corpus cases")
        .iter()
        .map(|c| BadInput {
            name: text(&c["name"]),
            input: c["input"].clone(),
            error: text(&c["error"]),
            cause: text(&c["cause"]),
        })
        .collect();
    assert!(cases.len() >= 20, "the issue asks for at least 20 cases");
    (stack, cases)
}
