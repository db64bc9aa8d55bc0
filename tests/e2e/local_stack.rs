//! The rendered `local` environment created as real CloudFormation stacks in a moto server,
//! then checked resource by resource through the EC2, EFS, Lambda and ECS APIs.
//!
//! moto's CloudFormation is a wiring check, not a simulator (docs/architecture.md): it
//! proves the templates create the resources with the configured properties and that
//! references between them resolve; IAM evaluation, VPC endpoints' reachability and alarms
//! are only proven on real AWS (docs/architecture.md).

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use deployer::config;
use deployer::render::Renderer;
use harness::{MotoServer, repo_root};

/// The smallest valid zip (an end-of-central-directory record only). Lambda in moto stores
/// code without running it; the real artifact is built by `deployer package`.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
const ACCOUNT: &str = "123456789012";

/// CloudFormation's limit for a `TemplateBody`, as `deployer up` applies it.
const INLINE_TEMPLATE_LIMIT: usize = 51_200;

/// Where a template too large to send inline goes, as `deployer up` puts it: the
/// artifact bucket, read by CloudFormation from S3's own address.
struct Upload<'a> {
    sdk: &'a aws_config::SdkConfig,
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
}

async fn create_stack(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
    body: &str,
    parameters: Vec<Parameter>,
    upload: Option<Upload<'_>>,
) -> aws_sdk_cloudformation::types::Stack {
    // As `deployer up` sends it: without comment lines when that keeps the meaning.
    let compact = deployer::diff::template::without_comments(body);
    let body = compact.as_deref().unwrap_or(body);
    assert!(
        body.len() <= 1_000_000,
        "template of {name} is {} bytes: over CloudFormation's TemplateURL limit",
        body.len()
    );
    let request = cfn.create_stack().stack_name(name);
    let request = match upload {
        Some(to) if body.len() > INLINE_TEMPLATE_LIMIT => {
            let key = format!("templates/{name}.yaml");
            to.s3
                .put_object()
                .bucket(to.bucket)
                .key(&key)
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .expect("upload the template");
            request.template_url(deployer::aws::s3::object_url(to.sdk, to.bucket, &key))
        }
        _ => {
            assert!(
                body.len() <= INLINE_TEMPLATE_LIMIT,
                "template of {name} is {} bytes: over the TemplateBody limit",
                body.len()
            );
            request.template_body(body)
        }
    };
    request
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    let started = Instant::now();
    loop {
        let stacks = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .expect("describe stack");
        let stack = stacks.stacks().first().cloned().expect("stack exists");
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => return stack,
            Some(StackStatus::CreateInProgress) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "stack {name} ended in {other:?}: {:?}",
                stack.stack_status_reason()
            ),
        }
    }
}

fn output(stack: &aws_sdk_cloudformation::types::Stack, key: &str) -> String {
    stack
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some(key))
        .and_then(|o| o.output_value())
        .unwrap_or_else(|| panic!("stack output {key} missing: {:?}", stack.outputs()))
        .to_string()
}

/// The zones of the file system's mount targets, sorted.
pub(crate) async fn mount_target_zones(efs: &aws_sdk_efs::Client, fs_id: &str) -> Vec<String> {
    let targets = efs
        .describe_mount_targets()
        .file_system_id(fs_id)
        .send()
        .await
        .expect("describe mount targets");
    let mut zones: Vec<String> = targets
        .mount_targets()
        .iter()
        .filter_map(|t| t.availability_zone_name().map(str::to_string))
        .collect();
    zones.sort();
    zones
}

/// The `local` environment deployed into a moto server: what later checks need.
pub(crate) struct LocalStack {
    pub env: config::Environment,
    pub sdk: aws_config::SdkConfig,
    pub stack: aws_sdk_cloudformation::types::Stack,
}

impl LocalStack {
    pub fn output(&self, key: &str) -> String {
        output(&self.stack, key)
    }
}

