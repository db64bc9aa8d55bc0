//! The scaler's configuration: the original design's environment variables plus what the
//! template passes (candidate subnets, bounds, policy). Read and validated once, before
//! any AWS call, and every problem is reported at once, each naming its variable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::model::{is_availability_zone, is_hex_id};

use super::policy::Policy;

pub const DEFAULT_THRESHOLD: u64 = 100_000;
/// EFS answers each directory read in about a millisecond; this many readers in flight
/// keep a Lambda's share of a core busy without flooding the file system.
pub const DEFAULT_COUNT_THREADS: usize = 32;

/// One place the scaler may add a mount target: a private subnet in a zone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    pub availability_zone: String,
    pub subnet_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerConfig {
    pub file_system_id: String,
    pub target_directory: PathBuf,
    pub threshold: u64,
    pub ssm_parameter_name: String,
    pub cluster: String,
    pub service: String,
    pub vpc_id: String,
    pub security_group_id: String,
    /// In preference order: the first zone without a mount target gets the next one.
    pub candidates: Vec<Candidate>,
    pub min_mount_targets: usize,
    pub max_mount_targets: usize,
    pub policy: Policy,
    pub count_threads: usize,
    /// Directories the count leaves out (`EXCLUDE_DIRECTORIES`, comma-separated
    /// absolute paths): the router's private state, `…/.efs-router`.
    pub exclude: Vec<PathBuf>,
}

/// Every problem found, in variable order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<VarProblem>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarProblem {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scaler configuration")?;
        for p in &self.0 {
            write!(f, "\n  {}: {}", p.variable, p.problem)?;
        }
        Ok(())
    }
}

/// Reads variables from a map so tests and the Lambda/CLI entry points share one path;
/// nothing here touches the process environment.
struct Reader<'a> {
    vars: &'a BTreeMap<String, String>,
    problems: Vec<VarProblem>,
}

impl Reader<'_> {
    fn problem(&mut self, variable: &'static str, problem: impl Into<String>) {
        self.problems.push(VarProblem {
            variable,
            problem: problem.into(),
        });
    }

    fn get(&self, variable: &'static str) -> Option<&str> {
        self.vars
            .get(variable)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, variable: &'static str, example: &str) -> Option<String> {
        let value = self.get(variable).map(str::to_string);
        if value.is_none() {
            self.problem(variable, format!("not set (expected e.g. {example})"));
        }
        value
    }

    /// A required AWS id: `prefix` (with its dash) and hex digits.
    fn id(&mut self, variable: &'static str, prefix: &str, example: &str) -> String {
        let Some(value) = self.required(variable, example) else {
            return String::new();
        };
        if !is_hex_id(&value, prefix) {
            self.problem(
                variable,
                format!("{value:?} is not a valid id (expected {prefix} and 8 to 40 lowercase hex digits, e.g. {example})"),
            );
        }
        value
    }

    fn number<T: std::str::FromStr + Copy>(
        &mut self,
        variable: &'static str,
        default: T,
        valid: impl Fn(T) -> bool,
        expected: &str,
    ) -> T {
        let Some(text) = self.get(variable) else {
            return default;
        };
        let text = text.to_string();
        match text.parse::<T>() {
            Ok(n) if valid(n) => n,
            _ => {
                self.problem(variable, format!("{text:?} is not {expected}"));
                default
            }
        }
    }
}

