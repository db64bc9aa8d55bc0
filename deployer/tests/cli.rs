//! The `deployer` binary as users run it: golden renders, deterministic output, and every
//! kind of bad configuration failing with exit code 1 and an error that names the file,
//! line, key, value and what is allowed.
//!
//! Golden files live in `deployer/tests/golden/<env>/`. After an intended template or
//! config change, refresh them with
//! `UPDATE_GOLDEN=1 cargo test -p deployer --test cli golden` and review the diff.

// Tests fail by panicking; unwrap/expect here are assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deployer(args: &[&str], envs: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deployer"))
        .args(args)
        .arg("--environments-dir")
        .arg(envs)
        .env("NO_COLOR", "1")
        .output()
        .expect("run deployer")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const ENVS: [&str; 4] = ["dev", "local", "prod", "staging"];

mod golden {
    use super::*;

    #[test]
    fn rendered_files_match_golden() {
        let update = std::env::var_os("UPDATE_GOLDEN").is_some();
        let envs = repo().join("environments");
        let mut stale = Vec::new();
        for env in ENVS {
            let out = tempfile::tempdir().unwrap();
            let result = deployer(
                &[
                    "render",
                    "--env",
                    env,
                    "--out",
                    out.path().to_str().unwrap(),
                ],
                &envs,
            );
            assert!(result.status.success(), "{env}: {}", text(&result.stderr));
            for file in ["main.yaml", "bootstrap.yaml", "resolved-config.json"] {
                let got = std::fs::read_to_string(out.path().join(file)).unwrap();
                let golden = repo().join("deployer/tests/golden").join(env).join(file);
                if update {
                    std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                    std::fs::write(&golden, &got).unwrap();
                } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(got.as_str()) {
                    stale.push(golden.display().to_string());
                }
            }
        }
        assert!(
            stale.is_empty(),
            "rendered output differs from the golden files:\n  {}\nIf the change is intended: UPDATE_GOLDEN=1 cargo test -p deployer --test cli golden, then review `git diff`",
            stale.join("\n  ")
        );
    }

    #[test]
    fn stdout_is_the_main_template_and_byte_identical_across_runs() {
        let envs = repo().join("environments");
        let first = deployer(&["render", "--env", "prod"], &envs);
        let second = deployer(&["render", "--env", "prod"], &envs);
        assert!(first.status.success());
        assert_eq!(first.stdout, second.stdout);
        let golden = std::fs::read(repo().join("deployer/tests/golden/prod/main.yaml")).unwrap();
        assert_eq!(first.stdout, golden);
    }

    #[test]
    fn templates_carry_what_each_environment_asks_for() {
        let envs = repo().join("environments");
        let render = |env: &str| text(&deployer(&["render", "--env", env], &envs).stdout);
        let dev = render("dev");
        let prod = render("prod");
        // dev: NAT egress with one gateway, no interface endpoints, 7-day logs, arm64.
        assert_eq!(dev.matches("Type: AWS::EC2::NatGateway").count(), 1);
        assert!(!dev.contains("Type: AWS::EC2::VPCEndpoint\n    Properties:\n      VpcId: !Ref Vpc\n      VpcEndpointType: Interface"));
        assert!(dev.contains("RetentionInDays: 7"));
        assert!(dev.contains("Architectures: [arm64]"));
        assert!(dev.contains("DeletionPolicy: Delete"));
        // prod: interface endpoints, no NAT, 30-day logs, 2 vCPU / 4 GB, retained EFS.
        assert_eq!(prod.matches("VpcEndpointType: Interface").count(), 7);
        assert!(!prod.contains("AWS::EC2::NatGateway"));
        assert!(prod.contains("RetentionInDays: 30"));
        assert!(prod.contains("Cpu: \"2048\"") && prod.contains("Memory: \"4096\""));
        assert!(prod.contains("DeletionPolicy: Retain"));
        // Initial mount targets: the first two zones only; subnets in all three.
        assert!(
            prod.contains("MountTargetA:")
                && prod.contains("MountTargetC:")
                && !prod.contains("MountTargetD:")
        );
        assert!(prod.contains("PrivateSubnetD:"));
        // The scaler's environment carries every variable of the original design.
        for var in [
            "EFS_FILE_SYSTEM_ID",
            "TARGET_DIRECTORY",
            "FILE_COUNT_THRESHOLD",
            "SSM_PARAMETER_NAME",
            "ECS_CLUSTER_NAME",
            "ECS_SERVICE_NAME",
            "VPC_ID",
            "SECURITY_GROUP_ID",
            "CANDIDATE_SUBNETS",
        ] {
            assert!(
                prod.contains(&format!("          {var}: ")),
                "missing {var}"
            );
        }
        // Encryption in transit: EFS refuses clients without TLS, and the router uses TLS
        // and IAM through its own access point.
        assert!(prod.contains("Sid: DenyWithoutTls") && prod.contains("aws:SecureTransport"));
        assert!(prod.contains("--tls, --iam]"));
        assert!(prod.contains("Name: EFS_ACCESS_POINT_ID"));
        assert!(
            prod.contains("RouterHealthyTargetsAlarm:") && prod.contains("RouterErrorRateAlarm:")
        );
        assert!(prod.contains("Type: AWS::CloudWatch::Dashboard"));
        // Least privilege: no wildcard action anywhere but the account root in the key policy.
        for line in prod.lines().filter(|l| l.contains("Action:")) {
            assert!(
                !line.contains("Action: \"*\"") && !line.contains("Action: '*'"),
                "{line}"
            );
        }
    }
}

mod config_errors {
    use super::*;

    /// An environment directory with the real defaults and one file `bad.yaml`.
    fn with_env(contents: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("environments/defaults.yaml"),
            dir.path().join("defaults.yaml"),
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.yaml"), contents).unwrap();
        dir
    }

    /// Renders `bad` and checks: exit 1, nothing on stdout, no output directory, no panic,
    /// and each expected fragment in the error.
    fn fails(contents: &str, expected: &[&str]) {
        fails_bytes(contents.as_bytes(), expected);
    }

    fn fails_bytes(contents: &[u8], expected: &[&str]) {
        let dir = with_env(contents);
        let out = dir.path().join("out");
        let result = deployer(
            &["render", "--env", "bad", "--out", out.to_str().unwrap()],
            dir.path(),
        );
        let stderr = text(&result.stderr);
        assert_eq!(
            result.status.code(),
            Some(1),
            "exit code; stderr:\n{stderr}"
        );
        assert!(result.stdout.is_empty(), "stdout: {}", text(&result.stdout));
        assert!(!out.exists(), "nothing may be written on error");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for fragment in expected {
            assert!(
                stderr.contains(fragment),
                "expected {fragment:?} in:\n{stderr}"
            );
        }
    }

