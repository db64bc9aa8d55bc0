//! A CloudFormation template (YAML or JSON) as a JSON value, with the YAML short forms
//! of the intrinsic functions written out as CloudFormation reads them (`!Ref X` is
//! `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` is
//! `{"Fn::Sub": s}`), so two templates compare by meaning, not by spelling.

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TemplateError {
    #[error("{what} is not a valid CloudFormation template: {message}")]
    Parse { what: String, message: String },
}

/// Parses `text`; `what` names it in errors (a file, or "the deployed template of STACK").
pub fn parse(text: &str, what: &str) -> Result<Value, TemplateError> {
    let yaml: Yaml = serde_yaml_ng::from_str(text).map_err(|e| TemplateError::Parse {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    let value = convert(yaml).map_err(|message| TemplateError::Parse {
        what: what.to_string(),
        message,
    })?;
    if !value.is_object() {
        return Err(TemplateError::Parse {
            what: what.to_string(),
            message: "the top level is not a map".to_string(),
        });
    }
    Ok(value)
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

fn convert(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => {
            Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(format!("a map key that is not a string: {other:?}")),
                };
                out.insert(key, convert(v)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = convert(tagged.value)?;
            let (key, value) = match name {
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
            Value::Object(out)
        }
    })
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
    fn a_broken_template_names_itself() {
        let e = parse("Resources: [", "the deployed template of s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the deployed template of s"), "{e}");
        let e = parse("- a\n- b\n", "t.yaml").unwrap_err().to_string();
        assert!(e.contains("not a map"), "{e}");
    }
}
