//! `validate_input`: the normalised output, the bad-input corpus, the stack configuration.

mod corpus;

use serde_json::{Value, json};
use stepops_error::{Named, TaskFailure};
use stepops_pipeline::{PipelineError, StackEnvironment, validate_input};

fn dev_stack() -> StackEnvironment {
    stepops_pipeline::stack_environment(
        "dev",
        "secret:stepops/dev/*,parameter:/stepops/dev/*,url:sqlite:*",
    )
    .unwrap()
}

#[test]
fn the_documented_example_is_normalised_with_its_values() {
    let input = json!({
        "environment": "dev",
        "source": {"secret": "stepops/dev/source-db"},
        "dest":   {"secret": "stepops/dev/dest-db"},
        "config": {"exclude": ["audit_log"]},
        "chunkRows": 50000,
        "maxConcurrency": 8,
        "maxRounds": 5,
        "readOnlyDuringCopy": false,
        "dryRun": false
    });
    let out = serde_json::to_value(validate_input(&input, &dev_stack()).unwrap()).unwrap();
    assert_eq!(
        out,
        json!({
            "environment": "dev",
            "source": {"secret": "stepops/dev/source-db"},
            "dest": {"secret": "stepops/dev/dest-db"},
            "config": {"exclude": ["audit_log"]},
            "chunkRows": 50000,
            "maxConcurrency": 8,
            "maxRounds": 5,
            "readOnlyDuringCopy": false,
            "dryRun": false,
            "round": 1,
            "baseline": null
        })
    );
}

#[test]
fn defaults_fill_what_is_left_out() {
    let input = json!({
        "environment": "dev",
        "source": {"parameter": "/stepops/dev/source-url"},
        "dest": {"url": "sqlite:/tmp/dest.db"},
        "maxConcurrency": 1000,
        "readOnlyDuringCopy": true,
        "config": {"status": {"table": "stack_status", "column": "status",
                              "readOnly": "READ_ONLY", "readWrite": "READ_WRITE"}}
    });
    let out = validate_input(&input, &dev_stack()).unwrap();
    assert_eq!(out.chunk_rows, 50_000);
    assert_eq!(out.max_concurrency, 1000);
    assert_eq!(out.max_rounds, 5);
    assert!(out.read_only_during_copy);
    assert!(!out.dry_run);
    assert_eq!(out.config.len(), 1);
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["dest"], json!({"url": "sqlite:/tmp/dest.db"}));
    assert_eq!(v["config"], input["config"]);
}

#[test]
fn limits_are_inclusive() {
    for (field, value) in [
        ("chunkRows", 100),
        ("chunkRows", 10_000_000),
        ("maxConcurrency", 1),
        ("maxRounds", 1),
        ("maxRounds", 20),
    ] {
        let mut input = json!({
            "environment": "dev",
            "source": {"secret": "stepops/dev/a"},
            "dest": {"secret": "stepops/dev/b"},
        });
        input[field] = json!(value);
        assert!(
            validate_input(&input, &dev_stack()).is_ok(),
            "{field} = {value} should pass"
        );
    }
}

