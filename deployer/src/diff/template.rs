//! A CloudFormation template (YAML or JSON) as a JSON value, with the YAML short forms
//! of the intrinsic functions written out as CloudFormation reads them (`!Ref X` is
//! `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` is
//! `{"Fn::Sub": s}`), so two templates compare by meaning, not by spelling.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};

use crate::config::yaml::{self as config_yaml, resolve_plain};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TemplateError {
    #[error("{what} is not a valid CloudFormation template: {message}")]
    Parse { what: String, message: String },
}

/// Values a template may expand to, aliases included: CloudFormation's own limit (1 MB
/// of template) is far below it, and an alias bomb stops here.
const MAX_NODES: usize = 1_000_000;

/// Parses `text`; `what` names it in errors (a file, or "the deployed template of STACK").
/// JSON is YAML too, so one parser reads both.
pub fn parse(text: &str, what: &str) -> Result<Value, TemplateError> {
    let fail = |message: String| TemplateError::Parse {
        what: what.to_string(),
        message,
    };
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        match next {
            Ok((event, _)) => builder.on_event(event).map_err(&fail)?,
            Err(e) => {
                return Err(fail(format!("line {}: {}", e.marker().line(), e.info())));
            }
        }
    }
    match builder.root {
        Some(value) if value.is_object() => Ok(value),
        Some(_) => Err(fail("the top level is not a map".to_string())),
        None => Err(fail("it holds no YAML document".to_string())),
    }
}

/// A collection being read, with its anchor and tag.
enum Open {
    Seq(Vec<Value>, usize, Option<String>),
    Map(Map<String, Value>, Option<String>, usize, Option<String>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    nodes: usize,
    documents: usize,
}

impl Builder {
    fn on_event(&mut self, event: Event<'_>) -> Result<(), String> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err("a template is one YAML document; this has a second `---`".into());
                }
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1)?;
                // A key is its text as written; a value is resolved as YAML reads it
                // (plain `true`, `1`, `null`), quoted text staying a string.
                if let Some(Open::Map(_, None, _, _)) = self.stack.last()
                    && tag.is_none()
                {
                    if let Some(Open::Map(_, pending, _, _)) = self.stack.last_mut() {
                        *pending = Some(text.into_owned());
                    }
                    return Ok(());
                }
                let value = if style == ScalarStyle::Plain && tag.is_none() {
                    json(resolve_plain(&text))
                } else {
                    Value::String(text.into_owned())
                };
                let value = short_form(tag.map(|t| t.suffix.clone()), value)?;
                self.push(value, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1)?;
                self.expect_value()?;
                self.stack
                    .push(Open::Seq(Vec::new(), anchor, tag.map(|t| t.suffix.clone())));
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1)?;
                self.expect_value()?;
                self.stack.push(Open::Map(
                    Map::new(),
                    None,
                    anchor,
                    tag.map(|t| t.suffix.clone()),
                ));
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, tag) = match self.stack.pop() {
                    Some(Open::Seq(items, anchor, tag)) => (Value::Array(items), anchor, tag),
                    Some(Open::Map(map, _, anchor, tag)) => (Value::Object(map), anchor, tag),
                    None => return Err("a collection ends that never began".into()),
                };
                let value = short_form(tag, value)?;
                self.push(value, anchor)
            }
            Event::Alias(id) => {
                let Some(n) = self.anchors.get(&id).map(size) else {
                    return Err("an alias to an unknown anchor".into());
                };
                // Counted before cloning, so a bomb never allocates.
                self.count(n)?;
                let Some(value) = self.anchors.get(&id).cloned() else {
                    return Err("an alias to an unknown anchor".into());
                };
                self.push(value, 0)
            }
        }
    }

    fn count(&mut self, n: usize) -> Result<(), String> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "it expands to more than {MAX_NODES} values (aliases included)"
            ));
        }
        Ok(())
    }

    /// A collection or tagged value where a map wants a key is a key that is not text.
    fn expect_value(&self) -> Result<(), String> {
        match self.stack.last() {
            Some(Open::Map(_, None, _, _)) => Err("a map key that is not a string".into()),
            _ => Ok(()),
        }
    }

    fn push(&mut self, value: Value, anchor: usize) -> Result<(), String> {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Open::Seq(items, _, _)) => {
                items.push(value);
                Ok(())
            }
            Some(Open::Map(map, pending, _, _)) => match pending.take() {
                Some(key) => {
                    if map.insert(key.clone(), value).is_some() {
                        return Err(format!("the key {key:?} appears twice in one map"));
                    }
                    Ok(())
                }
                None => match value {
                    Value::String(key) => {
                        *pending = Some(key);
                        Ok(())
                    }
                    _ => Err("a map key that is not a string".into()),
                },
            },
        }
    }
}

/// Values in `value`, itself included.
fn size(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(size).sum(),
        Value::Object(map) => map.values().map(size).sum(),
        _ => 0,
    }
}