/// ECS cluster and service names: up to 255 letters, digits, hyphens and underscores.
fn is_ecs_name(value: &str) -> bool {
    (1..=255).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SSM parameter names as this project uses them: a full path.
fn is_parameter_name(value: &str) -> bool {
    value.starts_with('/')
        && value.len() <= 1011
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
        && !value.contains("//")
}

impl ScalerConfig {
    /// Validates the variables in `vars` (the process environment in production).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<ScalerConfig, ConfigError> {
        let mut r = Reader {
            vars,
            problems: Vec::new(),
        };
        let file_system_id = r.id("EFS_FILE_SYSTEM_ID", "fs-", "fs-0123456789abcdef0");

        let target_directory = match r.required("TARGET_DIRECTORY", "/mnt/efs/data") {
            Some(dir) if dir.starts_with('/') => PathBuf::from(dir),
            Some(dir) => {
                r.problem(
                    "TARGET_DIRECTORY",
                    format!("{dir:?} is not an absolute path (the Lambda mounts EFS at /mnt/efs)"),
                );
                PathBuf::new()
            }
            None => PathBuf::new(),
        };

        let threshold = r.number(
            "FILE_COUNT_THRESHOLD",
            DEFAULT_THRESHOLD,
            |n: u64| n > 0,
            "a whole number above 0",
        );

        let ssm_parameter_name = r
            .required("SSM_PARAMETER_NAME", "/efs-autoscaler/prod/mount-targets")
            .unwrap_or_default();
        if !ssm_parameter_name.is_empty() && !is_parameter_name(&ssm_parameter_name) {
            r.problem(
                "SSM_PARAMETER_NAME",
                format!(
                    "{ssm_parameter_name:?} is not a parameter path (starts with /, letters, digits, / _ . - only)"
                ),
            );
        }

        let ecs_name = |r: &mut Reader, variable: &'static str, example: &str| {
            let value = r.required(variable, example).unwrap_or_default();
            if !value.is_empty() && !is_ecs_name(&value) {
                r.problem(
                    variable,
                    format!("{value:?} is not an ECS name (letters, digits, - and _, at most 255)"),
                );
            }
            value
        };
        let cluster = ecs_name(&mut r, "ECS_CLUSTER_NAME", "efs-autoscaler-prod");
        let service = ecs_name(&mut r, "ECS_SERVICE_NAME", "efs-autoscaler-prod-router");

        let vpc_id = r.id("VPC_ID", "vpc-", "vpc-0123456789abcdef0");
        let security_group_id = r.id("SECURITY_GROUP_ID", "sg-", "sg-0123456789abcdef0");

        let candidates = read_candidates(&mut r);

        let zones = candidates.len().max(1);
        let max_mount_targets = r.number(
            "MAX_MOUNT_TARGETS",
            zones,
            |n: usize| n >= 1,
            "a whole number of at least 1",
        );
        let min_mount_targets = r.number(
            "MIN_MOUNT_TARGETS",
            1,
            |n: usize| n >= 1,
            "a whole number of at least 1",
        );
        if min_mount_targets > max_mount_targets {
            r.problem(
                "MIN_MOUNT_TARGETS",
                format!("{min_mount_targets} is above MAX_MOUNT_TARGETS ({max_mount_targets})"),
            );
        }

        let policy = match r.get("SCALING_POLICY") {
            None => Policy::PerTarget,
            Some(text) => match text.parse() {
                Ok(p) => p,
                Err(()) => {
                    let text = text.to_string();
                    r.problem(
                        "SCALING_POLICY",
                        format!("{text:?} is not a policy (per-target or seed)"),
                    );
                    Policy::PerTarget
                }
            },
        };

        let count_threads = r.number(
            "COUNT_THREADS",
            DEFAULT_COUNT_THREADS,
            |n: usize| (1..=256).contains(&n),
            "a whole number from 1 to 256",
        );

        let mut exclude = Vec::new();
        if let Some(list) = r.get("EXCLUDE_DIRECTORIES").map(str::to_string) {
            for dir in list.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                if dir.starts_with('/') {
                    exclude.push(PathBuf::from(dir.trim_end_matches('/')));
                } else {
                    r.problem(
                        "EXCLUDE_DIRECTORIES",
                        format!("{dir:?} is not an absolute path"),
                    );
                }
            }
        }

        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(ScalerConfig {
            file_system_id,
            target_directory,
            threshold,
            ssm_parameter_name,
            cluster,
            service,
            vpc_id,
            security_group_id,
            candidates,
            min_mount_targets,
            max_mount_targets,
            policy,
            count_threads,
            exclude,
        })
    }

    /// The process environment, for the Lambda and `run-once`.
    pub fn from_env() -> Result<ScalerConfig, ConfigError> {
        // Non-UTF-8 values are dropped here and then reported as "not set" by name.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        ScalerConfig::from_vars(&vars)
    }
}