#[test]
fn every_case_of_the_bad_input_corpus_is_refused_with_its_name() {
    let (stack, cases) = corpus::bad_inputs();
    let mut failures = Vec::new();
    for case in &cases {
        match validate_input(&case.input, &stack) {
            Ok(out) => failures.push(format!("{}: accepted as {out:?}", case.name)),
            Err(err) => {
                let f = TaskFailure::from_error(&err);
                failures.extend(case.mismatch(&f.error, &f.cause));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn change_tracking_passes_through_and_the_first_round_has_no_baseline() {
    let input = json!({
        "environment": "dev",
        "source": {"secret": "stepops/dev/source-db"},
        "dest": {"secret": "stepops/dev/dest-db"},
        "config": {"changeTracking": {"slot": "stepops_dev", "fullCheck": true}, "deferIndexes": false}
    });
    let out = serde_json::to_value(validate_input(&input, &dev_stack()).unwrap()).unwrap();
    assert_eq!(
        out["config"]["changeTracking"],
        json!({"slot": "stepops_dev", "fullCheck": true})
    );
    assert_eq!(out["config"]["deferIndexes"], json!(false));
    assert_eq!(out["baseline"], Value::Null);
    assert!(out.as_object().unwrap().contains_key("baseline"));
}

#[test]
fn slot_names_are_judged_as_the_migration_engine_judges_them() {
    for name in [
        "stepops_dev",
        "a",
        "x1_2",
        "",
        "Upper",
        "with-dash",
        "sp ace",
        &"x".repeat(63),
        &"x".repeat(64),
    ] {
        let engine = stepops_migrate::TrackingConfig {
            slot: name.to_owned(),
            full_check: false,
        }
        .validate()
        .is_ok();
        let input = json!({
            "environment": "dev",
            "source": {"secret": "stepops/dev/a"},
            "dest": {"secret": "stepops/dev/b"},
            "config": {"changeTracking": {"slot": name}},
        });
        let ours = validate_input(&input, &dev_stack()).is_ok();
        assert_eq!(ours, engine, "{name:?}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let input = json!({
        "environment": "dev",
        "source": {"secret": "stepops/dev/a"},
        "dest": {"secret": "stepops/dev/b"},
        "maxConcurrency": 0,
        "maxRounds": 99,
        "color": "blue"
    });
    let PipelineError::InvalidInput { problems } =
        validate_input(&input, &dev_stack()).unwrap_err()
    else {
        panic!("expected InvalidInput");
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn a_prod_stack_refuses_dev_targets_and_accepts_its_own() {
    let prod = stepops_pipeline::stack_environment(
        "prod",
        "secret:stepops/prod/source-db secret:stepops/prod/dest-db",
    )
    .unwrap();
    let ok = json!({
        "environment": "prod",
        "source": {"secret": "stepops/prod/source-db"},
        "dest": {"secret": "stepops/prod/dest-db"}
    });
    assert!(validate_input(&ok, &prod).is_ok());

    let dev_target = json!({
        "environment": "prod",
        "source": {"secret": "stepops/prod/source-db"},
        "dest": {"secret": "stepops/dev/dest-db"}
    });
    let err = validate_input(&dev_target, &prod).unwrap_err();
    assert_eq!(err.error_name().as_str(), "Stepops.WrongEnvironment");

    // A prod stack does not allow local SQLite files unless configured to.
    let sqlite = json!({
        "environment": "prod",
        "source": {"secret": "stepops/prod/source-db"},
        "dest": {"url": "sqlite:/tmp/x.db"}
    });
    let err = validate_input(&sqlite, &prod).unwrap_err();
    assert_eq!(err.error_name().as_str(), "Stepops.InvalidInput");
    assert!(err.to_string().contains("not configured"), "{err}");
}

#[test]
fn exact_names_do_not_match_longer_ones() {
    let stack = stepops_pipeline::stack_environment(
        "dev",
        "secret:stepops/dev/source-db,secret:stepops/dev/dest-db",
    )
    .unwrap();
    let input = json!({
        "environment": "dev",
        "source": {"secret": "stepops/dev/source-db-old"},
        "dest": {"secret": "stepops/dev/dest-db"}
    });
    assert!(validate_input(&input, &stack).is_err());
}

#[test]
fn the_stack_configuration_is_checked() {
    let err = stepops_pipeline::stack_environment("staging", "secret:a").unwrap_err();
    assert_eq!(err.error_name().as_str(), "Stepops.Internal");
    assert!(stepops_pipeline::stack_environment("dev", "").is_err());
    assert!(stepops_pipeline::stack_environment("dev", "vault:a").is_err());
    assert!(stepops_pipeline::stack_environment("dev", "secret:").is_err());
    let s = stepops_pipeline::stack_environment_from_lookup(|k| match k {
        "STEPOPS_ENVIRONMENT" => Some("prod".into()),
        "STEPOPS_ALLOWED_TARGETS" => Some("secret:x, parameter:/y/*".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(s.allowed_targets.len(), 2);
    assert!(stepops_pipeline::stack_environment_from_lookup(|_| None).is_err());
}

/// `config` is handed to the migration engine as is: whatever the validator accepts, the engine's
/// own `Config` must accept too, and the reverse.
#[test]
fn config_acceptance_matches_the_migration_engine() {
    let configs = [
        json!({}),
        json!({"exclude": ["audit_log"]}),
        json!({"include": ["users", "acl"], "exclude": []}),
        json!({"tables": {"acl": {"rangeKey": "entity_id"}}}),
        json!({"tables": {"acl": {"range_key": "entity_id"}}}),
        json!({"tables": {"acl": {"rangeKey": "entity_id", "extra": 1}}}),
        json!({"tables": {"acl": "entity_id"}}),
        json!({"tables": ["acl"]}),
        json!({"exlude": ["a"]}),
        json!({"exclude": "audit_log"}),
        json!({"status": {"table": "stack_status", "column": "status", "readOnly": "READ_ONLY", "readWrite": "READ_WRITE"}}),
        json!({"status": {"table": "s", "column": "c", "read_only": "RO", "read_write": "RW"}, "exclude": ["x"]}),
        json!({"status": {"table": "s", "column": "c", "readOnly": "RO"}}),
        json!({"status": {"table": "s", "column": "c", "readOnly": "RO", "readWrite": "RW", "where": "id = 1"}}),
        json!({"status": {"table": "s", "column": "c", "readOnly": "X", "readWrite": "X"}}),
        json!({"status": {"table": "", "column": "c", "readOnly": "RO", "readWrite": "RW"}}),
        json!({"status": {"table": "s", "column": "c", "readOnly": "RO", "read_only": "R", "readWrite": "RW"}}),
        json!({"status": "stack_status"}),
    ];
    for config in configs {
        let input = json!({
            "environment": "dev",
            "source": {"secret": "stepops/dev/a"},
            "dest": {"secret": "stepops/dev/b"},
            "config": config,
        });
        let ours = validate_input(&input, &dev_stack()).is_ok();
        let engine = stepops_migrate::Config::from_yaml(&config.to_string())
            .and_then(|c| c.status.map_or(Ok(()), |s| s.check()))
            .is_ok();
        assert_eq!(
            ours, engine,
            "config {config}: validator {ours}, engine {engine}"
        );
    }
    // Stricter than the engine's YAML reading, which turns 1 into "1": table names are strings.
    let input = json!({"environment": "dev", "source": {"secret": "stepops/dev/a"},
        "dest": {"secret": "stepops/dev/b"}, "config": {"include": [1]}});
    assert!(validate_input(&input, &dev_stack()).is_err());
}

#[test]
fn a_delay_before_start_is_passed_on_within_one_day_and_left_out_when_zero() {
    let base = json!({
        "environment": "dev",
        "source": {"secret": "stepops/dev/source-db"},
        "dest": {"secret": "stepops/dev/dest-db"},
    });
    let with = |delay: Value| {
        let mut input = base.clone();
        input["delayBeforeStartSeconds"] = delay;
        validate_input(&input, &dev_stack())
    };
    let out = serde_json::to_value(with(json!(600)).unwrap()).unwrap();
    assert_eq!(out["delayBeforeStartSeconds"], json!(600));
    let out = serde_json::to_value(with(json!(0)).unwrap()).unwrap();
    assert!(out.get("delayBeforeStartSeconds").is_none(), "{out}");
    for bad in [json!(86_401), json!(-1), json!(1.5)] {
        let err = with(bad.clone()).unwrap_err();
        assert!(
            err.to_string().contains("`delayBeforeStartSeconds`"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn synapse_service_key_parameters_are_held_to_the_stacks_allow_list() {
    let input = |name: &str| {
        json!({
            "environment": "dev",
            "source": {"secret": "stepops/dev/source-db"},
            "dest": {"secret": "stepops/dev/dest-db"},
            "config": {"synapse": {"sourceKeyParameter": name}},
        })
    };
    let err = validate_input(&input("/stepops/prod/synapse-key"), &dev_stack()).unwrap_err();
    let f = TaskFailure::from_error(&err);
    assert_eq!(f.error, "Stepops.WrongEnvironment", "{}", f.cause);
    assert!(
        f.cause.contains("the source stack's service key"),
        "{}",
        f.cause
    );
}
