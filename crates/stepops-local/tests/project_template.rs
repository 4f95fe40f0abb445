//! The project's own `template.yaml` loads: every state machine resolves and its definition
//! passes the interpreter's validation, in both environments. What runs locally is what deploys.

use std::path::PathBuf;

use stepops_local::template::{TemplateOptions, load_template};
use stepops_local::{EngineConfig, LocalEngine};

fn project_template() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    assert!(
        p.exists(),
        "the project's template.yaml is missing at {}",
        p.display()
    );
    p
}

#[tokio::test]
async fn project_template_loads_in_dev_and_prod() {
    for env in ["dev", "prod"] {
        let options = TemplateOptions {
            parameter_overrides: [("Environment".to_string(), env.to_string())].into(),
            ..TemplateOptions::default()
        };
        let t = load_template(&project_template(), &options).unwrap();
        assert!(
            !t.state_machines.is_empty(),
            "no state machine in template.yaml"
        );
        for m in &t.state_machines {
            assert!(
                m.name.contains(env),
                "{} does not carry the environment {env}",
                m.name
            );
            assert!(
                !m.definition.contains("${"),
                "unresolved placeholder in {}",
                m.name
            );
        }
        for a in &t.activities {
            assert!(a.name.contains(env), "{}", a.name);
        }
        // The engine accepts every definition (Definition::parse validates it).
        let dir = tempfile::tempdir().unwrap();
        let engine = LocalEngine::start(EngineConfig {
            port: None,
            template: Some(project_template()),
            template_options: options,
            ..EngineConfig::new(dir.path())
        })
        .await
        .unwrap();
        assert_eq!(
            engine.template().unwrap().state_machines.len(),
            t.state_machines.len()
        );
    }
}
