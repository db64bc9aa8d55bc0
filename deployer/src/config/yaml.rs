//! YAML → a tree of located nodes.
//!
//! We do not deserialize environment files straight into types: they are layered first
//! (`defaults.yaml`, then the environment's file), and every error after that must still
//! name the file, line and key a value came from. So each file becomes a [`Node`] tree that
//! remembers where every value was written; [`super::merge`] layers the trees and
//! [`super::de`] deserializes the result.
//!
//! The loader is also where hostile input is stopped: binary or empty files, several
//! documents, duplicate keys, non-string keys, tags, too-deep nesting and alias expansion
//! beyond a small node budget (a "billion laughs" file is rejected after at most
//! [`MAX_NODES`] nodes, without allocating more).

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::error::{ConfigError, Loc, SourceFile};

/// Environment files are a few kilobytes; anything this large is a mistake.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Total nodes a file may expand to, aliases included.
pub const MAX_NODES: usize = 20_000;
/// Nesting depth; the deserializer recurses once per level.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

impl Node {
    pub fn new(value: Value, loc: Loc) -> Self {
        Node { value, loc }
    }

    /// Number of nodes in this subtree, itself included.
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| v.size()).sum(),
            _ => 0,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short description of the value for error messages, e.g. `string "abc"`.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(f) => format!("number `{f}`"),
            Value::String(s) => format!("string {s:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a map".to_string(),
        }
    }
}

/// Parses one environment file into a located tree.
pub fn parse(file: &Arc<SourceFile>) -> Result<Node, ConfigError> {
    let text = file.text();
    let whole = Loc::whole_file(file);
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError::at(
            &whole,
            None,
            format!(
                "file is {} bytes; environment files are limited to {MAX_FILE_BYTES}",
                text.len()
            ),
        )
        .with_help(
            "an environment file holds a few dozen keys; check that this is the right file",
        ));
    }
    if text.trim().is_empty() {
        return Err(
            ConfigError::at(&whole, None, "file is empty".to_string()).with_help(
                "write at least one key, e.g. `region: ap-northeast-1`, or delete the file",
            ),
        );
    }

    let mut builder = Builder::new(file);
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        match next {
            Ok((event, span)) => builder.on_event(event, span)?,
            Err(e) => {
                let loc = builder.loc_at(e.marker().index(), 1);
                return Err(
                    ConfigError::at(&loc, None, format!("invalid YAML: {}", e.info()))
                        .with_label("here"),
                );
            }
        }
    }
    match builder.root.take() {
        Some(root) if matches!(root.value, Value::Map(_)) => Ok(root),
        Some(root) => Err(ConfigError::at(
            &root.loc,
            None,
            format!(
                "the top level must be a map of keys, found {}",
                root.describe()
            ),
        )
        .with_help("write `key: value` lines, e.g. `region: ap-northeast-1`")),
        None => Err(ConfigError::at(
            &whole,
            None,
            "file holds no YAML document".to_string(),
        )),
    }
}

enum Open {
    Seq {
        items: Vec<Node>,
        loc: Loc,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        loc: Loc,
        anchor: usize,
    },
}

struct Builder<'a> {
    file: &'a Arc<SourceFile>,
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    documents: usize,
}

impl<'a> Builder<'a> {
    fn new(file: &'a Arc<SourceFile>) -> Self {
        Builder {
            file,
            stack: Vec::new(),
            root: None,
            anchors: HashMap::new(),
            nodes: 0,
            documents: 0,
        }
    }

    fn loc_at(&self, char_index: usize, char_len: usize) -> Loc {
        Loc::from_char_range(self.file, char_index, char_len)
    }

    fn loc(&self, span: Span) -> Loc {
        self.loc_at(span.start.index(), span.len().max(1))
    }

