//! Releases: what runs after each `up` (the scaler's `live` alias version and the router
//! service's task definition), recorded in order in the artifact bucket beside the stack
//! lock, so `deployer rollback` can go back one, `deployer drift` knows what was
//! deployed, and pruning keeps what a rollback needs.
//!
//! CloudFormation keeps a replaced scaler version and a replaced task definition
//! (`UpdateReplacePolicy: Retain`); this module deletes them once they leave the kept
//! releases. Nothing that runs, or is newer than the newest release, is ever deleted.

use std::collections::BTreeSet;

use miette::miette;
use serde::{Deserialize, Serialize};

use crate::aws::{self, s3};
use crate::commands::status::of_type;
use crate::config::{Environment, SCALER_ALIAS};
use crate::lock::Place;

/// What ran after one `up` (or `rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// When it was recorded, RFC 3339.
    pub time: String,
    /// The version the `live` alias pointed at.
    pub scaler_version: Option<String>,
    /// The task definition (ARN) the router service ran.
    pub task_definition: Option<String>,
}

impl Release {
    fn same_as(&self, other: &Release) -> bool {
        self.scaler_version == other.scaler_version && self.task_definition == other.task_definition
    }

    /// `scaler version 3, router task definition efs-…-router:7`.
    pub fn describe(&self) -> String {
        let version = self.scaler_version.as_deref().unwrap_or("-");
        let task = self
            .task_definition
            .as_deref()
            .map_or("-", |arn| arn.rsplit('/').next().unwrap_or(arn));
        format!("scaler version {version}, router task definition {task}")
    }
}

/// The releases, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub releases: Vec<Release>,
}

impl History {
    /// Appends `now` unless the last release already runs the same; keeps the newest
    /// `keep`. Whether it appended.
    pub fn record(&mut self, now: Release, keep: usize) -> bool {
        if self.releases.last().is_some_and(|last| last.same_as(&now)) {
            return false;
        }
        self.releases.push(now);
        let excess = self.releases.len().saturating_sub(keep.max(1));
        self.releases.drain(..excess);
        true
    }

    pub fn last(&self) -> Option<&Release> {
        self.releases.last()
    }

    /// The release before the last: what a rollback returns to.
    pub fn previous(&self) -> Option<&Release> {
        self.releases.iter().rev().nth(1)
    }

    fn versions(&self) -> impl Iterator<Item = &str> {
        self.releases
            .iter()
            .filter_map(|r| r.scaler_version.as_deref())
    }

    fn task_definitions(&self) -> impl Iterator<Item = &str> {
        self.releases
            .iter()
            .filter_map(|r| r.task_definition.as_deref())
    }
}

/// Versions (numbers) or revisions to delete from `all`: those neither a kept release
/// nor in use names, and older than the newest of those (a newer one may belong to a
/// release under way). Sorted oldest first.
fn to_prune<'a>(all: &[(u64, &'a str)], kept: impl Iterator<Item = u64>) -> Vec<&'a str> {
    let kept: BTreeSet<u64> = kept.collect();
    let Some(newest) = kept.last().copied() else {
        return Vec::new();
    };
    let mut out: Vec<(u64, &str)> = all
        .iter()
        .filter(|(n, _)| *n < newest && !kept.contains(n))
        .copied()
        .collect();
    out.sort_unstable();
    out.into_iter().map(|(_, id)| id).collect()
}

