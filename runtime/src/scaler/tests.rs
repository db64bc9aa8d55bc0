//! The scaling pass against EFS, SSM and ECS clients that answer from an in-memory world
//! instead of the network. The SDK clients are the real ones, with `aws-smithy-mocks`
//! answering below them: successes as modelled outputs, and errors as the HTTP
//! responses AWS sends (status, `x-amzn-errortype` or `__type`), so error parsing,
//! classification and the SDK's retries run as in production.
//!
//! Covers the original design's error table row by row, a no-op run making no write
//! call, and properties 3 (one target per zone, whatever the races), 4 (what is
//! published reads back equal) and 7 (a failure at any step leaves the published list
//! and the service untouched).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_services::{DescribeServicesError, DescribeServicesOutput};
use aws_sdk_ecs::operation::update_service::{UpdateServiceError, UpdateServiceOutput};
use aws_sdk_efs::operation::create_mount_target::{
    CreateMountTargetError, CreateMountTargetOutput,
};
use aws_sdk_efs::operation::describe_mount_targets::{
    DescribeMountTargetsError, DescribeMountTargetsInput, DescribeMountTargetsOutput,
};
use aws_sdk_efs::types::{LifeCycleState, MountTargetDescription};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use proptest::prelude::*;
use serde_json::Value;

use super::config::ScalerConfig;
use super::deadline::Deadline;
use super::pass::{Clients, RunOptions, run};
use super::result::{FailureKind, RunResult};
use crate::aws::ecs::Ecs;
use crate::aws::efs::Efs;
use crate::aws::ssm::Ssm;
use crate::model::MountTargetList;