/// Renders `local` and creates its bootstrap and main stacks in `moto`, checking the
/// bootstrap stack's outputs on the way.
pub(crate) async fn deploy_local(moto: &MotoServer) -> LocalStack {
    let env = config::load(&repo_root().join("environments"), "local")
        .unwrap_or_else(|e| panic!("{e:?}"));
    let rendered = Renderer::new().unwrap().render(&env).unwrap();
    let region = env.config.region.clone();
    let sdk = moto.sdk_config(&region).await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);

    // Bootstrap stack: artifact bucket and image repository.
    let bootstrap = create_stack(
        &cfn,
        &env.bootstrap_stack_name(),
        &rendered.bootstrap,
        vec![],
        None,
    )
    .await;
    let bucket = output(&bootstrap, "ArtifactBucketName");
    assert_eq!(
        bucket,
        format!("efs-autoscaler-artifacts-{ACCOUNT}-{region}")
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    // moto's CloudFormation drops the bucket's versioning and lifecycle settings, so only
    // existence is checked here; those properties are checked by cfn-lint and checkov.
    s3.head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("artifact bucket exists");
    let ecr_repo = output(&bootstrap, "RepositoryUri");
    assert!(ecr_repo.ends_with("/efs-autoscaler/router"), "{ecr_repo}");

    // The scaler's code, where `deployer package` will put it.
    let key = "scaler/0000000000000000000000000000000000000000000000000000000000000000.zip";
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(EMPTY_ZIP.to_vec().into())
        .send()
        .await
        .expect("upload zip");

    let image = format!("{ecr_repo}@sha256:{}", "ab".repeat(32));
    let param = |k: &str, v: &str| {
        Parameter::builder()
            .parameter_key(k)
            .parameter_value(v)
            .build()
    };
    let stack = create_stack(
        &cfn,
        &env.stack_name(),
        &rendered.main,
        vec![
            param("ScalerCodeBucket", &bucket),
            param("ScalerCodeKey", key),
            param("RouterImage", &image),
        ],
        Some(Upload {
            sdk: &sdk,
            s3: &s3,
            bucket: &bucket,
        }),
    )
    .await;
    LocalStack { env, sdk, stack }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_environment_creates_every_resource() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let LocalStack { env, sdk, stack } = deploy_local(&moto).await;

    // VPC and one private subnet per configured zone.
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vpc_id = output(&stack, "VpcId");
    let vpcs = ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("describe vpc");
    assert_eq!(
        vpcs.vpcs()[0].cidr_block(),
        Some(env.config.network.vpc_cidr.as_str())
    );
    let subnets = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc_id)
                .build(),
        )
        .send()
        .await
        .expect("describe subnets");
    let mut got: Vec<(String, String)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            (
                s.availability_zone().unwrap_or_default().to_string(),
                s.cidr_block().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = env
        .config
        .availability_zones
        .iter()
        .map(|z| (z.name.clone(), z.private_subnet_cidr.clone()))
        .collect();
    want.sort();
    assert_eq!(got, want);

    // Encrypted file system with mount targets in the initial zones only.
    let efs = aws_sdk_efs::Client::new(&sdk);
    let fs_id = output(&stack, "FileSystemId");
    let fs = efs
        .describe_file_systems()
        .file_system_id(&fs_id)
        .send()
        .await
        .expect("describe file system");
    let fs = &fs.file_systems()[0];
    assert_eq!(fs.encrypted(), Some(true));
    assert_eq!(fs.throughput_mode().map(|m| m.as_str()), Some("elastic"));
    assert_eq!(
        mount_target_zones(&efs, &fs_id).await,
        env.initial_mount_target_azs()
    );

    // The scaler function, with the design's environment variables pointing at this stack.
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function_name = output(&stack, "ScalerFunctionName");
    let function = lambda
        .get_function()
        .function_name(&function_name)
        .send()
        .await
        .expect("get function");
    let configuration = function.configuration().expect("function configuration");
    assert_eq!(
        configuration.runtime().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    assert_eq!(configuration.handler(), Some("bootstrap"));
    let vars = configuration
        .environment()
        .and_then(|e| e.variables())
        .expect("environment variables");
    assert_eq!(vars.get("EFS_FILE_SYSTEM_ID"), Some(&fs_id));
    assert_eq!(vars.get("VPC_ID"), Some(&vpc_id));
    assert_eq!(
        vars.get("FILE_COUNT_THRESHOLD").map(String::as_str),
        Some("100")
    );
    assert_eq!(
        vars.get("SSM_PARAMETER_NAME"),
        Some(&env.ssm_parameter_name())
    );
    let candidates: serde_json::Value =
        serde_json::from_str(vars.get("CANDIDATE_SUBNETS").expect("CANDIDATE_SUBNETS"))
            .expect("candidate subnets are JSON");
    let candidate_subnets: Vec<&str> = candidates
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["subnet_id"].as_str())
        .collect();
    assert_eq!(candidate_subnets.len(), 3);
    assert!(
        candidate_subnets
            .iter()
            .all(|s| subnets.subnets().iter().any(|x| x.subnet_id() == Some(*s)))
    );
    assert_eq!(
        function
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(1)
    );

    // The released version behind the `live` alias, which the schedule invokes with
    // the permission on the alias (moto's CloudFormation learns both resource types from
    // scripts/moto-server).
    let alias = lambda
        .get_alias()
        .function_name(&function_name)
        .name("live")
        .send()
        .await
        .expect("the live alias");
    assert_eq!(alias.function_version(), Some("1"));
    assert_eq!(output(&stack, "ScalerAliasArn"), alias.alias_arn().unwrap());
    let version = lambda
        .get_function_configuration()
        .function_name(&function_name)
        .qualifier("1")
        .send()
        .await
        .expect("version 1");
    assert!(
        version
            .description()
            .is_some_and(|d| d.starts_with("code scaler/") && d.contains(", configuration ")),
        "{:?}",
        version.description()
    );
    let targets = aws_sdk_eventbridge::Client::new(&sdk)
        .list_targets_by_rule()
        .rule(output(&stack, "ScalerScheduleRuleName"))
        .send()
        .await
        .expect("the schedule's targets");
    assert_eq!(
        targets.targets().first().map(|t| t.arn()),
        alias.alias_arn(),
        "the schedule invokes the alias"
    );
    let policy = lambda
        .get_policy()
        .function_name(&function_name)
        .qualifier("live")
        .send()
        .await
        .expect("the alias's resource policy");
    assert!(
        policy
            .policy()
            .is_some_and(|p| p.contains("events.amazonaws.com")),
        "{policy:?}"
    );

    // The router service in its cluster.
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let cluster = output(&stack, "ClusterName");
    let service_name = output(&stack, "ServiceName");
    let services = ecs
        .describe_services()
        .cluster(&cluster)
        .services(&service_name)
        .send()
        .await
        .expect("describe services");
    let service = services
        .services()
        .first()
        .unwrap_or_else(|| panic!("service {service_name} missing: {services:?}"));
    assert_eq!(service.desired_count(), 1);
    drop(moto);
}
