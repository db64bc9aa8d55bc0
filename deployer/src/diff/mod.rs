//! What a deployment would change, resource by resource and property by property, the
//! way `cdk diff` shows it: from two templates (structural, offline), merged with AWS's
//! own view from a change set when one exists (see `crate::changeset`).
//!
//! - `template`: a template as a JSON value, short forms expanded;
//! - `replacement`: which property changes replace a resource, from the resource
//!   provider schemas;
//! - `security`: IAM statements and security-group rules before and after, and the
//!   changes that need approval;
//! - `format`: text, Markdown (a pull-request comment) and JSON.

pub mod format;
pub mod replacement;
pub mod security;
pub mod template;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Modify,
    Remove,
}

impl Action {
    /// `+`, `>` or `-`, as the compact listing shows it.
    pub fn sign(self) -> char {
        match self {
            Action::Add => '+',
            Action::Modify => '>',
            Action::Remove => '-',
        }
    }
}

/// Whether a modified resource is replaced (a new physical resource, the old one deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    No,
    /// AWS says it depends on a value only known while deploying.
    Conditional,
    Yes,
}

/// Who said so: AWS in a change set, or this tool from the resource schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    ChangeSet,
    Predicted,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyChange {
    /// Dotted path from the resource, e.g. `Properties.Environment.Variables.X`.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// This property is create-only: changing it replaces the resource.
    pub replaces: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    pub action: Action,
    pub replacement: Replacement,
    pub replacement_source: Source,
    pub properties: Vec<PropertyChange>,
}

/// Resource types whose replacement or removal loses data or cuts every client off: the
/// file system (its files) and the mount targets the stack owns.
pub const DATA_TYPES: &[&str] = &["AWS::EFS::FileSystem", "AWS::EFS::MountTarget"];

impl ResourceChange {
    /// This change replaces or removes a resource of [`DATA_TYPES`].
    pub fn endangers_data(&self) -> bool {
        DATA_TYPES.contains(&self.resource_type.as_str())
            && (self.action == Action::Remove || self.replacement != Replacement::No)
    }
}

/// A changed key of a flat map (parameters, outputs, resolved configuration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueChange {
    pub key: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl ValueChange {
    pub fn action(&self) -> Action {
        match (&self.before, &self.after) {
            (None, _) => Action::Add,
            (_, None) => Action::Remove,
            _ => Action::Modify,
        }
    }
}

/// Everything that differs between what is deployed (or another revision) and this one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    pub environment: String,
    pub stack: String,
    /// What the diff compares with, e.g. "deployed stack" or "git HEAD".
    pub against: String,
    pub resources: Vec<ResourceChange>,
    pub parameters: Vec<ValueChange>,
    pub outputs: Vec<ValueChange>,
    pub config: Vec<ValueChange>,
    /// IAM statements gained (`add`) and lost (`remove`), one row per action.
    pub iam: Vec<security::Change<security::IamRow>>,
    /// Security-group rules gained and lost.
    pub security_groups: Vec<security::Change<security::RuleRow>>,
    /// What needs a person's approval beyond `--yes`.
    pub risks: Vec<security::Risk>,
    /// Things the reader should know about what was not compared.
    pub notes: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.parameters.is_empty()
            && self.outputs.is_empty()
            && self.config.is_empty()
    }

    /// The changes that replace or remove the file system or a mount target.
    pub fn endangered(&self) -> Vec<&ResourceChange> {
        self.resources
            .iter()
            .filter(|r| r.endangers_data())
            .collect()
    }

    pub fn count(&self, action: Action) -> usize {
        self.resources.iter().filter(|r| r.action == action).count()
    }

    pub fn replaced(&self) -> usize {
        self.resources
            .iter()
            .filter(|r| r.replacement != Replacement::No)
            .count()
    }
}