const FS: &str = "fs-00000001";
const VPC: &str = "vpc-00000001";
const PARAM: &str = "/efs-autoscaler/test/mount-targets";
/// Zone letter and subnet per candidate, in preference order.
const ZONES: [(&str, &str); 3] = [
    ("ap-northeast-1a", "subnet-0000000a"),
    ("ap-northeast-1c", "subnet-0000000c"),
    ("ap-northeast-1d", "subnet-0000000d"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Op {
    DescribeMountTargets,
    CreateMountTarget,
    GetParameter,
    PutParameter,
    DescribeServices,
    UpdateService,
}

const WRITES: [Op; 3] = [Op::CreateMountTarget, Op::PutParameter, Op::UpdateService];

/// An HTTP error as the service would send it.
#[derive(Debug, Clone, Copy)]
struct Injected {
    status: u16,
    code: &'static str,
}

const THROTTLED: Injected = Injected {
    status: 400,
    code: "ThrottlingException",
};

#[derive(Debug, Clone)]
struct Target {
    id: String,
    az: String,
    subnet: String,
    ip: String,
    vpc: String,
    state: LifeCycleState,
    /// Polls by id left before a creating target becomes available.
    polls_left: u32,
}

impl Target {
    fn describe(&self) -> MountTargetDescription {
        MountTargetDescription::builder()
            .mount_target_id(&self.id)
            .file_system_id(FS)
            .subnet_id(&self.subnet)
            .availability_zone_name(&self.az)
            .vpc_id(&self.vpc)
            .ip_address(&self.ip)
            .life_cycle_state(self.state.clone())
            .build()
            .unwrap()
    }
}

#[derive(Debug)]
struct World {
    targets: Vec<Target>,
    param: Option<(String, i64, i64)>,
    service_status: String,
    /// (id, created at), newest first.
    deployments: Vec<(String, i64)>,
    clock: i64,
    /// Every call to the operation fails with this.
    fail: BTreeMap<Op, Injected>,
    /// Another creator wins the race: a target appears in the zone just before ours.
    race_on_create: bool,
    /// New targets stay `creating` for this many polls.
    creating_polls: u32,
    page_size: usize,
    calls: Vec<Op>,
    next_id: u32,
}

type Shared = Arc<Mutex<World>>;

fn http_error(service_json: bool, e: Injected) -> HttpResponse {
    let body = if service_json {
        format!(r#"{{"__type":"{}","message":"injected"}}"#, e.code)
    } else {
        format!(r#"{{"ErrorCode":"{}","Message":"injected"}}"#, e.code)
    };
    let mut resp = HttpResponse::new(StatusCode::try_from(e.status).unwrap(), SdkBody::from(body));
    resp.headers_mut()
        .insert("content-type", "application/json");
    if !service_json {
        resp.headers_mut().insert("x-amzn-errortype", e.code);
    }
    resp
}

fn time(secs: i64) -> DateTime {
    DateTime::from_secs(secs)
}

impl World {
    fn new() -> World {
        World {
            targets: Vec::new(),
            param: None,
            service_status: "ACTIVE".into(),
            // Deployed after the list was published (at 950).
            deployments: vec![("ecs-svc/1".into(), 960)],
            clock: 1000,
            fail: BTreeMap::new(),
            race_on_create: false,
            creating_polls: 0,
            page_size: 100,
            calls: Vec::new(),
            next_id: 1,
        }
    }

    /// The usual starting point: targets in the first two zones, the list published,
    /// and the service deployed after it.
    fn deployed() -> World {
        let mut w = World::new();
        for (az, subnet) in &ZONES[..2] {
            w.add_target(az, subnet, LifeCycleState::Available);
        }
        w.param = Some((w.verified_value().unwrap(), 1, 950));
        w
    }

    /// Every call to `op` fails with this HTTP status and AWS error code.
    fn failing(mut self, op: Op, status: u16, code: &'static str) -> World {
        self.fail.insert(op, Injected { status, code });
        self
    }

    fn add_target(&mut self, az: &str, subnet: &str, state: LifeCycleState) -> Target {
        let n = self.next_id;
        self.next_id += 1;
        let t = Target {
            id: format!("fsmt-{n:08x}"),
            az: az.into(),
            subnet: subnet.into(),
            ip: format!("10.0.{n}.100"),
            vpc: VPC.into(),
            polls_left: if state == LifeCycleState::Creating {
                self.creating_polls
            } else {
                0
            },
            state,
        };
        self.targets.push(t.clone());
        t
    }

    /// What the list should be: the available targets.
    fn verified_value(&self) -> Option<String> {
        let list = MountTargetList::new(
            self.targets
                .iter()
                .filter(|t| t.state == LifeCycleState::Available)
                .map(|t| crate::model::MountTarget {
                    mount_target_id: t.id.clone(),
                    ip_address: t.ip.parse().unwrap(),
                    availability_zone: t.az.clone(),
                    subnet_id: t.subnet.clone(),
                })
                .collect(),
        )
        .ok()?;
        list.to_canonical_json().ok()
    }

    fn enter(&mut self, op: Op) -> Option<Injected> {
        self.calls.push(op);
        self.fail.get(&op).copied()
    }

    fn writes(&self) -> Vec<Op> {
        self.calls
            .iter()
            .copied()
            .filter(|op| WRITES.contains(op))
            .collect()
    }

    fn describe(
        &mut self,
        input: &DescribeMountTargetsInput,
    ) -> MockResponse<DescribeMountTargetsOutput, DescribeMountTargetsError> {
        if let Some(e) = self.enter(Op::DescribeMountTargets) {
            return MockResponse::Http(http_error(false, e));
        }
        if let Some(id) = input.mount_target_id() {
            let Some(t) = self.targets.iter_mut().find(|t| t.id == id) else {
                return MockResponse::Http(http_error(
                    false,
                    Injected {
                        status: 404,
                        code: "MountTargetNotFound",
                    },
                ));
            };
            if t.state == LifeCycleState::Creating {
                if t.polls_left == 0 {
                    t.state = LifeCycleState::Available;
                } else {
                    t.polls_left -= 1;
                }
            }
            let d = t.describe();
            return MockResponse::Output(
                DescribeMountTargetsOutput::builder()
                    .mount_targets(d)
                    .build(),
            );
        }
        assert_eq!(input.file_system_id(), Some(FS));
        let start: usize = input.marker().map_or(0, |m| m.parse().unwrap());
        let end = (start + self.page_size).min(self.targets.len());
        let mut out = DescribeMountTargetsOutput::builder();
        for t in &self.targets[start..end] {
            out = out.mount_targets(t.describe());
        }
        if end < self.targets.len() {
            out = out.next_marker(end.to_string());
        }
        MockResponse::Output(out.build())
    }

    fn create(
        &mut self,
        subnet: &str,
        groups: &[String],
    ) -> MockResponse<CreateMountTargetOutput, CreateMountTargetError> {
        if let Some(e) = self.enter(Op::CreateMountTarget) {
            return MockResponse::Http(http_error(false, e));
        }
        assert_eq!(groups, ["sg-00000001"], "the configured security group");
        let az = ZONES.iter().find(|(_, s)| *s == subnet).unwrap().0;
        if self.race_on_create {
            self.race_on_create = false;
            if !self.targets.iter().any(|t| t.az == az) {
                self.add_target(az, subnet, LifeCycleState::Creating);
            }
        }
        if self.targets.iter().any(|t| t.az == az) {
            return MockResponse::Http(http_error(
                false,
                Injected {
                    status: 409,
                    code: "MountTargetConflict",
                },
            ));
        }
        let state = if self.creating_polls > 0 {
            LifeCycleState::Creating
        } else {
            LifeCycleState::Available
        };
        let t = self.add_target(az, subnet, state);
        MockResponse::Output(
            CreateMountTargetOutput::builder()
                .mount_target_id(&t.id)
                .file_system_id(FS)
                .subnet_id(&t.subnet)
                .availability_zone_name(&t.az)
                .vpc_id(&t.vpc)
                .ip_address(&t.ip)
                .life_cycle_state(t.state)
                .build()
                .unwrap(),
        )
    }

    fn get_parameter(&mut self, name: &str) -> MockResponse<GetParameterOutput, GetParameterError> {
        if let Some(e) = self.enter(Op::GetParameter) {
            return MockResponse::Http(http_error(true, e));
        }
        assert_eq!(name, PARAM);
        match &self.param {
            None => MockResponse::Http(http_error(
                true,
                Injected {
                    status: 400,
                    code: "ParameterNotFound",
                },
            )),
            Some((value, version, modified)) => MockResponse::Output(
                GetParameterOutput::builder()
                    .parameter(
                        aws_sdk_ssm::types::Parameter::builder()
                            .name(PARAM)
                            .value(value)
                            .version(*version)
                            .last_modified_date(time(*modified))
                            .build(),
                    )
                    .build(),
            ),
        }
    }

    fn put_parameter(
        &mut self,
        value: &str,
        overwrite: bool,
    ) -> MockResponse<PutParameterOutput, PutParameterError> {
        if let Some(e) = self.enter(Op::PutParameter) {
            return MockResponse::Http(http_error(true, e));
        }
        assert!(overwrite);
        self.clock += 1;
        let version = self.param.as_ref().map_or(1, |p| p.1 + 1);
        self.param = Some((value.to_string(), version, self.clock));
        MockResponse::Output(PutParameterOutput::builder().version(version).build())
    }

    fn service(&self) -> aws_sdk_ecs::types::Service {
        let mut s = aws_sdk_ecs::types::Service::builder()
            .service_name("svc")
            .status(&self.service_status)
            .desired_count(2)
            .running_count(2);
        for (i, (id, at)) in self.deployments.iter().enumerate() {
            s = s.deployments(
                aws_sdk_ecs::types::Deployment::builder()
                    .id(id)
                    .status(if i == 0 { "PRIMARY" } else { "ACTIVE" })
                    .created_at(time(*at))
                    .build(),
            );
        }
        s.build()
    }

    fn describe_services(&mut self) -> MockResponse<DescribeServicesOutput, DescribeServicesError> {
        if let Some(e) = self.enter(Op::DescribeServices) {
            return MockResponse::Http(http_error(true, e));
        }
        MockResponse::Output(
            DescribeServicesOutput::builder()
                .services(self.service())
                .build(),
        )
    }

    fn update_service(
        &mut self,
        force: bool,
    ) -> MockResponse<UpdateServiceOutput, UpdateServiceError> {
        if let Some(e) = self.enter(Op::UpdateService) {
            return MockResponse::Http(http_error(true, e));
        }
        assert!(force, "only forced redeploys");
        self.clock += 1;
        let id = format!("ecs-svc/{}", self.clock);
        self.deployments.insert(0, (id, self.clock));
        MockResponse::Output(
            UpdateServiceOutput::builder()
                .service(self.service())
                .build(),
        )
    }
}

fn fast_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(2))
}

/// Clients answering from `world`. The world's answers depend on the request, which
/// aws-smithy-mocks only hands over on a first attempt, so these clients do not retry;
/// retries are tested with fixed response sequences (`clients_with`).
fn clients(world: &Shared) -> Clients {
    clients_with(world, RetryConfig::disabled(), &[], &[])
}

/// `extra_*` rules are tried before the world's.
fn clients_with(
    world: &Shared,
    retries: RetryConfig,
    extra_efs: &[&aws_smithy_mocks::Rule],
    extra_ssm: &[&aws_smithy_mocks::Rule],
) -> Clients {
    let w = world.clone();
    let describe = mock!(aws_sdk_efs::Client::describe_mount_targets)
        .then_compute_response(move |input| w.lock().unwrap().describe(input));
    let w = world.clone();
    let create =
        mock!(aws_sdk_efs::Client::create_mount_target).then_compute_response(move |input| {
            w.lock()
                .unwrap()
                .create(input.subnet_id().unwrap(), input.security_groups())
        });
    let w = world.clone();
    let get = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_compute_response(move |input| w.lock().unwrap().get_parameter(input.name().unwrap()));
    let w = world.clone();
    let put = mock!(aws_sdk_ssm::Client::put_parameter).then_compute_response(move |input| {
        w.lock()
            .unwrap()
            .put_parameter(input.value().unwrap(), input.overwrite() == Some(true))
    });
    let w = world.clone();
    let describe_services =
        mock!(aws_sdk_ecs::Client::describe_services).then_compute_response(move |input| {
            assert_eq!(input.cluster(), Some("cluster"));
            assert_eq!(input.services(), ["svc"]);
            w.lock().unwrap().describe_services()
        });
    let w = world.clone();
    let update = mock!(aws_sdk_ecs::Client::update_service).then_compute_response(move |input| {
        w.lock()
            .unwrap()
            .update_service(input.force_new_deployment() == Some(true))
    });
    let efs_rules: Vec<&aws_smithy_mocks::Rule> = extra_efs
        .iter()
        .copied()
        .chain([&describe, &create])
        .collect();
    let ssm_rules: Vec<&aws_smithy_mocks::Rule> =
        extra_ssm.iter().copied().chain([&get, &put]).collect();
    let (r1, r2, r3) = (retries.clone(), retries.clone(), retries);
    Clients {
        efs: Efs::new(mock_client!(
            aws_sdk_efs,
            RuleMode::MatchAny,
            efs_rules,
            |b| b.retry_config(r1.clone())
        )),
        ssm: Ssm::new(mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            ssm_rules,
            |b| b.retry_config(r2.clone())
        )),
        ecs: Ecs::new(mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            &[&describe_services, &update],
            |b| b.retry_config(r3.clone())
        )),
    }
}

