//! One deployer at a time per stack: a lease object in the artifact bucket,
//! `locks/<stack>.json`, written only where none is (`If-None-Match: *`), renewed and
//! released only while it is still ours (`If-Match` on its ETag). Two `up`s, or an `up`
//! and a `down`, on one stack would otherwise interleave change sets, published lists and
//! the scaler's switch.
//!
//! A deployer that dies keeps the lock until its lease runs out ([`LEASE`]); the next one
//! then takes it over, again conditionally, so two cannot both take over the same stale
//! lock. `deployer unlock --env NAME --id ID` removes a lock at once, as Terraform's
//! `force-unlock` does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miette::miette;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::aws::s3::{self, Conditional};

/// How long a lock holds without renewal.
pub const LEASE: Duration = Duration::from_secs(600);

/// How often a held lock is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(120);

/// What the lock object says: who holds it, doing what, until when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub id: String,
    pub command: String,
    pub who: String,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub acquired: u64,
    pub expires: u64,
}

impl Holder {
    fn new(command: &str, now: u64) -> Self {
        use sha2::Digest;
        let pid = std::process::id();
        let who = who();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let digest = sha2::Sha256::digest(format!("{who} {pid} {nanos}").as_bytes());
        Holder {
            id: crate::package::hex(&digest[..8]),
            command: command.to_string(),
            who,
            pid,
            acquired: now,
            expires: now + LEASE.as_secs(),
        }
    }

    /// One line for an error or `status`.
    pub fn describe(&self, now: u64) -> String {
        format!(
            "{} (pid {}) has held it for `{}` since {} s ago; lease ends in {} s; lock id {}",
            self.who,
            self.pid,
            self.command,
            now.saturating_sub(self.acquired),
            self.expires.saturating_sub(now),
            self.id
        )
    }
}

/// `user@host`, from the environment and the kernel's host name.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where a stack's lock lives.
#[derive(Debug, Clone)]
pub struct Place {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub owner: Option<String>,
    pub stack: String,
}

impl Place {
    fn key(&self) -> String {
        format!("locks/{}.json", self.stack)
    }

    pub(crate) fn bucket(&self) -> s3::Bucket<'_> {
        s3::Bucket {
            name: &self.bucket,
            owner: self.owner.as_deref(),
        }
    }

    /// The lock as it is now, and its ETag.
    pub async fn read(&self) -> miette::Result<Option<(Holder, String)>> {
        let Some((body, etag)) = s3::get(&self.client, &self.bucket(), &self.key()).await? else {
            return Ok(None);
        };
        let holder: Holder = serde_json::from_slice(&body).map_err(|e| {
            miette!(
                help = "remove it with `deployer unlock` once nobody deploys",
                "s3://{}/{} is not a deployer lock: {e}",
                self.bucket,
                self.key()
            )
        })?;
        Ok(Some((holder, etag)))
    }

    /// Takes the lock for `command`, or says who holds it.
    pub async fn acquire(&self, command: &str) -> miette::Result<Lock> {
        // Three tries: the lock can be released or taken over between our steps.
        for _ in 0..3 {
            let now = now();
            let holder = Holder::new(command, now);
            let body = serde_json::to_vec(&holder).map_err(|e| miette!("{e}"))?;
            let stale = match self.read().await? {
                None => None,
                Some((current, etag)) if current.expires <= now => {
                    eprintln!(
                        "note: taking over the lock on {} whose lease ran out: {}",
                        self.stack,
                        current.describe(now)
                    );
                    Some(etag)
                }
                Some((current, _)) => {
                    return Err(miette!(
                        help = format!(
                            "wait for it to finish; if that deployer is gone, `deployer unlock --env ENV --id {}` (or wait {} s for its lease to end)",
                            current.id,
                            current.expires.saturating_sub(now)
                        ),
                        "the stack {} is locked by another deployer: {}",
                        self.stack,
                        current.describe(now)
                    ));
                }
            };
            let put = s3::put_conditional(
                &self.client,
                &self.bucket(),
                &self.key(),
                body,
                stale.as_deref(),
            )
            .await?;
            if let Conditional::Done(Some(etag)) = put {
                return Ok(Lock::start(self.clone(), holder, etag));
            }
        }
        Err(miette!(
            help = "run it again",
            "the stack {}'s lock changed hands three times while taking it",
            self.stack
        ))
    }

    /// Removes the lock whose id is `id` (`deployer unlock`).
    pub async fn force_unlock(&self, id: &str) -> miette::Result<Holder> {
        let Some((holder, etag)) = self.read().await? else {
            return Err(miette!("the stack {} is not locked", self.stack));
        };
        if holder.id != id {
            return Err(miette!(
                help = "check the id in the error of the deployer that was refused",
                "the stack {}'s lock has id {}, not {id}: {}",
                self.stack,
                holder.id,
                holder.describe(now())
            ));
        }
        match s3::delete_if_match(&self.client, &self.bucket(), &self.key(), &etag).await? {
            Conditional::Done(_) => Ok(holder),
            Conditional::Refused => Err(miette!(
                "the stack {}'s lock changed while removing it (renewed or taken over): nothing was removed",
                self.stack
            )),
        }
    }
}

/// A lock held: renewed in the background until [`Lock::release`].
#[derive(Debug)]
pub struct Lock {
    place: Place,
    holder: Holder,
    etag: Arc<Mutex<String>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lock {
    fn start(place: Place, holder: Holder, etag: String) -> Self {
        let etag = Arc::new(Mutex::new(etag));
        let renewal = tokio::spawn({
            let (place, holder, etag) = (place.clone(), holder.clone(), etag.clone());
            async move { renew(place, holder, etag).await }
        });
        Lock {
            place,
            holder,
            etag,
            renewal,
        }
    }

    pub fn id(&self) -> &str {
        &self.holder.id
    }

    /// Gives the lock back, if it is still ours.
    pub async fn release(self) {
        self.renewal.abort();
        let etag = self.etag.lock().await.clone();
        let place = &self.place;
        match s3::delete_if_match(&place.client, &place.bucket(), &place.key(), &etag).await {
            Ok(Conditional::Done(_)) => {}
            Ok(Conditional::Refused) => tracing::warn!(
                stack = %place.stack,
                "the lock was no longer ours to release (its lease ran out and another deployer took it)"
            ),
            Err(e) => eprintln!(
                "warning: could not release the lock on {} ({e}); it ends with its lease in {} s, or `deployer unlock --id {}`",
                place.stack,
                LEASE.as_secs(),
                self.holder.id
            ),
        }
    }
}

async fn renew(place: Place, mut holder: Holder, etag: Arc<Mutex<String>>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        holder.expires = now() + LEASE.as_secs();
        let Ok(body) = serde_json::to_vec(&holder) else {
            return;
        };
        let mut current = etag.lock().await;
        match s3::put_conditional(
            &place.client,
            &place.bucket(),
            &place.key(),
            body,
            Some(&current),
        )
        .await
        {
            Ok(Conditional::Done(Some(new))) => *current = new,
            Ok(_) => {
                eprintln!(
                    "warning: the lock on {} was taken over by another deployer; this one carries on, but the two may now interleave",
                    place.stack
                );
                return;
            }
            // A missed renewal is retried at the next; the lease has room for several.
            Err(e) => tracing::warn!(error = %e, "could not renew the lock"),
        }
    }
}
