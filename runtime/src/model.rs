//! The mount-target list published in SSM Parameter Store: the one piece of data the
//! scaler (writer), the deployer (writer on `up`) and the router (reader) share.
//!
//! ```json
//! {"mount_targets":[{"mount_target_id":"fsmt-12345678","ip_address":"10.0.1.100",
//!   "availability_zone":"ap-northeast-1a","subnet_id":"subnet-12345678"}]}
//! ```
//!
//! Parsing is strict (unknown keys, bad ids, duplicates and two targets in one zone are
//! errors) because a reader must never act on a list it does not understand. Writing is
//! canonical (sorted by zone, compact, fixed key order), so equal lists are equal bytes and
//! "has the list changed?" is a string comparison.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// SSM standard parameters hold at most 4 KiB; a list never comes near it (one target per
/// zone, at most six zones per region), but a writer checks rather than truncates.
pub const MAX_PARAMETER_BYTES: usize = 4096;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("mount-target list is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("mount-target list is empty; a published list always names at least one mount target")]
    Empty,
    #[error("mount_targets[{index}].{field}: {value:?} is not valid: {expected}")]
    Invalid {
        index: usize,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("mount_targets[{index}]: {what} {value:?} appears twice")]
    Duplicate {
        index: usize,
        what: &'static str,
        value: String,
    },
    #[error(
        "mount-target list is {0} bytes; SSM standard parameters hold at most {MAX_PARAMETER_BYTES}"
    )]
    TooLarge(usize),
}

/// One mount target: an entry point to the file system in one availability zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountTarget {
    pub mount_target_id: String,
    pub ip_address: Ipv4Addr,
    pub availability_zone: String,
    pub subnet_id: String,
}

/// A validated list, in canonical order (by availability zone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountTargetList {
    mount_targets: Vec<MountTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    mount_targets: Vec<MountTarget>,
}

/// An AWS resource id: `prefix` (with its dash, e.g. `fsmt-`) and 8 to 40 lowercase hex
/// digits.
pub fn is_hex_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|h| {
        (8..=40).contains(&h.len())
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// `ap-northeast-1`, `us-gov-west-1`: the shape of an AWS region name.
pub fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// `ap-northeast-1a`, `us-gov-west-1b`: a region name followed by one zone letter.
pub fn is_availability_zone(value: &str) -> bool {
    match value.char_indices().last() {
        Some((i, letter)) => letter.is_ascii_lowercase() && is_region(&value[..i]),
        None => false,
    }
}

impl MountTarget {
    fn check(&self, index: usize) -> Result<(), ModelError> {
        let invalid = |field, value: &str, expected| ModelError::Invalid {
            index,
            field,
            value: value.to_string(),
            expected,
        };
        if !is_hex_id(&self.mount_target_id, "fsmt-") {
            return Err(invalid(
                "mount_target_id",
                &self.mount_target_id,
                "fsmt- followed by 8 to 40 lowercase hex digits",
            ));
        }
        if !is_hex_id(&self.subnet_id, "subnet-") {
            return Err(invalid(
                "subnet_id",
                &self.subnet_id,
                "subnet- followed by 8 to 40 lowercase hex digits",
            ));
        }
        if !is_availability_zone(&self.availability_zone) {
            return Err(invalid(
                "availability_zone",
                &self.availability_zone,
                "a zone name such as ap-northeast-1a",
            ));
        }
        let ip = self.ip_address;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(invalid(
                "ip_address",
                &ip.to_string(),
                "a unicast IPv4 address",
            ));
        }
        Ok(())
    }
}

