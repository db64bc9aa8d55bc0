//! `deployer schema`: the JSON Schema of an environment file, generated from the types
//! that parse them (`config::schema`), for editors to complete and check keys as you
//! type. Every file is one layer over `defaults.yaml` and the built-in defaults, so the
//! schema requires nothing; it knows every key, its type, its allowed values and its
//! documentation, and refuses unknown keys as the deployer does.

use std::process::ExitCode;

use serde_json::Value;

use crate::config::EnvironmentConfig;

pub fn run() -> miette::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&schema())
            .map_err(|e| miette::miette!("cannot write the schema: {e}"))?
    );
    Ok(ExitCode::SUCCESS)
}

/// The schema of one environment file.
pub fn schema() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(EnvironmentConfig)).unwrap_or(Value::Null);
    drop_required(&mut schema);
    if let Value::Object(root) = &mut schema {
        root.insert(
            "title".into(),
            Value::String("EFS mount-target autoscaler environment (one layer)".into()),
        );
    }
    schema
}

/// Removes every `required` list: a layer may leave any key to the layers below it.
fn drop_required(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("required");
            for v in map.values_mut() {
                drop_required(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_required),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_knows_keys_values_and_docs_and_requires_nothing() {
        let s = schema();
        let text = s.to_string();
        assert!(!text.contains("\"required\""), "a layer requires nothing");
        assert_eq!(s["additionalProperties"], false, "unknown keys are refused");
        assert!(s["properties"]["scaler"].is_object());
        assert!(
            text.contains("\"canary\"") && text.contains("\"all-at-once\""),
            "{text}"
        );
        assert!(
            text.contains("Whether the EventBridge schedule is enabled."),
            "doc comments are descriptions"
        );
    }
}