fn config(dir: &std::path::Path, threshold: u64) -> ScalerConfig {
    let candidates = ZONES
        .iter()
        .map(|(az, subnet)| format!(r#"{{"availability_zone":"{az}","subnet_id":"{subnet}"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let vars: BTreeMap<String, String> = [
        ("EFS_FILE_SYSTEM_ID", FS.to_string()),
        ("TARGET_DIRECTORY", dir.display().to_string()),
        ("FILE_COUNT_THRESHOLD", threshold.to_string()),
        ("SSM_PARAMETER_NAME", PARAM.to_string()),
        ("ECS_CLUSTER_NAME", "cluster".to_string()),
        ("ECS_SERVICE_NAME", "svc".to_string()),
        ("VPC_ID", VPC.to_string()),
        ("SECURITY_GROUP_ID", "sg-00000001".to_string()),
        ("CANDIDATE_SUBNETS", format!("[{candidates}]")),
        ("MIN_MOUNT_TARGETS", "2".to_string()),
        ("COUNT_THREADS", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ScalerConfig::from_vars(&vars).unwrap()
}

/// A directory with `n` files.
fn files(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
    }
    dir
}

fn options(dry_run: bool) -> RunOptions {
    RunOptions {
        poll_interval: Duration::from_millis(1),
        ..RunOptions::new(dry_run, Deadline::after(Duration::from_secs(30)))
    }
}

fn pass(world: &Shared, cfg: &ScalerConfig, dry_run: bool) -> RunResult {
    pass_with(world, &clients(world), cfg, options(dry_run))
}

fn pass_with(
    world: &Shared,
    clients: &Clients,
    cfg: &ScalerConfig,
    options: RunOptions,
) -> RunResult {
    world.lock().unwrap().calls.clear();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(cfg, clients, options))
}

fn shared(w: World) -> Shared {
    Arc::new(Mutex::new(w))
}

// ------------------------------------------------------------------ scenarios

#[test]
fn a_run_below_the_threshold_makes_no_write_call() {
    let world = shared(World::deployed());
    let dir = files(5);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert!(r.is_success(), "{r:?}");
    assert_eq!((r.file_count, r.file_count_complete), (5, true));
    assert!(!r.threshold_exceeded && !r.new_mount_target_created && !r.deployment_triggered);
    assert!(!r.parameter_updated);
    let w = world.lock().unwrap();
    assert_eq!(
        w.calls,
        [
            Op::DescribeMountTargets,
            Op::GetParameter,
            Op::DescribeServices
        ]
    );
}

#[test]
fn over_the_threshold_adds_one_target_in_the_first_free_zone_publishes_and_redeploys() {
    let mut w = World::deployed();
    w.creating_polls = 2;
    let world = shared(w);
    let dir = files(25);
    let cfg = config(dir.path(), 10);
    let r = pass(&world, &cfg, false);
    assert!(r.is_success(), "{r:?}");
    assert!(r.threshold_exceeded && r.new_mount_target_created && r.deployment_triggered);
    assert!(r.parameter_updated);
    // per-target with 2 existing: counting stops once 21 files are seen.
    assert!(!r.file_count_complete && r.file_count >= 21, "{r:?}");
    assert_eq!(r.desired_mount_targets, Some(3));
    {
        let w = world.lock().unwrap();
        let new = w.targets.last().unwrap();
        assert_eq!(new.az, "ap-northeast-1d");
        assert_eq!(r.new_mount_target_id.as_deref(), Some(new.id.as_str()));
        assert_eq!(w.param.as_ref().unwrap().0, w.verified_value().unwrap());
        assert_eq!(
            MountTargetList::parse(&w.param.as_ref().unwrap().0)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            w.writes(),
            [Op::CreateMountTarget, Op::PutParameter, Op::UpdateService]
        );
        assert_eq!(r.mount_targets_after.len(), 3);
        assert_eq!(
            r.deployment_id.as_deref(),
            Some(w.deployments[0].0.as_str())
        );
    }
    // The next run has nothing left to do.
    let r = pass(&world, &cfg, false);
    assert!(r.is_success(), "{r:?}");
    assert!(
        !r.new_mount_target_created && !r.deployment_triggered,
        "{r:?}"
    );
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn with_every_zone_used_it_warns_and_succeeds() {
    let mut w = World::deployed();
    w.add_target(ZONES[2].0, ZONES[2].1, LifeCycleState::Available);
    w.param = Some((w.verified_value().unwrap(), 2, 950));
    let world = shared(w);
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert!(r.is_success(), "{r:?}");
    assert!(r.threshold_exceeded && !r.new_mount_target_created);
    assert!(r.warnings.iter().any(|w| w.contains("maximum")), "{r:?}");
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn no_free_candidate_zone_is_a_warning() {
    // Below the configured maximum, but every candidate zone is taken.
    let mut w = World::deployed();
    w.add_target(ZONES[2].0, ZONES[2].1, LifeCycleState::Available);
    w.param = Some((w.verified_value().unwrap(), 2, 950));
    let world = shared(w);
    let dir = files(100);
    let mut cfg = config(dir.path(), 10);
    cfg.max_mount_targets = 6;
    let r = pass(&world, &cfg, false);
    assert!(r.is_success(), "{r:?}");
    assert!(r.threshold_exceeded && !r.new_mount_target_created);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("every candidate zone")),
        "{r:?}"
    );
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn efs_access_error_stops_the_run() {
    let w = World::deployed().failing(Op::DescribeMountTargets, 403, "AccessDeniedException");
    let world = shared(w);
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert_eq!(r.error_kind, Some(FailureKind::EfsAccess), "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("AccessDeniedException"),
        "{r:?}"
    );
    assert_eq!(world.lock().unwrap().calls, [Op::DescribeMountTargets]);
}

#[test]
fn an_unreadable_directory_is_an_efs_access_error() {
    let world = shared(World::deployed());
    let dir = files(0);
    let r = pass(&world, &config(&dir.path().join("not-mounted"), 10), false);
    assert_eq!(r.error_kind, Some(FailureKind::EfsAccess), "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("not-mounted"));
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn creation_failure_writes_nothing_and_redeploys_nothing() {
    let w = World::deployed().failing(Op::CreateMountTarget, 409, "NoFreeAddressesInSubnet");
    let before = w.param.clone();
    let world = shared(w);
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert_eq!(
        r.error_kind,
        Some(FailureKind::MountTargetCreation),
        "{r:?}"
    );
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("NoFreeAddressesInSubnet")
    );
    let w = world.lock().unwrap();
    assert_eq!(w.writes(), [Op::CreateMountTarget]);
    assert_eq!(w.param, before);
}

/// The JSON log lines (as Lambda's CloudWatch Logs gets them) of one pass.
fn logged_pass(world: &Shared, cfg: &ScalerConfig, options: RunOptions) -> (RunResult, Vec<Value>) {
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        pass_with(world, &clients(world), cfg, options)
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let events = text
        .lines()
        // The SDK's own lines are not the scaler's.
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("runtime::scaler"))
        })
        .collect();
    (result, events)
}

