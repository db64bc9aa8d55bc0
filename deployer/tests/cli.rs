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
                && stderr.contains("did you mean `prod`?"),
            "{stderr}"
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
    }
}