impl MountTargetList {
    /// Validates and puts `targets` in canonical order.
    pub fn new(targets: Vec<MountTarget>) -> Result<Self, ModelError> {
        if targets.is_empty() {
            return Err(ModelError::Empty);
        }
        let (mut ids, mut ips, mut zones, mut subnets) = (
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
        );
        for (index, t) in targets.iter().enumerate() {
            t.check(index)?;
            let dup = |what, value: String| ModelError::Duplicate { index, what, value };
            if !ids.insert(&t.mount_target_id) {
                return Err(dup("mount_target_id", t.mount_target_id.clone()));
            }
            if !ips.insert(t.ip_address) {
                return Err(dup("ip_address", t.ip_address.to_string()));
            }
            // EFS allows one mount target per zone; two in one zone means a corrupt list.
            if !zones.insert(&t.availability_zone) {
                return Err(dup("availability_zone", t.availability_zone.clone()));
            }
            if !subnets.insert(&t.subnet_id) {
                return Err(dup("subnet_id", t.subnet_id.clone()));
            }
        }
        let mut mount_targets = targets;
        mount_targets.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone));
        Ok(MountTargetList { mount_targets })
    }

    /// Parses a parameter value strictly.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let wire: Wire = serde_json::from_str(text).map_err(|e| ModelError::Json(e.to_string()))?;
        Self::new(wire.mount_targets)
    }

    /// The canonical parameter value: compact JSON, sorted by zone, fixed key order.
    pub fn to_canonical_json(&self) -> Result<String, ModelError> {
        let text = serde_json::to_string(self).map_err(|e| ModelError::Json(e.to_string()))?;
        if text.len() > MAX_PARAMETER_BYTES {
            return Err(ModelError::TooLarge(text.len()));
        }
        Ok(text)
    }

    pub fn targets(&self) -> &[MountTarget] {
        &self.mount_targets
    }

    pub fn len(&self) -> usize {
        self.mount_targets.len()
    }

    /// Always false: a list is never empty. Present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.mount_targets.is_empty()
    }

    pub fn zones(&self) -> impl Iterator<Item = &str> {
        self.mount_targets
            .iter()
            .map(|t| t.availability_zone.as_str())
    }
}

