//! The loopback forwarder between `nfs-rs` (plain TCP) and one mount target (TLS).
//!
//! Bound to 127.0.0.1 only, on a port the system picks: nothing outside the task can
//! reach it. Every container of a task shares that loopback, so a connection is relayed
//! only if its other end is a socket of this process (checked in /proc), and only one at
//! a time: another process in the task can neither ride on the router's session nor get
//! a TLS connection carrying the router's client certificate. When nfs-rs reconnects
//! after a dropped connection, the next accepted connection gets a fresh TLS connection
//! (certificate checked again); if that fails the local connection is closed and the
//! pool takes the target out of service. A relay ends as soon as either side closes.
//! Dropping the forwarder closes the listener and the relay.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

use super::Tls;

/// Relay buffer per direction: 1 MiB NFS requests in 64 KiB steps (tokio's default 8 KiB
/// costs a syscall per TLS record and more).
const RELAY_BUFFER: usize = 64 << 10;

#[derive(Debug)]
pub struct Forwarder {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the forwarder relays to.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub tls: Tls,
    pub address: String,
    pub port: u16,
    pub timeout: Duration,
}

impl Forwarder {
    /// Starts relaying to `upstream`, using `first` (an established TLS connection to it)
    /// for the first local connection.
    pub async fn start(
        upstream: Upstream,
        first: TlsStream<TcpStream>,
    ) -> std::io::Result<Forwarder> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, upstream, Some(first)));
        Ok(Forwarder { local, task })
    }

    /// The address nfs-rs connects to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

async fn serve(listener: TcpListener, upstream: Upstream, mut first: Option<TlsStream<TcpStream>>) {
    let Ok(ours) = listener.local_addr() else {
        return;
    };
    loop {
        let local = match listener.accept().await {
            Ok((stream, peer)) => {
                // Reading /proc is file I/O (a scan of every descriptor): on the blocking
                // pool, not on a worker that other connections' I/O runs on.
                let is_ours = tokio::task::spawn_blocking(move || peer_is_ours(peer, ours))
                    .await
                    .unwrap_or(false);
                if !is_ours {
                    tracing::warn!(target = %upstream.address, %peer, "refused a connection to the TLS forwarder from another process");
                    continue;
                }
                stream
            }
            Err(e) => {
                tracing::warn!(target = %upstream.address, error = %e, "TLS forwarder cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let remote = match first.take() {
            Some(stream) => stream,
            None => match upstream
                .tls
                .connect(&upstream.address, upstream.port, upstream.timeout)
                .await
            {
                Ok(stream) => stream,
                Err(e) => {
                    // Closing the local side makes nfs-rs fail; the pool then marks the
                    // target down with its own error and reconnects with backoff.
                    tracing::warn!(target = %upstream.address, error = %e, "TLS reconnect failed");
                    continue;
                }
            },
        };
        relay(&listener, local, remote, &upstream.address).await;
    }
}

/// Copies both ways until either side closes (a half-closed relay would hold the
/// forwarder while nfs-rs, which gave up on it, tries to connect again), refusing any
/// other local connection meanwhile.
async fn relay(
    listener: &TcpListener,
    local: TcpStream,
    remote: TlsStream<TcpStream>,
    target: &str,
) {
    use tokio::io::AsyncWriteExt;
    let _ = local.set_nodelay(true);
    let (mut local_read, mut local_write) = tokio::io::split(local);
    let (mut remote_read, mut remote_write) = tokio::io::split(remote);
    let up = async {
        let mut reader = tokio::io::BufReader::with_capacity(RELAY_BUFFER, &mut local_read);
        let copied = tokio::io::copy_buf(&mut reader, &mut remote_write).await;
        let _ = remote_write.shutdown().await;
        copied
    };
    let down = async {
        let mut reader = tokio::io::BufReader::with_capacity(RELAY_BUFFER, &mut remote_read);
        let copied = tokio::io::copy_buf(&mut reader, &mut local_write).await;
        let _ = local_write.shutdown().await;
        copied
    };
    let (mut up, mut down) = (std::pin::pin!(up), std::pin::pin!(down));
    loop {
        tokio::select! {
            done = &mut up => {
                tracing::debug!(target, result = ?done, "TLS relay: the local side closed");
                return;
            }
            done = &mut down => {
                tracing::debug!(target, result = ?done, "TLS relay: the target closed");
                return;
            }
            extra = listener.accept() => {
                if let Ok((stream, peer)) = extra {
                    tracing::warn!(target, %peer, "refused a second local connection to the TLS forwarder");
                    drop(stream);
                }
            }
        }
    }
}

/// Whether `peer`, connected to our listener at `ours`, is a socket this process holds:
/// its inode (from /proc/net/tcp, where the peer's local address is `peer`) appears
/// among /proc/self/fd.
pub fn peer_is_ours(peer: SocketAddr, ours: SocketAddr) -> bool {
    let Some(inode) = socket_inode(peer, ours) else {
        return false;
    };
    let want = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
}

/// The inode of the TCP socket from `local` to `remote`, from /proc/net/tcp (addresses
/// as the kernel prints them: the IPv4 address's bytes as a little-endian hex word).
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        )),
        SocketAddr::V6(_) => None,
    };
    let (l, r) = (hex(local)?, hex(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&l.as_str()) && fields.get(2) == Some(&r.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_this_process_passes_the_peer_check() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let ours = listener.local_addr().unwrap();
        let _mine = TcpStream::connect(ours).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert!(peer_is_ours(peer, ours));

        // Another process (bash's /dev/tcp) on the same loopback is refused.
        let mut other = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec 3<>/dev/tcp/127.0.0.1/{}; sleep 5",
                ours.port()
            ))
            .spawn()
            .unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert!(!peer_is_ours(peer, ours));
        let _ = other.kill();
        let _ = other.wait();
    }
}