    const ACCOUNT: &str = "account_id: \"111122223333\"\n";

    #[test]
    fn unknown_key_suggests_the_nearest() {
        fails(
            &format!("{ACCOUNT}scaler:\n  file_count_treshold: 5\n"),
            &[
                "bad.yaml:3:3: scaler.file_count_treshold: unknown key `file_count_treshold`",
                "did you mean `file_count_threshold`?",
            ],
        );
        fails(
            &format!("{ACCOUNT}regoin: us-east-1\n"),
            &["bad.yaml:2:1: regoin", "did you mean `region`?"],
        );
    }

    #[test]
    fn wrong_type_names_the_value_and_the_type() {
        fails(
            &format!("{ACCOUNT}scaler:\n  memory_mb: lots\n"),
            &["bad.yaml:3:14: scaler.memory_mb: expected u32, found string \"lots\""],
        );
        fails(
            &format!("{ACCOUNT}scaler:\n  enabled: yes\n"),
            &["scaler.enabled: expected a boolean, found string \"yes\""],
        );
        fails(
            "account_id: 111122223333\n",
            &["bad.yaml:1:13: account_id", "quote the value"],
        );
    }

    #[test]
    fn bad_enum_lists_the_allowed_values() {
        fails(
            &format!("{ACCOUNT}scaler:\n  architecture: amd64\n"),
            &[
                "bad.yaml:3:17: scaler.architecture: unknown value \"amd64\"; allowed: `x86_64`, `arm64`",
            ],
        );
        fails(
            &format!("{ACCOUNT}network:\n  egress: nat-gateway\n"),
            &["allowed: `vpc-endpoints`, `nat`"],
        );
    }

    #[test]
    fn invalid_cidr() {
        fails(
            &format!("{ACCOUNT}network:\n  vpc_cidr: 10.0.0.0/33\n"),
            &["bad.yaml:3:13: network.vpc_cidr: \"10.0.0.0/33\" is not an IPv4 CIDR block"],
        );
        fails(
            &format!("{ACCOUNT}network:\n  vpc_cidr: 10.0.0.1/16\n"),
            &["has host bits set", "did you mean 10.0.0.0/16?"],
        );
        fails(
            &format!("{ACCOUNT}network:\n  vpc_cidr: 10.0.0.0/8\n"),
            &["has prefix /8", "/16 to /28"],
        );
    }

    #[test]
    fn subnets_outside_or_overlapping_the_vpc() {
        let zones = |a: &str, c: &str| {
            format!(
                "{ACCOUNT}availability_zones:\n  - name: ap-northeast-1a\n    private_subnet_cidr: {a}\n  - name: ap-northeast-1c\n    private_subnet_cidr: {c}\n"
            )
        };
        fails(
            &zones("10.1.0.0/24", "10.0.2.0/24"),
            &[
                "bad.yaml:4:26: availability_zones[0].private_subnet_cidr: 10.1.0.0/24 is outside the VPC 10.0.0.0/16",
            ],
        );
        fails(
            &zones("10.0.0.0/20", "10.0.2.0/24"),
            &[
                "bad.yaml:6:26: availability_zones[1].private_subnet_cidr: 10.0.2.0/24 overlaps availability_zones[0].private_subnet_cidr",
            ],
        );
    }

    #[test]
    fn zone_not_in_region() {
        fails(
            &format!(
                "{ACCOUNT}availability_zones:\n  - name: us-east-1a\n    private_subnet_cidr: 10.0.1.0/24\n  - name: ap-northeast-1c\n    private_subnet_cidr: 10.0.2.0/24\n"
            ),
            &[
                "bad.yaml:3:11: availability_zones[0].name: \"us-east-1a\" is not an availability zone of region ap-northeast-1",
            ],
        );
        fails(
            &format!(
                "{ACCOUNT}availability_zones:\n  - name: ap-northeast-1a\n    private_subnet_cidr: 10.0.1.0/24\n"
            ),
            &[
                "availability_zones: 1 availability zone(s) configured",
                "at least 2 zones",
            ],
        );
    }

    #[test]
    fn threshold_zero() {
        fails(
            &format!("{ACCOUNT}scaler:\n  file_count_threshold: 0\n"),
            &[
                "bad.yaml:3:25: scaler.file_count_threshold: 0 is not allowed",
                "positive number",
            ],
        );
    }

    #[test]
    fn invalid_fargate_pair() {
        fails(
            &format!("{ACCOUNT}service:\n  cpu: 256\n  memory: 4096\n"),
            &[
                "bad.yaml:4:11: service.memory: 4096 MiB is not valid with cpu 256",
                "memory 512, 1024, 2048",
            ],
        );
        fails(
            &format!("{ACCOUNT}service:\n  cpu: 3000\n"),
            &[
                "service.cpu: 3000 is not a Fargate CPU value",
                "256, 512, 1024",
            ],
        );
    }

    #[test]
    fn retention_not_a_cloudwatch_value() {
        fails(
            &format!("{ACCOUNT}logs:\n  retention_days: 31\n"),
            &[
                "bad.yaml:3:19: logs.retention_days: 31 is not a CloudWatch Logs retention value",
                "the nearest is 30",
            ],
        );
    }

    #[test]
    fn releases_that_cannot_work_are_refused() {
        fails(
            &format!("{ACCOUNT}release:\n  keep: 1\n"),
            &[
                "bad.yaml:3:9: release.keep: 1 is out of range",
                "at least one to roll back to",
            ],
        );
        // Two runs of the default rate(5 minutes) take ten minutes.
        fails(
            &format!("{ACCOUNT}release:\n  scaler_rollout: canary\n  canary_minutes: 6\n"),
            &[
                "release.canary_minutes: 6 minutes is shorter than two runs of rate(5 minutes)",
                "at least 10 minutes (two runs)",
            ],
        );
        fails(
            &format!("{ACCOUNT}release:\n  scaler_rollout: canary\n  canary_percent: 100\n"),
            &[
                "release.canary_percent: 100 is out of range",
                "allowed: 1 to 99",
            ],
        );
        fails(
            &format!("{ACCOUNT}scaler:\n  enabled: false\nrelease:\n  scaler_rollout: canary\n"),
            &[
                "release.scaler_rollout: canary with the scaler's schedule disabled",
                "use all-at-once",
            ],
        );
        fails(
            &format!("{ACCOUNT}release:\n  scaler_rollout: gradual\n"),
            &["release.scaler_rollout", "all-at-once", "canary"],
        );
    }