fn messages(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect()
}

#[test]
fn a_scale_out_logs_each_step_with_the_run_id_and_the_wait_for_the_new_target() {
    let mut w = World::deployed();
    w.creating_polls = 3;
    let world = shared(w);
    let dir = files(25);
    let cfg = config(dir.path(), 10);
    let every_poll = RunOptions {
        progress_every: Duration::ZERO,
        ..options(false)
    }
    .with_run_id("req-7f3a");
    let (r, events) = logged_pass(&world, &cfg, every_poll);
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.run_id, "req-7f3a");
    assert!(
        events.iter().all(|e| e["run_id"] == "req-7f3a"),
        "a line without the run id: {events:#?}"
    );
    assert_eq!(
        messages(&events),
        [
            "scaler run started",
            "mount targets described",
            "files counted",
            "scaling decision",
            "creating a mount target",
            "mount target creation started; waiting for it to become available",
            "waiting for the mount target",
            "waiting for the mount target",
            "waiting for the mount target",
            "mount target available",
            "mount-target list published",
            "router service redeployed",
        ],
        "{events:#?}"
    );
    let new_id = r.new_mount_target_id.as_deref().unwrap();
    let by = |m: &str| events.iter().find(|e| e["message"] == m).unwrap();
    assert_eq!(by("files counted")["threshold_exceeded"], true);
    assert_eq!(by("scaling decision")["action"], "create a mount target");
    assert_eq!(by("scaling decision")["zone"], "ap-northeast-1d");
    assert_eq!(
        by("waiting for the mount target")["mount_target_id"],
        new_id
    );
    assert_eq!(by("waiting for the mount target")["state"], "creating");
    assert_eq!(by("mount target available")["mount_target_id"], new_id);
    assert_eq!(
        by("router service redeployed")["deployment_id"],
        r.deployment_id.as_deref().unwrap()
    );

    // Below the threshold: the decision says so, and nothing after it is a write.
    let (r, events) = logged_pass(&world, &cfg, options(false).with_run_id("req-2"));
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        messages(&events),
        [
            "scaler run started",
            "mount targets described",
            "files counted",
            "scaling decision",
            "mount-target list unchanged",
        ],
        "{events:#?}"
    );
}

