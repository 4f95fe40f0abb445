//! The project's `template.yaml` as deployed: every function is built from this one package
//! (one dependency build for all of them), and the admin resources: the function's build,
//! runtime, network, settings and least-privilege policy; the state machine's definition and
//! substitutions (exactly the placeholders `admin.asl.json` uses). `cfn-lint` and
//! `sam validate --lint` check the rest.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    serde_norway::from_str(&text).expect("template.yaml parses as YAML")
}

/// `!Tag value` → (tag, value); a plain value → ("", value).
fn tagged(v: &Value) -> (String, &Value) {
    match v {
        Value::Tagged(t) => (t.tag.to_string(), &t.value),
        other => (String::new(), other),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The `[[bin]]` names of this package's Cargo.toml.
fn package_binaries() -> BTreeSet<String> {
    let manifest =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap();
    let mut bins = BTreeSet::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            bins.insert(name.trim_matches('"').to_owned());
        }
    }
    bins
}

/// `sam build` runs `cargo lambda build --bin NAME` in each function's `CodeUri`: all of them
/// in this package, so the dependencies are built once with one set of features (six packages
/// resolved six feature sets and built the AWS SDK up to four times).
#[test]
fn every_function_is_a_binary_of_this_package() {
    let t = template();
    let bins = package_binaries();
    let mut built = BTreeSet::new();
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let name = name.as_str().unwrap();
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        assert_eq!(r["Properties"]["CodeUri"], "functions", "{name}");
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names no Binary"));
        assert!(
            bins.contains(binary),
            "{name}: {binary} is not a [[bin]] of functions/Cargo.toml"
        );
        built.insert(binary.to_owned());
    }
    assert_eq!(
        built, bins,
        "every binary of the package is a function of the template"
    );
}

