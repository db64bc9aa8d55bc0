//! The router beside its baseline, `nfs-rs` called directly, against the same
//! nfs-ganesha instances in one run (docs/benchmarks.md#router).
//!
//! `scripts/bench-router` builds the shipped router binary and runs this with its path:
//! `cargo bench -p efs-autoscaler-tests --bench router -- ROUTER_BINARY`.
//!
//! - 64 MiB sequential write and read, one stream: MiB/s, median of 21 alternating rounds
//!   (BENCH_ROUNDS).
//! - 4 KiB files, create then read, 16 clients at once: operations per second and p50/p99
//!   latency per operation.
//! - The router's peak RSS while 32 clients each upload, then download, a 256 MiB file.

// A benchmark fails by panicking, like a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use harness::measure::{median, mib_s, peak_rss_kib, rss_kib};
use harness::{Ganesha, RouterProcess};
use nfs_rs::{Mount, OPEN_READ};
use s3s::crypto::Checksum as _;

const BIG: usize = 64 << 20;
const SMALL: usize = 4096;
const CLIENTS: usize = 16;
const SMALL_FILES: usize = 2000;
const DEPTH: usize = 8;

fn main() {
    let router_bin: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .expect("usage: cargo bench --bench router -- ROUTER_BINARY");
    // The export lives on a tmpfs when there is one (BENCH_EXPORT_BASE to choose): the
    // local disk's writeback made direct writes vary by a factor of two between rounds,
    // and a mount target's storage is not the local disk either.
    let base = std::env::var_os("BENCH_EXPORT_BASE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                std::env::temp_dir()
            }
        });
    println!("NFS export under {}\n", base.display());
    let cluster = Ganesha::start_in(3, &base).unwrap_or_else(|e| panic!("{e}"));
    // Unsigned requests (allowed on loopback): the benchmark measures the router's data
    // path, not SigV4.
    let mut args: Vec<String> = [
        "--anonymous",
        "--backend",
        "nfs",
        "--export",
        "/export",
        "--tls=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--nfs-port".into(), cluster.port().to_string()]);
    for a in cluster.addresses() {
        args.extend(["--target".into(), a]);
    }
    let router = RouterProcess::start_binary(&router_bin, &args, &router_env())
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&cluster, &router));
    // A graceful stop, so a profiler wrapped around the router can write its report.
    let _ = router.terminate();
}

/// The router's environment: quiet logs, the allocator settings the task definition
/// gives it (templates/partials/service.yaml.hbs), plus BENCH_ROUTER_ENV="K=V ..." to
/// try others.
fn router_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("RUST_LOG", "warn"),
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(extra) = std::env::var("BENCH_ROUTER_ENV") {
        env.extend(
            extra
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }
    env
}

async fn run(cluster: &Ganesha, router: &RouterProcess) {
    let url = format!(
        "nfs://{}/export?version=4.1&noresvport=true&nfsport={}",
        cluster.address(0),
        cluster.port()
    );
    let mount: Arc<dyn Mount> = Arc::from(nfs_rs::parse_url_and_mount(&url).await.unwrap());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let made = http
        .put(router.url("/bench"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(made.as_u16(), 200, "creating the bucket");
    let data = Bytes::from(
        (0..BIG)
            .map(|i| (i * 7 + i / 4093) as u8)
            .collect::<Vec<u8>>(),
    );
    // BENCH_ONLY=memory or BENCH_ONLY=throughput runs one part; BENCH_ONLY=sequential or
    // BENCH_ONLY=small one half of the throughput part (to profile it alone).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only != "memory" {
        throughput(cluster, router, &mount, &http, &data, &only).await;
    }
    if only.is_empty() || only == "memory" {
        memory(cluster, router, &http, &data).await;
    }
}

async fn throughput(
    cluster: &Ganesha,
    router: &RouterProcess,
    mount: &Arc<dyn Mount>,
    http: &reqwest::Client,
    data: &Bytes,
    only: &str,
) {
    if only != "small" {
        sequential(cluster, router, mount, http, data).await;
    }
    if only != "sequential" {
        small(cluster, router, mount, http).await;
    }
}

async fn sequential(
    cluster: &Ganesha,
    router: &RouterProcess,
    mount: &Arc<dyn Mount>,
    http: &reqwest::Client,
    data: &Bytes,
) {
    // BENCH_ROUNDS=N for a steadier median on a noisy machine.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    println!("## 64 MiB sequential, one stream (median of {rounds}, MiB/s)\n");
    let (mut dw, mut dr, mut rw, mut rr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let name = format!("big-direct-{round}.bin");
        dw.push(mib_s(BIG, direct_write(mount, &name, data.clone()).await));
        dr.push(mib_s(BIG, direct_read(mount, &name).await));
        let name = format!("big-router-{round}.bin");
        rw.push(mib_s(
            BIG,
            router_put(http, router, &name, data.clone()).await,
        ));
        rr.push(mib_s(BIG, router_get(http, router, &name, BIG).await));
        // Kept small on the tmpfs: only the memory part needs many large files.
        for name in [format!("big-direct-{round}.bin"), name] {
            let _ = std::fs::remove_file(cluster.export_dir().join(name));
        }
    }
    let (dw, dr, rw, rr) = (median(dw), median(dr), median(rw), median(rr));
    println!("| | direct nfs-rs | router (S3) | router / direct |\n|---|---|---|---|");
    println!("| write | {dw:.0} | {rw:.0} | **{:.2}** |", rw / dw);
    println!("| read | {dr:.0} | {rr:.0} | **{:.2}** |\n", rr / dr);
    // A PUT's ETag is the MD5 of its body, and one body's MD5 is one serial stream on
    // one core: no single PUT can go faster than this, whatever the router does.
    let md5 = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                let mut h = s3s::crypto::Md5::new();
                h.update(data);
                std::hint::black_box(h.finalize());
                mib_s(BIG, started.elapsed())
            })
            .collect(),
    );
    println!(
        "MD5 alone (the ETag's digest, the router's implementation, one core): {md5:.0} MiB/s = **{:.2}** of the direct write: the ceiling of a single PUT.\n",
        md5 / dw
    );
}

