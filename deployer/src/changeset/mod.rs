//! Change sets: what AWS says a deployment would do, merged with the structural diff of
//! the templates (`crate::diff`), and the live progress of executing one (`follow`).
//!
//! AWS's change set is authoritative about which resources change and whether they are
//! replaced; the template diff adds the property values, which a change set does not
//! carry. Where AWS gives no replacement flag (or the diff is offline), the prediction
//! from the resource schemas stands, marked as predicted.

pub mod follow;

use std::collections::BTreeMap;

use crate::aws::cloudformation::SetChange;
use crate::diff::{Action, PropertyChange, Replacement, ResourceChange, Source};

/// The resources a change set changes, with the template diff's property changes.
pub fn merge(aws: &[SetChange], predicted: Vec<ResourceChange>) -> Vec<ResourceChange> {
    let mut predicted: BTreeMap<String, ResourceChange> = predicted
        .into_iter()
        .map(|r| (r.logical_id.clone(), r))
        .collect();
    let mut merged: Vec<ResourceChange> = aws
        .iter()
        .map(|c| {
            let guess = predicted.remove(&c.logical_id);
            let action = match c.action.as_str() {
                "Add" | "Import" => Action::Add,
                "Remove" => Action::Remove,
                _ => Action::Modify,
            };
            let (replacement, replacement_source) = match c.replacement.as_deref() {
                Some("True") => (Replacement::Yes, Source::ChangeSet),
                Some("Conditional") => (Replacement::Conditional, Source::ChangeSet),
                Some(_) => (Replacement::No, Source::ChangeSet),
                None => guess
                    .as_ref()
                    .map_or((Replacement::No, Source::Predicted), |g| {
                        (g.replacement, g.replacement_source)
                    }),
            };
            let mut properties = guess.map(|g| g.properties).unwrap_or_default();
            // Targets AWS names that the template diff did not see change (a parameter
            // or another resource's new attribute flows into them).
            for (target, recreates) in &c.targets {
                let seen = properties.iter().any(|p| within(&p.path, target));
                if !seen {
                    properties.push(PropertyChange {
                        path: target.clone(),
                        before: None,
                        after: None,
                        replaces: *recreates,
                    });
                }
            }
            if replacement_source == Source::ChangeSet {
                for p in &mut properties {
                    p.replaces |= c.targets.iter().any(|(t, r)| *r && within(&p.path, t));
                }
            }
            ResourceChange {
                logical_id: c.logical_id.clone(),
                resource_type: c.resource_type.clone(),
                action,
                replacement,
                replacement_source,
                properties,
            }
        })
        .collect();
    merged.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    merged
}

/// Whether the dotted `path` is `target` or lies inside it.
fn within(path: &str, target: &str) -> bool {
    path == target
        || path
            .strip_prefix(target)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn predicted(id: &str, replacement: Replacement, path: &str) -> ResourceChange {
        ResourceChange {
            logical_id: id.into(),
            resource_type: "AWS::EC2::Subnet".into(),
            action: Action::Modify,
            replacement,
            replacement_source: Source::Predicted,
            properties: vec![PropertyChange {
                path: path.into(),
                before: Some(json!("a")),
                after: Some(json!("b")),
                replaces: replacement == Replacement::Yes,
            }],
        }
    }

    fn set_change(id: &str, replacement: Option<&str>, targets: &[(&str, bool)]) -> SetChange {
        SetChange {
            logical_id: id.into(),
            resource_type: "AWS::EC2::Subnet".into(),
            action: "Modify".into(),
            replacement: replacement.map(str::to_string),
            targets: targets.iter().map(|(t, r)| (t.to_string(), *r)).collect(),
        }
    }

    #[test]
    fn targets_match_on_dotted_boundaries() {
        assert!(within("Properties.Name", "Properties.Name"));
        assert!(within("Properties.Name.Inner", "Properties.Name"));
        assert!(!within("Properties.NameSuffix", "Properties.Name"));
    }

    #[test]
    fn aws_replacement_wins_over_the_prediction() {
        let merged = merge(
            &[set_change(
                "Subnet",
                Some("Conditional"),
                &[("Properties.CidrBlock", true)],
            )],
            vec![predicted(
                "Subnet",
                Replacement::Yes,
                "Properties.CidrBlock",
            )],
        );
        assert_eq!(merged[0].replacement, Replacement::Conditional);
        assert_eq!(merged[0].replacement_source, Source::ChangeSet);
        assert_eq!(
            merged[0].properties.len(),
            1,
            "no duplicate of a seen target"
        );
        assert_eq!(merged[0].properties[0].after, Some(json!("b")));
    }

    #[test]
    fn without_an_aws_flag_the_prediction_stands() {
        let merged = merge(
            &[set_change("Subnet", None, &[])],
            vec![predicted(
                "Subnet",
                Replacement::Yes,
                "Properties.CidrBlock",
            )],
        );
        assert_eq!(merged[0].replacement, Replacement::Yes);
        assert_eq!(merged[0].replacement_source, Source::Predicted);
    }

    #[test]
    fn only_what_aws_lists_changes_and_unseen_targets_are_shown() {
        let merged = merge(
            &[set_change(
                "Service",
                Some("False"),
                &[("Properties.TaskDefinition", false)],
            )],
            vec![predicted("Other", Replacement::No, "Metadata.x")],
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].logical_id, "Service");
        assert_eq!(merged[0].properties[0].path, "Properties.TaskDefinition");
        assert_eq!(merged[0].properties[0].after, None);
    }
}