fn read_candidates(r: &mut Reader) -> Vec<Candidate> {
    const VAR: &str = "CANDIDATE_SUBNETS";
    let Some(text) = r.required(
        VAR,
        r#"[{"availability_zone":"ap-northeast-1a","subnet_id":"subnet-0123456789abcdef0"}]"#,
    ) else {
        return Vec::new();
    };
    let candidates: Vec<Candidate> = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            r.problem(
                VAR,
                format!("not a JSON list of {{\"availability_zone\", \"subnet_id\"}} objects: {e}"),
            );
            return Vec::new();
        }
    };
    if candidates.is_empty() {
        r.problem(VAR, "the list is empty; name at least one zone and subnet");
    }
    let mut zones = BTreeSet::new();
    let mut subnets = BTreeSet::new();
    for (i, c) in candidates.iter().enumerate() {
        if !is_availability_zone(&c.availability_zone) {
            r.problem(
                VAR,
                format!(
                    "[{i}].availability_zone {:?} is not a zone name like ap-northeast-1a",
                    c.availability_zone
                ),
            );
        }
        if !is_hex_id(&c.subnet_id, "subnet-") {
            r.problem(
                VAR,
                format!(
                    "[{i}].subnet_id {:?} is not a subnet id like subnet-0123456789abcdef0",
                    c.subnet_id
                ),
            );
        }
        if !zones.insert(c.availability_zone.as_str()) {
            r.problem(
                VAR,
                format!(
                    "[{i}]: zone {} is listed twice; a file system has one mount target per zone",
                    c.availability_zone
                ),
            );
        }
        if !subnets.insert(c.subnet_id.as_str()) {
            r.problem(
                VAR,
                format!("[{i}]: subnet {} is listed twice", c.subnet_id),
            );
        }
    }
    candidates
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    pub(crate) fn valid_vars() -> BTreeMap<String, String> {
        [
            ("EFS_FILE_SYSTEM_ID", "fs-0123456789abcdef0"),
            ("TARGET_DIRECTORY", "/mnt/efs/data"),
            ("SSM_PARAMETER_NAME", "/efs-autoscaler/dev/mount-targets"),
            ("ECS_CLUSTER_NAME", "efs-autoscaler-dev"),
            ("ECS_SERVICE_NAME", "efs-autoscaler-dev-router"),
            ("VPC_ID", "vpc-0123456789abcdef0"),
            ("SECURITY_GROUP_ID", "sg-0123456789abcdef0"),
            (
                "CANDIDATE_SUBNETS",
                r#"[{"availability_zone":"ap-northeast-1a","subnet_id":"subnet-0000000a"},
                    {"availability_zone":"ap-northeast-1c","subnet_id":"subnet-0000000c"}]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_follow_the_original_design() {
        let c = ScalerConfig::from_vars(&valid_vars()).unwrap();
        assert_eq!(c.threshold, 100_000);
        assert_eq!(c.policy, Policy::PerTarget);
        assert_eq!(c.max_mount_targets, 2);
        assert_eq!(c.min_mount_targets, 1);
        assert_eq!(c.candidates[1].availability_zone, "ap-northeast-1c");
    }

    #[test]
    fn excluded_directories_are_absolute_paths() {
        let mut vars = valid_vars();
        vars.insert(
            "EXCLUDE_DIRECTORIES".into(),
            "/mnt/efs/data/.efs-router/, /mnt/efs/other".into(),
        );
        let c = ScalerConfig::from_vars(&vars).unwrap();
        assert_eq!(
            c.exclude,
            [
                PathBuf::from("/mnt/efs/data/.efs-router"),
                PathBuf::from("/mnt/efs/other")
            ]
        );
        vars.insert("EXCLUDE_DIRECTORIES".into(), "data/.efs-router".into());
        let err = ScalerConfig::from_vars(&vars).unwrap_err();
        assert_eq!(err.0[0].variable, "EXCLUDE_DIRECTORIES");
    }

    #[test]
    fn every_problem_is_reported_by_name() {
        let mut vars = valid_vars();
        vars.remove("EFS_FILE_SYSTEM_ID");
        vars.insert("FILE_COUNT_THRESHOLD".into(), "0".into());
        vars.insert("VPC_ID".into(), "vpc-XYZ".into());
        vars.insert("TARGET_DIRECTORY".into(), "data".into());
        vars.insert("SCALING_POLICY".into(), "fast".into());
        vars.insert("MIN_MOUNT_TARGETS".into(), "3".into());
        let err = ScalerConfig::from_vars(&vars).unwrap_err();
        let names: Vec<_> = err.0.iter().map(|p| p.variable).collect();
        assert_eq!(
            names,
            [
                "EFS_FILE_SYSTEM_ID",
                "TARGET_DIRECTORY",
                "FILE_COUNT_THRESHOLD",
                "VPC_ID",
                "MIN_MOUNT_TARGETS",
                "SCALING_POLICY"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("EFS_FILE_SYSTEM_ID: not set"), "{text}");
        assert!(text.contains("\"fast\" is not a policy"), "{text}");
    }

    #[test]
    fn candidate_subnets_are_checked_entry_by_entry() {
        for (value, expected) in [
            ("not json", "not a JSON list"),
            ("[]", "the list is empty"),
            (
                r#"[{"availability_zone":"ap-northeast-1a","subnet_id":"subnet-0000000a"},{"availability_zone":"ap-northeast-1a","subnet_id":"subnet-0000000b"}]"#,
                "listed twice",
            ),
            (
                r#"[{"availability_zone":"tokyo","subnet_id":"subnet-0000000a"}]"#,
                "is not a zone name",
            ),
            (
                r#"[{"availability_zone":"ap-northeast-1a","subnet_id":"sub-1"}]"#,
                "is not a subnet id",
            ),
            (
                r#"[{"availability_zone":"ap-northeast-1a","subnet_id":"subnet-0000000a","x":1}]"#,
                "unknown field",
            ),
        ] {
            let mut vars = valid_vars();
            vars.insert("CANDIDATE_SUBNETS".into(), value.into());
            let err = ScalerConfig::from_vars(&vars).unwrap_err().to_string();
            assert!(err.contains("CANDIDATE_SUBNETS"), "{value}: {err}");
            assert!(err.contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn ids_and_names_are_checked() {
        assert!(is_hex_id("fs-01234567", "fs-"));
        assert!(!is_hex_id("fs-0123456", "fs-"));
        assert!(!is_hex_id("fs-0123456G", "fs-"));
        assert!(!is_hex_id("sg-01234567", "fs-"));
        assert!(is_parameter_name("/a/b-c_d.e"));
        assert!(!is_parameter_name("a/b"));
        assert!(!is_parameter_name("/a//b"));
        assert!(!is_parameter_name("/a b"));
        assert!(is_ecs_name("efs_autoscaler-1"));
        assert!(!is_ecs_name("a/b"));
    }
}