    #[test]
    fn a_warning_address_that_is_not_one() {
        fails(
            &format!(
                "{ACCOUNT}alarms:\n  email_subscriptions: [ops@example.com]\n  warning_email_subscriptions: [ops@example.com, team at example]\n"
            ),
            &[
                "alarms.warning_email_subscriptions[1]: \"team at example\" is not an e-mail address",
                "e.g. ops@example.com",
            ],
        );
    }

    #[test]
    fn bad_schedule_expression() {
        fails(
            &format!("{ACCOUNT}scaler:\n  schedule: rate(5 minute)\n"),
            &[
                "bad.yaml:3:13: scaler.schedule: \"rate(5 minute)\"",
                "rate(5 minutes)",
            ],
        );
        fails(
            &format!("{ACCOUNT}scaler:\n  schedule: cron(*/5 * * * *)\n"),
            &["cron has 5 fields"],
        );
    }

    #[test]
    fn empty_and_binary_files() {
        fails("", &["bad.yaml: file is empty"]);
        fails("\n  \n", &["bad.yaml: file is empty"]);
        fails_bytes(
            b"\x7fELF\x02\x01\x01\x00\x00\x00",
            &["bad.yaml: is a binary file"],
        );
        fails_bytes(b"region: \xff\xfe\n", &["bad.yaml: is not UTF-8 text"]);
    }

    #[test]
    fn duplicate_keys() {
        fails(
            &format!("{ACCOUNT}scaler:\n  enabled: true\n  enabled: false\n"),
            &[
                "bad.yaml:4:3: enabled: duplicate key",
                "already set at line 3",
            ],
        );
    }

    #[test]
    fn alias_bomb_is_rejected_fast() {
        let mut bomb = String::from(ACCOUNT);
        bomb.push_str("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        fails(&bomb, &["expands to more than 20000 values", "alias bomb"]);
    }

    #[test]
    fn missing_account_and_bad_account() {
        fails(
            "tags: {Environment: x}\n",
            &["account_id: environment `bad` has no account_id"],
        );
        fails(
            "account_id: \"12345\"\n",
            &["bad.yaml:1:13: account_id: \"12345\" is not an AWS account id"],
        );
    }

    #[test]
    fn a_service_role_must_be_a_role_of_the_environments_account() {
        fails(
            &format!("{ACCOUNT}cloudformation_role_arn: arn:aws:iam::999999999999:role/deploy\n"),
            &[
                "cloudformation_role_arn: the role is in account 999999999999",
                "CloudFormation passes only a role of the stack's own account",
            ],
        );
        fails(
            &format!(
                "{ACCOUNT}cloudformation_role_arn: arn:aws:iam::{}:user/deploy\n",
                "0".repeat(12)
            ),
            &["is not an IAM role ARN"],
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        fails(
            &format!("{ACCOUNT}scaler:\n  file_count_threshold: 0\nlogs:\n  retention_days: 31\n"),
            &[
                "has 2 configuration errors",
                "scaler.file_count_threshold",
                "logs.retention_days",
            ],
        );
    }

    #[test]
    fn unknown_environment_suggests_the_nearest() {
        let result = deployer(&["render", "--env", "prdo"], &repo().join("environments"));
        assert_eq!(result.status.code(), Some(1));
        let stderr = text(&result.stderr);
        assert!(
            stderr.contains("environment `prdo` does not exist")
                && stderr.contains("did you mean `prod`?")
                && stderr.contains("environments here: dev, local, prod, staging")
                && stderr.contains("deployer init"),
            "{stderr}"
        );
    }

    /// From a directory that is no project: what to do, not just that a read failed.
    #[test]
    fn outside_a_project_the_error_says_where_environments_come_from() {
        let empty = tempfile::tempdir().unwrap();
        let result = deployer(
            &["render", "--env", "prod"],
            &empty.path().join("environments"),
        );
        assert_eq!(result.status.code(), Some(1));
        let stderr = text(&result.stderr);
        assert!(
            stderr.contains("no environments directory here")
                && stderr.contains("--environments-dir")
                && stderr.contains("deployer init"),
            "{stderr}"
        );
        let result = deployer(&["render", "--env", "prod"], empty.path());
        assert!(
            text(&result.stderr)
                .contains("has no environment files: start a project with `deployer init`"),
            "{}",
            text(&result.stderr)
        );
    }

    #[test]
    fn usage_errors_exit_1() {
        let result = deployer(&["render"], &repo().join("environments"));
        assert_eq!(result.status.code(), Some(1));
        assert!(text(&result.stderr).contains("--env"));
    }
}

mod validate {
    use super::*;

    /// The linters run for real: cfn-lint with zero errors and checkov with zero failed
    /// checks on every environment. Needs scripts/setup (the README's test command runs it).
    #[test]
    fn all_environments_pass_cfn_lint_and_checkov() {
        let result = deployer(&["validate", "--all"], &repo().join("environments"));
        let stdout = text(&result.stdout);
        assert!(
            result.status.success(),
            "stdout:\n{stdout}\nstderr:\n{}",
            text(&result.stderr)
        );
        for env in ENVS {
            assert!(
                stdout.contains(&format!("ok    {env}: configuration and rendering")),
                "{stdout}"
            );
        }
        assert!(
            stdout.contains("ok    cfn-lint: 8 templates")
                && stdout.contains("ok    checkov: 8 templates"),
            "{stdout}"
        );
    }

    /// A template problem checkov knows must fail validation: proves the run can fail.
    #[test]
    fn a_real_misconfiguration_fails_checkov() {
        let dir = tempfile::tempdir().unwrap();
        let template = "AWSTemplateFormatVersion: \"2010-09-09\"\nResources:\n  Bucket:\n    Type: AWS::S3::Bucket\n";
        std::fs::write(dir.path().join("t.yaml"), template).unwrap();
        let report = deployer::lint::checkov(dir.path(), &[PathBuf::from("t.yaml")]).unwrap();
        assert!(!report.passed, "{}", report.output);
        let report = deployer::lint::cfn_lint(
            dir.path(),
            &[PathBuf::from("t.yaml")],
            &["us-east-1".to_string()],
        )
        .unwrap();
        assert!(
            report.passed,
            "a bare bucket is valid CloudFormation: {}",
            report.output
        );
        std::fs::write(dir.path().join("bad.yaml"), "AWSTemplateFormatVersion: \"2010-09-09\"\nResources:\n  F:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python2.7\n").unwrap();
        let report = deployer::lint::cfn_lint(
            dir.path(),
            &[PathBuf::from("bad.yaml")],
            &["us-east-1".to_string()],
        )
        .unwrap();
        assert!(!report.passed, "{}", report.output);
    }

    #[test]
    fn config_errors_fail_validate_with_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("environments/defaults.yaml"),
            dir.path().join("defaults.yaml"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "account_id: \"111122223333\"\nlogs: {retention_days: 2}\n",
        )
        .unwrap();
        let result = deployer(&["validate", "--env", "bad", "--config-only"], dir.path());
        assert_eq!(result.status.code(), Some(1));
        assert!(text(&result.stdout).contains("FAIL  bad: configuration"));
        assert!(
            text(&result.stderr)
                .contains("logs.retention_days: 2 is not a CloudWatch Logs retention value")
        );

        // For CI: one JSON document on stdout, each problem with its place, same exit code.
        let result = deployer(
            &[
                "validate",
                "--env",
                "bad",
                "--config-only",
                "--output",
                "json",
            ],
            dir.path(),
        );
        assert_eq!(result.status.code(), Some(1));
        let report: serde_json::Value = serde_json::from_slice(&result.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&result.stdout)));
        assert_eq!(report["ok"], false, "{report}");
        let check = &report["checks"][0];
        assert_eq!(check["subject"], "bad");
        assert_eq!(check["check"], "configuration");
        assert_eq!(check["ok"], false);
        let problem = check["problems"][0].as_str().unwrap();
        assert!(
            problem.ends_with(
                "bad.yaml:2:24: logs.retention_days: 2 is not a CloudWatch Logs retention value"
            ),
            "{problem}"
        );
    }

    #[test]
    fn validate_reports_json_for_ci() {
        let result = deployer(
            &["validate", "--env", "dev", "--output", "json"],
            &repo().join("environments"),
        );
        assert!(result.status.success(), "{}", text(&result.stderr));
        let report: serde_json::Value = serde_json::from_slice(&result.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&result.stdout)));
        assert_eq!(report["ok"], true, "{report}");
        let checks: Vec<(&str, &str)> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["subject"].as_str().unwrap(), c["check"].as_str().unwrap()))
            .collect();
        assert_eq!(
            checks,
            [
                ("dev", "configuration and rendering"),
                ("cfn-lint", "2 templates"),
                ("checkov", "2 templates"),
            ]
        );
    }
}

