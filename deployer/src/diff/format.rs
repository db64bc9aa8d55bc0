//! A [`Diff`] as text (terminal and logs), Markdown (a pull-request comment) or JSON
//! (for scripts). All three list the same things in the same order.

use std::fmt::Write;

use serde_json::Value;

use super::security::{Change, IamRow, RuleRow};
use super::{Action, Diff, Replacement, ResourceChange, Source, ValueChange};

/// Values longer than this are cut in text and Markdown (JSON keeps them whole): an IAM
/// policy or a container definition would bury the rest.
const MAX_VALUE: usize = 160;

/// A property AWS says changes without the templates differing there.
const UNKNOWN: &str = "changes (its value is known only while deploying)";

fn show(value: &Option<Value>) -> String {
    let text = match value {
        None => "(none)".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    };
    if text.chars().count() > MAX_VALUE {
        let cut: String = text.chars().take(MAX_VALUE).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A change of a long or multi-line text (a dashboard body, a policy written as text)
/// as the lines that differ, `-` before and `+` after; `None` for anything else.
fn line_diff(before: &Option<Value>, after: &Option<Value>) -> Option<Vec<String>> {
    let (Some(Value::String(a)), Some(Value::String(b))) = (before, after) else {
        return None;
    };
    if !(a.contains('\n') || b.contains('\n')) {
        return None;
    }
    let (x, y): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence of lines; texts of thousands of lines are shown cut.
    if x.len().saturating_mul(y.len()) > 4_000_000 {
        return None;
    }
    let mut lcs = vec![vec![0u32; y.len() + 1]; x.len() + 1];
    for i in (0..x.len()).rev() {
        for j in (0..y.len()).rev() {
            lcs[i][j] = if x[i] == y[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < x.len() || j < y.len() {
        if i < x.len() && j < y.len() && x[i] == y[j] {
            i += 1;
            j += 1;
        } else if i < x.len() && (j == y.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", x[i].trim()));
            i += 1;
        } else {
            out.push(format!("+ {}", y[j].trim()));
            j += 1;
        }
    }
    Some(out)
}

fn replacement_note(r: &ResourceChange) -> Option<String> {
    let why: Vec<&str> = r
        .properties
        .iter()
        .filter(|p| p.replaces)
        .map(|p| p.path.trim_start_matches("Properties."))
        .collect();
    let because = if why.is_empty() {
        String::new()
    } else {
        format!(": {} is create-only", why.join(", "))
    };
    match (r.replacement, r.replacement_source) {
        (Replacement::No, _) => None,
        (Replacement::Yes, Source::ChangeSet) => Some("REPLACED".to_string()),
        (Replacement::Conditional, Source::ChangeSet) => {
            Some("may be REPLACED (conditional)".to_string())
        }
        (Replacement::Yes, Source::Predicted) => Some(format!("REPLACED (predicted{because})")),
        (Replacement::Conditional, Source::Predicted) => {
            Some(format!("may be REPLACED (predicted{because})"))
        }
    }
}

/// The one-line count: `2 to add, 1 to change (1 replaced), 0 to remove`.
pub fn summary(diff: &Diff) -> String {
    if diff.is_empty() {
        return "no changes".to_string();
    }
    let mut s = format!(
        "{} to add, {} to change, {} to remove",
        diff.count(Action::Add),
        diff.count(Action::Modify),
        diff.count(Action::Remove)
    );
    if diff.replaced() > 0 {
        let _ = write!(s, " ({} replaced)", diff.replaced());
    }
    let others = diff.parameters.len() + diff.outputs.len() + diff.config.len();
    if others > 0 {
        let _ = write!(
            s,
            "; {} parameter, {} output, {} configuration change(s)",
            diff.parameters.len(),
            diff.outputs.len(),
            diff.config.len()
        );
    }
    s
}

pub fn text(diff: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (environment {}) against {}: {}",
        diff.stack,
        diff.environment,
        diff.against,
        summary(diff)
    );
    let width = diff
        .resources
        .iter()
        .map(|r| r.logical_id.len())
        .max()
        .unwrap_or(0);
    for r in &diff.resources {
        let mut line = format!(
            "  {} {:width$}  {}",
            r.action.sign(),
            r.logical_id,
            r.resource_type
        );
        if let Some(note) = replacement_note(r) {
            let _ = write!(line, "  {note}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if r.endangers_data() {
            let _ = writeln!(out, "{}", red(&danger(r)));
        }
        for p in &r.properties {
            let replaces = if p.replaces { "  (replaces)" } else { "" };
            if p.before.is_none() && p.after.is_none() {
                // AWS names it, the templates do not differ there: a parameter or
                // another resource's new attribute flows in.
                let _ = writeln!(out, "      {}: {UNKNOWN}{replaces}", p.path);
            } else if let Some(lines) = line_diff(&p.before, &p.after) {
                let _ = writeln!(out, "      {}:{replaces}", p.path);
                for line in lines {
                    let _ = writeln!(out, "        {line}");
                }
            } else {
                let _ = writeln!(
                    out,
                    "      {}: {} -> {}{replaces}",
                    p.path,
                    show(&p.before),
                    show(&p.after),
                );
            }
        }
    }
    if !diff.iam.is_empty() {
        let _ = writeln!(out, "IAM (who may do what):");
        for line in table(&iam_table(&diff.iam)) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !diff.security_groups.is_empty() {
        let _ = writeln!(out, "Security groups:");
        for line in table(&rule_table(&diff.security_groups)) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !diff.risks.is_empty() {
        let _ = writeln!(
            out,
            "Needs approval (`up` asks even with --yes; --approve-risky approves):"
        );
        for r in &diff.risks {
            let _ = writeln!(out, "{}", red(&format!("  !! {}", r.what)));
        }
    }
    for (title, changes) in sections(diff) {
        let _ = writeln!(out, "{title}:");
        for c in changes {
            let _ = writeln!(
                out,
                "  {} {}: {} -> {}",
                c.action().sign(),
                c.key,
                show(&c.before),
                show(&c.after)
            );
        }
    }
    for note in &diff.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn sections(diff: &Diff) -> impl Iterator<Item = (&'static str, &Vec<ValueChange>)> {
    [
        ("Parameters", &diff.parameters),
        ("Outputs", &diff.outputs),
        ("Configuration", &diff.config),
    ]
    .into_iter()
    .filter(|(_, c)| !c.is_empty())
}

const IAM_HEADER: [&str; 8] = [
    "",
    "Resource",
    "Kind",
    "Effect",
    "Action",
    "On",
    "Principal",
    "Condition",
];
const RULE_HEADER: [&str; 6] = ["", "Group", "Direction", "Protocol", "Ports", "Peer"];

/// One row of cells per IAM change, `+` for gained, `-` for lost.
fn iam_table(changes: &[Change<IamRow>]) -> Vec<Vec<String>> {
    let mut rows = vec![IAM_HEADER.iter().map(|h| h.to_string()).collect()];
    rows.extend(changes.iter().map(|c| {
        let r = &c.row;
        vec![
            c.action.sign().to_string(),
            r.resource.clone(),
            r.kind.to_string(),
            r.effect.clone(),
            r.action.clone(),
            r.resources.clone(),
            r.principal.clone(),
            r.condition.clone(),
        ]
    }));
    rows
}

fn rule_table(changes: &[Change<RuleRow>]) -> Vec<Vec<String>> {
    let mut rows = vec![RULE_HEADER.iter().map(|h| h.to_string()).collect()];
    rows.extend(changes.iter().map(|c| {
        let r = &c.row;
        vec![
            c.action.sign().to_string(),
            r.group.clone(),
            r.direction.to_string(),
            r.protocol.clone(),
            r.ports.clone(),
            r.peer.clone(),
        ]
    }));
    rows
}

/// Rows as aligned columns (a column empty in every row is left out).
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.first().map_or(0, Vec::len);
    let shown: Vec<usize> = (0..columns)
        .filter(|&c| c == 0 || rows.iter().skip(1).any(|r| !r[c].is_empty()))
        .collect();
    let widths: Vec<usize> = shown
        .iter()
        .map(|&c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            shown
                .iter()
                .zip(&widths)
                .map(|(&c, &w)| format!("{:w$}", r[c]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect()
}

/// Rows as a Markdown table, code-formatted cells.
fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .map(|c| {
                if i == 0 || c.is_empty() {
                    cell(c)
                } else {
                    format!("`{}`", cell(c).replace('`', "'"))
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", "---|".repeat(r.len()));
        }
    }
    out
}

/// Table cells must not break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// What replacing or removing a resource of [`super::DATA_TYPES`] means.
pub fn danger(r: &ResourceChange) -> String {
    let what = if r.action == Action::Remove {
        "removed"
    } else {
        "replaced"
    };
    let consequence = if r.resource_type == "AWS::EFS::FileSystem" {
        "every file on it is lost to this stack (deleted with `deletion_policy: delete`, left behind with `retain`), and the router starts on an empty file system"
    } else {
        "clients using it lose their connection until a new one is published"
    };
    format!(
        "    !! DATA: {} would be {what}: {consequence}. `deployer up` refuses unless run with --allow-replacement {}",
        r.logical_id, r.logical_id
    )
}

/// Red on a terminal that takes colour (`NO_COLOR` unset); as it is otherwise, so files,
/// pipes and tests get plain text.
fn red(text: &str) -> String {
    use std::io::IsTerminal as _;
    let colour = std::env::var_os("NO_COLOR").is_none()
        && (std::io::stdout().is_terminal() || std::io::stderr().is_terminal());
    if colour {
        format!("\x1b[1;31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn markdown(diff: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### `deployer diff`: {} (`{}`)\n\nAgainst {}: **{}**\n",
        diff.environment,
        diff.stack,
        diff.against,
        summary(diff)
    );
    for r in diff.endangered() {
        let _ = writeln!(out, "> [!CAUTION]\n> {}\n", cell(danger(r).trim()));
    }
    if diff.replaced() > 0 {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> {} resource(s) will be replaced: a new physical resource is created and the old one deleted.\n",
            diff.replaced()
        );
    }
    if !diff.resources.is_empty() {
        let _ = writeln!(
            out,
            "| | Resource | Type | Replacement |\n|---|---|---|---|"
        );
        for r in &diff.resources {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | `{}` | {} |",
                r.action.sign(),
                cell(&r.logical_id),
                cell(&r.resource_type),
                replacement_note(r).map_or(String::new(), |n| format!("**{}**", cell(&n)))
            );
        }
        out.push('\n');
        let changed: Vec<&ResourceChange> = diff
            .resources
            .iter()
            .filter(|r| !r.properties.is_empty())
            .collect();
        if !changed.is_empty() {
            let _ = writeln!(
                out,
                "<details><summary>Property changes</summary>\n\n```diff"
            );
            for r in changed {
                let _ = writeln!(out, "@@ {} ({}) @@", r.logical_id, r.resource_type);
                for p in &r.properties {
                    if p.before.is_none() && p.after.is_none() {
                        let _ = writeln!(out, "! {}: {UNKNOWN}", p.path);
                    }
                    if let Some(lines) = line_diff(&p.before, &p.after) {
                        let _ = writeln!(out, "! {}:", p.path);
                        for line in lines {
                            let _ = writeln!(out, "{line}");
                        }
                        continue;
                    }
                    if p.before.is_some() {
                        let _ = writeln!(out, "- {}: {}", p.path, show(&p.before));
                    }
                    if p.after.is_some() {
                        let _ = writeln!(out, "+ {}: {}", p.path, show(&p.after));
                    }
                }
            }
            let _ = writeln!(out, "```\n\n</details>\n");
        }
    }
    if !diff.risks.is_empty() {
        let _ = writeln!(
            out,
            "> [!IMPORTANT]\n> Needs approval (`up` asks even with `--yes`; `--approve-risky` approves):"
        );
        for r in &diff.risks {
            let _ = writeln!(out, "> - {}", cell(&r.what));
        }
        out.push('\n');
    }
    if !diff.iam.is_empty() {
        let _ = writeln!(
            out,
            "**IAM (who may do what)**\n\n{}",
            markdown_table(&iam_table(&diff.iam))
        );
    }
    if !diff.security_groups.is_empty() {
        let _ = writeln!(
            out,
            "**Security groups**\n\n{}",
            markdown_table(&rule_table(&diff.security_groups))
        );
    }
    for (title, changes) in sections(diff) {
        let _ = writeln!(out, "**{title}**\n\n```diff");
        for c in changes {
            if c.before.is_some() {
                let _ = writeln!(out, "- {}: {}", c.key, show(&c.before));
            }
            if c.after.is_some() {
                let _ = writeln!(out, "+ {}: {}", c.key, show(&c.after));
            }
        }
        let _ = writeln!(out, "```\n");
    }
    for note in &diff.notes {
        let _ = writeln!(out, "_{}_\n", note);
    }
    out
}

pub fn json(diff: &Diff) -> String {
    let mut text = serde_json::to_string_pretty(diff).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::diff::PropertyChange;
    use serde_json::json;

    fn sample() -> Diff {
        Diff {
            environment: "prod".into(),
            stack: "efs-autoscaler-prod".into(),
            against: "the deployed stack".into(),
            resources: vec![
                ResourceChange {
                    logical_id: "ScalerFunction".into(),
                    resource_type: "AWS::Lambda::Function".into(),
                    action: Action::Modify,
                    replacement: Replacement::No,
                    replacement_source: Source::ChangeSet,
                    properties: vec![PropertyChange {
                        path: "Properties.Environment.Variables.FILE_COUNT_THRESHOLD".into(),
                        before: Some(json!("100000")),
                        after: Some(json!("50")),
                        replaces: false,
                    }],
                },
                ResourceChange {
                    logical_id: "PrivateSubnetA".into(),
                    resource_type: "AWS::EC2::Subnet".into(),
                    action: Action::Modify,
                    replacement: Replacement::Yes,
                    replacement_source: Source::Predicted,
                    properties: vec![PropertyChange {
                        path: "Properties.CidrBlock".into(),
                        before: Some(json!("10.0.1.0/24")),
                        after: Some(json!("10.0.9.0/24")),
                        replaces: true,
                    }],
                },
                ResourceChange {
                    logical_id: "Dashboard".into(),
                    resource_type: "AWS::CloudWatch::Dashboard".into(),
                    action: Action::Add,
                    replacement: Replacement::No,
                    replacement_source: Source::ChangeSet,
                    properties: vec![],
                },
            ],
            config: vec![ValueChange {
                key: "scaler.file_count_threshold".into(),
                before: Some(json!(100000)),
                after: Some(json!(50)),
            }],
            ..Diff::default()
        }
    }

    #[test]
    fn text_lists_signs_replacement_and_properties() {
        let t = text(&sample());
        assert!(
            t.contains("1 to add, 2 to change, 0 to remove (1 replaced)"),
            "{t}"
        );
        assert!(
            t.contains("  > ScalerFunction  AWS::Lambda::Function\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "> PrivateSubnetA  AWS::EC2::Subnet  REPLACED (predicted: CidrBlock is create-only)"
            ),
            "{t}"
        );
        assert!(t.contains("  + Dashboard"), "{t}");
        assert!(
            t.contains(
                "Properties.Environment.Variables.FILE_COUNT_THRESHOLD: \"100000\" -> \"50\""
            ),
            "{t}"
        );
        assert!(
            t.contains("Configuration:\n  > scaler.file_count_threshold: 100000 -> 50"),
            "{t}"
        );
    }

    #[test]
    fn markdown_is_a_table_with_a_warning_and_a_diff_block() {
        let m = markdown(&sample());
        assert!(m.contains("> [!WARNING]"), "{m}");
        assert!(
            m.contains("| `>` | `PrivateSubnetA` | `AWS::EC2::Subnet` | **REPLACED"),
            "{m}"
        );
        assert!(m.contains("```diff\n@@ ScalerFunction"), "{m}");
        assert!(
            m.contains("- Properties.Environment.Variables.FILE_COUNT_THRESHOLD: \"100000\""),
            "{m}"
        );
        assert!(m.contains("+ scaler.file_count_threshold: 50"), "{m}");
    }

    #[test]
    fn json_round_trips_the_fields() {
        let v: Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(v["resources"][1]["replacement"], "yes");
        assert_eq!(v["resources"][1]["replacement_source"], "predicted");
        assert_eq!(v["resources"][2]["action"], "add");
    }

    #[test]
    fn long_values_are_cut_in_text() {
        let long = Some(json!("x".repeat(1000)));
        assert!(show(&long).ends_with('…'));
        assert!(show(&long).chars().count() <= MAX_VALUE + 1);
    }

    #[test]
    fn a_change_only_aws_knows_is_not_shown_as_a_removal() {
        let mut d = sample();
        d.resources[0].properties.push(PropertyChange {
            path: "Properties.Image".into(),
            before: None,
            after: None,
            replaces: false,
        });
        let t = text(&d);
        assert!(t.contains(&format!("Properties.Image: {UNKNOWN}")), "{t}");
        assert!(!t.contains("(none) -> (none)"), "{t}");
        assert!(markdown(&d).contains(&format!("! Properties.Image: {UNKNOWN}")));
    }

    #[test]
    fn multi_line_texts_show_the_lines_that_differ() {
        let before = Some(json!("a\nb\nthreshold 100\nc"));
        let after = Some(json!("a\nb\nthreshold 50\nc\nd"));
        assert_eq!(
            line_diff(&before, &after).unwrap(),
            ["- threshold 100", "+ threshold 50", "+ d"]
        );
        assert!(line_diff(&Some(json!("x")), &Some(json!("y"))).is_none());
        let mut d = sample();
        d.resources[2].properties.push(PropertyChange {
            path: "Properties.DashboardBody.Fn::Sub[0]".into(),
            before,
            after,
            replaces: false,
        });
        let t = text(&d);
        assert!(t.contains("      Properties.DashboardBody.Fn::Sub[0]:\n        - threshold 100\n        + threshold 50\n        + d\n"), "{t}");
        let m = markdown(&d);
        assert!(
            m.contains("! Properties.DashboardBody.Fn::Sub[0]:\n- threshold 100\n+ threshold 50"),
            "{m}"
        );
    }

    #[test]
    fn iam_and_security_group_changes_are_tables_and_risks_are_marked() {
        use crate::diff::security::{Change, IamRow, Risk, RuleRow};
        let mut d = sample();
        d.iam = vec![Change {
            action: Action::Add,
            row: IamRow {
                resource: "ScalerRole".into(),
                kind: "policy",
                effect: "Allow".into(),
                action: "ssm:PutParameter".into(),
                resources: "arn:aws:ssm:::parameter/x".into(),
                principal: String::new(),
                condition: String::new(),
            },
        }];
        d.security_groups = vec![Change {
            action: Action::Remove,
            row: RuleRow {
                group: "RouterSecurityGroup".into(),
                direction: "ingress",
                protocol: "tcp".into(),
                ports: "8080".into(),
                peer: "${Apps}".into(),
            },
        }];
        d.risks = vec![Risk {
            kind: "iam",
            resource: "ScalerRole".into(),
            what: "broadens IAM: ScalerRole may ssm:PutParameter on arn:aws:ssm:::parameter/x"
                .into(),
        }];
        let t = text(&d);
        assert!(t.contains("IAM (who may do what):\n     Resource    Kind    Effect  Action            On\n  +  ScalerRole  policy  Allow   ssm:PutParameter  arn:aws:ssm:::parameter/x\n"), "{t}");
        assert!(t.contains("Security groups:\n     Group                Direction  Protocol  Ports  Peer\n  -  RouterSecurityGroup  ingress    tcp       8080   ${Apps}\n"), "{t}");
        assert!(
            t.contains("  !! broadens IAM: ScalerRole may ssm:PutParameter"),
            "{t}"
        );
        let m = markdown(&d);
        assert!(
            m.contains("| `+` | `ScalerRole` | `policy` | `Allow` | `ssm:PutParameter` |"),
            "{m}"
        );
        assert!(m.contains("> [!IMPORTANT]"), "{m}");
        let v: Value = serde_json::from_str(&json(&d)).unwrap();
        assert_eq!(v["iam"][0]["change"], "add");
        assert_eq!(v["iam"][0]["action"], "ssm:PutParameter");
        assert_eq!(v["iam"][0]["effect"], "Allow");
        assert_eq!(v["security_groups"][0]["peer"], "${Apps}");
        assert_eq!(v["risks"][0]["kind"], "iam");
    }

    #[test]
    fn no_changes_says_so() {
        let d = Diff::default();
        assert_eq!(summary(&d), "no changes");
    }
}
