//! The router's S3 API beside a peer S3-over-directory server, `s3s-fs` (crates.io, the
//! s3s project's own), each serving a directory of the same local file system, in one
//! run (docs/benchmarks.md#s3-beside-s3s-fs).
//!
//! `scripts/bench-s3` builds the shipped router and s3s-fs and runs this:
//! `cargo bench -p efs-autoscaler-tests --bench s3_peer -- ROUTER_BINARY S3S_FS_BINARY`.
//!
//! Both serve unsigned requests (the router with --anonymous on loopback, s3s-fs
//! without keys), so neither pays for SigV4 and the same HTTP client drives both.
//!
//! - 4 KiB objects, PUT then GET, 16 clients at once: operations per second, p50/p99.
//! - 64 MiB objects, one stream: PUT and GET MiB/s, median of BENCH_ROUNDS (5).
//! - ListObjectsV2 of a bucket of 100,000 keys (100 directories of 1,000 files written
//!   on disk beforehand): every page without a delimiter, and with delimiter `/`.
//! - Peak RSS of each server, and the router's CPU seconds per GiB of PUT and of GET.
//! - BENCH_SKIP_LIST=1 leaves out the listing (s3s-fs takes minutes over it), to
//!   repeat the object rows quickly.
//! - BENCH_MILLION=1: the router listing a directory of 1,000,000 files: time to the
//!   first page, to the second, and its RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use harness::RouterProcess;
use harness::measure::{cpu_seconds, median, mib_s, peak_rss_kib, rss_kib};

const SMALL: usize = 4096;
const SMALL_OBJECTS: usize = 2000;
const CLIENTS: usize = 16;
const BIG: usize = 64 << 20;
const LIST_DIRS: usize = 100;
const LIST_PER_DIR: usize = 1000;

/// A server under test: its S3 endpoint and its process.
struct Server {
    name: &'static str,
    endpoint: String,
    pid: u32,
    root: PathBuf,
}