/// Resource-level differences between two parsed templates. Replacement is predicted
/// from the create-only properties of each type.
pub fn resources(before: &Value, after: &Value) -> Vec<ResourceChange> {
    let empty = Map::new();
    let (old, new) = (
        resource_map(before).unwrap_or(&empty),
        resource_map(after).unwrap_or(&empty),
    );
    let ids: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    ids.into_iter()
        .filter_map(|id| match (old.get(id), new.get(id)) {
            (Some(a), Some(b)) if a != b => Some(modified(id, a, b)),
            (None, Some(r)) => Some(whole(id, r, Action::Add)),
            (Some(r), None) => Some(whole(id, r, Action::Remove)),
            _ => None,
        })
        .collect()
}

fn resource_map(template: &Value) -> Option<&Map<String, Value>> {
    template.get("Resources").and_then(Value::as_object)
}

fn type_of(resource: &Value) -> String {
    resource
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A resource added or removed as a whole.
fn whole(id: &str, resource: &Value, action: Action) -> ResourceChange {
    ResourceChange {
        logical_id: id.to_string(),
        resource_type: type_of(resource),
        action,
        replacement: Replacement::No,
        replacement_source: Source::Predicted,
        properties: Vec::new(),
    }
}

/// A resource in both templates that differs: its changed properties, and whether a
/// create-only one (or the type) changed, which replaces it.
fn modified(id: &str, before: &Value, after: &Value) -> ResourceChange {
    let resource_type = type_of(after);
    let mut properties = Vec::new();
    compare("", before, after, &mut properties);
    for p in &mut properties {
        p.replaces = p
            .path
            .strip_prefix("Properties.")
            .is_some_and(|path| replacement::replaces(&resource_type, path));
    }
    let replaced = type_of(before) != resource_type || properties.iter().any(|p| p.replaces);
    ResourceChange {
        logical_id: id.to_string(),
        resource_type,
        action: Action::Modify,
        replacement: if replaced {
            Replacement::Yes
        } else {
            Replacement::No
        },
        replacement_source: Source::Predicted,
        properties,
    }
}

/// Changed keys of two flat maps.
pub fn values(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<ValueChange> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| ValueChange {
            key: k.clone(),
            before: before.get(k).cloned(),
            after: after.get(k).cloned(),
        })
        .collect()
}

/// The outputs section as key → value expression.
pub fn outputs(template: &Value) -> Map<String, Value> {
    template
        .get("Outputs")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.get("Value").cloned().unwrap_or(Value::Null)))
                .collect()
        })
        .unwrap_or_default()
}

/// A nested JSON object as dotted keys (`scaler.file_count_threshold`); lists stay whole.
pub fn flatten(value: &Value) -> Map<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = Map::new();
    walk("", value, &mut out);
    out
}

/// Keys that name an element of a list of objects: a statement's `Sid`, a container's,
/// variable's or secret's `Name`, an inline policy's `PolicyName`, a tag's `Key`, a
/// rule target's `Id`.
const ELEMENT_KEYS: &[&str] = &["Sid", "Name", "PolicyName", "Key", "Id"];

/// The key that names every element of both lists, uniquely in each, if one does.
fn element_key(a: &[Value], b: &[Value]) -> Option<&'static str> {
    ELEMENT_KEYS.iter().copied().find(|key| {
        [a, b].iter().all(|list| {
            let names: Vec<Option<&str>> = list
                .iter()
                .map(|e| e.get(*key).and_then(Value::as_str))
                .collect();
            let unique: BTreeSet<&str> = names.iter().flatten().copied().collect();
            names.iter().all(Option::is_some) && unique.len() == list.len()
        })
    })
}

