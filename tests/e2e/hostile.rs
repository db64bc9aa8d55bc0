//! The router beside clients that stop reading or trickle their bodies: a normal client
//! still gets its transfers through, and the stalled connections are cut off in time,
//! giving back what they held (docs/router.md, "Limits").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::RouterProcess;

use crate::router::{contents, dir_args};

/// A raw HTTP/1.1 connection that sends `head` (and `body`) and then neither reads nor
/// writes: a client that stopped.
fn stalled(router: &RouterProcess, head: &str, body: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(router.addr()).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    tcp
}

/// Reads what the router sends until it closes the connection; the bytes read and
/// whether it closed before `limit`.
fn drain(mut tcp: TcpStream, limit: Duration) -> (usize, bool) {
    let start = Instant::now();
    tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    while start.elapsed() < limit {
        match tcp.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (total, true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading a stalled connection: {e}"),
        }
    }
    (total, false)
}

#[test]
fn stalled_clients_do_not_stop_a_normal_one() {
    let storage = tempfile::tempdir().unwrap();
    let mut args = dir_args(storage.path());
    // The default budget, 16 MiB: before the fix two stalled downloads took all of it.
    args.extend(["--anonymous".into(), "--buffer-mib".into(), "16".into()]);
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let big = contents(1, 64 << 20);
    assert!(
        client
            .put(router.url("/hostile"))
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    let put = client
        .put(router.url("/hostile/big"))
        .body(big.clone())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    // Four downloads of 64 MiB whose clients read nothing, far more than the kernel's
    // socket buffers take in.
    let get = format!(
        "GET /hostile/big HTTP/1.1\r\nHost: {}\r\n\r\n",
        router.addr()
    );
    let downloads: Vec<TcpStream> = (0..4).map(|_| stalled(&router, &get, b"")).collect();
    // Sixteen uploads that announce 10 MiB, send ten bytes, and stop.
    let uploads: Vec<TcpStream> = (0..16)
        .map(|i| {
            let head = format!(
                "PUT /hostile/trickle-{i} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
                router.addr(),
                10 << 20
            );
            stalled(&router, &head, b"ten bytes!")
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // A normal client, meanwhile: a whole download and an upload.
    let got = client.get(router.url("/hostile/big")).send().unwrap();
    assert!(got.status().is_success(), "{}", got.status());
    assert!(
        got.bytes().unwrap() == big.as_slice(),
        "the download beside stalled ones was wrong"
    );
    let small = contents(2, 8 << 20);
    let put = client
        .put(router.url("/hostile/normal"))
        .body(small.clone())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    assert!(std::fs::read(storage.path().join("hostile/normal")).unwrap() == small);

    // The stalled connections are cut off after 30 s without progress. Reading them
    // now would be progress, so wait first: a stalled download that was waiting for
    // budget (not writing, so not yet stalled) takes it once the normal client is done,
    // fills its socket, and is cut 30 s later. Then each must have ended well before
    // its 64 MiB, and no trickled upload is stored.
    std::thread::sleep(Duration::from_secs(50));
    for tcp in downloads {
        let (read, closed) = drain(tcp, Duration::from_secs(30));
        assert!(closed, "a download nobody read was never cut off");
        assert!(
            read < big.len(),
            "a stalled download was sent whole ({read} bytes)"
        );
    }
    for tcp in uploads {
        let (_, closed) = drain(tcp, Duration::from_secs(30));
        assert!(closed, "an upload that stopped sending was never cut off");
    }
    for i in 0..16 {
        assert!(!storage.path().join(format!("hostile/trickle-{i}")).exists());
    }
    // And the router still serves.
    let again = client.get(router.url("/hostile/normal")).send().unwrap();
    assert!(again.bytes().unwrap() == small.as_slice());
}