/// The two shapes applications use the router in (issue 19): the example environments in
/// docs/examples/environments, rendered over the real defaults, and what each must and
/// must not expose.
mod shapes {
    use super::*;

    /// An environment directory with the real defaults and the two examples, plus `extra`.
    fn examples(extra: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("environments/defaults.yaml"),
            dir.path().join("defaults.yaml"),
        )
        .unwrap();
        for name in ["sidecar.yaml", "shared.yaml"] {
            std::fs::copy(
                repo().join("docs/examples/environments").join(name),
                dir.path().join(name),
            )
            .unwrap();
        }
        for (name, text) in extra {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn render(dir: &Path, env: &str) -> String {
        let result = deployer(&["render", "--env", env], dir);
        assert!(result.status.success(), "{env}: {}", text(&result.stderr));
        text(&result.stdout)
    }

    /// The text of one resource: its `  Name:` line and the lines indented under it.
    fn resource(template: &str, name: &str) -> String {
        let mut lines = template.lines().skip_while(|l| *l != format!("  {name}:"));
        let head = lines.next().unwrap_or_else(|| panic!("no resource {name}"));
        std::iter::once(head)
            .chain(
                lines.take_while(|l| l.is_empty() || l.starts_with("   ") || l.starts_with("  #")),
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The names of the template's resources of type `kind` (its top-level, two-space
    /// indented keys whose text says so).
    fn resources_of_type<'a>(template: &'a str, kind: &str) -> Vec<&'a str> {
        let type_line = format!("Type: {kind}\n");
        template
            .lines()
            .filter(|l| {
                l.starts_with("  ")
                    && !l.starts_with("   ")
                    && l.ends_with(':')
                    && l.trim()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == ':')
            })
            .map(|l| l.trim().trim_end_matches(':'))
            .filter(|name| resource(template, name).contains(&type_line))
            .collect()
    }

    #[test]
    fn the_examples_pass_cfn_lint_and_checkov() {
        let dir = examples(&[]);
        for env in ["sidecar", "shared"] {
            let result = deployer(&["validate", "--env", env], dir.path());
            let stdout = text(&result.stdout);
            assert!(
                result.status.success()
                    && stdout.contains("ok    cfn-lint")
                    && stdout.contains("ok    checkov"),
                "{env}:\n{stdout}\n{}",
                text(&result.stderr)
            );
        }
    }

    #[test]
    fn an_application_runs_beside_the_router_with_its_endpoint_region_and_key_pair() {
        let dir = examples(&[]);
        let t = render(dir.path(), "sidecar");
        let task = resource(&t, "TaskDefinition");
        // The task is the sum of the containers: 1024 + 1024 CPU, 2048 + 2048 MiB.
        assert!(
            task.contains("Cpu: \"2048\"") && task.contains("Memory: \"4096\""),
            "{task}"
        );
        let app = &task[task
            .find("- Name: \"sync\"")
            .expect("the application container")..];
        for expected in [
            "Image: \"public.ecr.aws/aws-cli/aws-cli:2.22.35\"",
            "EntryPoint: [\"/bin/sh\",\"-c\"]",
            "DependsOn:\n            - ContainerName: router\n              Condition: HEALTHY",
            "- Name: AWS_ENDPOINT_URL_S3\n              Value: \"http://127.0.0.1:8080\"",
            "- Name: AWS_REGION\n              Value: !Ref AWS::Region",
            "- Name: AWS_ACCESS_KEY_ID\n              ValueFrom: !Sub \"${RouterCredentials}:access_key_id::\"",
            "- Name: AWS_SECRET_ACCESS_KEY\n              ValueFrom: !Sub \"${RouterCredentials}:secret_access_key::\"",
            "awslogs-group: \"/ecs/efs-autoscaler-sidecar-app-sync\"",
        ] {
            assert!(app.contains(expected), "missing {expected:?} in\n{app}");
        }
        // Its own log group, with the environment's retention and key.
        let logs = resource(&t, "AppSyncLogGroup");
        assert!(
            logs.contains("RetentionInDays: 30")
                && logs.contains("KmsKeyId: !GetAtt EncryptionKey.Arn"),
            "{logs}"
        );
        // task mode: the router on loopback, no port mapping, and no ingress at all.
        assert!(task.contains("--listen, \"127.0.0.1:8080\""), "{task}");
        assert!(!task[..task.find("- Name: \"sync\"").unwrap()].contains("PortMappings"));
        let sg = resource(&t, "ServiceSecurityGroup");
        assert!(!sg.contains("SecurityGroupIngress"), "{sg}");
        assert!(!t.contains("AWS::ServiceDiscovery") && !t.contains("RouterClientPolicy"));
        // The secret: generated, read by the execution role alone.
        let secret = resource(&t, "RouterCredentials");
        assert!(secret.contains("GenerateSecretString") && !secret.contains("      SecretString:"));
        assert_eq!(t.matches("Resource: !Ref RouterCredentials").count(), 1);
        // Auto scaling on CPU between the environment's bounds.
        let target = resource(&t, "ServiceScalableTarget");
        assert!(
            target.contains("MinCapacity: 2") && target.contains("MaxCapacity: 6"),
            "{target}"
        );
        let policy = resource(&t, "ServiceCpuScaling");
        assert!(
            policy.contains("ECSServiceAverageCPUUtilization")
                && policy.contains("TargetValue: 60"),
            "{policy}"
        );
    }