/// Records where `a` and `b` differ, down to the value: maps key by key, lists of named
/// objects (statements, containers, variables) element by name (`[Name=ROUTER_PORT]`),
/// other lists of one length element by index; a list that only changed order, or
/// changed length without names, as a whole (CloudFormation sees the order).
fn compare(path: &str, a: &Value, b: &Value, out: &mut Vec<PropertyChange>) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        // `Fn::Sub` with variables: its text and its variables, each on their own (a
        // dashboard body is one long text).
        (Value::Object(x), Value::Object(y)) if matches!((x.get("Fn::Sub"), y.get("Fn::Sub")), (Some(Value::Array(p)), Some(Value::Array(q))) if p.len() == q.len()) => {
            if let (Some(Value::Array(p)), Some(Value::Array(q))) =
                (x.get("Fn::Sub"), y.get("Fn::Sub"))
            {
                for (i, (a, b)) in p.iter().zip(q).enumerate() {
                    compare(&format!("{}[{i}]", join("Fn::Sub")), a, b, out);
                }
            }
        }
        (Value::Object(x), Value::Object(y)) if !is_intrinsic(x) && !is_intrinsic(y) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(a), Some(b)) => compare(&join(k), a, b, out),
                    (before, after) => out.push(PropertyChange {
                        path: join(k),
                        before: before.cloned(),
                        after: after.cloned(),
                        replaces: false,
                    }),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if !x.is_empty() && !y.is_empty() => {
            let start = out.len();
            if let Some(key) = element_key(x, y) {
                let name = |e: &Value| {
                    e.get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let names: Vec<String> = x.iter().chain(y.iter()).map(name).collect();
                let mut seen = BTreeSet::new();
                for n in names.iter().filter(|n| seen.insert(n.as_str())) {
                    let at = format!("{path}[{key}={n}]");
                    let find = |list: &[Value]| list.iter().find(|e| name(e) == *n).cloned();
                    match (find(x), find(y)) {
                        (Some(a), Some(b)) => compare(&at, &a, &b, out),
                        (before, after) => out.push(PropertyChange {
                            path: at,
                            before,
                            after,
                            replaces: false,
                        }),
                    }
                }
            } else if x.len() == y.len() {
                for (i, (a, b)) in x.iter().zip(y).enumerate() {
                    compare(&format!("{path}[{i}]"), a, b, out);
                }
            }
            if out.len() == start {
                // Same elements, another order; or another length without names.
                out.push(PropertyChange {
                    path: path.to_string(),
                    before: Some(a.clone()),
                    after: Some(b.clone()),
                    replaces: false,
                });
            }
        }
        _ => out.push(PropertyChange {
            path: path.to_string(),
            before: Some(a.clone()),
            after: Some(b.clone()),
            replaces: false,
        }),
    }
}

