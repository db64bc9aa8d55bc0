//! Who may do what, before and after: every IAM statement of the templates (roles'
//! trust and policies, resource policies, Lambda permissions) and every security-group
//! rule, one row per action or rule, so a reviewer sees exactly what a change grants or
//! opens (as `cdk diff` shows it). And the changes that need a person's approval beyond
//! `--yes` ([`Risk`]): broader IAM, an opened security group, a changed file system
//! policy, a stateful resource replaced or removed, encryption turned off.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Action, Diff, Replacement};

/// One action an IAM statement allows or denies, with its resources, principal and
/// condition as the template writes them (`${X}` for a reference).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IamRow {
    /// The template resource that holds the statement.
    pub resource: String,
    /// `trust` (who may assume a role), `policy` (what a role may do), `resource-policy`
    /// (who may use the resource), `permission` (a Lambda invoke permission).
    pub kind: &'static str,
    pub effect: String,
    pub action: String,
    pub resources: String,
    pub principal: String,
    pub condition: String,
}

/// One security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RuleRow {
    pub group: String,
    /// `ingress` or `egress`.
    pub direction: &'static str,
    pub protocol: String,
    pub ports: String,
    /// The CIDR, prefix list or security group on the other side.
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    /// `add` (gained) or `remove` (lost).
    #[serde(rename = "change")]
    pub action: Action,
    #[serde(flatten)]
    pub row: T,
}

/// A change that needs approval beyond `--yes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// `iam`, `security-group`, `file-system-policy`, `stateful`, `encryption`.
    pub kind: &'static str,
    pub resource: String,
    pub what: String,
}

/// Resource types whose replacement or removal loses state that cannot be made again
/// the same: data, key material, secrets.
const STATEFUL: &[&str] = &[
    "AWS::EFS::FileSystem",
    "AWS::EFS::MountTarget",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
];

/// Fills the diff's IAM and security-group changes and its risks from the two templates,
/// looking only at the resources the diff changes (what a change set will touch).
pub fn annotate(diff: &mut Diff, before: &Value, after: &Value) {
    let changed: BTreeSet<&str> = diff
        .resources
        .iter()
        .map(|r| r.logical_id.as_str())
        .collect();
    let (before, after) = (only(before, &changed), only(after, &changed));
    diff.iam = changes(&iam_rows(&before), &iam_rows(&after));
    diff.security_groups = changes(&rule_rows(&before), &rule_rows(&after));
    diff.risks = risks(diff);
}

/// The template with only the named resources.
fn only(template: &Value, ids: &BTreeSet<&str>) -> Value {
    let kept: Map<String, Value> = resources(template)
        .filter(|(id, _)| ids.contains(id.as_str()))
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect();
    serde_json::json!({ "Resources": kept })
}

fn changes<T: Ord + Clone>(before: &BTreeSet<T>, after: &BTreeSet<T>) -> Vec<Change<T>> {
    let removed = before.difference(after).map(|r| Change {
        action: Action::Remove,
        row: r.clone(),
    });
    let added = after.difference(before).map(|r| Change {
        action: Action::Add,
        row: r.clone(),
    });
    removed.chain(added).collect()
}

fn risks(diff: &Diff) -> Vec<Risk> {
    let mut out = Vec::new();
    for c in &diff.iam {
        if c.action == Action::Add && c.row.effect == "Allow" {
            let r = &c.row;
            out.push(Risk {
                kind: "iam",
                resource: r.resource.clone(),
                what: format!(
                    "broadens IAM: {} may {} on {}{}",
                    if r.principal.is_empty() {
                        &r.resource
                    } else {
                        &r.principal
                    },
                    r.action,
                    r.resources,
                    if r.condition.is_empty() {
                        String::new()
                    } else {
                        format!(" when {}", r.condition)
                    }
                ),
            });
        }
    }
    for c in &diff.security_groups {
        if c.action == Action::Add {
            let r = &c.row;
            out.push(Risk {
                kind: "security-group",
                resource: r.group.clone(),
                what: format!(
                    "opens {} {} to {} ({} {})",
                    r.group, r.direction, r.peer, r.protocol, r.ports
                ),
            });
        }
    }
    for r in &diff.resources {
        if r.resource_type == "AWS::EFS::FileSystem"
            && r.properties
                .iter()
                .any(|p| p.path.starts_with("Properties.FileSystemPolicy"))
        {
            out.push(Risk {
                kind: "file-system-policy",
                resource: r.logical_id.clone(),
                what: format!("changes the file system policy of {}", r.logical_id),
            });
        }
        if STATEFUL.contains(&r.resource_type.as_str())
            && (r.action == Action::Remove || r.replacement != Replacement::No)
        {
            out.push(Risk {
                kind: "stateful",
                resource: r.logical_id.clone(),
                what: format!(
                    "{} {} ({}): what it holds does not come back",
                    if r.action == Action::Remove {
                        "removes"
                    } else {
                        "replaces"
                    },
                    r.logical_id,
                    r.resource_type
                ),
            });
        }
        for p in &r.properties {
            if weakens_encryption(&p.path, p.before.as_ref(), p.after.as_ref()) {
                out.push(Risk {
                    kind: "encryption",
                    resource: r.logical_id.clone(),
                    what: format!(
                        "turns encryption off: {}.{}",
                        r.logical_id,
                        p.path.trim_start_matches("Properties.")
                    ),
                });
            }
        }
    }
    out
}