#[test]
fn a_failed_step_is_logged_as_an_error_with_its_kind() {
    let w = World::deployed().failing(Op::CreateMountTarget, 409, "NoFreeAddressesInSubnet");
    let world = shared(w);
    let dir = files(100);
    let (r, events) = logged_pass(
        &world,
        &config(dir.path(), 10),
        options(false).with_run_id("req-9"),
    );
    assert_eq!(r.error_kind, Some(FailureKind::MountTargetCreation));
    let last = events.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{events:#?}");
    assert_eq!(last["run_id"], "req-9");
    assert_eq!(last["kind"], "mount_target_creation");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("NoFreeAddressesInSubnet"),
        "{last}"
    );
}

#[test]
fn ssm_write_failure_keeps_the_old_list_and_does_not_redeploy() {
    let w = World::deployed().failing(Op::PutParameter, 400, "AccessDeniedException");
    let before = w.param.clone();
    let world = shared(w);
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert_eq!(r.error_kind, Some(FailureKind::Ssm), "{r:?}");
    assert!(r.new_mount_target_created);
    let w = world.lock().unwrap();
    assert_eq!(w.param, before);
    assert!(!w.calls.contains(&Op::UpdateService));
}

#[test]
fn a_failed_redeploy_is_retried_on_the_next_run_without_creating_anything() {
    let w = World::deployed().failing(Op::UpdateService, 400, "ServiceNotActiveException");
    let world = shared(w);
    let dir = files(100);
    let cfg = config(dir.path(), 10);
    let r = pass(&world, &cfg, false);
    assert_eq!(r.error_kind, Some(FailureKind::Ecs), "{r:?}");
    assert!(r.parameter_updated && r.new_mount_target_created && !r.deployment_triggered);

    // ECS is back; everything is at the maximum, the list is current, but the
    // service's deployment is older than the list.
    world.lock().unwrap().fail.clear();
    let r = pass(&world, &cfg, false);
    assert!(r.is_success(), "{r:?}");
    assert!(r.deployment_triggered && !r.new_mount_target_created && !r.parameter_updated);
    assert_eq!(world.lock().unwrap().writes(), [Op::UpdateService]);

    // And only once.
    let r = pass(&world, &cfg, false);
    assert!(!r.deployment_triggered, "{r:?}");
    assert!(world.lock().unwrap().writes().is_empty());
}

