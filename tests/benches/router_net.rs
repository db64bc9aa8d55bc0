//! The router over a network with latency: nfs-ganesha and a stunnel4 TLS front behind a
//! delaying TCP relay, the router in front (docs/benchmarks.md#router-tls-and-connections).
//!
//! The issue asked for `tc netem` in network namespaces; this kernel has no netem
//! (`Specified qdisc kind is unknown`, no modules to load), so the delay is a relay in
//! this process: each direction of each connection holds every chunk it reads for half
//! the round trip (precise sleeps on dedicated threads), so requests still pipeline as
//! they do over a real link. Unlike netem it models no window limit or loss.
//!
//! `scripts/bench-router-net` builds the shipped router binary and runs this with its
//! path: `cargo bench -p efs-autoscaler-tests --bench router_net -- ROUTER_BINARY`.
//! Needs root (ganesha).
//!
//! For each round-trip time (0.5 ms and 2 ms; BENCH_RTTS), clear text and TLS, and 1, 2,
//! 4 and 8 connections per target (BENCH_CONNECTIONS):
//! - 64 MiB write and read, BENCH_STREAMS (4) streams at once: total MiB/s;
//! - 4 KiB files, create then read, 16 clients at once: operations per second.
//!
//! Medians of BENCH_ROUNDS (3) rounds; clear text and TLS alternate within each round.
//!
//! Two cores carry everything here, the server side's TLS (stunnel4) included, so the
//! throughput ratio is not the router's alone. A second table gives the router's own CPU
//! time per GiB moved by the bulk phase (utime + stime from /proc): where the router has
//! its cores to itself and is CPU-bound, clear/TLS of that is its throughput ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use harness::measure::{cpu_seconds, median};
use harness::{Ganesha, RouterProcess, ServerCert, TestCa, TlsFront};

const NFS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FRONT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);
const CLEAR_RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 30);
const TLS_RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 31);
const BIG: usize = 64 << 20;
const SMALL: usize = 4096;
const SMALL_FILES: usize = 1000;
const CLIENTS: usize = 16;
const FS: &str = "fs-12345678";
const REGION: &str = "us-east-1";

/// A TCP relay from `listen` to `upstream` that delays each direction by the current
/// one-way delay (microseconds in `one_way`).
fn delay_relay(listen: SocketAddr, upstream: SocketAddr, one_way: Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind(listen).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            let delay = Duration::from_micros(one_way.load(Ordering::Relaxed));
            for (from, to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let _ = from.set_nodelay(true);
                let _ = to.set_nodelay(true);
                pipe(from, to, delay);
            }
        }
    });
}

/// One direction: a reader thread stamps each chunk with its due time, a writer thread
/// sends it then.
fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream, delay: Duration) {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .ok()
                .unwrap_or_else(|| panic!("{name}: bad value {v:?}"))
        })
        .collect()
}