    #[test]
    fn a_shared_router_is_reached_by_name_from_the_named_groups_over_tls() {
        let dir = examples(&[]);
        let t = render(dir.path(), "shared");
        let sg = resource(&t, "ServiceSecurityGroup");
        let ingress =
            &sg[sg.find("SecurityGroupIngress").unwrap()..sg.find("SecurityGroupEgress").unwrap()];
        assert_eq!(
            ingress.matches("SourceSecurityGroupId:").count(),
            1,
            "{ingress}"
        );
        assert!(
            ingress.contains("\"sg-0123456789abcdef0\"") && !ingress.contains("CidrIp"),
            "{ingress}"
        );
        let task = resource(&t, "TaskDefinition");
        assert!(
            task.contains("--listen, \"0.0.0.0:8080\"") && task.contains("--listen-tls]"),
            "{task}"
        );
        assert!(
            task.contains("Name: LISTEN_TLS_CERTIFICATE")
                && task.contains("Name: LISTEN_TLS_PRIVATE_KEY")
        );
        assert!(resource(&t, "RouterNamespace").contains("Name: \"files.internal\""));
        assert!(resource(&t, "RouterDiscovery").contains("Type: A"));
        assert!(resource(&t, "Service").contains("RegistryArn: !GetAtt RouterDiscovery.Arn"));
        // The execution role reads the certificate's secret; clients get a policy and the ARNs.
        assert!(resource(&t, "TaskExecutionRole").contains(
            "arn:aws:secretsmanager:ap-northeast-1:111122223333:secret:files-router-tls-AbCdEf"
        ));
        for output in [
            "RouterEndpoint:",
            "RouterCredentialsSecretArn:",
            "RouterClientPolicyArn:",
        ] {
            assert!(
                t[t.find("\nOutputs:").unwrap()..].contains(output),
                "{output}"
            );
        }
        assert!(t.contains("Value: \"https://router.files.internal:8080\""));
    }

    #[test]
    fn the_repository_environments_expose_nothing() {
        let envs = repo().join("environments");
        for env in ENVS {
            let t = render(&envs, env);
            assert!(
                !resource(&t, "ServiceSecurityGroup").contains("SecurityGroupIngress"),
                "{env}"
            );
            assert!(
                resource(&t, "TaskDefinition").contains("--listen, \"127.0.0.1:8080\""),
                "{env}"
            );
        }
    }

    /// The file system policy allows each role through any of the file system's access
    /// points (it cannot name them), and an allow in either policy is enough: the pin to
    /// the role's own access point holds only as an explicit deny in the role.
    #[test]
    fn each_role_is_pinned_to_its_access_point_by_an_explicit_deny() {
        let envs = repo().join("environments");
        for env in ENVS {
            let t = render(&envs, env);
            let router = resource(&t, "RouterFileSystemAccess");
            let deny = &router[router
                .find("Effect: Deny")
                .unwrap_or_else(|| panic!("{env}: no deny in\n{router}"))..];
            assert!(
                deny.contains("elasticfilesystem:ClientMount, elasticfilesystem:ClientWrite, elasticfilesystem:ClientRootAccess")
                    && deny.contains("StringNotEquals:")
                    && deny.contains("access-point/${RouterAccessPoint}"),
                "{env}: {router}"
            );
            let scaler = resource(&t, "ScalerFileSystemAccess");
            let never_write = &scaler[scaler
                .find("Sid: NeverWrite")
                .unwrap_or_else(|| panic!("{env}: {scaler}"))..];
            assert!(never_write.starts_with("Sid: NeverWrite\n            Effect: Deny\n            Action: [elasticfilesystem:ClientWrite, elasticfilesystem:ClientRootAccess]"), "{env}: {never_write}");
            let pinned = &scaler[scaler.find("Sid: OnlyThroughItsAccessPoint").unwrap()..];
            assert!(
                pinned.contains("Effect: Deny")
                    && pinned.contains("StringNotEquals:")
                    && pinned.contains("access-point/${ScalerAccessPoint}"),
                "{env}: {pinned}"
            );
        }
    }

    /// The key lets CloudWatch Logs use it for this stack's log groups only, and every log
    /// group of the stack is among them.
    #[test]
    fn the_log_key_serves_this_stacks_log_groups_only() {
        let dir = examples(&[]);
        let t = render(dir.path(), "sidecar");
        let key = resource(&t, "EncryptionKey");
        let grant = &key[key.find("Sid: LogGroupsOfThisAccount").unwrap()..];
        let grant = &grant[..grant.find("- Sid: AlarmsPublishToTheTopic").unwrap()];
        assert!(!grant.contains("log-group:*"), "{grant}");
        let patterns: Vec<&str> = grant
            .lines()
            .filter_map(|l| l.split("log-group:").nth(1))
            .map(|p| p.trim_end_matches('"').trim_end_matches('*'))
            .collect();
        assert_eq!(patterns.len(), 3, "{grant}");
        for line in t
            .lines()
            .filter(|l| l.trim_start().starts_with("LogGroupName: \""))
        {
            let name = line
                .trim_start()
                .trim_start_matches("LogGroupName: ")
                .trim_matches('"');
            assert!(
                patterns.iter().any(|p| name.starts_with(p)),
                "{name} is not covered by {patterns:?}"
            );
        }
    }

