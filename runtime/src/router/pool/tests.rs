use super::*;
use proptest::prelude::*;

fn spec(i: usize) -> TargetSpec {
    TargetSpec::address_only(format!("10.0.{i}.100"))
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Works,
    Refused,
    BlackHole,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Works),
        Just(Outcome::Refused),
        Just(Outcome::BlackHole)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 8: whatever mix of working, refusing and black-holed targets, every
    /// working one is connected, start-up takes at most the connect timeout, and the
    /// router can start exactly when at least one target works.
    #[test]
    fn property_8_start_with_any_working_target(pattern in prop::collection::vec(outcome(), 1..=6)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let timeout = Duration::from_secs(5);
        let specs: Vec<TargetSpec> = (0..pattern.len()).map(spec).collect();
        let (results, elapsed) = rt.block_on(async {
            let started = tokio::time::Instant::now();
            let results = connect_all(&specs, timeout, |i, _| {
                let o = pattern[i];
                async move {
                    match o {
                        Outcome::Works => Ok(i),
                        Outcome::Refused => Err(BackendError::Unavailable("connection refused".into())),
                        Outcome::BlackHole => std::future::pending().await,
                    }
                }
            })
            .await;
            (results, started.elapsed())
        });
        prop_assert!(elapsed <= timeout, "start took {elapsed:?}");
        for (i, (o, r)) in pattern.iter().zip(&results).enumerate() {
            match o {
                Outcome::Works => prop_assert_eq!(r.as_ref().ok(), Some(&i)),
                Outcome::Refused => prop_assert!(matches!(r, Err(BackendError::Unavailable(_)))),
                Outcome::BlackHole => prop_assert_eq!(r.as_ref().err(), Some(&BackendError::Timeout(timeout))),
            }
        }
        let can_start = results.iter().any(Result::is_ok);
        prop_assert_eq!(can_start, pattern.iter().any(|o| matches!(o, Outcome::Works)));
    }
}

pub(crate) fn dir_connector() -> Connector {
    Connector {
        kind: BackendKind::Dir,
        nfs: NfsOptions {
            export: "/".into(),
            port: 2049,
            tls: None,
            connections: crate::router::backend::Connections::Fixed(1),
            connect_timeout: Duration::from_secs(5),
            private_dir: None,
        },
        mount_root: PathBuf::from("/mnt"),
        connect_timeout: Duration::from_secs(2),
        op_timeout: Duration::from_secs(2),
    }
}

pub(crate) fn fast() -> Backoff {
    Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(100),
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_working_target_is_an_error_naming_each() {
    let err = Pool::start(
        vec![
            TargetSpec::address_only("/nonexistent/a"),
            TargetSpec::address_only("/nonexistent/b"),
        ],
        dir_connector(),
        fast(),
        crate::router::routing::Routing::default(),
    )
    .await
    .err()
    .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/a") && text.contains("/nonexistent/b"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_target_joins_when_it_appears_and_a_failed_one_comes_back() {
    let base = tempfile::tempdir().unwrap();
    let a = base.path().join("a");
    let b = base.path().join("b");
    std::fs::create_dir(&a).unwrap();
    let specs = vec![
        TargetSpec::address_only(a.to_string_lossy()),
        TargetSpec::address_only(b.to_string_lossy()),
    ];
    let pool = Pool::start(
        specs,
        dir_connector(),
        fast(),
        crate::router::routing::Routing::default(),
    )
    .await
    .unwrap();
    let targets = pool.targets();
    assert_eq!(targets[0].health(), Health::Up);
    assert_eq!(targets[1].health(), Health::Down);
    assert_eq!(pool.ranked("x").len(), 1);

    std::fs::create_dir(&b).unwrap();
    wait_for("b to reconnect", || targets[1].health() == Health::Up).await;
    assert_eq!(pool.ranked("x").len(), 2);

    // A target failure reported for the current client marks it down; a stale report
    // (an older client) does not.
    let client = targets[0].client().unwrap();
    pool.report(
        &targets[0],
        &client,
        &BackendError::Timeout(Duration::from_secs(1)),
    );
    assert_ne!(targets[0].health(), Health::Up);
    pool.report(
        &targets[0],
        &client,
        &BackendError::Timeout(Duration::from_secs(1)),
    );
    wait_for("a to come back", || targets[0].health() == Health::Up).await;
    assert_eq!(targets[0].view().connects, 2);
    // Request errors are not target failures.
    let client = targets[0].client().unwrap();
    pool.report(&targets[0], &client, &BackendError::NotFound);
    assert_eq!(targets[0].health(), Health::Up);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_list_keeps_unchanged_targets_and_moves_only_their_share() {
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<String> = (0..3)
        .map(|i| {
            let d = base.path().join(format!("t{i}"));
            std::fs::create_dir(&d).unwrap();
            d.to_string_lossy().into_owned()
        })
        .collect();
    let pool = Pool::start(
        vec![
            TargetSpec::address_only(&dirs[0]),
            TargetSpec::address_only(&dirs[1]),
        ],
        dir_connector(),
        fast(),
        crate::router::routing::Routing::default(),
    )
    .await
    .unwrap();
    let kept = pool.targets()[0].clone();
    let owner = |p: &str| pool.ranked(p)[0].0.spec.key.clone();
    let paths: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    let before: Vec<String> = paths.iter().map(|p| owner(p)).collect();

    pool.apply(vec![
        TargetSpec::address_only(&dirs[0]),
        TargetSpec::address_only(&dirs[1]),
        TargetSpec::address_only(&dirs[2]),
    ]);
    wait_for("the new target", || {
        pool.targets().iter().all(|t| t.health() == Health::Up)
    })
    .await;
    assert!(
        Arc::ptr_eq(&kept, &pool.targets()[0]),
        "an unchanged target was reconnected"
    );
    for (p, old) in paths.iter().zip(&before) {
        let new = owner(p);
        assert!(
            new == *old || new == dirs[2],
            "{p} moved between old targets"
        );
    }

    pool.apply(vec![TargetSpec::address_only(&dirs[2])]);
    assert_eq!(pool.targets().len(), 1);
    assert!(
        pool.ranked("x")
            .iter()
            .all(|(t, _)| t.spec.address == dirs[2])
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_target_keeps_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let address = dir.path().to_string_lossy().into_owned();
    let pool = Pool::start(
        vec![TargetSpec::address_only(&address)],
        dir_connector(),
        fast(),
        crate::router::routing::Routing::default(),
    )
    .await
    .unwrap();
    let client = pool.targets()[0].client().unwrap();
    // The published list names the same address by mount-target id.
    let renamed = TargetSpec {
        key: "fsmt-0123456789abcdef".into(),
        address: address.clone(),
        availability_zone: Some("ap-northeast-1a".into()),
        mount_target_id: Some("fsmt-0123456789abcdef".into()),
    };
    pool.apply(vec![renamed.clone()]);
    let targets = pool.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].spec, renamed);
    // In service at once, on the same connection: routing never went empty.
    assert!(Arc::ptr_eq(&targets[0].client().unwrap(), &client));
    pool.close().await;
}