fn main() {
    let router_bin: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .expect("usage: cargo bench --bench router_net -- ROUTER_BINARY");
    let rtts: Vec<f64> = env_list("BENCH_RTTS", "0.5,2");
    let conns: Vec<usize> = env_list("BENCH_CONNECTIONS", "1,2,4,8");
    let rounds: usize = env_list::<usize>("BENCH_ROUNDS", "3")[0];
    let streams: usize = env_list::<usize>("BENCH_STREAMS", "4")[0];

    let base = PathBuf::from("/dev/shm");
    let cluster = Ganesha::start_in(1, &base).unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new("efs-autoscaler bench CA").unwrap();
    let cert = ServerCert {
        name: format!("{FS}.efs.{REGION}.amazonaws.com"),
        expired: false,
    };
    let port = cluster.port();
    let upstream = SocketAddr::from((NFS_IP, port));
    let _front = TlsFront::start(&ca, &cert, FRONT_IP, upstream).unwrap_or_else(|e| panic!("{e}"));
    let one_way = Arc::new(AtomicU64::new(0));
    delay_relay(
        SocketAddr::from((CLEAR_RELAY, port)),
        upstream,
        one_way.clone(),
    );
    delay_relay(
        SocketAddr::from((TLS_RELAY, port)),
        SocketAddr::from((FRONT_IP, port)),
        one_way.clone(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = Bytes::from(
        (0..BIG)
            .map(|i| (i * 7 + i / 4093) as u8)
            .collect::<Vec<u8>>(),
    );

    println!(
        "ganesha {NFS_IP}, stunnel4 {FRONT_IP} before it; relays with delay {CLEAR_RELAY} (clear) and {TLS_RELAY} (TLS); {streams} x 64 MiB streams; {CLIENTS} clients x {SMALL_FILES} 4 KiB files; median of {rounds}\n"
    );
    for &rtt in &rtts {
        one_way.store((rtt * 500.0).round() as u64, Ordering::Relaxed);
        println!("## {rtt} ms round trip\n");
        println!(
            "| connections | write clear | write TLS | TLS/clear | read clear | read TLS | TLS/clear | 4 KiB ops/s clear | 4 KiB ops/s TLS | TLS/clear |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let mut cpu_rows = Vec::new();
        for &n in &conns {
            let mut results: [[Vec<f64>; 4]; 2] = Default::default();
            for round in 0..rounds {
                for (tls, slot) in [(false, 0usize), (true, 1)] {
                    let router = start(&router_bin, &cluster, &ca, tls, n);
                    let (w, r, ops, cpu) = rt.block_on(measure(
                        &router,
                        &data,
                        streams,
                        &format!("r{rtt}-c{n}-{round}-{tls}"),
                    ));
                    results[slot][0].push(w);
                    results[slot][1].push(r);
                    results[slot][2].push(ops);
                    results[slot][3].push(cpu);
                    let _ = router.terminate();
                    let _ = std::fs::remove_dir_all(cluster.export_dir().join("bench"));
                }
            }
            let m = |s: usize, k: usize| median(results[s][k].clone());
            println!(
                "| {n} | {:.0} | {:.0} | **{:.2}** | {:.0} | {:.0} | **{:.2}** | {:.0} | {:.0} | **{:.2}** |",
                m(0, 0),
                m(1, 0),
                m(1, 0) / m(0, 0),
                m(0, 1),
                m(1, 1),
                m(1, 1) / m(0, 1),
                m(0, 2),
                m(1, 2),
                m(1, 2) / m(0, 2),
            );
            cpu_rows.push((n, m(0, 3), m(1, 3)));
        }
        println!();
        println!("Router CPU seconds per GiB moved (bulk write + read):\n");
        println!("| connections | clear | TLS | clear/TLS |");
        println!("|---|---|---|---|");
        for (n, clear, tls) in cpu_rows {
            println!("| {n} | {clear:.2} | {tls:.2} | **{:.2}** |", clear / tls);
        }
        println!();
    }
}

fn start(
    bin: &std::path::Path,
    cluster: &Ganesha,
    ca: &TestCa,
    tls: bool,
    connections: usize,
) -> RouterProcess {
    let mut args: Vec<String> = [
        "--anonymous",
        "--backend",
        "nfs",
        "--export",
        "/export",
        "--metrics-interval",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--nfs-port".into(), cluster.port().to_string()]);
    args.extend(["--connections-per-target".into(), connections.to_string()]);
    if tls {
        args.extend([
            "--tls".into(),
            "--tls-ca".into(),
            ca.pem_path().display().to_string(),
        ]);
        args.extend([
            "--file-system-id".into(),
            FS.into(),
            "--region".into(),
            REGION.into(),
        ]);
        args.extend(["--target".into(), TLS_RELAY.to_string()]);
    } else {
        args.extend([
            "--tls=false".into(),
            "--target".into(),
            CLEAR_RELAY.to_string(),
        ]);
    }
    let env = vec![("RUST_LOG".to_string(), "warn".to_string())];
    RouterProcess::start_binary(bin, &args, &env).unwrap_or_else(|e| panic!("{e}"))
}

/// Write MiB/s, read MiB/s (all streams together), 4 KiB operations per second, and the
/// router's CPU seconds per GiB of the bulk phase.
async fn measure(
    router: &RouterProcess,
    data: &Bytes,
    streams: usize,
    tag: &str,
) -> (f64, f64, f64, f64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // The bucket (already there from an earlier measurement is fine).
    let _ = http.put(router.url("/bench")).send().await.unwrap();
    let total = (BIG * streams) as f64 / f64::from(1 << 20);
    let urls: Vec<String> = (0..streams)
        .map(|i| router.url(&format!("/bench/{tag}/big{i}")))
        .collect();

    let cpu = cpu_seconds(router.pid());
    let t = Instant::now();
    futures_util::future::join_all(urls.iter().map(|u| {
        let (h, d) = (http.clone(), data.clone());
        async move {
            let s = h.put(u).body(d).send().await.unwrap().status();
            assert_eq!(s.as_u16(), 200, "PUT {u}");
        }
    }))
    .await;
    let write = total / t.elapsed().as_secs_f64();

    let t = Instant::now();
    futures_util::future::join_all(urls.iter().map(|u| {
        let h = http.clone();
        async move {
            let mut body = h.get(u).send().await.unwrap().bytes_stream();
            let mut n = 0;
            while let Some(chunk) = body.next().await {
                n += chunk.unwrap().len();
            }
            assert_eq!(n, BIG, "GET {u}");
        }
    }))
    .await;
    let read = total / t.elapsed().as_secs_f64();
    let cpu_per_gib = (cpu_seconds(router.pid()) - cpu) / (2.0 * total / 1024.0);

    let small = Bytes::from(vec![7u8; SMALL]);
    let base = router.url(&format!("/bench/{tag}/small"));
    let t = Instant::now();
    futures_util::stream::iter(0..SMALL_FILES)
        .for_each_concurrent(CLIENTS, |i| {
            let (h, s, url) = (http.clone(), small.clone(), format!("{base}/f{i}"));
            async move {
                assert_eq!(
                    h.put(&url).body(s).send().await.unwrap().status().as_u16(),
                    200
                );
                let got = h.get(&url).send().await.unwrap().bytes().await.unwrap();
                assert_eq!(got.len(), SMALL);
            }
        })
        .await;
    let ops = (2 * SMALL_FILES) as f64 / t.elapsed().as_secs_f64();
    (write, read, ops, cpu_per_gib)
}