#[test]
fn admin_function_is_built_from_this_crate_and_reads_only_its_own_secret() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");

    let f = &t["Resources"]["AdminFunction"];
    assert_eq!(f["Type"], "AWS::Serverless::Function");
    assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda");
    assert_eq!(
        f["Metadata"]["BuildProperties"]["Binary"],
        "stepops-fn-admin"
    );
    let p = &f["Properties"];
    assert_eq!(p["CodeUri"], "functions");
    // The timeout: the function cuts its own requests off LAMBDA_MARGIN before it (and fails
    // Stepops.Transient with an audit record); what is left must hold one whole request at the
    // default request timeout (60 s) and a Secrets Manager read. And the function must time out
    // before RunTask's own TimeoutSeconds, so the state sees the function's answer.
    let timeout = p["Timeout"].as_u64().unwrap();
    let budget = timeout - stepops_admin::LAMBDA_MARGIN.as_secs();
    assert!(budget >= 60 + 10, "{budget} s left for the requests");
    let asl: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("statemachine/admin.asl.json")).unwrap(),
    )
    .unwrap();
    let run_task = asl["States"]["RunTask"]["TimeoutSeconds"].as_u64().unwrap();
    assert!(
        timeout < run_task,
        "Lambda timeout {timeout} s >= RunTask TimeoutSeconds {run_task} s"
    );
    // Logs as JSON lines (the audit record is found by "audit": true, see binary.rs).
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    assert!(
        p.get("LoggingConfig").is_none(),
        "AdminFunction overrides LoggingConfig"
    );
    let (tag, subnets) = tagged(&p["VpcConfig"]["SubnetIds"]);
    assert_eq!(
        (tag.as_str(), subnets.as_str()),
        ("!Ref", Some("PrivateSubnetIds"))
    );
    assert!(p["VpcConfig"]["SecurityGroupIds"].as_sequence().is_some());

    let vars = &p["Environment"]["Variables"];
    assert_eq!(
        keys(vars),
        set(&[
            "STEPOPS_ENVIRONMENT",
            "STEPOPS_SYNAPSE_ENDPOINT",
            "STEPOPS_ADMIN_SECRET",
            "STEPOPS_ADMIN_RECORDS_BUCKET"
        ])
    );
    for (var, param) in [
        ("STEPOPS_ENVIRONMENT", "Environment"),
        ("STEPOPS_SYNAPSE_ENDPOINT", "SynapseEndpoint"),
    ] {
        let (tag, v) = tagged(&vars[var]);
        assert_eq!((tag.as_str(), v.as_str()), ("!Ref", Some(param)), "{var}");
    }
    // The secret: AdminSecretName, or the environment's own default name when it is empty.
    let secret_name = &vars["STEPOPS_ADMIN_SECRET"];
    let (tag, choice) = tagged(secret_name);
    assert_eq!(tag, "!If");
    assert_eq!(choice[0], "HasAdminSecretName");
    assert_eq!(
        tagged(&choice[1]),
        ("!Ref".to_owned(), &Value::from("AdminSecretName"))
    );
    assert_eq!(
        tagged(&choice[2]),
        (
            "!Sub".to_owned(),
            &Value::from("stepops/${Environment}/synapse-admin-pat")
        )
    );

    // The kept profile records (docs/admin.md): the bucket only when AdminRecordRetentionDays
    // is not 0, and then only PutObject under the records' prefix.
    let (tag, bucket) = tagged(&vars["STEPOPS_ADMIN_RECORDS_BUCKET"]);
    assert_eq!(tag, "!If");
    assert_eq!(bucket[0], "KeepAdminRecords");
    assert_eq!(
        tagged(&bucket[1]),
        ("!Ref".to_owned(), &Value::from("ManifestBucket"))
    );
    assert_eq!(bucket[2], "");

    // The environment guard, and two statements: the records' PutObject when kept, and
    // GetSecretValue on the admin secret (its ARN with the random 6-character suffix), nothing
    // else; no managed policy templates.
    let policies = p["Policies"].as_sequence().unwrap();
    assert_eq!(policies.len(), 2, "{policies:?}");
    assert_eq!(
        tagged(&policies[0]),
        ("!Ref".to_owned(), &Value::from("EnvironmentGuardPolicy"))
    );
    let statements = policies[1]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 2, "{statements:?}");
    let (tag, kept) = tagged(&statements[0]);
    assert_eq!(tag, "!If");
    assert_eq!(kept[0], "KeepAdminRecords");
    assert_eq!(kept[1]["Effect"], "Allow");
    assert_eq!(kept[1]["Action"], "s3:PutObject");
    let (tag, resource) = tagged(&kept[1]["Resource"]);
    assert_eq!(tag, "!Sub");
    assert_eq!(
        resource.as_str().unwrap(),
        format!("${{ManifestBucket.Arn}}/{}*", stepops_admin::RECORDS_PREFIX)
    );
    assert_eq!(
        tagged(&kept[2]),
        ("!Ref".to_owned(), &Value::from("AWS::NoValue"))
    );
    let s = &statements[1];
    assert_eq!(s["Effect"], "Allow");
    assert_eq!(s["Action"], "secretsmanager:GetSecretValue");
    let (tag, resource) = tagged(&s["Resource"]);
    assert_eq!(tag, "!Sub");
    assert_eq!(
        resource[0].as_str().unwrap(),
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Name}-??????"
    );
    assert_eq!(
        &resource[1]["Name"], secret_name,
        "the same name as the setting"
    );

    let (_, log_group) =
        tagged(&t["Resources"]["AdminFunctionLogGroup"]["Properties"]["LogGroupName"]);
    assert_eq!(log_group.as_str(), Some("/aws/lambda/${AdminFunction}"));
}

