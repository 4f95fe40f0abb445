//! ARNs of the local engine's resources (region `us-east-1`, account `123456789012` unless
//! configured otherwise).

/// Where local resources "live": the region and account every local ARN carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locality {
    /// AWS region, `us-east-1` by default.
    pub region: String,
    /// AWS account id, `123456789012` by default.
    pub account: String,
}

impl Default for Locality {
    fn default() -> Self {
        Locality {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }
}

impl Locality {
    /// `arn:aws:states:REGION:ACCOUNT:stateMachine:NAME`.
    pub fn state_machine_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            self.region, self.account
        )
    }

    /// `arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME`.
    pub fn execution_arn(&self, machine: &str, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:execution:{machine}:{name}",
            self.region, self.account
        )
    }

    /// `arn:aws:states:REGION:ACCOUNT:activity:NAME`.
    pub fn activity_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:activity:{name}",
            self.region, self.account
        )
    }

    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account
        )
    }
}

/// The parts of a Step Functions ARN: `(resource type, rest)`, e.g. `("activity", "NAME")`,
/// or `None` when `arn` is not `arn:aws:states:REGION:ACCOUNT:TYPE:…`.
pub fn states_resource(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(7, ':');
    let (arn_, _partition, service, _region, _account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn_ != "arn" || service != "states" {
        return None;
    }
    let kind = parts.next()?;
    let rest = parts.next()?;
    if rest.is_empty() {
        return None;
    }
    Some((kind, rest))
}

/// The function name a Lambda `FunctionName` designates: a name, a full ARN
/// (`arn:aws:lambda:R:A:function:NAME[:QUALIFIER]`), a partial ARN (`A:function:NAME`) or
/// `NAME:QUALIFIER`. Returns `(name, qualifier)`.
pub fn lambda_function_name(function: &str) -> (&str, Option<&str>) {
    let rest = match function.find("function:") {
        Some(i) => &function[i + "function:".len()..],
        None => function,
    };
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

/// Whether `name` is a valid Step Functions name (state machine, execution, activity):
/// 1–80 characters, none of whitespace, `< > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /` or
/// control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 80
        && name.chars().all(|c| {
            !c.is_whitespace() && !c.is_control() && !"<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_states_arns() {
        let l = Locality::default();
        assert_eq!(
            states_resource(&l.activity_arn("copy")),
            Some(("activity", "copy"))
        );
        assert_eq!(
            states_resource(&l.execution_arn("m", "e")),
            Some(("execution", "m:e"))
        );
        assert_eq!(states_resource("arn:aws:lambda:x:y:function:f"), None);
        assert_eq!(states_resource("nonsense"), None);
    }

    #[test]
    fn lambda_names() {
        assert_eq!(lambda_function_name("notify"), ("notify", None));
        assert_eq!(
            lambda_function_name("arn:aws:lambda:us-east-1:1:function:notify:$LATEST"),
            ("notify", Some("$LATEST"))
        );
        assert_eq!(lambda_function_name("1:function:notify"), ("notify", None));
        assert_eq!(
            lambda_function_name("notify:prod"),
            ("notify", Some("prod"))
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("run-2024_01.x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert!(!valid_name("a:b"));
        assert!(!valid_name(&"x".repeat(81)));
    }
}
