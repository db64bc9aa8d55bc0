//! A serde deserializer over the located [`Node`] tree.
//!
//! serde's derive does the typing (`deny_unknown_fields`, enums, defaults); this file makes
//! its errors useful: every error carries the file, line and dotted key of the value that
//! caused it, unknown keys get the nearest valid key suggested, and enum errors list the
//! allowed values.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::error::{ConfigError, Loc};
use super::yaml::{Key, Node, Value};

/// The deserializer's error: a [`ConfigError`] once a location is attached.
#[derive(Debug)]
pub struct DeError {
    message: String,
    help: Option<String>,
    /// Set by the innermost node that saw the error; outer nodes leave it alone.
    at: Option<(Loc, String)>,
}

impl DeError {
    fn new(message: String) -> Self {
        DeError {
            message,
            help: None,
            at: None,
        }
    }

    fn locate(mut self, loc: &Loc, path: &str) -> Self {
        if self.at.is_none() {
            self.at = Some((loc.clone(), path.to_string()));
        }
        self
    }

    pub fn into_config_error(self) -> ConfigError {
        let (loc, path) = self.at.unwrap_or_else(|| (Loc::builtin(), String::new()));
        let key = (!path.is_empty()).then_some(path);
        let e = ConfigError::at(&loc, key, self.message);
        match self.help {
            Some(h) => e.with_help(h),
            None => e,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn one_of(expected: &[&str]) -> String {
    expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate, when it is close enough to be a likely typo.
pub fn nearest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {unexp}"))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("{unexp} is not allowed: expected {exp}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new(format!(
            "unknown value {variant:?}; allowed: {}",
            one_of(expected)
        ));
        if let Some(n) = nearest(variant, expected.iter().copied()) {
            e.help = Some(format!("did you mean `{n}`?"));
        }
        e
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new(format!(
            "unknown key `{field}`; allowed here: {}",
            one_of(expected)
        ));
        e.help = Some(match nearest(field, expected.iter().copied()) {
            Some(n) => format!("did you mean `{n}`?"),
            None => "remove it, or see docs/configuration.md for every key".to_string(),
        });
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::new(format!("missing required key `{field}`"));
        e.help = Some(format!(
            "add `{field}:` here or in defaults.yaml; see docs/configuration.md"
        ));
        e
    }
}

/// Deserializes a node; `path` is its dotted key (`scaler.schedule`, `availability_zones[1].name`).
#[derive(Debug)]
pub struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a Node) -> Self {
        NodeDe {
            node,
            path: String::new(),
        }
    }

    fn child(&self, node: &'a Node, segment: &str) -> NodeDe<'a> {
        let path = if self.path.is_empty() {
            segment.to_string()
        } else if segment.starts_with('[') {
            format!("{}{segment}", self.path)
        } else {
            format!("{}.{segment}", self.path)
        };
        NodeDe { node, path }
    }

    fn fail<T>(&self, e: DeError) -> Result<T, DeError> {
        Err(e.locate(&self.node.loc, &self.path))
    }

    fn unexpected(&self) -> de::Unexpected<'a> {
        match &self.node.value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Int(i) => de::Unexpected::Signed(*i),
            Value::Float(f) => de::Unexpected::Float(*f),
            Value::String(s) => de::Unexpected::Str(s),
            Value::Seq(_) => de::Unexpected::Seq,
            Value::Map(_) => de::Unexpected::Map,
        }
    }

    fn type_error(&self, expected: &dyn de::Expected) -> DeError {
        de::Error::invalid_type(self.unexpected(), expected)
    }
}