async fn small(
    cluster: &Ganesha,
    router: &RouterProcess,
    mount: &Arc<dyn Mount>,
    http: &reqwest::Client,
) {
    println!("## 4 KiB files, {CLIENTS} clients, {SMALL_FILES} files (create, then read)\n");
    let small = Bytes::from(vec![7u8; SMALL]);
    std::fs::create_dir(cluster.export_dir().join("small-direct")).unwrap();
    let (d_ops, d_lat) = small_files(|i| {
        let (m, s) = (mount.clone(), small.clone());
        async move {
            let name = format!("small-direct/f{i}");
            let t = Instant::now();
            let created = m.create_path(&name, Some(0o644)).await.unwrap();
            nfs_rs::write_all(&*m, created.fh.clone(), 0, s)
                .await
                .unwrap();
            m.close(created.fh).await.unwrap();
            let w = t.elapsed();
            let t = Instant::now();
            let opened = m.open_path(&name, OPEN_READ).await.unwrap();
            let got = m.read(opened.fh.clone(), 0, SMALL as u32).await.unwrap();
            m.close(opened.fh).await.unwrap();
            assert_eq!(got.len(), SMALL);
            (w, t.elapsed())
        }
    })
    .await;
    let (r_ops, r_lat) = small_files(|i| {
        let (h, s, base) = (
            http.clone(),
            small.clone(),
            router.url("/bench/small-router"),
        );
        async move {
            let url = format!("{base}/f{i}");
            let t = Instant::now();
            let status = h.put(&url).body(s).send().await.unwrap().status();
            assert_eq!(status.as_u16(), 200);
            let w = t.elapsed();
            let t = Instant::now();
            let got = h.get(&url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(got.len(), SMALL);
            (w, t.elapsed())
        }
    })
    .await;
    println!("| | direct nfs-rs | router (S3) | router / direct |\n|---|---|---|---|");
    println!(
        "| ops/s (create + read = 2 ops) | {d_ops:.0} | {r_ops:.0} | **{:.2}** |",
        r_ops / d_ops
    );
    for (label, i) in [("create", 0usize), ("read", 1)] {
        println!(
            "| {label} p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms | |",
            d_lat[i].0, d_lat[i].1, r_lat[i].0, r_lat[i].1
        );
    }
    println!();
}

async fn memory(cluster: &Ganesha, router: &RouterProcess, http: &reqwest::Client, data: &Bytes) {
    // BENCH_STREAMS=N to see how memory scales with the number of streams.
    let streams: usize = std::env::var("BENCH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    println!("## Router memory: {streams} clients x 256 MiB, upload then download\n");
    let pid = router.pid();
    let rss_before = rss_kib(pid);
    let sampled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let sampled = sampled.clone();
        tokio::spawn(async move {
            loop {
                sampled.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let chunk = data.slice(0..1 << 20);
    let started = Instant::now();
    let uploads = (0..streams).map(|i| {
        let (h, url, chunk) = (
            http.clone(),
            router.url(&format!("/bench/mem/f{i}")),
            chunk.clone(),
        );
        async move {
            let body = futures_util::stream::iter(
                (0..256).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let status = h
                .put(url)
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 200);
        }
    });
    futures_util::future::join_all(uploads).await;
    let up = started.elapsed();
    let peak_up = sampled.swap(0, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let downloads = (0..streams).map(|i| {
        let (h, url) = (http.clone(), router.url(&format!("/bench/mem/f{i}")));
        async move {
            let mut n = 0usize;
            let mut body = h.get(url).send().await.unwrap().bytes_stream();
            while let Some(chunk) = body.next().await {
                n += chunk.unwrap().len();
            }
            assert_eq!(n, 256 << 20);
        }
    });
    futures_util::future::join_all(downloads).await;
    let down = started.elapsed();
    sampler.abort();
    let peak = sampled.load(std::sync::atomic::Ordering::Relaxed);
    println!("| | value |\n|---|---|");
    println!("| RSS before | {:.1} MiB |", rss_before as f64 / 1024.0);
    println!(
        "| peak RSS while uploading (sampled every 20 ms) | **{:.1} MiB** |",
        peak_up as f64 / 1024.0
    );
    println!(
        "| peak RSS while downloading | **{:.1} MiB** |",
        peak as f64 / 1024.0
    );
    println!(
        "| peak RSS of the whole process life (VmHWM) | {:.1} MiB |",
        peak_rss_kib(pid) as f64 / 1024.0
    );
    println!(
        "| {} GiB up / down | {:.1} s ({:.0} MiB/s) / {:.1} s ({:.0} MiB/s) |",
        streams / 4,
        up.as_secs_f64(),
        (streams * 256) as f64 / up.as_secs_f64(),
        down.as_secs_f64(),
        (streams * 256) as f64 / down.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(cluster.export_dir().join("mem"));
}

async fn direct_write(mount: &Arc<dyn Mount>, name: &str, data: Bytes) -> Duration {
    let t = Instant::now();
    let created = mount.create_path(name, Some(0o644)).await.unwrap();
    nfs_rs::write_all(&**mount, created.fh.clone(), 0, data)
        .await
        .unwrap();
    mount.close(created.fh).await.unwrap();
    t.elapsed()
}

/// The same pipelining the router uses: 8 reads of the negotiated size in flight.
async fn direct_read(mount: &Arc<dyn Mount>, name: &str) -> Duration {
    let t = Instant::now();
    let opened = mount.open_path(name, OPEN_READ).await.unwrap();
    let size = opened.attr.as_ref().map_or(BIG as u64, |a| a.filesize);
    let chunk = u64::from(mount.get_max_read_size());
    let fh = opened.fh.clone();
    let mut reads = futures_util::stream::iter((0..size.div_ceil(chunk)).map(|i| {
        let (m, fh) = (mount.clone(), fh.clone());
        async move { m.read(fh, i * chunk, chunk as u32).await.unwrap().len() }
    }))
    .buffered(DEPTH);
    let mut n = 0;
    while let Some(len) = reads.next().await {
        n += len;
    }
    assert_eq!(n as u64, size);
    mount.close(opened.fh).await.unwrap();
    t.elapsed()
}

async fn router_put(
    http: &reqwest::Client,
    router: &RouterProcess,
    name: &str,
    data: Bytes,
) -> Duration {
    let t = Instant::now();
    let status = http
        .put(router.url(&format!("/bench/{name}")))
        .body(data)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    t.elapsed()
}

async fn router_get(
    http: &reqwest::Client,
    router: &RouterProcess,
    name: &str,
    size: usize,
) -> Duration {
    let t = Instant::now();
    let mut body = http
        .get(router.url(&format!("/bench/{name}")))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.unwrap().len();
    }
    assert_eq!(n, size);
    t.elapsed()
}

/// Runs `op(i)` for every file with CLIENTS at a time; returns operations per second
/// (each call is two: a create and a read) and (p50, p99) in ms for each of the two.
async fn small_files<F, Fut>(op: F) -> (f64, [(f64, f64); 2])
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (Duration, Duration)>,
{
    let t = Instant::now();
    let results: Vec<(Duration, Duration)> = futures_util::stream::iter((0..SMALL_FILES).map(op))
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let ops = (2 * SMALL_FILES) as f64 / t.elapsed().as_secs_f64();
    let pct = |mut v: Vec<Duration>| {
        v.sort();
        let at =
            |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0;
        (at(0.5), at(0.99))
    };
    (
        ops,
        [
            pct(results.iter().map(|r| r.0).collect()),
            pct(results.iter().map(|r| r.1).collect()),
        ],
    )
}