    fn count(&mut self, n: usize, loc: &Loc) -> Result<(), ConfigError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(ConfigError::at(
                loc,
                None,
                format!("the file expands to more than {MAX_NODES} values (aliases included)"),
            )
            .with_help("this looks like an alias bomb; environment files need no more than a few hundred values"));
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), ConfigError> {
        let loc = self.loc(span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ConfigError::at(
                        &loc,
                        None,
                        "a second YAML document (`---`)".to_string(),
                    )
                    .with_help("an environment file is one document; remove the extra `---`"));
                }
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(tag) = tag {
                    let core_str = tag.is_yaml_core_schema() && tag.suffix == "str";
                    if !core_str {
                        return Err(ConfigError::at(
                            &loc,
                            None,
                            format!("YAML tag `{}{}` is not supported", tag.handle, tag.suffix),
                        )
                        .with_help("write the plain value; quote it to make it a string"));
                    }
                    let node = Node::new(Value::String(text.into_owned()), loc);
                    return self.push(node, anchor);
                }
                let value = if style == ScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                self.push(Node::new(value, loc), anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.reject_tag(tag.is_some(), &loc)?;
                self.open(Open::Seq {
                    items: Vec::new(),
                    loc,
                    anchor,
                })
            }
            Event::MappingStart(anchor, tag) => {
                self.reject_tag(tag.is_some(), &loc)?;
                self.open(Open::Map {
                    entries: Vec::new(),
                    pending_key: None,
                    loc,
                    anchor,
                })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq { items, loc, anchor }) => {
                        (Node::new(Value::Seq(items), loc), anchor)
                    }
                    Some(Open::Map {
                        entries,
                        loc,
                        anchor,
                        ..
                    }) => (Node::new(Value::Map(entries), loc), anchor),
                    // The parser only emits balanced events; an unbalanced end is a parser bug
                    // and is reported as invalid YAML rather than trusted.
                    None => {
                        return Err(ConfigError::at(
                            &loc,
                            None,
                            "unbalanced YAML structure".to_string(),
                        ));
                    }
                };
                // Children were counted as they arrived and the collection when it opened.
                self.push(node.0, node.1)
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(Node::size) else {
                    return Err(ConfigError::at(
                        &loc,
                        None,
                        "alias to an unknown anchor".to_string(),
                    ));
                };
                // Check the budget before cloning, so a bomb never allocates.
                self.count(size, &loc)?;
                let Some(mut node) = self.anchors.get(&id).cloned() else {
                    return Err(ConfigError::at(
                        &loc,
                        None,
                        "alias to an unknown anchor".to_string(),
                    ));
                };
                node.loc = loc;
                self.attach(node)
            }
        }
    }

    fn reject_tag(&self, tagged: bool, loc: &Loc) -> Result<(), ConfigError> {
        if tagged {
            return Err(ConfigError::at(
                loc,
                None,
                "YAML tags are not supported here".to_string(),
            ));
        }
        Ok(())
    }

    fn open(&mut self, open: Open) -> Result<(), ConfigError> {
        let loc = match &open {
            Open::Seq { loc, .. } | Open::Map { loc, .. } => loc.clone(),
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(ConfigError::at(
                &loc,
                None,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(1, &loc)?;
        self.stack.push(open);
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), ConfigError> {
        if !matches!(node.value, Value::Seq(_) | Value::Map(_)) {
            self.count(1, &node.loc)?;
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.attach(node)
    }

    fn attach(&mut self, node: Node) -> Result<(), ConfigError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Open::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Open::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let name = match node.value {
                        Value::String(s) => s,
                        Value::Int(_) | Value::Bool(_) | Value::Float(_) | Value::Null => {
                            return Err(ConfigError::at(
                                &node.loc,
                                None,
                                format!("keys must be strings, found {}", node.describe()),
                            )
                            .with_help("quote the key"));
                        }
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(ConfigError::at(
                                &node.loc,
                                None,
                                "complex keys are not supported".to_string(),
                            ));
                        }
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                        return Err(ConfigError::at(
                            &node.loc,
                            Some(name.clone()),
                            "duplicate key".to_string(),
                        )
                        .with_help(format!(
                            "`{name}` is already set at line {}; keep one of them",
                            first.loc.line
                        )));
                    }
                    *pending_key = Some(Key {
                        name,
                        loc: node.loc,
                    });
                    Ok(())
                }
                Some(key) => {
                    entries.push((key, node));
                    Ok(())
                }
            },
        }
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema. `yes`/`no`/`on`/`off` stay strings
/// (YAML 1.1's "Norway problem" does not apply), so `enabled: yes` is a type error, not true.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(v) = parse_int(text) {
        return Value::Int(v);
    }
    let looks_numeric =
        text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if looks_numeric
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = body.strip_prefix("0o") {
        (8, o)
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Node, ConfigError> {
        parse(&Arc::new(SourceFile::new(
            "t.yaml".into(),
            text.to_string(),
        )))
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let n = parse_str("a: 1\nb: true\nc: ~\nd: '1'\ne: yes\nf: 1.5\ng: 0x10\nh: 10.0.0.0/16\n")
            .unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
        assert_eq!(n.get("b").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("c").unwrap().value, Value::Null);
        assert_eq!(n.get("d").unwrap().value, Value::String("1".into()));
        assert_eq!(n.get("e").unwrap().value, Value::String("yes".into()));
        assert_eq!(n.get("f").unwrap().value, Value::Float(1.5));
        assert_eq!(n.get("g").unwrap().value, Value::Int(16));
        assert_eq!(
            n.get("h").unwrap().value,
            Value::String("10.0.0.0/16".into())
        );
    }

    #[test]
    fn records_lines() {
        let n = parse_str("a: 1\nb:\n  c: x\n").unwrap();
        let c = n.get("b").unwrap().get("c").unwrap();
        assert_eq!((c.loc.line, c.loc.col), (3, 6));
    }

    #[test]
    fn rejects_duplicate_keys_with_both_lines() {
        let e = parse_str("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("duplicate key"), "{e}");
        assert!(e.help_text().unwrap_or_default().contains("line 1"));
    }

    #[test]
    fn expands_small_aliases() {
        let n = parse_str("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(n.get("b").unwrap().get("k").unwrap().value, Value::Int(1));
    }

    #[test]
    fn stops_alias_bombs_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let e = parse_str(&text).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        // Not a timing assertion on speed: a bomb that were expanded would take minutes and
        // gigabytes; this only guards against that regression.
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn rejects_non_map_top_level_and_empty() {
        assert!(
            parse_str("- a\n- b\n")
                .unwrap_err()
                .to_string()
                .contains("top level")
        );
        assert!(
            parse_str("  \n\n")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(
            parse_str("---\na: 1\n---\nb: 2\n")
                .unwrap_err()
                .to_string()
                .contains("second YAML document")
        );
    }

    #[test]
    fn rejects_tags_and_non_string_keys() {
        assert!(parse_str("a: !!binary abc\n").is_err());
        assert!(
            parse_str("1: a\n")
                .unwrap_err()
                .to_string()
                .contains("keys must be strings")
        );
        assert_eq!(
            parse_str("a: !!str 12\n").unwrap().get("a").unwrap().value,
            Value::String("12".into())
        );
    }

    #[test]
    fn rejects_deep_nesting() {
        let text = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert!(
            parse_str(&text)
                .unwrap_err()
                .to_string()
                .contains("nesting")
        );
    }
}
