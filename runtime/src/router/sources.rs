//! Where the router's target list comes from, in order: `--target` flags; the published
//! list in SSM (`SSM_PARAMETER_NAME`); the task definition's default list
//! (`DEFAULT_MOUNT_TARGETS`, the initial mount targets), used when the parameter cannot
//! be read (seed: Fargate error 1). And the watch that follows the published list.

use std::sync::Arc;
use std::time::Duration;

use crate::aws::ssm::Ssm;
use crate::model::MountTargetList;

use super::pool::{Pool, TargetSpec};

/// Where the current list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Flags,
    Parameter,
    Default,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "no mount targets: the parameter {parameter} could not be used ({why}) and DEFAULT_MOUNT_TARGETS is empty; set it, or pass --target"
    )]
    Nothing { parameter: String, why: String },
    #[error("no mount targets: set SSM_PARAMETER_NAME or DEFAULT_MOUNT_TARGETS, or pass --target")]
    NotConfigured,
    #[error("DEFAULT_MOUNT_TARGETS: none of {0} resolves to an address")]
    Unresolvable(String),
}

/// `--address-map`: where to connect instead of a published address. The first entry
/// whose block holds the address wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap(Vec<(ipnet::IpNet, std::net::IpAddr)>);

impl AddressMap {
    /// `FROM=TO,...`; FROM an address (a block of one) or a CIDR block.
    pub fn parse(text: &str) -> Result<AddressMap, String> {
        let mut entries = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (from, to) = item.split_once('=').ok_or_else(|| {
                format!("{item:?} is not FROM=TO (for example 10.0.1.0/24=127.0.0.2)")
            })?;
            let (from, to) = (from.trim(), to.trim());
            let block = match from.parse::<ipnet::IpNet>() {
                Ok(block) => block,
                Err(_) => from
                    .parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| {
                        format!("{from:?} in {item:?} is neither an address nor a CIDR block")
                    })?,
            };
            let to = to
                .parse()
                .map_err(|_| format!("{to:?} in {item:?} is not an IP address"))?;
            entries.push((block, to));
        }
        if entries.is_empty() {
            return Err("empty: give FROM=TO pairs, or leave it unset".into());
        }
        Ok(AddressMap(entries))
    }

    /// Where to connect for a published `address`.
    pub fn apply(&self, address: std::net::IpAddr) -> std::net::IpAddr {
        self.0
            .iter()
            .find(|(block, _)| block.contains(&address))
            .map_or(address, |(_, to)| *to)
    }
}

/// The published list as targets: keyed by mount-target id, so routing does not depend
/// on the list's order or on addresses.
pub fn from_list(list: &MountTargetList, map: &AddressMap) -> Vec<TargetSpec> {
    list.targets()
        .iter()
        .map(|t| TargetSpec {
            key: t.mount_target_id.clone(),
            address: map.apply(t.ip_address.into()).to_string(),
            availability_zone: Some(t.availability_zone.clone()),
            mount_target_id: Some(t.mount_target_id.clone()),
        })
        .collect()
}