/// A property about encryption that was on (true, or a key) and is now off or gone.
fn weakens_encryption(path: &str, before: Option<&Value>, after: Option<&Value>) -> bool {
    let lower = path.to_ascii_lowercase();
    let about = ["encrypt", "kms", "sse", "tls"]
        .iter()
        .any(|w| lower.contains(w));
    let on = |v: Option<&Value>| match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty() && s != "false" && s != "DISABLED",
        Some(_) => true,
    };
    about && on(before) && !on(after)
}

/// A template value as a reader writes it: `${X}` for `Ref X`, `${X.Y}` for
/// `Fn::GetAtt`, the text of `Fn::Sub`, lists joined with ", ", anything else as JSON.
pub fn readable(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(readable).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.len() == 1 => {
            let (k, v) = map
                .iter()
                .next()
                .map_or(("", &Value::Null), |(k, v)| (k.as_str(), v));
            match (k, v) {
                ("Ref", Value::String(name)) => format!("${{{name}}}"),
                ("Fn::GetAtt", Value::Array(parts)) => format!(
                    "${{{}}}",
                    parts.iter().map(readable).collect::<Vec<_>>().join(".")
                ),
                ("Fn::GetAtt", Value::String(path)) => format!("${{{path}}}"),
                ("Fn::Sub", Value::String(text)) => text.clone(),
                ("Fn::Sub", Value::Array(parts)) => {
                    parts.first().map_or_else(String::new, readable)
                }
                _ => value.to_string(),
            }
        }
        other => other.to_string(),
    }
}

fn props(resource: &Value) -> Option<&Map<String, Value>> {
    resource.get("Properties").and_then(Value::as_object)
}

