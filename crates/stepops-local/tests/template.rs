//! The template reader against a SAM fixture with short-form tags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use stepops_local::template::{TemplateOptions, load_template};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sam/template.yaml")
}

fn options(overrides: &[(&str, &str)]) -> TemplateOptions {
    TemplateOptions {
        parameter_overrides: overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..TemplateOptions::default()
    }
}

#[test]
fn resolves_state_machines_activities_and_functions() {
    let t = load_template(&fixture(), &options(&[])).unwrap();
    let names: Vec<_> = t
        .functions
        .iter()
        .map(|f| (f.logical_id.as_str(), f.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("ValidateInputFunction", "stepops-dev-validate-input"),
            ("NotifyFunction", "NotifyFunction")
        ]
    );
    assert_eq!(
        t.activities.len(),
        1,
        "ProdOnlyActivity's condition is false in dev"
    );
    assert_eq!(
        t.activities[0].arn,
        "arn:aws:states:us-east-1:123456789012:activity:stepops-dev-copy"
    );
    let m = &t.state_machines[0];
    assert_eq!(m.name, "stepops-local-migrate");
    assert_eq!(
        m.arn,
        "arn:aws:states:us-east-1:123456789012:stateMachine:stepops-local-migrate"
    );
    assert!(
        m.definition_path
            .as_ref()
            .unwrap()
            .ends_with("statemachine/migrate.asl.json")
    );
    let def: Value = serde_json::from_str(&m.definition).unwrap();
    assert_eq!(
        def["States"]["Validate"]["Parameters"]["FunctionName"],
        "arn:aws:lambda:us-east-1:123456789012:function:stepops-dev-validate-input"
    );
    assert_eq!(
        def["States"]["Copy"]["Resource"],
        "arn:aws:states:us-east-1:123456789012:activity:stepops-dev-copy"
    );
    let p = &def["States"]["Copy"]["Parameters"];
    assert_eq!(p["chunkRows"], "1000");
    assert_eq!(p["where"], "us-east-1/123456789012");
    assert_eq!(p["hb"], "60");
    assert_eq!(p["topic"], "arn:aws:sns:us-east-1:123456789012:Topic");
    assert_eq!(p["lit"], "${NotAVariable}");
    assert_eq!(
        def["States"]["Notify"]["Parameters"]["FunctionName"],
        "NotifyFunction"
    );

    let inline = &t.state_machines[1];
    assert_eq!(inline.name, "inline");
    let def: Value = serde_json::from_str(&inline.definition).unwrap();
    assert_eq!(def["States"]["Done"]["Result"], "dev");
}

#[test]
fn overrides_change_what_runs() {
    let t = load_template(
        &fixture(),
        &options(&[("Environment", "prod"), ("Namespace", "feature-x")]),
    )
    .unwrap();
    let arns: Vec<_> = t.activities.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(arns, vec!["stepops-prod-feature-x-copy", "prod-only"]);
    let def: Value = serde_json::from_str(&t.state_machines[0].definition).unwrap();
    assert_eq!(def["States"]["Copy"]["Parameters"]["chunkRows"], "50000");
}

#[test]
fn refuses_bad_overrides_with_a_clear_message() {
    let err = load_template(&fixture(), &options(&[("Environment", "staging")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("AllowedValues"), "{err}");
    let err = load_template(&fixture(), &options(&[("Nope", "x")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Nope") && err.contains("not declared"),
        "{err}"
    );
}

#[test]
fn missing_substitution_names_the_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.asl.json"),
        r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"${Missing}","End":true}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("template.yaml"),
        "Resources:\n  M:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: m.asl.json\n",
    )
    .unwrap();
    let err = load_template(
        &dir.path().join("template.yaml"),
        &TemplateOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("${Missing}") && err.contains("resource M"),
        "{err}"
    );
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("template.yaml"),
        "Resources:\n  A:\n    Type: AWS::StepFunctions::Activity\n    Properties: &props\n      Name: shared\n  \
         B:\n    Type: AWS::StepFunctions::Activity\n    Properties:\n      <<: *props\n      Tags: []\n",
    )
    .unwrap();
    let t = load_template(
        &dir.path().join("template.yaml"),
        &TemplateOptions::default(),
    )
    .unwrap();
    let names: Vec<_> = t.activities.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["shared", "shared"]);
}

/// `resolve_resources` gives every resource as CloudFormation would see it: conditions applied,
/// mappings and `Fn::Base64` resolved, SAM's generated roles and deploy-only attributes named.
#[test]
fn resolve_resources_applies_conditions_mappings_and_attributes() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.yaml");
    std::fs::write(
        &path,
        r#"
Parameters:
  Environment: {Type: String, Default: dev}
Mappings:
  Guard: {dev: {Other: prod}, prod: {Other: dev}}
Conditions:
  IsProd: !Equals [!Ref Environment, prod]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: fn}
  Key:
    Type: AWS::KMS::Key
    Condition: IsProd
    Properties:
      KeyPolicy:
        Statement:
          - Principal: {AWS: !GetAtt FnRole.Arn}
            Resource: !Sub
              - "arn:aws:secretsmanager:*:*:secret:*/${Other}/*"
              - Other: !FindInMap [Guard, !Ref Environment, Other]
  Template:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        UserData: !Base64 {"Fn::Sub": "echo ${Environment}"}
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      Version: !GetAtt Template.LatestVersionNumber
      Tags: [!If [IsProd, {Key: a, Value: b}, !Ref AWS::NoValue]]
"#,
    )
    .unwrap();
    let dev = stepops_local::resolve_resources(&path, &options(&[])).unwrap();
    assert!(
        !dev.contains_key("Key"),
        "a false Condition leaves the resource out"
    );
    let data = dev["Template"]["Properties"]["LaunchTemplateData"]["UserData"]
        .as_str()
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert_eq!(decoded, b"echo dev");
    assert_eq!(
        dev["Group"]["Properties"]["Version"],
        "Template.LatestVersionNumber"
    );
    assert_eq!(dev["Group"]["Properties"]["Tags"], serde_json::json!([]));

    let prod =
        stepops_local::resolve_resources(&path, &options(&[("Environment", "prod")])).unwrap();
    let statement = &prod["Key"]["Properties"]["KeyPolicy"]["Statement"][0];
    assert_eq!(
        statement["Resource"],
        "arn:aws:secretsmanager:*:*:secret:*/dev/*"
    );
    assert_eq!(
        statement["Principal"]["AWS"],
        "arn:aws:iam::123456789012:role/FnRole"
    );
}