/// `{"Ref": …}` or `{"Fn::…": …}`: shown whole, not key by key.
fn is_intrinsic(map: &Map<String, Value>) -> bool {
    map.len() == 1
        && map
            .keys()
            .next()
            .is_some_and(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn template(resources: Value) -> Value {
        json!({ "Resources": resources })
    }

    #[test]
    fn added_removed_and_modified_resources() {
        let before = template(json!({
            "Old": {"Type": "AWS::S3::Bucket"},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "Environment": {"Variables": {"THRESHOLD": "100000", "KEEP": "x"}},
                "MemorySize": 1024}},
            "Same": {"Type": "AWS::SNS::Topic"},
        }));
        let after = template(json!({
            "New": {"Type": "AWS::Logs::LogGroup"},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "Environment": {"Variables": {"THRESHOLD": "50", "KEEP": "x"}},
                "MemorySize": 1024}},
            "Same": {"Type": "AWS::SNS::Topic"},
        }));
        let changes = resources(&before, &after);
        let summary: Vec<(char, &str)> = changes
            .iter()
            .map(|c| (c.action.sign(), c.logical_id.as_str()))
            .collect();
        assert_eq!(summary, [('>', "Fn"), ('+', "New"), ('-', "Old")]);
        let function = &changes[0];
        assert_eq!(function.replacement, Replacement::No);
        assert_eq!(
            function.properties,
            [PropertyChange {
                path: "Properties.Environment.Variables.THRESHOLD".into(),
                before: Some(json!("100000")),
                after: Some(json!("50")),
                replaces: false,
            }]
        );
    }

    #[test]
    fn a_create_only_property_predicts_replacement() {
        let before = template(json!({"Subnet": {"Type": "AWS::EC2::Subnet",
            "Properties": {"CidrBlock": "10.0.1.0/24", "VpcId": {"Ref": "Vpc"}}}}));
        let after = template(json!({"Subnet": {"Type": "AWS::EC2::Subnet",
            "Properties": {"CidrBlock": "10.0.9.0/24", "VpcId": {"Ref": "Vpc"}}}}));
        let changes = resources(&before, &after);
        assert_eq!(changes[0].replacement, Replacement::Yes);
        assert_eq!(changes[0].replacement_source, Source::Predicted);
        assert!(changes[0].properties[0].replaces);
    }

    #[test]
    fn intrinsics_are_compared_whole() {
        let before = template(json!({"R": {"Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": {"Fn::Sub": "${A}-x"}}}}));
        let after = template(json!({"R": {"Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": {"Fn::Sub": "${A}-y"}}}}));
        let changes = resources(&before, &after);
        assert_eq!(changes[0].properties[0].path, "Properties.TopicName");
        assert_eq!(
            changes[0].properties[0].after,
            Some(json!({"Fn::Sub": "${A}-y"}))
        );
    }

    #[test]
    fn lists_compare_by_element_name_down_to_the_value() {
        let container = |port: &str, extra: bool| {
            let mut env = vec![
                json!({"Name": "ROUTER_PORT", "Value": port}),
                json!({"Name": "RUST_LOG", "Value": "info"}),
            ];
            if extra {
                env.push(json!({"Name": "NEW", "Value": "1"}));
            }
            json!({"Resources": {"Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
                "ContainerDefinitions": [{"Name": "router", "Environment": env, "Cpu": 256}]}}}})
        };
        let changes = resources(&container("8080", false), &container("9000", true));
        let paths: Vec<(&str, Option<&Value>, Option<&Value>)> = changes[0]
            .properties
            .iter()
            .map(|p| (p.path.as_str(), p.before.as_ref(), p.after.as_ref()))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    "Properties.ContainerDefinitions[Name=router].Environment[Name=ROUTER_PORT].Value",
                    Some(&json!("8080")),
                    Some(&json!("9000"))
                ),
                (
                    "Properties.ContainerDefinitions[Name=router].Environment[Name=NEW]",
                    None,
                    Some(&json!({"Name": "NEW", "Value": "1"}))
                ),
            ]
        );
        // Statements by Sid; one action more is one change.
        let role = |actions: Value| {
            json!({"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Sid": "A", "Effect": "Allow", "Action": actions, "Resource": "*"}]}}]}}}})
        };
        let changes = resources(&role(json!(["a:X"])), &role(json!(["a:X", "a:Y"])));
        assert_eq!(changes[0].properties.len(), 1);
        assert_eq!(
            changes[0].properties[0].path,
            "Properties.Policies[PolicyName=p].PolicyDocument.Statement[Sid=A].Action"
        );
        // Only the order changed: the list, whole.
        let t = |order: Value| json!({"Resources": {"S": {"Type": "AWS::EC2::Subnet", "Properties": {"Tags": order}}}});
        let a = json!([{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]);
        let b = json!([{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}]);
        let changes = resources(&t(a), &t(b));
        assert_eq!(changes[0].properties[0].path, "Properties.Tags");
    }

    #[test]
    fn flat_values_compare_key_by_key() {
        let before = flatten(&json!({"scaler": {"threshold": 1, "schedule": "rate(5 minutes)"}}));
        let after =
            flatten(&json!({"scaler": {"threshold": 2, "schedule": "rate(5 minutes)"}, "x": [1]}));
        let changes = values(&before, &after);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].key, "scaler.threshold");
        assert_eq!(changes[0].action(), Action::Modify);
        assert_eq!(changes[1].key, "x");
        assert_eq!(changes[1].action(), Action::Add);
    }
}