fn throttle_response(service_json: bool) -> HttpResponse {
    http_error(service_json, THROTTLED)
}

#[test]
fn throttling_is_retried_with_backoff() {
    let world = shared(World::deployed());
    let listed = {
        let w = world.lock().unwrap();
        let mut out = DescribeMountTargetsOutput::builder();
        for t in &w.targets {
            out = out.mount_targets(t.describe());
        }
        out.build()
    };
    let throttled_twice = mock!(aws_sdk_efs::Client::describe_mount_targets)
        .sequence()
        .http_response(|| throttle_response(false))
        .times(2)
        .output(move || listed.clone())
        .build();
    let clients = clients_with(&world, fast_retries(), &[&throttled_twice], &[]);
    let dir = files(1);
    let r = pass_with(&world, &clients, &config(dir.path(), 10), options(false));
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        throttled_twice.num_calls(),
        3,
        "two throttled attempts, then the answer"
    );
    assert_eq!(r.mount_targets_before.len(), 2);
}

#[test]
fn throttling_that_outlasts_the_retries_is_reported() {
    let world = shared(World::deployed());
    let always_throttled = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| throttle_response(true))
        .times(3)
        .build();
    let clients = clients_with(&world, fast_retries(), &[], &[&always_throttled]);
    let dir = files(1);
    let r = pass_with(&world, &clients, &config(dir.path(), 10), options(false));
    assert_eq!(r.error_kind, Some(FailureKind::Ssm), "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("ThrottlingException"),
        "{r:?}"
    );
    assert_eq!(always_throttled.num_calls(), 3);
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn a_conflict_with_a_racing_creator_is_success_without_a_second_target() {
    let mut w = World::deployed();
    w.race_on_create = true;
    let world = shared(w);
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert!(r.is_success(), "{r:?}");
    assert!(!r.new_mount_target_created);
    assert!(
        r.warnings.iter().any(|w| w.contains("already has")),
        "{r:?}"
    );
    let w = world.lock().unwrap();
    assert_eq!(
        w.targets
            .iter()
            .filter(|t| t.az == "ap-northeast-1d")
            .count(),
        1
    );
    // The racing target became available while waited for, and is published.
    assert_eq!(
        MountTargetList::parse(&w.param.as_ref().unwrap().0)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn dry_run_decides_but_writes_nothing() {
    let world = shared(World::deployed());
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), true);
    assert!(r.is_success(), "{r:?}");
    assert!(r.dry_run && !r.new_mount_target_created && !r.deployment_triggered);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("would create a mount target in ap-northeast-1d")),
        "{r:?}"
    );
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn a_target_still_creating_at_the_deadline_is_left_for_the_next_run() {
    let mut w = World::deployed();
    w.creating_polls = u32::MAX;
    let world = shared(w);
    let dir = files(100);
    let cfg = config(dir.path(), 10);
    let r = pass_with(
        &world,
        &clients(&world),
        &cfg,
        RunOptions {
            poll_interval: Duration::from_millis(20),
            // The wait keeps 10 s back for publishing; this leaves it half a second.
            ..RunOptions::new(false, Deadline::after(Duration::from_millis(10_500)))
        },
    );
    assert!(r.is_success(), "{r:?}");
    assert!(r.new_mount_target_created);
    assert!(
        r.warnings.iter().any(|w| w.contains("not available yet")),
        "{r:?}"
    );
    // The list holds only available targets, so nothing changed and nothing redeploys.
    assert!(!r.parameter_updated && !r.deployment_triggered);
    assert_eq!(world.lock().unwrap().writes(), [Op::CreateMountTarget]);
}