    /// The missed-runs alarm counts the scaler's runs per schedule period, and exists
    /// only when there is an even period to count in and a scaler to run; every alarm
    /// notifies its topic, critical or warning.
    #[test]
    fn the_missed_runs_alarm_follows_the_schedule() {
        let envs = repo().join("environments");
        for (env, period) in [("dev", "300"), ("local", "60")] {
            let t = render(&envs, env);
            let alarm = resource(&t, "ScalerMissedRunsAlarm");
            assert!(
                alarm.contains(&format!("Period: {period}\n"))
                    && alarm.contains("MetricName: Invocations")
                    && alarm.contains("ComparisonOperator: LessThanThreshold")
                    && alarm.contains("TreatMissingData: breaching"),
                "{env}: {alarm}"
            );
            let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
            // Broken now on the critical topic; heading there on the warning topic.
            for name in &alarms {
                let warning = [
                    "ScalerDurationAlarm",
                    "EfsIoLimitAlarm",
                    "RouterCpuAlarm",
                    "RouterMemoryAlarm",
                    "LogErrorsAlarm",
                ]
                .contains(name);
                let topic = if warning {
                    "WarningTopic"
                } else {
                    "AlarmTopic"
                };
                let alarm = resource(&t, name);
                assert!(
                    alarm.contains(&format!("AlarmActions: [!Ref {topic}]"))
                        && alarm.contains(&format!("OKActions: [!Ref {topic}]")),
                    "{env} {name} should notify {topic}: {alarm}"
                );
            }
            for expected in ["RouterCpuAlarm", "RouterMemoryAlarm", "LogErrorsAlarm"] {
                assert!(alarms.contains(&expected), "{env}: {alarms:?}");
            }
        }
        for (why, scaler) in [
            ("cron", "scaler:\n  schedule: cron(0/5 * * * ? *)\n"),
            ("disabled", "scaler:\n  enabled: false\n"),
        ] {
            let shared =
                std::fs::read_to_string(repo().join("docs/examples/environments/shared.yaml"))
                    .unwrap();
            let dir = examples(&[("shared.yaml", &format!("{shared}\n{scaler}"))]);
            let t = render(dir.path(), "shared");
            assert!(!t.contains("ScalerMissedRunsAlarm:"), "{why}");
            assert!(t.contains("ScalerErrorsAlarm:"), "{why}");
        }
    }

    /// Router tasks that fail to start reach the critical topic from ECS's events in every
    /// environment (dev has no Container Insights): the rule matches this service's
    /// failed and crashed tasks only, and the topic and key admit that rule.
    #[test]
    fn router_tasks_failing_to_start_reach_the_critical_topic() {
        let envs = repo().join("environments");
        for env in ENVS {
            let t = render(&envs, env);
            let stack = format!("efs-autoscaler-{env}");
            let rule = resource(&t, "RouterTaskStoppedRule");
            for expected in [
                format!("Name: \"{stack}-router-stopped\""),
                format!("group: [\"service:{stack}-router\"]"),
                format!(":cluster/{stack}\"]"),
                "lastStatus: [STOPPED]".to_string(),
                "stopCode: [TaskFailedToStart, EssentialContainerExited]".to_string(),
                "Arn: !Ref AlarmTopic".to_string(),
            ] {
                assert!(rule.contains(&expected), "{env}: {expected} not in {rule}");
            }
            let policy = resource(&t, "AlarmTopicPolicy");
            assert!(
                policy.contains(&format!(":rule/{stack}-router-stopped\"")),
                "{env}: {policy}"
            );
            assert!(
                resource(&t, "EncryptionKey").contains("Sid: EventsPublishToTheTopic"),
                "{env}"
            );
        }
    }

    /// prod releases the scaler through a canary: CodeDeploy moves the alias, watching
    /// the error alarm, and moves it back on an alarm.
    #[test]
    fn a_canary_release_renders_codedeploy_watching_the_error_alarm() {
        let envs = repo().join("environments");
        let parse = |text: &str| deployer::diff::template::parse(text, "the template").unwrap();
        let t = parse(&render(&envs, "prod"));
        let alias = &t["Resources"]["ScalerAlias"];
        assert_eq!(
            alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"],
            serde_json::json!({"Ref": "ScalerRolloutGroup"})
        );
        let group = &t["Resources"]["ScalerRolloutGroup"]["Properties"];
        assert_eq!(
            group["AlarmConfiguration"]["Alarms"][0]["Name"],
            serde_json::json!({"Ref": "ScalerErrorsAlarm"})
        );
        assert_eq!(
            group["AutoRollbackConfiguration"]["Events"],
            serde_json::json!(["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"])
        );
        let canary = &t["Resources"]["ScalerRolloutConfig"]["Properties"]["TrafficRoutingConfig"];
        assert_eq!(
            canary["TimeBasedCanary"],
            serde_json::json!({"CanaryPercentage": 50, "CanaryInterval": 30})
        );
        // The role moves this alias only.
        let statements = &t["Resources"]["ScalerRolloutRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"];
        assert_eq!(
            statements[0]["Resource"],
            serde_json::json!({"Fn::Sub": "${ScalerFunction.Arn}:live"})
        );
        // Without it (dev), the alias moves at once and there is no CodeDeploy.
        let dev = parse(&render(&envs, "dev"));
        assert!(
            dev["Resources"]["ScalerAlias"]
                .get("UpdatePolicy")
                .is_none()
        );
        assert!(dev["Resources"].get("ScalerRolloutGroup").is_none());
    }

    /// `scaler.tracing` turns on X-Ray for the function and lets its role send segments;
    /// without it neither is there.
    #[test]
    fn tracing_is_per_environment() {
        let envs = repo().join("environments");
        for (env, traced) in [("staging", true), ("dev", false)] {
            let t = render(&envs, env);
            let function = resource(&t, "ScalerFunction");
            let role = resource(&t, "ScalerRole");
            assert_eq!(
                function.contains("TracingConfig:\n        Mode: Active"),
                traced,
                "{env}: {function}"
            );
            assert_eq!(
                role.contains("Action: [xray:PutTraceSegments, xray:PutTelemetryRecords]"),
                traced,
                "{env}: {role}"
            );
        }
    }