fn resources(template: &Value) -> impl Iterator<Item = (&String, &Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

fn as_list(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

fn iam_rows(template: &Value) -> BTreeSet<IamRow> {
    let mut rows = BTreeSet::new();
    for (id, resource) in resources(template) {
        let Some(p) = props(resource) else { continue };
        let mut documents: Vec<(&'static str, &Value)> = Vec::new();
        if let Some(doc) = p.get("AssumeRolePolicyDocument") {
            documents.push(("trust", doc));
        }
        for policy in as_list(p.get("Policies")) {
            if let Some(doc) = policy.get("PolicyDocument") {
                documents.push(("policy", doc));
            }
        }
        let is_identity = matches!(
            resource.get("Type").and_then(Value::as_str),
            Some("AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy")
        );
        for key in ["PolicyDocument", "KeyPolicy", "FileSystemPolicy"] {
            if let Some(doc) = p.get(key) {
                documents.push((
                    if is_identity {
                        "policy"
                    } else {
                        "resource-policy"
                    },
                    doc,
                ));
            }
        }
        for (kind, doc) in documents {
            for statement in as_list(doc.get("Statement")) {
                let effect = statement.get("Effect").map(readable).unwrap_or_default();
                let (actions, negated) = match statement.get("Action") {
                    Some(a) => (as_list(Some(a)), ""),
                    None => (as_list(statement.get("NotAction")), "not "),
                };
                let scope = match statement.get("Resource") {
                    Some(r) => readable(r),
                    None => statement
                        .get("NotResource")
                        .map(|r| format!("all but {}", readable(r)))
                        .unwrap_or_default(),
                };
                for action in actions {
                    rows.insert(IamRow {
                        resource: id.clone(),
                        kind,
                        effect: effect.clone(),
                        action: format!("{negated}{}", readable(action)),
                        resources: scope.clone(),
                        principal: statement.get("Principal").map(readable).unwrap_or_default(),
                        condition: statement
                            .get("Condition")
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                    });
                }
            }
        }
        for arn in as_list(p.get("ManagedPolicyArns")) {
            rows.insert(IamRow {
                resource: id.clone(),
                kind: "policy",
                effect: "Allow".into(),
                action: format!("(managed policy {})", readable(arn)),
                resources: String::new(),
                principal: String::new(),
                condition: String::new(),
            });
        }
        if resource.get("Type").and_then(Value::as_str) == Some("AWS::Lambda::Permission") {
            let condition: Vec<String> = ["SourceArn", "SourceAccount", "PrincipalOrgID"]
                .iter()
                .filter_map(|k| p.get(*k).map(|v| format!("{k} = {}", readable(v))))
                .collect();
            rows.insert(IamRow {
                resource: id.clone(),
                kind: "permission",
                effect: "Allow".into(),
                action: p.get("Action").map(readable).unwrap_or_default(),
                resources: p.get("FunctionName").map(readable).unwrap_or_default(),
                principal: p.get("Principal").map(readable).unwrap_or_default(),
                condition: condition.join(", "),
            });
        }
    }
    rows
}

fn rule_rows(template: &Value) -> BTreeSet<RuleRow> {
    let mut rows = BTreeSet::new();
    let mut add = |group: String, direction: &'static str, rule: &Value| {
        let text = |k: &str| rule.get(k).map(readable).unwrap_or_default();
        let protocol = match text("IpProtocol").as_str() {
            "-1" => "all".to_string(),
            p => p.to_string(),
        };
        let (from, to) = (text("FromPort"), text("ToPort"));
        let ports = if protocol == "all" || (from.is_empty() && to.is_empty()) {
            "all".to_string()
        } else if from == to {
            from
        } else {
            format!("{from}-{to}")
        };
        let peer = [
            "CidrIp",
            "CidrIpv6",
            "SourceSecurityGroupId",
            "DestinationSecurityGroupId",
            "SourcePrefixListId",
            "DestinationPrefixListId",
        ]
        .iter()
        .find_map(|k| rule.get(*k).map(readable))
        .unwrap_or_default();
        rows.insert(RuleRow {
            group,
            direction,
            protocol,
            ports,
            peer,
        });
    };
    for (id, resource) in resources(template) {
        let Some(p) = props(resource) else { continue };
        match resource.get("Type").and_then(Value::as_str) {
            Some("AWS::EC2::SecurityGroup") => {
                for rule in as_list(p.get("SecurityGroupIngress")) {
                    add(id.clone(), "ingress", rule);
                }
                for rule in as_list(p.get("SecurityGroupEgress")) {
                    add(id.clone(), "egress", rule);
                }
            }
            Some(kind @ ("AWS::EC2::SecurityGroupIngress" | "AWS::EC2::SecurityGroupEgress")) => {
                let group = p.get("GroupId").map(readable).unwrap_or_else(|| id.clone());
                let direction = if kind.ends_with("Ingress") {
                    "ingress"
                } else {
                    "egress"
                };
                add(
                    group,
                    direction,
                    resource.get("Properties").unwrap_or(&Value::Null),
                );
            }
            _ => {}
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::diff::{PropertyChange, ResourceChange, Source};
    use serde_json::json;

    fn role(actions: Value, resource: Value) -> Value {
        json!({"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Sid": "S", "Effect": "Allow", "Action": actions, "Resource": resource}]}}]}})
    }

    fn diff_of(before: &Value, after: &Value) -> Diff {
        let mut d = Diff {
            resources: crate::diff::resources(before, after),
            ..Diff::default()
        };
        annotate(&mut d, before, after);
        d
    }

    #[test]
    fn a_new_action_is_one_added_row_and_a_risk() {
        let before = json!({"Resources": {"ScalerRole": role(json!(["ssm:GetParameter"]), json!({"Fn::Sub": "arn:${AWS::Partition}:ssm:::parameter/x"}))}});
        let after = json!({"Resources": {"ScalerRole": role(json!(["ssm:GetParameter", "ssm:PutParameter"]), json!({"Fn::Sub": "arn:${AWS::Partition}:ssm:::parameter/x"}))}});
        let d = diff_of(&before, &after);
        assert_eq!(d.iam.len(), 1, "{:?}", d.iam);
        assert_eq!(d.iam[0].action, Action::Add);
        assert_eq!(d.iam[0].row.action, "ssm:PutParameter");
        assert_eq!(
            d.iam[0].row.resources,
            "arn:${AWS::Partition}:ssm:::parameter/x"
        );
        assert_eq!(d.risks.len(), 1);
        assert_eq!(d.risks[0].kind, "iam");
        assert!(
            d.risks[0].what.contains("may ssm:PutParameter on arn:"),
            "{:?}",
            d.risks
        );
        // Taking an action away narrows: a removed row, no risk.
        let narrowed = diff_of(&after, &before);
        assert_eq!(narrowed.iam[0].action, Action::Remove);
        assert!(narrowed.risks.is_empty());
    }

    #[test]
    fn trust_and_permissions_name_their_principal() {
        let t = json!({"Resources": {
            "R": role(json!("s3:GetObject"), json!("*")),
            "P": {"Type": "AWS::Lambda::Permission", "Properties": {"Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "ScalerAlias"}, "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}}}}});
        let rows = iam_rows(&t);
        let trust = rows.iter().find(|r| r.kind == "trust").unwrap();
        assert_eq!(trust.principal, r#"{"Service":"lambda.amazonaws.com"}"#);
        let permission = rows.iter().find(|r| r.kind == "permission").unwrap();
        assert_eq!(permission.resources, "${ScalerAlias}");
        assert_eq!(permission.condition, "SourceArn = ${Rule.Arn}");
    }

    #[test]
    fn an_opened_port_is_a_risk_and_a_closed_one_is_not() {
        let sg = |rules: Value| {
            json!({"Resources": {"RouterSecurityGroup": {"Type": "AWS::EC2::SecurityGroup",
            "Properties": {"SecurityGroupIngress": rules}}}})
        };
        let before = sg(
            json!([{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "SourceSecurityGroupId": {"Ref": "Apps"}}]),
        );
        let after = sg(json!([
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "SourceSecurityGroupId": {"Ref": "Apps"}},
            {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}]));
        let d = diff_of(&before, &after);
        assert_eq!(d.security_groups.len(), 1);
        assert_eq!(
            d.security_groups[0].row,
            RuleRow {
                group: "RouterSecurityGroup".into(),
                direction: "ingress",
                protocol: "all".into(),
                ports: "all".into(),
                peer: "0.0.0.0/0".into()
            }
        );
        assert_eq!(
            d.risks[0].what,
            "opens RouterSecurityGroup ingress to 0.0.0.0/0 (all all)"
        );
        assert!(diff_of(&after, &before).risks.is_empty());
    }

    #[test]
    fn stateful_replacements_policies_and_encryption_are_risks() {
        let d = Diff {
            resources: vec![
                ResourceChange {
                    logical_id: "FileSystem".into(),
                    resource_type: "AWS::EFS::FileSystem".into(),
                    action: Action::Modify,
                    replacement: Replacement::No,
                    replacement_source: Source::ChangeSet,
                    properties: vec![PropertyChange {
                        path: "Properties.FileSystemPolicy.Statement".into(),
                        before: Some(json!([])),
                        after: Some(json!([{}])),
                        replaces: false,
                    }],
                },
                ResourceChange {
                    logical_id: "RouterCredentials".into(),
                    resource_type: "AWS::SecretsManager::Secret".into(),
                    action: Action::Remove,
                    replacement: Replacement::No,
                    replacement_source: Source::ChangeSet,
                    properties: vec![],
                },
                ResourceChange {
                    logical_id: "Topic".into(),
                    resource_type: "AWS::SNS::Topic".into(),
                    action: Action::Modify,
                    replacement: Replacement::No,
                    replacement_source: Source::ChangeSet,
                    properties: vec![PropertyChange {
                        path: "Properties.KmsMasterKeyId".into(),
                        before: Some(json!({"Ref": "Key"})),
                        after: None,
                        replaces: false,
                    }],
                },
            ],
            ..Diff::default()
        };
        let kinds: Vec<&str> = risks(&d).iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["file-system-policy", "stateful", "encryption"]);
        assert!(!weakens_encryption(
            "Properties.Encrypted",
            Some(&json!(false)),
            Some(&json!(true))
        ));
        assert!(weakens_encryption(
            "Properties.Encrypted",
            Some(&json!(true)),
            Some(&json!(false))
        ));
    }
}