#[test]
fn a_target_in_another_vpc_is_a_configuration_error() {
    let mut w = World::deployed();
    w.targets[0].vpc = "vpc-00000002".into();
    let world = shared(w);
    let dir = files(100);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert_eq!(r.error_kind, Some(FailureKind::Configuration), "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("vpc-00000002"));
    assert!(world.lock().unwrap().writes().is_empty());
}

#[test]
fn every_page_of_mount_targets_is_read() {
    let mut w = World::deployed();
    w.add_target(ZONES[2].0, ZONES[2].1, LifeCycleState::Available);
    w.page_size = 1;
    let world = shared(w);
    let dir = files(1);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.mount_targets_before.len(), 3);
    // The third target was missing from the list: published now.
    assert!(r.parameter_updated && r.deployment_triggered);
    let w = world.lock().unwrap();
    assert_eq!(
        MountTargetList::parse(&w.param.as_ref().unwrap().0)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_missing_or_unreadable_parameter_is_replaced_by_the_verified_list() {
    for param in [None, Some(("not json".to_string(), 3, 950))] {
        let mut w = World::deployed();
        w.param = param;
        let world = shared(w);
        let dir = files(1);
        let r = pass(&world, &config(dir.path(), 10), false);
        assert!(r.is_success(), "{r:?}");
        assert!(r.parameter_updated && r.deployment_triggered);
        let w = world.lock().unwrap();
        assert_eq!(w.param.as_ref().unwrap().0, w.verified_value().unwrap());
    }
}

#[test]
fn no_available_target_publishes_nothing() {
    let mut w = World::new();
    w.add_target(ZONES[0].0, ZONES[0].1, LifeCycleState::Deleting);
    w.param = Some(("{\"kept\":true}".into(), 1, 950));
    let before = w.param.clone();
    let world = shared(w);
    let dir = files(1);
    let r = pass(&world, &config(dir.path(), 10), false);
    assert_eq!(
        r.error_kind,
        Some(FailureKind::NoAvailableMountTarget),
        "{r:?}"
    );
    assert_eq!(world.lock().unwrap().param, before);
}

// ------------------------------------------------------------------ properties

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::DescribeMountTargets),
        Just(Op::CreateMountTarget),
        Just(Op::GetParameter),
        Just(Op::PutParameter),
        Just(Op::DescribeServices),
        Just(Op::UpdateService),
    ]
}

