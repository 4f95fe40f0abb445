//! Catalog files refused by `stepops job check` (and by every loader), each with the reason.

use stepops_error::{ErrorName, Named};
use stepops_jobs::Catalog;

const BASE: &str = r#"
name: t
description: A test job.
environments: [dev]
parameters:
  p: {type: string, pattern: '[a-z]+', default: abc}
command: [echo, "${p}"]
timeout_seconds: 60
heartbeat_seconds: 10
idempotent: true
"#;

fn refused(yaml: &str, words: &str) {
    let err = Catalog::from_files(vec![("t.yaml".into(), yaml.into())])
        .expect_err(&format!("must be refused:\n{yaml}"));
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    assert!(
        err.to_string().contains(words),
        "`{err}` should say `{words}`"
    );
    assert!(err.to_string().starts_with("jobs/t.yaml"), "{err}");
}

#[test]
fn the_base_definition_is_valid() {
    Catalog::from_files(vec![("t.yaml".into(), BASE.into())]).unwrap();
}

#[test]
fn bad_definitions_are_refused() {
    refused(&format!("{BASE}shell: bash\n"), "unknown field `shell`");
    refused(
        &BASE.replace("pattern: '[a-z]+',", "patern: x,"),
        "unknown field `patern`",
    );
    refused(
        &BASE.replace("name: t", "name: other"),
        "name the file after the job",
    );
    refused(
        &BASE.replace("command: [echo, \"${p}\"]", "command: [echo, \"--p=${p}\"]"),
        "mixes text and a placeholder",
    );
    refused(&BASE.replace("${p}", "${q}"), "`${q}` names no parameter");
    refused(
        &BASE.replace("default: abc", "default: ABC"),
        "its `default` is invalid",
    );
    refused(&BASE.replace("'[a-z]+'", "'[a-z'"), "does not compile");
    refused(
        &BASE.replace("timeout_seconds: 60", "timeout_seconds: 0"),
        "`timeout_seconds` must be",
    );
    refused(
        &BASE.replace("heartbeat_seconds: 10", "heartbeat_seconds: 90"),
        "must be below",
    );
    refused(
        &BASE.replace("environments: [dev]", "environments: []"),
        "`environments` is empty",
    );
    refused(
        &BASE.replace("environments: [dev]", "environments: [staging]"),
        "unknown variant `staging`",
    );
    refused(
        &format!("{BASE}steps: [{{name: a, command: [b]}}]\n"),
        "not both",
    );
    refused(
        &format!("{BASE}secrets:\n  TOKEN:\n    dev: {{secret: stepops/prod/token}}\n"),
        "does not belong to `dev`",
    );
    refused(
        &format!("{BASE}secrets:\n  TOKEN:\n    dev: {{secret: shared-token}}\n"),
        "does not belong to `dev`",
    );
    refused(
        &format!(
            "{BASE}secrets:\n  TOKEN:\n    dev: {{secret: stepops/dev/t}}\n    prod: {{secret: stepops/prod/t}}\n"
        ),
        "the job does not run in `prod`",
    );
    refused(
        &format!("{BASE}secrets:\n  TOKEN:\n    dev: {{vault: stepops/dev/t}}\n"),
        "unknown field `vault`",
    );
    refused(&format!("{BASE}env: {{lower: x}}\n"), "variable names");
    refused(
        &format!("{BASE}working_dir: relative/dir\n"),
        "absolute path",
    );
    refused(
        &BASE.replace("command: [echo, \"${p}\"]", "command: [\"${p}\"]"),
        "program itself cannot be a parameter",
    );
}