fn json(value: config_yaml::Value) -> Value {
    match value {
        config_yaml::Value::Null => Value::Null,
        config_yaml::Value::Bool(b) => Value::Bool(b),
        config_yaml::Value::Int(i) => Value::from(i),
        config_yaml::Value::Float(f) => {
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        config_yaml::Value::String(s) => Value::String(s),
        // Plain scalars resolve to the kinds above only.
        config_yaml::Value::Seq(_) | config_yaml::Value::Map(_) => Value::Null,
    }
}

/// A CloudFormation short form (`!Ref X`, `!GetAtt A.B`, `!Sub s`, ...) as its long
/// form; an untagged value as it is.
fn short_form(tag: Option<String>, value: Value) -> Result<Value, String> {
    let Some(tag) = tag else {
        return Ok(value);
    };
    let (key, value) = match tag.as_str() {
        // `!!str` and friends: the core schema's own tags change nothing here.
        "str" | "int" | "float" | "bool" | "null" | "map" | "seq" => return Ok(value),
        "Ref" => ("Ref".to_string(), value),
        "Condition" => ("Condition".to_string(), value),
        // `!GetAtt Resource.Attribute` (the attribute may itself hold dots).
        "GetAtt" => match value {
            Value::String(s) => {
                let (resource, attribute) = s
                    .split_once('.')
                    .ok_or_else(|| format!("!GetAtt {s:?} needs RESOURCE.ATTRIBUTE"))?;
                (
                    "Fn::GetAtt".to_string(),
                    Value::Array(vec![resource.into(), attribute.into()]),
                )
            }
            other => ("Fn::GetAtt".to_string(), other),
        },
        other => (format!("Fn::{other}"), value),
    };
    let mut out = Map::new();
    out.insert(key, value);
    Ok(Value::Object(out))
}

/// `text` without its comment lines, when that leaves the template's meaning exactly as
/// it was (checked by parsing both): what CloudFormation is sent, so a template whose
/// comments push it over the inline limit can still go inline. `None` when nothing would
/// be saved or the meaning would change (a `#` line inside a block scalar).
pub fn without_comments(text: &str) -> Option<String> {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let compact = kept.join("\n") + "\n";
    if compact.len() >= text.len() {
        return None;
    }
    match (parse(text, "template"), parse(&compact, "template")) {
        (Ok(a), Ok(b)) if a == b => Some(compact),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn comment_lines_go_only_when_the_meaning_stays() {
        let t = "# head\nResources:\n  # why\n  A:\n    Type: X  # kept: not a whole line\n";
        let compact = without_comments(t).unwrap();
        assert_eq!(
            compact,
            "Resources:\n  A:\n    Type: X  # kept: not a whole line\n"
        );
        // A `#` line inside a block scalar is content: stripping it would change the value.
        let block = "Resources:\n  A:\n    Code: |\n      # a shell comment\n      run\n";
        assert_eq!(without_comments(block), None);
        assert_eq!(without_comments("A: 1\n"), None);
    }

    #[test]
    fn short_forms_read_as_the_long_forms() {
        let yaml = r#"
Resources:
  A:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-x"
      Tags:
        - Key: k
          Value: !Ref Env
      Arn: !GetAtt Role.Arn
      Id: !GetAtt [Role, RoleId]
      Joined: !Join [",", [!Ref A, !Ref B]]
"#;
        let long = r#"{"Resources": {"A": {"Type": "AWS::S3::Bucket", "Properties": {
            "BucketName": {"Fn::Sub": "${AWS::StackName}-x"},
            "Tags": [{"Key": "k", "Value": {"Ref": "Env"}}],
            "Arn": {"Fn::GetAtt": ["Role", "Arn"]},
            "Id": {"Fn::GetAtt": ["Role", "RoleId"]},
            "Joined": {"Fn::Join": [",", [{"Ref": "A"}, {"Ref": "B"}]]}}}}}"#;
        assert_eq!(parse(yaml, "a").unwrap(), parse(long, "b").unwrap());
        assert_eq!(
            parse(yaml, "a").unwrap()["Resources"]["A"]["Properties"]["Arn"],
            json!({"Fn::GetAtt": ["Role", "Arn"]})
        );
    }

    #[test]
    fn scalars_read_as_yaml_reads_them_and_keys_stay_text() {
        let t = parse(
            "A: true\nB: \"true\"\nC: 10\nD: '10'\nE: ~\nF: 1.5\n1: one\nG: !If [Cond, !Ref X, !Ref AWS::NoValue]\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"A": true, "B": "true", "C": 10, "D": "10", "E": null, "F": 1.5, "1": "one",
                   "G": {"Fn::If": ["Cond", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]}})
        );
    }

    #[test]
    fn hostile_templates_are_refused() {
        let e = parse("A: 1\nA: 2\n", "t").unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = parse("? [a, b]\n: c\n", "t").unwrap_err().to_string();
        assert!(e.contains("not a string"), "{e}");
        let e = parse("A: 1\n---\nB: 2\n", "t").unwrap_err().to_string();
        assert!(e.contains("second"), "{e}");
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&bomb, "t").unwrap_err().to_string();
        assert!(e.contains("expands to more than"), "{e}");
        // Anchors and aliases within the budget are read as copies.
        let t = parse("A: &x {k: v}\nB: *x\n", "t").unwrap();
        assert_eq!(t["B"], json!({"k": "v"}));
    }

    #[test]
    fn a_broken_template_names_itself() {
        let e = parse("Resources: [", "the deployed template of s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the deployed template of s"), "{e}");
        let e = parse("- a\n- b\n", "t.yaml").unwrap_err().to_string();
        assert!(e.contains("not a map"), "{e}");
    }
}
