//! Unit tests of `runner.rs`.

use super::*;

#[test]
fn truncation_counts_characters() {
    assert_eq!(truncate_chars("abc", 3), "abc");
    assert_eq!(truncate_chars("abcd", 3), "ab…");
    let long = "é".repeat(40_000);
    let t = truncate_chars(&long, MAX_CAUSE_CHARS);
    assert_eq!(t.chars().count(), MAX_CAUSE_CHARS);
}

#[test]
fn inputs_are_checked() {
    let open = RunnerOptions::new(vec![]);
    assert_eq!(
        parse_input(r#"{"step":"copy","args":{"a":1}}"#, &open).unwrap(),
        ("copy".to_owned(), json!({"a": 1}))
    );
    assert_eq!(
        parse_input(r#"{"step":"ping"}"#, &open).unwrap().1,
        json!({})
    );
    for bad in ["nope", r#"{"args":{}}"#, r#"{"step":"x","args":[1]}"#] {
        assert_eq!(
            parse_input(bad, &open).unwrap_err().name,
            ErrorName::InvalidInput
        );
    }
}

#[test]
fn tasks_are_checked_against_the_runners_own_configuration() {
    let mut dev = RunnerOptions::new(vec![]);
    dev.environment = Some(Environment::Dev);
    dev.allowed_targets =
        Some(StackEnvironment::new(Environment::Dev, "secret:stepops/dev/*,url:sqlite:*").unwrap());
    let task = |args: Value| json!({"step": "copy", "args": args}).to_string();
    let ok = json!({"environment": "dev", "source": {"secret": "stepops/dev/a"},
                    "dest": {"url": "sqlite:/tmp/d.db"}});
    assert!(parse_input(&task(ok.clone()), &dev).is_ok());
    for (args, name, says) in [
        (
            json!({"environment": "prod", "source": {"secret": "stepops/dev/a"}}),
            ErrorName::WrongEnvironment,
            "the task is for `prod`",
        ),
        (
            json!({"source": {"secret": "stepops/dev/a"}}),
            ErrorName::InvalidInput,
            "no string argument `environment`",
        ),
        (
            json!({"environment": "dev", "dest": {"secret": "stepops/prod/db"}}),
            ErrorName::WrongEnvironment,
            "a prod target",
        ),
        (
            json!({"environment": "dev", "target": {"parameter": "/other/db"}}),
            ErrorName::InvalidInput,
            "not configured for this dev stack",
        ),
        (
            json!({"environment": "dev", "source": {"url": "postgres://u:pw@h/db"}}),
            ErrorName::InvalidInput,
            "password inline",
        ),
        (
            json!({"environment": "dev", "source": {"secret": "stepops/dev/a"},
                   "config": {"synapse": {"sourceKeyParameter": "/stepops/prod/synapse-key"}}}),
            ErrorName::WrongEnvironment,
            "the source stack's service key",
        ),
    ] {
        let e = parse_input(&task(args.clone()), &dev).unwrap_err();
        assert_eq!(e.name, name, "{args}: {e}");
        assert!(e.cause.contains(says), "{args}: {e}");
    }
    let mut aws = dev.clone();
    aws.refuse_url_targets = true;
    let e = parse_input(&task(ok), &aws).unwrap_err();
    assert!(e.cause.contains("url targets are for local runs"), "{e}");
    // ping names no database: a smoke test needs no environment.
    assert!(parse_input(r#"{"step":"ping"}"#, &aws).is_ok());
}

#[test]
fn backoff_grows_and_is_capped() {
    let b = |n| backoff(Duration::from_millis(100), n, Duration::from_secs(1));
    assert!(b(1) <= Duration::from_millis(125));
    assert!(b(3) >= Duration::from_millis(300));
    assert!(b(30) <= Duration::from_millis(1250));
}