/// Reads and parses the published list. `Ok(None)`: the parameter does not exist.
pub async fn read_parameter(ssm: &Ssm, name: &str) -> Result<Option<MountTargetList>, String> {
    match ssm.get(name).await {
        Ok(Some(p)) => MountTargetList::parse(&p.value)
            .map(Some)
            .map_err(|e| format!("{name} holds an invalid list: {e}")),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// `DEFAULT_MOUNT_TARGETS`: comma-separated addresses or DNS names. The deployer writes
/// the zonal EFS names (`ap-northeast-1a.fs-….efs.<region>.amazonaws.com`), which
/// resolve to the mount target in that zone; the zone is read off the name. A name that
/// does not resolve (no mount target in that zone yet) is skipped with a warning.
pub async fn resolve_defaults(value: &str, port: u16) -> Result<Vec<TargetSpec>, SourceError> {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut specs = Vec::new();
    for name in &names {
        let zone = zone_of(name);
        match tokio::net::lookup_host((*name, port)).await {
            Ok(addrs) => match prefer_ipv4(addrs) {
                Some(addr) => specs.push(TargetSpec {
                    key: (*name).to_string(),
                    address: addr.ip().to_string(),
                    availability_zone: zone,
                    mount_target_id: None,
                }),
                None => tracing::warn!(name, "default mount target has no address; skipped"),
            },
            Err(e) => {
                tracing::warn!(name, error = %e, "default mount target does not resolve; skipped")
            }
        }
    }
    if specs.is_empty() && !names.is_empty() {
        return Err(SourceError::Unresolvable(names.join(", ")));
    }
    Ok(specs)
}

/// EFS mount targets are IPv4; a dual-stack name's v6 address is a last resort.
fn prefer_ipv4(addrs: impl Iterator<Item = std::net::SocketAddr>) -> Option<std::net::SocketAddr> {
    let all: Vec<_> = addrs.collect();
    all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
}

/// The zone of a zonal EFS DNS name: its first label, when that looks like a zone.
fn zone_of(name: &str) -> Option<String> {
    let first = name.split('.').next()?;
    (name.contains(".efs.") && crate::model::is_availability_zone(first)).then(|| first.to_string())
}

/// Decides the initial list (see the module comment).
pub async fn initial(
    flags: &[String],
    parameter: Option<(&Ssm, &str)>,
    defaults: Option<&str>,
    port: u16,
    map: &AddressMap,
) -> Result<(Vec<TargetSpec>, Origin), SourceError> {
    if !flags.is_empty() {
        return Ok((
            flags.iter().map(TargetSpec::address_only).collect(),
            Origin::Flags,
        ));
    }
    let mut why = None;
    if let Some((ssm, name)) = parameter {
        match read_parameter(ssm, name).await {
            Ok(Some(list)) => {
                tracing::info!(
                    parameter = name,
                    targets = list.len(),
                    "mount-target list read"
                );
                return Ok((from_list(&list, map), Origin::Parameter));
            }
            Ok(None) => why = Some((name.to_string(), "it does not exist".to_string())),
            Err(e) => why = Some((name.to_string(), e)),
        }
        if let Some((name, reason)) = &why {
            tracing::warn!(parameter = %name, reason = %reason, "cannot use the mount-target list; starting with the default list");
        }
    }
    match defaults.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => Ok((resolve_defaults(d, port).await?, Origin::Default)),
        None => Err(match why {
            Some((parameter, why)) => SourceError::Nothing { parameter, why },
            None => SourceError::NotConfigured,
        }),
    }
}

/// Re-reads the published list every `interval` and applies changes to the pool (new
/// targets connect in the background, removed ones retire). A failed read keeps the
/// current targets: a broken parameter must not empty a working router.
pub fn spawn_watch(
    pool: Arc<Pool>,
    ssm: Ssm,
    name: String,
    interval: Duration,
    mut current: Vec<TargetSpec>,
    map: AddressMap,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match read_parameter(&ssm, &name).await {
                Ok(Some(list)) => {
                    let specs = from_list(&list, &map);
                    if specs != current {
                        tracing::info!(parameter = %name, targets = specs.len(), "mount-target list changed");
                        pool.apply(specs.clone());
                        current = specs;
                    }
                }
                Ok(None) => tracing::debug!(parameter = %name, "mount-target list still missing"),
                Err(e) => {
                    tracing::warn!(parameter = %name, error = %e, "cannot read the mount-target list; keeping the current targets")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_map_redirects_blocks_and_leaves_the_rest() {
        let map = AddressMap::parse("10.0.1.0/24=127.0.0.2, 10.0.2.7=127.0.0.3").unwrap();
        let at = |a: &str| map.apply(a.parse().unwrap()).to_string();
        assert_eq!(at("10.0.1.4"), "127.0.0.2");
        assert_eq!(at("10.0.1.255"), "127.0.0.2");
        assert_eq!(at("10.0.2.7"), "127.0.0.3");
        // Outside every block: the published address.
        assert_eq!(at("10.0.2.8"), "10.0.2.8");
        assert_eq!(at("10.0.3.4"), "10.0.3.4");
        for bad in [
            "",
            "10.0.1.0/24",
            "10.0.1.0/33=127.0.0.2",
            "10.0.1.0/24=local",
            "x=127.0.0.1",
        ] {
            assert!(AddressMap::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_list_keeps_ids_and_zones_when_addresses_are_mapped() {
        let list = MountTargetList::new(vec![crate::model::MountTarget {
            mount_target_id: "fsmt-0000000a".into(),
            ip_address: "10.0.1.4".parse().unwrap(),
            availability_zone: "ap-northeast-1a".into(),
            subnet_id: "subnet-0000000a".into(),
        }])
        .unwrap();
        let map = AddressMap::parse("10.0.1.0/24=127.0.0.2").unwrap();
        let specs = from_list(&list, &map);
        assert_eq!(specs[0].address, "127.0.0.2");
        assert_eq!(specs[0].key, "fsmt-0000000a");
        assert_eq!(
            specs[0].availability_zone.as_deref(),
            Some("ap-northeast-1a")
        );
        assert_eq!(
            from_list(&list, &AddressMap::default())[0].address,
            "10.0.1.4"
        );
    }

    #[test]
    fn zones_come_from_zonal_efs_names() {
        assert_eq!(
            zone_of("ap-northeast-1a.fs-0123abcd.efs.ap-northeast-1.amazonaws.com").as_deref(),
            Some("ap-northeast-1a")
        );
        assert_eq!(zone_of("10.0.1.100"), None);
        assert_eq!(zone_of("localhost"), None);
    }

    #[tokio::test]
    async fn defaults_resolve_and_skip_what_does_not() {
        let specs = resolve_defaults("127.0.0.2, no-such-host.invalid ,127.0.0.3", 2049)
            .await
            .unwrap();
        let addrs: Vec<&str> = specs.iter().map(|s| s.address.as_str()).collect();
        assert_eq!(addrs, ["127.0.0.2", "127.0.0.3"]);
        assert!(matches!(
            resolve_defaults("no-such-host.invalid", 2049).await,
            Err(SourceError::Unresolvable(_))
        ));
    }

    #[tokio::test]
    async fn flags_win_and_nothing_configured_is_an_error() {
        let (specs, origin) = initial(
            &["/tmp/a".into()],
            None,
            Some("127.0.0.2"),
            2049,
            &AddressMap::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            (specs[0].address.as_str(), origin),
            ("/tmp/a", Origin::Flags)
        );
        let (specs, origin) = initial(&[], None, Some("127.0.0.2"), 2049, &AddressMap::default())
            .await
            .unwrap();
        assert_eq!(
            (specs[0].address.as_str(), origin),
            ("127.0.0.2", Origin::Default)
        );
        assert!(matches!(
            initial(&[], None, None, 2049, &AddressMap::default()).await,
            Err(SourceError::NotConfigured)
        ));
    }
}