/// The scaler's published versions to delete, given the alias's versions in use.
pub fn versions_to_prune(all: &[String], history: &History, in_use: &[String]) -> Vec<String> {
    let number = |v: &str| v.parse::<u64>().ok();
    let numbered: Vec<(u64, &str)> = all
        .iter()
        .filter_map(|v| Some((number(v)?, v.as_str())))
        .collect();
    let kept = history
        .versions()
        .chain(in_use.iter().map(String::as_str))
        .filter_map(number);
    to_prune(&numbered, kept)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// The router's task definitions to deregister, given those the service's deployments
/// run.
pub fn task_definitions_to_prune(
    all: &[String],
    history: &History,
    in_use: &[String],
) -> Vec<String> {
    let revision = aws::ecs::revision_of;
    let numbered: Vec<(u64, &str)> = all
        .iter()
        .filter_map(|arn| Some((revision(arn)?, arn.as_str())))
        .collect();
    let kept = history
        .task_definitions()
        .chain(in_use.iter().map(String::as_str))
        .filter_map(revision);
    to_prune(&numbered, kept)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Where a stack's releases are stored: the object `releases/<stack>.json` in the
/// artifact bucket, written only over the version read (`If-Match`).
#[derive(Debug)]
pub struct Store<'a> {
    place: &'a Place,
}

impl<'a> Store<'a> {
    pub fn new(place: &'a Place) -> Self {
        Store { place }
    }

    fn key(&self) -> String {
        format!("releases/{}.json", self.place.stack)
    }

    /// The history and the ETag it was read at (none yet: empty, no ETag).
    pub async fn read(&self) -> miette::Result<(History, Option<String>)> {
        let Some((body, etag)) =
            s3::get(&self.place.client, &self.place.bucket(), &self.key()).await?
        else {
            return Ok((History::default(), None));
        };
        let history = serde_json::from_slice(&body).map_err(|e| {
            miette!(
                help = "it is written by `deployer up` and `rollback` only; delete it to start the history anew (rollback then has nothing to go back to until the next release)",
                "s3://{}/{} is not a release history: {e}",
                self.place.bucket,
                self.key()
            )
        })?;
        Ok((history, Some(etag)))
    }

    /// Removes the history (the environment is gone).
    pub async fn delete(&self) -> miette::Result<()> {
        if let Some((_, etag)) =
            s3::get(&self.place.client, &self.place.bucket(), &self.key()).await?
        {
            s3::delete_if_match(&self.place.client, &self.place.bucket(), &self.key(), &etag)
                .await?;
        }
        Ok(())
    }

    pub async fn write(&self, history: &History, etag: Option<&str>) -> miette::Result<()> {
        let body = serde_json::to_vec_pretty(history)
            .map_err(|e| miette!("cannot write the release history: {e}"))?;
        match s3::put_conditional(
            &self.place.client,
            &self.place.bucket(),
            &self.key(),
            body,
            etag,
        )
        .await?
        {
            s3::Conditional::Done(_) => Ok(()),
            s3::Conditional::Refused => Err(miette!(
                help = "another deployer wrote it although this one holds the stack lock (a lock taken over?); run the command again",
                "s3://{}/{} changed while this command ran",
                self.place.bucket,
                self.key()
            )),
        }
    }
}

/// The stack's scaler function and router service, by their physical ids.
#[derive(Debug)]
pub struct Deployed {
    pub function: Option<String>,
    pub cluster: Option<String>,
    pub service: Option<String>,
    /// The router's task definition family.
    pub family: Option<String>,
}

impl Deployed {
    pub fn of(resources: &[(String, String, String)], env: &Environment) -> Deployed {
        let first = |kind: &str| of_type(resources, kind).first().map(|s| s.to_string());
        let service = first("AWS::ECS::Service");
        Deployed {
            function: first("AWS::Lambda::Function"),
            cluster: first("AWS::ECS::Cluster"),
            family: service.as_ref().map(|_| env.router_service_name()),
            service,
        }
    }
}

/// What runs now, and what the releases in flight use besides (the alias's weighted
/// version, the service's older deployments), which pruning must leave.
#[derive(Debug)]
pub struct Running {
    pub now: Release,
    pub versions_in_use: Vec<String>,
    pub task_definitions_in_use: Vec<String>,
}

pub async fn running(sdk: &aws_config::SdkConfig, deployed: &Deployed) -> miette::Result<Running> {
    let mut running = Running {
        now: Release {
            time: runtime::scaler::result::rfc3339(std::time::SystemTime::now()),
            scaler_version: None,
            task_definition: None,
        },
        versions_in_use: Vec::new(),
        task_definitions_in_use: Vec::new(),
    };
    if let Some(function) = &deployed.function {
        let lambda = aws_sdk_lambda::Client::new(sdk);
        if let Some(alias) = aws::lambda::alias(&lambda, function, SCALER_ALIAS).await? {
            running.versions_in_use.push(alias.version.clone());
            running
                .versions_in_use
                .extend(alias.weights.iter().map(|(v, _)| v.clone()));
            running.now.scaler_version = Some(alias.version);
        }
    }
    if let (Some(cluster), Some(service)) = (&deployed.cluster, &deployed.service) {
        let ecs = runtime::aws::ecs::Ecs::new(aws_sdk_ecs::Client::new(sdk));
        let state = ecs.service(cluster, service).await.map_err(aws::Error)?;
        running.task_definitions_in_use = state
            .deployments
            .iter()
            .map(|d| d.task_definition.clone())
            .chain(std::iter::once(state.task_definition.clone()))
            .filter(|t| !t.is_empty())
            .collect();
        running.now.task_definition = Some(state.task_definition).filter(|t| !t.is_empty());
    }
    Ok(running)
}

/// After an `up`: records what runs as a release when it differs from the last one,
/// then deletes the scaler versions and router task definitions no kept release needs.
/// Returns a JSON summary for `up --output json`.
pub async fn after_up(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    place: &Place,
    resources: &[(String, String, String)],
) -> miette::Result<serde_json::Value> {
    let deployed = Deployed::of(resources, env);
    if deployed.function.is_none() && deployed.service.is_none() {
        return Ok(serde_json::Value::Null);
    }
    let store = Store::new(place);
    let running = running(sdk, &deployed).await?;
    let (mut history, etag) = store.read().await?;
    let keep = env.config.release.keep as usize;
    let recorded = history.record(running.now.clone(), keep);
    if recorded {
        store.write(&history, etag.as_deref()).await?;
        eprintln!(
            "release {} recorded: {}",
            history.releases.len(),
            running.now.describe()
        );
    }
    let pruned = prune(sdk, &deployed, &history, &running).await?;
    Ok(serde_json::json!({
        "recorded": recorded,
        "release": running.now,
        "kept": history.releases.len(),
        "pruned": pruned,
    }))
}

/// Deletes what no kept release and nothing running needs; says what it deleted.
async fn prune(
    sdk: &aws_config::SdkConfig,
    deployed: &Deployed,
    history: &History,
    running: &Running,
) -> miette::Result<serde_json::Value> {
    let mut versions = Vec::new();
    if let Some(function) = &deployed.function {
        let lambda = aws_sdk_lambda::Client::new(sdk);
        let all = aws::lambda::versions(&lambda, function).await?;
        versions = versions_to_prune(&all, history, &running.versions_in_use);
        for version in &versions {
            aws::lambda::delete_version(&lambda, function, version).await?;
        }
        if !versions.is_empty() {
            eprintln!(
                "{function}: deleted version(s) {} (older than the kept releases)",
                versions.join(", ")
            );
        }
    }
    let mut task_definitions = Vec::new();
    if let Some(family) = &deployed.family {
        let ecs = aws_sdk_ecs::Client::new(sdk);
        let all = aws::ecs::task_definitions(&ecs, family).await?;
        task_definitions =
            task_definitions_to_prune(&all, history, &running.task_definitions_in_use);
        for arn in &task_definitions {
            aws::ecs::deregister(&ecs, arn).await?;
        }
        if !task_definitions.is_empty() {
            let revisions: Vec<String> = task_definitions
                .iter()
                .filter_map(|a| aws::ecs::revision_of(a).map(|r| r.to_string()))
                .collect();
            eprintln!(
                "{family}: deregistered task definition revision(s) {} (older than the kept releases)",
                revisions.join(", ")
            );
        }
    }
    Ok(serde_json::json!({ "scaler_versions": versions, "task_definitions": task_definitions }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, revision: u64) -> Release {
        Release {
            time: "t".into(),
            scaler_version: Some(version.into()),
            task_definition: Some(format!(
                "arn:aws:ecs:r:1:task-definition/efs-autoscaler-prod-router:{revision}"
            )),
        }
    }

    #[test]
    fn a_release_is_recorded_when_what_runs_changes_and_the_oldest_go_past_keep() {
        let mut h = History::default();
        assert!(h.record(release("1", 1), 3));
        assert!(!h.record(release("1", 1), 3), "nothing changed");
        assert!(h.record(release("2", 1), 3));
        assert!(h.record(release("2", 2), 3));
        assert!(h.record(release("3", 3), 3));
        let versions: Vec<_> = h.versions().collect();
        assert_eq!(versions, ["2", "2", "3"]);
        assert_eq!(h.previous(), Some(&release("2", 2)));
        assert_eq!(h.last(), Some(&release("3", 3)));
        assert_eq!(History::default().previous(), None);
    }

    #[test]
    fn pruning_keeps_releases_what_runs_and_anything_newer() {
        let mut h = History::default();
        for (v, r) in [("4", 6), ("6", 7)] {
            h.record(release(v, r), 5);
        }
        let all: Vec<String> = (1..=9).map(|n| n.to_string()).collect();
        // Version 3 is the alias's weighted one during a gradual release; 7 to 9 are
        // newer than every release (one under way): neither goes.
        assert_eq!(
            versions_to_prune(&all, &h, &["6".into(), "3".into()]),
            ["1", "2", "5"]
        );
        let arns: Vec<String> = (1..=8)
            .map(|n| format!("arn:aws:ecs:r:1:task-definition/efs-autoscaler-prod-router:{n}"))
            .collect();
        let pruned = task_definitions_to_prune(&arns, &h, &[arns[1].clone()]);
        let revisions: Vec<u64> = pruned
            .iter()
            .filter_map(|a| aws::ecs::revision_of(a))
            .collect();
        assert_eq!(
            revisions,
            [1, 3, 4, 5],
            "2 runs, 6 and 7 are releases, 8 is newer"
        );
        assert!(
            versions_to_prune(&all, &History::default(), &[]).is_empty(),
            "nothing known: nothing goes"
        );
    }
}