fn any_error() -> impl Strategy<Value = Injected> {
    prop_oneof![
        Just(Injected {
            status: 500,
            code: "InternalServerError"
        }),
        Just(Injected {
            status: 403,
            code: "AccessDeniedException"
        }),
        Just(THROTTLED),
        Just(Injected {
            status: 400,
            code: "ValidationException"
        }),
    ]
}

/// One directory per file count, made once: the property tests run hundreds of passes.
struct Trees(BTreeMap<usize, tempfile::TempDir>);

impl Trees {
    fn get(&mut self, n: usize) -> &std::path::Path {
        self.0.entry(n).or_insert_with(|| files(n)).path()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Property 3: however runs, counts, races and slow creations interleave, there is
    /// never more than one mount target per zone, and at most one creation per run.
    #[test]
    fn never_two_targets_in_one_zone(
        runs in prop::collection::vec((0usize..40, any::<bool>(), 0u32..3, any::<bool>()), 1..6),
    ) {
        let mut trees = Trees(BTreeMap::new());
        let world = shared(World::deployed());
        for (count, race, creating_polls, dry_run) in runs {
            {
                let mut w = world.lock().unwrap();
                w.race_on_create = race;
                w.creating_polls = creating_polls;
            }
            let before = world.lock().unwrap().targets.len();
            let cfg = config(trees.get(count), 10);
            let r = pass(&world, &cfg, dry_run);
            let w = world.lock().unwrap();
            let zones: BTreeSet<&str> = w.targets.iter().map(|t| t.az.as_str()).collect();
            prop_assert_eq!(zones.len(), w.targets.len(), "two targets in one zone: {:?}", w.targets);
            let creates = w.calls.iter().filter(|c| **c == Op::CreateMountTarget).count();
            prop_assert!(creates <= 1);
            // Property 2 end to end: nothing is created unless the count is over.
            if count <= 10 || dry_run {
                prop_assert_eq!(creates, 0);
            }
            prop_assert!(w.targets.len() <= before + 1);
            prop_assert!(r.is_success(), "{:?}", r);
        }
    }

    /// Property 7: a failure at any step leaves the published list as it was (unless it
    /// failed after a verified list was written) and never redeploys for an
    /// unverified one; the run reports the error.
    #[test]
    fn a_failure_at_any_step_keeps_the_published_state(
        op in any_op(),
        error in any_error(),
        count in 0usize..40,
        stale_list in any::<bool>(),
    ) {
        let mut trees = Trees(BTreeMap::new());
        let mut w = World::deployed();
        if stale_list {
            // A target the list does not show yet: the run wants to publish.
            w.add_target(ZONES[2].0, ZONES[2].1, LifeCycleState::Available);
        }
        w.fail.insert(op, error);
        let before_param = w.param.clone();
        let before_deployments = w.deployments.clone();
        let world = shared(w);
        let cfg = config(trees.get(count), 10);
        let r = pass(&world, &cfg, false);
        let w = world.lock().unwrap();
        let called = w.calls.contains(&op);
        if !called {
            // The failing step was not needed this run.
            prop_assert!(r.is_success(), "{:?}", r);
            return Ok(());
        }
        prop_assert!(!r.is_success(), "{:?} failed but the run succeeded", op);
        prop_assert!(!r.deployment_triggered);
        prop_assert_eq!(&w.deployments, &before_deployments);
        let written = w.calls.contains(&Op::PutParameter) && op != Op::PutParameter;
        if written {
            // Only the verified list is ever written.
            prop_assert_eq!(w.param.as_ref().map(|p| p.0.clone()), w.verified_value());
        } else {
            prop_assert_eq!(&w.param, &before_param);
        }
    }

    /// Property 4: whatever list is published reads back equal, and publishing it again
    /// writes nothing.
    #[test]
    fn the_published_list_reads_back_equal(zones in prop::sample::subsequence(ZONES.to_vec(), 1..=3)) {
        let mut w = World::new();
        for (az, subnet) in &zones {
            w.add_target(az, subnet, LifeCycleState::Available);
        }
        let world = shared(w);
        let cfg = config(trees_root(), 10);
        let r = pass(&world, &cfg, false);
        prop_assert!(r.is_success(), "{:?}", r);
        let w = world.lock().unwrap();
        let published = MountTargetList::parse(&w.param.as_ref().unwrap().0).unwrap();
        let ids: BTreeSet<&str> = published.targets().iter().map(|t| t.mount_target_id.as_str()).collect();
        let expected: BTreeSet<&str> = w.targets.iter().map(|t| t.id.as_str()).collect();
        prop_assert_eq!(ids, expected);
        drop(w);
        let r = pass(&world, &cfg, false);
        prop_assert!(!r.parameter_updated);
        prop_assert!(world.lock().unwrap().writes().is_empty());
    }
}

/// An empty directory that outlives the property cases.
fn trees_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| files(0)).path()
}