impl fmt::Display for MountTargetList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.mount_targets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{} {} ({})",
                t.availability_zone, t.ip_address, t.mount_target_id
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target(zone: char, n: u8) -> MountTarget {
        MountTarget {
            mount_target_id: format!("fsmt-{:08x}", u32::from(n) + 0x1000),
            ip_address: Ipv4Addr::new(10, 0, n, 100),
            availability_zone: format!("ap-northeast-1{zone}"),
            subnet_id: format!("subnet-{:08x}", u32::from(n) + 0x2000),
        }
    }

    const SEED_EXAMPLE: &str = r#"{
      "mount_targets": [
        {"mount_target_id": "fsmt-12345678", "ip_address": "10.0.1.100",
         "availability_zone": "ap-northeast-1a", "subnet_id": "subnet-12345678"},
        {"mount_target_id": "fsmt-87654321", "ip_address": "10.0.2.100",
         "availability_zone": "ap-northeast-1c", "subnet_id": "subnet-87654321"}
      ]
    }"#;

    #[test]
    fn parses_the_seed_example() {
        let list = MountTargetList::parse(SEED_EXAMPLE).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list.zones().collect::<Vec<_>>(),
            ["ap-northeast-1a", "ap-northeast-1c"]
        );
        assert_eq!(
            list.to_canonical_json().unwrap(),
            r#"{"mount_targets":[{"mount_target_id":"fsmt-12345678","ip_address":"10.0.1.100","availability_zone":"ap-northeast-1a","subnet_id":"subnet-12345678"},{"mount_target_id":"fsmt-87654321","ip_address":"10.0.2.100","availability_zone":"ap-northeast-1c","subnet_id":"subnet-87654321"}]}"#
        );
    }

    #[test]
    fn rejects_bad_lists_naming_the_field() {
        let bad = |s: &str| MountTargetList::parse(s).unwrap_err();
        let one = |field: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
            v["mount_targets"][1][field] = serde_json::Value::String(value.to_string());
            v.to_string()
        };
        assert!(matches!(
            bad(&one("mount_target_id", "fsmt-XYZ")),
            ModelError::Invalid {
                index: 1,
                field: "mount_target_id",
                ..
            }
        ));
        assert!(matches!(
            bad(&one("subnet_id", "sub-12345678")),
            ModelError::Invalid {
                field: "subnet_id",
                ..
            }
        ));
        assert!(matches!(
            bad(&one("availability_zone", "tokyo")),
            ModelError::Invalid {
                field: "availability_zone",
                ..
            }
        ));
        // A multi-byte last character is rejected, not a panic.
        assert!(matches!(
            bad(&one("availability_zone", "ap-northeast-1é")),
            ModelError::Invalid {
                field: "availability_zone",
                ..
            }
        ));
        assert!(matches!(
            bad(&one("ip_address", "10.0.0.300")),
            ModelError::Json(_)
        ));
        assert!(matches!(
            bad(&one("ip_address", "0.0.0.0")),
            ModelError::Invalid {
                field: "ip_address",
                ..
            }
        ));
        assert!(matches!(
            bad(&one("availability_zone", "ap-northeast-1a")),
            ModelError::Duplicate {
                what: "availability_zone",
                ..
            }
        ));
        assert!(matches!(
            bad(&one("ip_address", "10.0.1.100")),
            ModelError::Duplicate {
                what: "ip_address",
                ..
            }
        ));
        assert!(matches!(
            bad(&one("mount_target_id", "fsmt-12345678")),
            ModelError::Duplicate {
                what: "mount_target_id",
                ..
            }
        ));
        assert_eq!(bad(r#"{"mount_targets":[]}"#), ModelError::Empty);
        assert!(matches!(
            bad(r#"{"mount_targets":[],"extra":1}"#),
            ModelError::Json(_)
        ));
        assert!(matches!(bad("not json"), ModelError::Json(_)));
        let with_unknown = SEED_EXAMPLE.replacen(
            "\"subnet_id\"",
            "\"lifecycle_state\": \"available\", \"subnet_id\"",
            1,
        );
        assert!(matches!(bad(&with_unknown), ModelError::Json(_)));
    }

    #[test]
    fn error_messages_name_index_and_field() {
        let e = MountTargetList::new(vec![
            target('a', 1),
            MountTarget {
                subnet_id: "x".into(),
                ..target('c', 2)
            },
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"mount_targets[1].subnet_id: "x" is not valid: subnet- followed by 8 to 40 lowercase hex digits"#
        );
    }

    fn arb_list() -> impl Strategy<Value = Vec<MountTarget>> {
        // Up to six distinct zones with distinct ids, addresses and subnets.
        (
            prop::sample::subsequence(vec!['a', 'b', 'c', 'd', 'e', 'f'], 1..=6),
            any::<u32>(),
            any::<u8>(),
        )
            .prop_map(|(zones, id_base, ip_base)| {
                zones
                    .iter()
                    .enumerate()
                    .map(|(i, z)| MountTarget {
                        mount_target_id: format!("fsmt-{:08x}{:x}", id_base, i),
                        ip_address: Ipv4Addr::new(10, ip_base, i as u8, 10),
                        availability_zone: format!("us-east-1{z}"),
                        subnet_id: format!("subnet-{:017x}", u64::from(id_base) * 7 + i as u64),
                    })
                    .collect()
            })
            .prop_shuffle()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Seed property 4: what is stored is what is read back.
        #[test]
        fn round_trip(targets in arb_list()) {
            let list = MountTargetList::new(targets.clone()).unwrap();
            let text = list.to_canonical_json().unwrap();
            let back = MountTargetList::parse(&text).unwrap();
            prop_assert_eq!(&back, &list);
            prop_assert_eq!(back.to_canonical_json().unwrap(), text);
            // The same targets in any order are the same list.
            let mut set: Vec<_> = targets.clone();
            set.sort();
            let mut got: Vec<_> = back.targets().to_vec();
            got.sort();
            prop_assert_eq!(got, set);
        }

        /// Any order and any formatting of the same targets canonicalise to the same bytes.
        #[test]
        fn canonical_form_ignores_order_and_whitespace(targets in arb_list()) {
            let pretty = serde_json::to_string_pretty(&serde_json::json!({ "mount_targets": targets })).unwrap();
            let mut reversed = targets.clone();
            reversed.reverse();
            let a = MountTargetList::parse(&pretty).unwrap().to_canonical_json().unwrap();
            let b = MountTargetList::new(reversed).unwrap().to_canonical_json().unwrap();
            prop_assert_eq!(a, b);
        }
    }
}