    /// The dashboard's body is JSON once CloudFormation substitutes its `${...}` names,
    /// and shows what the design asks to watch.
    #[test]
    fn the_dashboard_is_json_and_shows_what_the_design_lists() {
        let envs = repo().join("environments");
        for env in ENVS {
            let t = render(&envs, env);
            let dashboard = resource(&t, "Dashboard");
            let body: Vec<&str> = dashboard
                .lines()
                .skip_while(|l| l.trim() != "- |")
                .skip(1)
                .take_while(|l| l.starts_with("          "))
                .collect();
            let mut json = body.join("\n");
            // `${Name}` and `${AWS::Region}` are strings or, for the threshold, a number.
            while let Some(start) = json.find("${") {
                let end = start + json[start..].find('}').unwrap();
                let name = &json[start + 2..end];
                let value = if name == "Threshold" { "1" } else { "X" };
                json.replace_range(start..=end, value);
            }
            let parsed: serde_json::Value = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{env}: the dashboard is not JSON ({e}):\n{json}"));
            let text = parsed.to_string();
            for shown in [
                "FileCount",
                "ThresholdExceeded",
                "TargetOperations",
                "ClientConnections",
                "DataReadIOBytes",
                "DataWriteIOBytes",
                "PercentIOLimit",
                "CPUUtilization",
                "MemoryUtilization",
                "RouterLogErrors",
            ] {
                assert!(text.contains(shown), "{env}: the dashboard lacks {shown}");
            }
        }
    }

    /// Every VPC endpoint has a policy that admits this account's principals (and, on S3,
    /// ECR's layer bucket), never the whole of AWS.
    #[test]
    fn every_vpc_endpoint_admits_this_account_only() {
        let envs = repo().join("environments");
        for env in ENVS {
            let t = render(&envs, env);
            let endpoints = resources_of_type(&t, "AWS::EC2::VPCEndpoint");
            assert!(!endpoints.is_empty(), "{env}");
            for name in endpoints {
                let r = resource(&t, name);
                assert!(
                    r.contains("PolicyDocument:")
                        && r.contains("\"aws:PrincipalAccount\": !Ref AWS::AccountId"),
                    "{env} {name}: {r}"
                );
            }
        }
    }

    /// Renders `bad` over the examples' directory; exit 1 and every fragment in stderr.
    fn refused(contents: &str, expected: &[&str]) {
        let dir = examples(&[("bad.yaml", contents)]);
        let result = deployer(&["render", "--env", "bad"], dir.path());
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{stderr}");
        for fragment in expected {
            assert!(
                stderr.contains(fragment),
                "expected {fragment:?} in:\n{stderr}"
            );
        }
    }

    const ACCOUNT: &str = "account_id: \"111122223333\"\n";
    const APP: &str = "applications:\n  - name: app\n    image: 111122223333.dkr.ecr.ap-northeast-1.amazonaws.com/app:1\n";

    #[test]
    fn containers_that_do_not_add_up_to_a_fargate_size_name_their_keys() {
        refused(
            &format!("{ACCOUNT}{APP}    cpu: 256\n    memory: 512\n"),
            &[
                "the task's containers add up to cpu 1280 (service.cpu 1024 + applications[0].cpu 256) and memory 2560 MiB (service.memory 2048 + applications[0].memory 512)",
                "cpu 2048 / memory 4096",
            ],
        );
    }

    #[test]
    fn bad_applications_are_refused_with_the_key_and_the_fix() {
        refused(
            &format!(
                "{ACCOUNT}applications:\n  - name: router\n    image: public.ecr.aws/x/y:1\n    cpu: 1024\n    memory: 2048\n    environment: {{AWS_REGION: x}}\n    secrets: {{TOKEN: nope}}\n"
            ),
            &[
                "applications[0].name: \"router\" is the router's own container",
                "applications[0].image: \"public.ecr.aws/x/y:1\" is outside this region's ECR",
                "network.egress: nat",
                "applications[0].environment.AWS_REGION: AWS_REGION is set by the deployer",
                "applications[0].secrets.TOKEN: \"nope\" is not a Secrets Manager secret or SSM parameter ARN",
            ],
        );
        refused(
            &format!(
                "{ACCOUNT}applications:\n  - name: app\n    image: \"Bad Image\"\n    cpu: 1024\n    memory: 2048\n    helth_check: {{}}\n"
            ),
            &["unknown key `helth_check`", "did you mean `health_check`?"],
        );
    }

    #[test]
    fn a_vpc_endpoint_needs_clients_and_tls_or_plaintext_said_out_loud() {
        refused(
            &format!("{ACCOUNT}service:\n  expose: vpc\n"),
            &[
                "service.clients: service.expose: vpc needs at least one client security group",
                "service.tls_certificate_secret_arn: service.expose: vpc needs TLS",
                "service.allow_plaintext: true",
            ],
        );
        refused(
            &format!(
                "{ACCOUNT}service:\n  expose: vpc\n  clients: [10.0.0.0/16]\n  allow_plaintext: true\n"
            ),
            &["service.clients[0]: \"10.0.0.0/16\" is not a security group id"],
        );
        refused(
            &format!("{ACCOUNT}service:\n  clients: [sg-0123456789abcdef0]\n"),
            &["service.clients: is only used with service.expose: vpc"],
        );
        refused(
            &format!("{ACCOUNT}service:\n  desired_count: 9\n"),
            &["service.desired_count: 9 is outside service.autoscaling's 2 to 6 tasks"],
        );
    }
}

/// A new user's first contact with AWS going wrong: one sentence of cause and the command
/// that fixes it, exit 1, and none of the SDK's provider chain (that is for `-v`).
mod first_contact {
    use super::*;

    /// `deployer ARGS` with nothing of the machine's AWS setup: an empty home, no
    /// instance metadata, plus `vars`.
    fn bare(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String) {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_deployer"))
            .args(args)
            .arg("--environments-dir")
            .arg(repo().join("environments"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        (out.status.code(), text(&out.stderr))
    }

    fn one_sentence(stderr: &str) {
        for noise in [
            "ProviderError",
            "DispatchFailure",
            "WARN",
            "SdkBody",
            "ConnectorError",
        ] {
            assert!(!stderr.contains(noise), "{noise} in:\n{stderr}");
        }
        assert!(
            stderr.lines().filter(|l| !l.trim().is_empty()).count() <= 3,
            "{stderr}"
        );
    }

    #[test]
    fn no_credentials_at_all() {
        let (code, stderr) = bare(&["status", "--env", "dev"], &[]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("no AWS credentials found"), "{stderr}");
        assert!(stderr.contains("aws configure"), "{stderr}");
        one_sentence(&stderr);
    }

    /// The local endpoint takes any key pair: the help says so instead of `aws configure`.
    #[test]
    fn no_credentials_for_the_local_endpoint() {
        let (code, stderr) = bare(&["status", "--env", "local"], &[]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("no AWS credentials found"), "{stderr}");
        assert!(
            stderr.contains("export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local")
                && !stderr.contains("aws configure"),
            "{stderr}"
        );
        one_sentence(&stderr);
    }

    #[test]
    fn an_unknown_profile() {
        let (code, stderr) = bare(&["status", "--env", "dev", "--profile", "nope"], &[]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("profile nope"), "{stderr}");
        assert!(stderr.contains("aws configure list-profiles"), "{stderr}");
        one_sentence(&stderr);
    }

    #[test]
    fn a_refused_endpoint() {
        let (code, stderr) = bare(
            &["status", "--env", "local"],
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ],
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("Connection refused"), "{stderr}");
        assert!(
            stderr.contains("nothing answers at AWS_ENDPOINT_URL=http://127.0.0.1:1"),
            "{stderr}"
        );
        one_sentence(&stderr);
    }
}

/// `deployer schema` against a real JSON Schema validator (python-jsonschema, which the
/// tools virtualenv has as cfn-lint's dependency): every shipped environment file
/// passes, and the shapes the configuration tests refuse are refused here too.
mod schema {
    use super::*;