/// The records expire after `AdminRecordRetentionDays` by their own lifecycle rule, and no
/// other rule of the bucket (the plans' and results' 30 days) reaches their prefix.
#[test]
fn kept_profile_records_expire_by_their_own_parameter() {
    let t = template();
    let param = &t["Parameters"]["AdminRecordRetentionDays"];
    assert_eq!(param["Type"], "Number");
    assert_eq!(param["Default"], 0, "off unless the team asks for it");
    let (tag, cond) = tagged(&t["Conditions"]["KeepAdminRecords"]);
    assert_eq!(tag, "!Not");
    let (tag, eq) = tagged(&cond[0]);
    assert_eq!(tag, "!Equals");
    assert_eq!(
        tagged(&eq[0]),
        ("!Ref".to_owned(), &Value::from("AdminRecordRetentionDays"))
    );
    assert_eq!(eq[1], 0);

    let rules = t["Resources"]["ManifestBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap();
    let mut records_rules = 0;
    for rule in rules {
        let expires = rule.get("ExpirationInDays").is_some();
        let prefix = rule.get("Prefix").and_then(Value::as_str);
        if expires {
            // Every expiring rule names its prefix: none applies to the whole bucket.
            let prefix =
                prefix.unwrap_or_else(|| panic!("a rule expires the whole bucket: {rule:?}"));
            assert!(
                !stepops_admin::RECORDS_PREFIX.starts_with(prefix)
                    || prefix == stepops_admin::RECORDS_PREFIX,
                "{rule:?}"
            );
        }
        if prefix == Some(stepops_admin::RECORDS_PREFIX) {
            records_rules += 1;
            assert_eq!(rule["Status"], "Enabled");
            let (tag, days) = tagged(&rule["ExpirationInDays"]);
            assert_eq!(tag, "!If");
            assert_eq!(days[0], "KeepAdminRecords");
            assert_eq!(
                tagged(&days[1]),
                ("!Ref".to_owned(), &Value::from("AdminRecordRetentionDays"))
            );
            assert_eq!(days[2], 1, "records kept before it was switched off go too");
        }
    }
    assert_eq!(records_rules, 1, "{rules:?}");
}

/// The Synapse endpoint parameter takes https URLs only (the function refuses plain http
/// except on loopback, which a deployed stack never uses).
#[test]
fn the_synapse_endpoint_parameter_is_https_only() {
    let t = template();
    let pattern = t["Parameters"]["SynapseEndpoint"]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert!(pattern.starts_with("^$|^https://"), "{pattern}");
    assert!(!pattern.contains("https?"), "{pattern}");
}

#[test]
fn admin_state_machine_substitutes_exactly_the_definitions_placeholders() {
    let t = template();
    let m = &t["Resources"]["AdminStateMachine"]["Properties"];
    assert_eq!(m["DefinitionUri"], "statemachine/admin.asl.json");
    let subs = keys(&m["DefinitionSubstitutions"]);
    let asl = std::fs::read_to_string(root().join("statemachine/admin.asl.json")).unwrap();
    let placeholders: BTreeSet<String> = asl
        .split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap().to_owned())
        .collect();
    assert_eq!(subs, placeholders);
    assert_eq!(
        subs,
        set(&["AdminFunctionArn", "NotifyFunctionArn", "Environment"])
    );
    let (tag, v) = tagged(&m["DefinitionSubstitutions"]["AdminFunctionArn"]);
    assert_eq!(
        (tag.as_str(), v.as_str()),
        ("!GetAtt", Some("AdminFunction.Arn"))
    );
    let (tag, v) = tagged(&m["DefinitionSubstitutions"]["NotifyFunctionArn"]);
    assert_eq!(
        (tag.as_str(), v.as_str()),
        ("!GetAtt", Some("NotifyFunction.Arn"))
    );

    // It may invoke the admin and notify functions and nothing else.
    let invoked: BTreeSet<String> = m["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("LambdaInvokePolicy"))
        .map(|p| tagged(&p["FunctionName"]).1.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(invoked, set(&["AdminFunction", "NotifyFunction"]));
    let (_, lg) = tagged(&m["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]);
    assert_eq!(lg.as_str(), Some("AdminStateMachineLogGroup.Arn"));
}