fn main() {
    let args: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .collect();
    let [router_bin, peer_bin] = args.as_slice() else {
        panic!("usage: cargo bench --bench s3_peer -- ROUTER_BINARY S3S_FS_BINARY");
    };
    let base = tempfile::tempdir().unwrap();
    println!("Both serve directories under {}\n", base.path().display());

    let router_root = base.path().join("router");
    let peer_root = base.path().join("peer");
    std::fs::create_dir_all(&router_root).unwrap();
    std::fs::create_dir_all(&peer_root).unwrap();
    let router = RouterProcess::start_binary(
        router_bin,
        &[
            "--anonymous".into(),
            "--backend".into(),
            "dir".into(),
            "--target".into(),
            router_root.display().to_string(),
        ],
        // The allocator settings the task definition gives the router.
        &[
            ("RUST_LOG".into(), "warn".into()),
            ("MIMALLOC_ARENA_EAGER_COMMIT".into(), "0".into()),
            ("MIMALLOC_PURGE_DELAY".into(), "0".into()),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let peer = PeerProcess::start(peer_bin, &peer_root);
    let servers = [
        Server {
            name: "efs-router",
            endpoint: router.endpoint(),
            pid: router.pid(),
            root: router_root,
        },
        Server {
            name: "s3s-fs",
            endpoint: peer.endpoint.clone(),
            pid: peer.child.id(),
            root: peer_root,
        },
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&servers));
}

/// s3s-fs as a child process on a free port, killed on drop.
struct PeerProcess {
    child: Child,
    endpoint: String,
}

impl PeerProcess {
    fn start(bin: &Path, root: &Path) -> Self {
        let port = harness::free_port().unwrap();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PeerProcess {
            child,
            endpoint: format!("http://{addr}"),
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn listing(http: &reqwest::Client, servers: &[Server]) {
    println!(
        "## ListObjectsV2 of {} keys ({LIST_DIRS} directories of {LIST_PER_DIR} files, written on disk)\n",
        LIST_DIRS * LIST_PER_DIR
    );
    for s in servers {
        populate(&s.root.join("bench/many"));
    }
    println!(
        "| server | every page, no delimiter | delimiter `/` (100 prefixes) | one directory, delimiter `/`, prefix `many/d042/` |\n|---|---|---|---|"
    );
    let mut lists = Vec::new();
    for s in servers {
        let (all, keys) = list_all(http, s, "many/", None).await;
        assert_eq!(keys, LIST_DIRS * LIST_PER_DIR, "{}", s.name);
        let (delim, prefixes) = list_all(http, s, "many/", Some("/")).await;
        assert_eq!(prefixes, LIST_DIRS, "{}", s.name);
        let (one, keys) = list_all(http, s, "many/d042/", Some("/")).await;
        assert_eq!(keys, LIST_PER_DIR, "{}", s.name);
        println!(
            "| {} | {:.2} s | {:.1} ms | {:.1} ms |",
            s.name,
            all.as_secs_f64(),
            delim.as_secs_f64() * 1000.0,
            one.as_secs_f64() * 1000.0
        );
        lists.push((all, delim, one));
    }
    println!(
        "\nrouter / s3s-fs time (lower is faster): no delimiter **{:.2}**, delimiter **{:.2}**, one directory **{:.2}**\n",
        lists[0].0.as_secs_f64() / lists[1].0.as_secs_f64(),
        lists[0].1.as_secs_f64() / lists[1].1.as_secs_f64(),
        lists[0].2.as_secs_f64() / lists[1].2.as_secs_f64(),
    );
}

async fn run(servers: &[Server]) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    for s in servers {
        let made = http
            .put(format!("{}/bench", s.endpoint))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "{}: {}", s.name, made.status());
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);

    println!("## 4 KiB objects, {CLIENTS} clients, PUT then GET\n");
    println!("| server | ops/s | PUT p50 / p99 | GET p50 / p99 |\n|---|---|---|---|");
    let mut small_ops = Vec::new();
    for s in servers {
        let (ops, lat) = small_objects(&http, s).await;
        println!(
            "| {} | {ops:.0} | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            s.name, lat[0].0, lat[0].1, lat[1].0, lat[1].1
        );
        small_ops.push((ops, lat));
    }
    println!(
        "\nrouter / s3s-fs: ops/s **{:.2}**, PUT p99 {:.2}, GET p99 {:.2}\n",
        small_ops[0].0 / small_ops[1].0,
        small_ops[0].1[0].1 / small_ops[1].1[0].1,
        small_ops[0].1[1].1 / small_ops[1].1[1].1
    );

    println!("## 64 MiB objects, one stream (median of {rounds})\n");
    println!(
        "| server | PUT MiB/s | GET MiB/s | CPU s/GiB PUT | CPU s/GiB GET |\n|---|---|---|---|---|"
    );
    let data = Bytes::from(
        (0..BIG)
            .map(|i| (i * 31 + i / 4099) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut big = Vec::new();
    for s in servers {
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        let (mut put_cpu, mut get_cpu) = (0.0, 0.0);
        for r in 0..rounds {
            let url = format!("{}/bench/big/{r}", s.endpoint);
            let cpu = cpu_seconds(s.pid);
            let t = Instant::now();
            let status = http
                .put(&url)
                .body(data.clone())
                .send()
                .await
                .unwrap()
                .status();
            assert!(status.is_success(), "{}: PUT {status}", s.name);
            puts.push(mib_s(BIG, t.elapsed()));
            put_cpu += cpu_seconds(s.pid) - cpu;
            let cpu = cpu_seconds(s.pid);
            let t = Instant::now();
            let mut body = http.get(&url).send().await.unwrap().bytes_stream();
            let mut n = 0;
            while let Some(chunk) = body.next().await {
                n += chunk.unwrap().len();
            }
            assert_eq!(n, BIG, "{}: GET", s.name);
            gets.push(mib_s(BIG, t.elapsed()));
            get_cpu += cpu_seconds(s.pid) - cpu;
        }
        let gib = (rounds * BIG) as f64 / f64::from(1 << 30);
        let (put, get) = (median(puts), median(gets));
        println!(
            "| {} | {put:.0} | {get:.0} | {:.2} | {:.2} |",
            s.name,
            put_cpu / gib,
            get_cpu / gib
        );
        big.push((put, get));
    }
    println!(
        "\nrouter / s3s-fs: PUT **{:.2}**, GET **{:.2}**\n",
        big[0].0 / big[1].0,
        big[0].1 / big[1].1
    );

    if std::env::var("BENCH_SKIP_LIST").as_deref() != Ok("1") {
        listing(&http, servers).await;
    }

    println!("## Memory\n\n| server | peak RSS |\n|---|---|");
    for s in servers {
        println!("| {} | {} MiB |", s.name, peak_rss_kib(s.pid) / 1024);
    }
    println!();

    if std::env::var("BENCH_MILLION").as_deref() == Ok("1") {
        million(&http, &servers[0]).await;
    }
}

async fn small_objects(http: &reqwest::Client, s: &Server) -> (f64, [(f64, f64); 2]) {
    let body = Bytes::from(vec![7u8; SMALL]);
    let started = Instant::now();
    let timings: Vec<(Duration, Duration)> = futures_util::stream::iter(0..SMALL_OBJECTS)
        .map(|i| {
            let (h, b) = (http.clone(), body.clone());
            let url = format!("{}/bench/small/{}/{i}", s.endpoint, i % 20);
            async move {
                let t = Instant::now();
                let status = h.put(&url).body(b).send().await.unwrap().status();
                assert!(status.is_success(), "PUT {url}: {status}");
                let put = t.elapsed();
                let t = Instant::now();
                let got = h.get(&url).send().await.unwrap().bytes().await.unwrap();
                assert_eq!(got.len(), SMALL);
                (put, t.elapsed())
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let ops = (2 * SMALL_OBJECTS) as f64 / started.elapsed().as_secs_f64();
    let quantiles = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let puts = timings.iter().map(|t| t.0.as_secs_f64() * 1000.0).collect();
    let gets = timings.iter().map(|t| t.1.as_secs_f64() * 1000.0).collect();
    (ops, [quantiles(puts), quantiles(gets)])
}

/// Writes the listing bucket's files directly (both servers read plain files).
fn populate(dir: &Path) {
    for d in 0..LIST_DIRS {
        let sub = dir.join(format!("d{d:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for k in 0..LIST_PER_DIR {
            std::fs::write(sub.join(format!("k{:06}", d * LIST_PER_DIR + k)), b"x").unwrap();
        }
    }
}

/// One ListObjectsV2 page of the bucket `bench` with `query` (and the continuation
/// token, when there is one): the answer's text and its next token.
async fn list_v2_page(
    http: &reqwest::Client,
    endpoint: &str,
    mut query: Vec<(&'static str, String)>,
    token: Option<String>,
) -> (String, Option<String>) {
    if let Some(t) = token {
        query.push(("continuation-token", t));
    }
    let text = http
        .get(format!("{endpoint}/bench"))
        .query(&query)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let next = text
        .split("<NextContinuationToken>")
        .nth(1)
        .and_then(|r| r.split("</NextContinuationToken>").next())
        .map(str::to_string);
    (text, next)
}

/// Lists every page; returns the time and the number of keys (no delimiter) or of
/// common prefixes plus keys (with one).
async fn list_all(
    http: &reqwest::Client,
    s: &Server,
    prefix: &str,
    delimiter: Option<&str>,
) -> (Duration, usize) {
    let started = Instant::now();
    let mut token: Option<String> = None;
    let mut count = 0;
    loop {
        let mut query = vec![
            ("list-type", "2".to_string()),
            ("prefix", prefix.to_string()),
            ("max-keys", "1000".to_string()),
        ];
        if let Some(d) = delimiter {
            query.push(("delimiter", d.to_string()));
        }
        let (text, next) = list_v2_page(http, &s.endpoint, query, token.take()).await;
        count += text.matches("<Key>").count() + text.matches("<CommonPrefixes>").count();
        token = next;
        if token.is_none() {
            break;
        }
    }
    (started.elapsed(), count)
}

/// One directory of a million files through the router: the first page, the next, RSS.
async fn million(http: &reqwest::Client, s: &Server) {
    const N: usize = 1_000_000;
    println!("## A directory of {N} files (router)\n");
    let dir = s.root.join("bench/million");
    std::fs::create_dir_all(&dir).unwrap();
    let t = Instant::now();
    for i in 0..N {
        std::fs::write(dir.join(format!("f{i:07}")), b"").unwrap();
    }
    println!("created in {:.0} s\n", t.elapsed().as_secs_f64());
    let rss_before = rss_kib(s.pid);
    let page = |token: Option<String>| {
        let http = http.clone();
        let endpoint = s.endpoint.clone();
        async move {
            let query = vec![
                ("list-type", "2".to_string()),
                ("prefix", "million/".to_string()),
            ];
            let t = Instant::now();
            let (text, next) = list_v2_page(&http, &endpoint, query, token).await;
            assert_eq!(text.matches("<Key>").count(), 1000);
            (t.elapsed(), next)
        }
    };
    let (first, next) = page(None).await;
    let rss_first = rss_kib(s.pid);
    let (second, next) = page(next).await;
    let (third, _) = page(next).await;
    println!(
        "| first page | second page | third page | RSS before | RSS after |\n|---|---|---|---|---|"
    );
    println!(
        "| {:.2} s | {:.1} ms | {:.1} ms | {} MiB | {} MiB |\n",
        first.as_secs_f64(),
        second.as_secs_f64() * 1000.0,
        third.as_secs_f64() * 1000.0,
        rss_before / 1024,
        rss_first.max(rss_kib(s.pid)) / 1024
    );
}