    /// Validates each YAML text against the schema; the validator's verdict per text.
    fn verdicts(schema: &str, files: &[(&str, String)]) -> Vec<(String, bool, String)> {
        let cfn_lint = deployer::lint::find("cfn-lint", "cfn-lint (scripts/setup)")
            .unwrap_or_else(|e| panic!("{e}"));
        let python = cfn_lint.with_file_name("python3");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.json"), schema).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(open(path)) or {})]
    print(json.dumps([path, not errors, "; ".join(errors)]))
"#;
        let out = Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(dir.path().join("schema.json"))
            .args(files.iter().map(|(n, _)| dir.path().join(n)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| {
                let (path, ok, why): (String, bool, String) = serde_json::from_str(l).unwrap();
                (
                    path.rsplit('/').next().unwrap_or_default().to_string(),
                    ok,
                    why,
                )
            })
            .collect()
    }

    #[test]
    fn shipped_files_pass_and_bad_shapes_fail() {
        let out = deployer(&["schema"], &repo().join("environments"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let schema = text(&out.stdout);
        let mut files: Vec<(&str, String)> = ["defaults", "dev", "local", "prod", "staging"]
            .iter()
            .map(|n| {
                (
                    *n,
                    std::fs::read_to_string(repo().join(format!("environments/{n}.yaml"))).unwrap(),
                )
            })
            .collect();
        let bad = [
            ("misspelt-key", "scaler:\n  memroy_mb: 512\n"),
            ("wrong-type", "scaler:\n  memory_mb: lots\n"),
            ("unknown-value", "release:\n  scaler_rollout: gradual\n"),
            ("unknown-top-level", "regoin: ap-northeast-1\n"),
            ("bad-enum", "efs:\n  performance_mode: fast\n"),
            ("bad-list", "availability_zones: ap-northeast-1a\n"),
        ];
        files.extend(bad.iter().map(|(n, t)| (*n, t.to_string())));
        for (name, ok, why) in verdicts(&schema, &files) {
            let expected = !bad.iter().any(|(b, _)| *b == name);
            assert_eq!(ok, expected, "{name}: {why}");
        }
    }
}

/// Shell completions and man pages come from the command-line definition: they know
/// every command and flag, and the shells accept them.
mod completions_and_man {
    use super::*;

    #[test]
    fn completion_scripts_know_the_commands_and_bash_loads_them() {
        let envs = repo().join("environments");
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let out = deployer(&["completions", shell], &envs);
            assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
            let script = text(&out.stdout);
            for word in ["rollback", "drift", "approve-risky"] {
                assert!(script.contains(word), "{shell} lacks {word}");
            }
        }
        // bash parses the script and registers the function.
        let bash = text(&deployer(&["completions", "bash"], &envs).stdout);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deployer.bash"), bash).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {} && complete -p deployer",
                dir.path().join("deployer.bash").display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains("_deployer"),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let bad = deployer(&["completions", "tcsh"], &envs);
        assert_eq!(bad.status.code(), Some(1), "bad input is exit 1");
        assert!(
            text(&bad.stderr).contains("possible values: bash, zsh"),
            "{}",
            text(&bad.stderr)
        );
    }

    #[test]
    fn man_pages_one_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = deployer(
            &["manpage", "--out", dir.path().to_str().unwrap()],
            &repo().join("environments"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let up = std::fs::read_to_string(dir.path().join("deployer-up.1")).unwrap();
        assert!(
            up.starts_with(".ie") && up.contains(".TH deployer-up 1"),
            "{up}"
        );
        assert!(up.contains("approve\\-risky"), "{up}");
        let main = std::fs::read_to_string(dir.path().join("deployer.1")).unwrap();
        assert!(main.contains("rollback"), "{main}");
        assert!(dir.path().join("deployer-rollback.1").exists());
    }
}

/// `deployer init`: a project from nothing that validates and renders, editors wired to
/// the schema, and never an overwrite.
mod init {
    use super::*;

    fn init(dir: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deployer"))
            .arg("init")
            .arg(dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    #[test]
    fn a_new_project_validates_and_a_second_init_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = init(dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        let envs = dir.path().join("environments");
        for name in ["defaults", "dev", "staging", "prod", "local"] {
            let file = std::fs::read_to_string(envs.join(format!("{name}.yaml"))).unwrap();
            assert!(
                file.starts_with("# yaml-language-server: $schema=./schema.json\n"),
                "{name}"
            );
        }
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(envs.join("schema.json")).unwrap())
                .unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let workflow =
            std::fs::read_to_string(dir.path().join(".github/workflows/deployer.yml")).unwrap();
        assert!(workflow.contains("deployer diff --env") && workflow.contains("deployer up --env"));
        let validated = deployer(&["validate", "--all", "--config-only"], &envs);
        assert!(validated.status.success(), "{}", text(&validated.stderr));
        assert!(
            deployer(&["render", "--env", "prod"], &envs)
                .status
                .success()
        );

        // One file edited since: a second init refuses, names it, and leaves it alone.
        std::fs::write(envs.join("dev.yaml"), "region: eu-west-1\n").unwrap();
        std::fs::remove_file(envs.join("staging.yaml")).unwrap();
        let again = init(dir.path());
        assert_eq!(again.status.code(), Some(1));
        let stderr = text(&again.stderr);
        assert!(
            stderr.contains("dev.yaml") && stderr.contains("nothing was written"),
            "{stderr}"
        );
        assert!(
            !envs.join("staging.yaml").exists(),
            "init wrote although it refused"
        );
        assert_eq!(
            std::fs::read_to_string(envs.join("dev.yaml")).unwrap(),
            "region: eu-west-1\n"
        );
    }
}
