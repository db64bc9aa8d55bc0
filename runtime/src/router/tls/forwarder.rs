//! The loopback forwarder between `nfs-rs` (plain TCP) and one mount target (TLS).
//!
//! Bound to 127.0.0.1 only, on a port the system picks: nothing outside the task can
//! reach it. It relays one connection at a time: a second local connection while one is
//! live is closed at once, so another process in the task cannot ride on the router's
//! session. When nfs-rs reconnects after a dropped connection, the next accepted
//! connection gets a fresh TLS connection (certificate checked again); if that fails the
//! local connection is closed and the pool takes the target out of service. Dropping
//! the forwarder closes the listener and the relay.

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
    loop {
        let local = match listener.accept().await {
            Ok((stream, _)) => stream,
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

/// Copies both ways until either side closes, refusing any other local connection
/// meanwhile.
async fn relay(
    listener: &TcpListener,
    mut local: TcpStream,
    mut remote: TlsStream<TcpStream>,
    target: &str,
) {
    let _ = local.set_nodelay(true);
    let copying = tokio::io::copy_bidirectional_with_sizes(
        &mut local,
        &mut remote,
        RELAY_BUFFER,
        RELAY_BUFFER,
    );
    let mut copying = std::pin::pin!(copying);
    loop {
        tokio::select! {
            done = &mut copying => {
                match done {
                    Ok((up, down)) => tracing::debug!(target, up, down, "TLS relay closed"),
                    Err(e) => tracing::debug!(target, error = %e, "TLS relay ended"),
                }
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
