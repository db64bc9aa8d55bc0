//! Layering of environment files: `defaults.yaml` first, then `<env>.yaml` on top.
//!
//! The rules (also in docs/configuration.md):
//! 1. Maps merge key by key, recursively.
//! 2. Lists replace: an overlay's list is the whole list (no concatenation), so an
//!    environment always says exactly which availability zones or e-mails it has.
//! 3. Scalars replace.
//! 4. `key: null` removes the key, so the built-in default applies again.
//! 5. A key that changes kind (map in one file, scalar in the other) takes the overlay's value.
//!
//! Every node keeps the location of the file that supplied it, so errors after the merge
//! still name the right file and line.

use super::yaml::{Node, Value};

/// Layers `overlay` over `base`.
pub fn merge(base: Node, overlay: Node) -> Node {
    match (base.value, overlay.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            let mut entries = base_entries;
            for (key, value) in over_entries {
                match entries.iter().position(|(k, _)| k.name == key.name) {
                    Some(i) => {
                        let (_, old) = entries.remove(i);
                        entries.insert(i, (key, merge(old, value)));
                    }
                    None => entries.push((key, value)),
                }
            }
            Node::new(Value::Map(entries), overlay.loc)
        }
        (_, value) => Node::new(value, overlay.loc),
    }
}

/// Applies rule 4 everywhere: drops map entries whose value is null.
pub fn drop_nulls(node: Node) -> Node {
    let value = match node.value {
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .filter(|(_, v)| v.value != Value::Null)
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Seq(items) => Value::Seq(items.into_iter().map(drop_nulls).collect()),
        other => other,
    };
    Node::new(value, node.loc)
}

/// Layers any number of files, first to last, then applies rule 4.
pub fn layer(nodes: impl IntoIterator<Item = Node>) -> Option<Node> {
    nodes.into_iter().reduce(merge).map(drop_nulls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::Loc;
    use crate::config::yaml::Key;
    use proptest::prelude::*;

    /// Values without locations, for comparing trees.
    #[derive(Debug, Clone, PartialEq)]
    enum Plain {
        Null,
        Int(i64),
        Str(String),
        Seq(Vec<Plain>),
        Map(Vec<(String, Plain)>),
    }

    fn to_node(p: &Plain) -> Node {
        let value = match p {
            Plain::Null => Value::Null,
            Plain::Int(i) => Value::Int(*i),
            Plain::Str(s) => Value::String(s.clone()),
            Plain::Seq(items) => Value::Seq(items.iter().map(to_node).collect()),
            Plain::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.clone(),
                                loc: Loc::builtin(),
                            },
                            to_node(v),
                        )
                    })
                    .collect(),
            ),
        };
        Node::new(value, Loc::builtin())
    }

    fn to_plain(n: &Node) -> Plain {
        match &n.value {
            Value::Null => Plain::Null,
            Value::Int(i) => Plain::Int(*i),
            Value::String(s) => Plain::Str(s.clone()),
            Value::Seq(items) => Plain::Seq(items.iter().map(to_plain).collect()),
            Value::Map(entries) => Plain::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), to_plain(v)))
                    .collect(),
            ),
            Value::Bool(_) | Value::Float(_) => Plain::Null,
        }
    }

    fn leaf() -> impl Strategy<Value = Plain> {
        prop_oneof![
            1 => Just(Plain::Null),
            3 => (0i64..5).prop_map(Plain::Int),
            3 => "[a-c]".prop_map(Plain::Str),
        ]
    }

    fn tree() -> impl Strategy<Value = Plain> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Plain::Seq),
                prop::collection::btree_map("[k-n]", inner, 0..4)
                    .prop_map(|m| Plain::Map(m.into_iter().collect())),
            ]
        })
    }

    fn map_tree() -> impl Strategy<Value = Plain> {
        prop::collection::btree_map("[k-n]", tree(), 0..4)
            .prop_map(|m| Plain::Map(m.into_iter().collect()))
    }

    fn lookup<'a>(p: &'a Plain, key: &str) -> Option<&'a Plain> {
        match p {
            Plain::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn m(a: &Plain, b: &Plain) -> Plain {
        to_plain(&merge(to_node(a), to_node(b)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn overlay_scalars_and_lists_win(a in map_tree(), b in map_tree()) {
            let merged = m(&a, &b);
            if let Plain::Map(entries) = &b {
                for (k, bv) in entries {
                    let got = lookup(&merged, k).unwrap();
                    match (lookup(&a, k), bv) {
                        // Maps in both files merge recursively.
                        (Some(av @ Plain::Map(_)), Plain::Map(_)) => prop_assert_eq!(got, &m(av, bv)),
                        // Everything else, lists included, is replaced whole.
                        (_, other) => prop_assert_eq!(got, other),
                    }
                }
            }
        }

        #[test]
        fn base_keys_not_in_overlay_survive(a in map_tree(), b in map_tree()) {
            let merged = m(&a, &b);
            if let Plain::Map(entries) = &a {
                for (k, av) in entries {
                    if lookup(&b, k).is_none() {
                        prop_assert_eq!(lookup(&merged, k), Some(av));
                    }
                }
            }
        }

        #[test]
        fn merge_is_idempotent(a in map_tree()) {
            prop_assert_eq!(m(&a, &a), a.clone());
        }

        #[test]
        fn empty_map_is_identity(a in map_tree()) {
            let empty = Plain::Map(vec![]);
            prop_assert_eq!(m(&a, &empty), a.clone());
            prop_assert_eq!(m(&empty, &a), a.clone());
        }

        #[test]
        fn nulls_are_gone_after_layering(a in map_tree(), b in map_tree()) {
            fn has_null_entry(p: &Plain) -> bool {
                match p {
                    Plain::Map(entries) => entries.iter().any(|(_, v)| *v == Plain::Null || has_null_entry(v)),
                    Plain::Seq(items) => items.iter().any(has_null_entry),
                    _ => false,
                }
            }
            let layered = to_plain(&layer([to_node(&a), to_node(&b)]).unwrap());
            prop_assert!(!has_null_entry(&layered));
        }
    }

    #[test]
    fn null_in_overlay_removes_the_key() {
        let a = Plain::Map(vec![
            ("k".into(), Plain::Int(1)),
            ("l".into(), Plain::Int(2)),
        ]);
        let b = Plain::Map(vec![("k".into(), Plain::Null)]);
        let layered = to_plain(&layer([to_node(&a), to_node(&b)]).unwrap());
        assert_eq!(layered, Plain::Map(vec![("l".into(), Plain::Int(2))]));
    }
}