macro_rules! forward_to_any {
    ($($name:ident)*) => {
        $(fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                parent: &self,
                items: items.iter().enumerate(),
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                parent: &self,
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.locate(&self.node.loc, &self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            // `provisioned_throughput_mibps: 100` is a number, not a type error.
            Value::Int(i) => visitor
                .visit_f64(*i as f64)
                .map_err(|e: DeError| e.locate(&self.node.loc, &self.path)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Value::Map(entries) = &self.node.value else {
            let e = DeError::new(format!(
                "expected a map with keys {}, found {}",
                one_of(fields),
                self.node.describe()
            ));
            return self.fail(e);
        };
        visitor
            .visit_map(MapDe {
                parent: &self,
                entries: entries.iter(),
                value: None,
            })
            .map_err(|e| e.locate(&self.node.loc, &self.path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::String(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.locate(&self.node.loc, &self.path)),
            _ => {
                let e = DeError::new(format!(
                    "expected one of {}, found {}",
                    one_of(variants),
                    self.node.describe()
                ));
                self.fail(e)
            }
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Int(i) if *i < 0 => {
                let e = DeError::new(format!(
                    "{i} is negative; a count or size here must be 0 or more"
                ));
                self.fail(e)
            }
            Value::Int(_) => self.deserialize_any(visitor),
            _ => {
                let e = self.type_error(&visitor);
                self.fail(e)
            }
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::String(_) => self.deserialize_any(visitor),
            // Strings are never coerced from numbers or booleans: `account_id: 012345678901`
            // would lose its leading zero and `tag: yes` is likely a mistake. Say how to fix.
            _ => {
                let mut e = self.type_error(&visitor);
                if matches!(
                    self.node.value,
                    Value::Int(_) | Value::Float(_) | Value::Bool(_)
                ) {
                    e.help = Some("quote the value to make it a string".to_string());
                }
                self.fail(e)
            }
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_char deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_seq deserialize_map deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }
}

struct SeqDe<'p, 'a> {
    parent: &'p NodeDe<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(self.parent.child(node, &format!("[{i}]")))
                .map(Some),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'p, 'a> {
    parent: &'p NodeDe<'a>,
    entries: std::slice::Iter<'a, (Key, Node)>,
    value: Option<(&'a Key, &'a Node)>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, node));
        let key_de: de::value::StrDeserializer<'_, DeError> = key.name.as_str().into_deserializer();
        // An unknown key is reported at the key itself, under its own dotted path.
        let path = self.parent.child(node, &key.name).path;
        seed.deserialize(key_de)
            .map(Some)
            .map_err(|e| e.locate(&key.loc, &path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some((key, node)) => seed.deserialize(self.parent.child(node, &key.name)),
            None => Err(DeError::new("value requested before key".to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::SourceFile;
    use crate::config::yaml::parse;
    use serde::Deserialize;
    use std::sync::Arc;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "snake_case")]
    struct Inner {
        threshold: u64,
        #[serde(default)]
        arch: Option<Arch>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Arch {
        X86_64,
        Arm64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Inner,
        list: Vec<Inner>,
    }

    fn load(text: &str) -> Result<Outer, ConfigError> {
        let file = Arc::new(SourceFile::new("f.yaml".into(), text.into()));
        let node = parse(&file)?;
        Outer::deserialize(NodeDe::new(&node)).map_err(DeError::into_config_error)
    }

    #[test]
    fn deserializes() {
        let o =
            load("name: a\ninner: {threshold: 5, arch: arm64}\nlist: [{threshold: 1}]\n").unwrap();
        assert_eq!(o.inner.arch, Some(Arch::Arm64));
        assert_eq!(o.list[0].threshold, 1);
    }

    #[test]
    fn unknown_key_names_line_path_and_suggestion() {
        let e = load("name: a\ninner:\n  treshold: 5\nlist: []\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.key.as_deref(), Some("inner.treshold"));
        assert!(e.help.unwrap().contains("`threshold`"));
    }

    #[test]
    fn wrong_type_names_value() {
        let e = load("name: a\ninner: {threshold: lots}\nlist: []\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inner.threshold"));
        assert!(e.message.contains("\"lots\""), "{}", e.message);
        let e = load("name: 12\ninner: {threshold: 1}\nlist: []\n").unwrap_err();
        assert!(e.help.unwrap().contains("quote"));
    }

    #[test]
    fn bad_enum_lists_allowed_values() {
        let e = load("name: a\ninner: {threshold: 1}\nlist: [{threshold: 1, arch: arm46}]\n")
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("list[0].arch"));
        assert!(
            e.message.contains("`x86-64`") && e.message.contains("`arm64`"),
            "{}",
            e.message
        );
        assert!(e.help.unwrap().contains("arm64"));
    }

    #[test]
    fn missing_key_points_at_parent() {
        let e = load("name: a\ninner: {}\nlist: []\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inner"));
        assert!(e.message.contains("`threshold`"));
    }

    #[test]
    fn negative_count_is_explained() {
        let e = load("name: a\ninner: {threshold: -1}\nlist: []\n").unwrap_err();
        assert!(e.message.contains("negative"), "{}", e.message);
    }
}
