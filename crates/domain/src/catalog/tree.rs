//! Catalog text (YAML or JSON) as a small tree that remembers the line of every
//! node and every mapping key, so each diagnostic can point at a line.
//!
//! Parser choice: `saphyr-parser` reads YAML 1.2 (a superset of JSON, so one
//! parser serves `.json` files too) as a stream of events with source spans.
//! We build the tree from that stream ourselves, in a loop rather than by
//! recursion, because catalog text may be hostile (a pull request to any
//! service's repository, an item in the catalog table): saphyr's own loader
//! recurses once per nesting level (10 KB of `- - -` overflows the stack) and
//! does not count what aliases copy into mapping keys (775 bytes grow past
//! 6 GB). Here every text is held to [`MAX_TEXT_BYTES`], [`MAX_DEPTH`],
//! [`MAX_NODES`] and [`MAX_EXPANDED_TEXT`]; with the depth bounded, the
//! recursive walks over the finished tree (validation, `to_json`, drop) stay
//! shallow. `serde_yaml` is unmaintained and its forks only report positions
//! for the first error.

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScanError};
use std::collections::{HashMap, HashSet};

/// The largest catalog text read; definitions are a few KB each.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// How deep lists and mappings may nest; a Baton block needs 8 levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// Values (scalars, lists, mappings and keys) one text may hold once its
/// aliases are expanded: each alias counts a whole copy of its anchor.
pub(crate) const MAX_NODES: usize = 200_000;
/// Bytes of scalar text one text may hold once its aliases are expanded.
pub(crate) const MAX_EXPANDED_TEXT: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// 1-based line where the node starts.
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_line: usize,
    pub value: Node,
}

/// Text that cannot be read (malformed, or past a limit); nothing after it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    /// None when the problem is the text as a whole (its size).
    pub line: Option<usize>,
    /// The whole diagnostic message.
    pub message: String,
}

impl LoadError {
    fn syntax(line: usize, what: &str) -> Self {
        LoadError { line: Some(line), message: format!("expected well-formed YAML or JSON: {what}") }
    }

    fn limit(line: usize, message: String) -> Self {
        LoadError { line: Some(line), message }
    }

    /// The scanner can place an error on a line past the end (`"\x01\r\r\0"` reports
    /// line 8): point at the text's last line instead.
    fn within(mut self, text: &str) -> Self {
        let last = 1 + text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
        self.line = self.line.map(|line| line.min(last));
        self
    }

    /// A text of `len` bytes, past [`MAX_TEXT_BYTES`].
    pub fn too_large(len: u64) -> Self {
        LoadError { line: None, message: format!("the text is {len} bytes; a catalog file may hold at most {MAX_TEXT_BYTES} (1 MiB)") }
    }
}

impl From<ScanError> for LoadError {
    fn from(err: ScanError) -> Self {
        let line = err.marker().line();
        // The scanner's own cap on `[`/`{` nesting (255) is our depth limit reached another way.
        if err.info() == "recursion limit exceeded" {
            return LoadError::limit(line, depth_message());
        }
        LoadError::syntax(line, err.info())
    }
}

/// Every document of `text`, in order; empty documents (a stray `---`) are dropped.
pub(crate) fn load(text: &str) -> Result<Vec<Node>, LoadError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(LoadError::too_large(text.len() as u64));
    }
    let mut loader = Loader::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|err| LoadError::from(err).within(text))?;
        loader.event(event, span.start.line())?;
    }
    Ok(loader.docs)
}

/// What a finished node costs: copying it for an alias costs as much again.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    text: usize,
    /// Levels of lists and mappings: 0 for a scalar.
    height: usize,
}

/// A list or mapping whose end has not been read yet.
struct Frame {
    line: usize,
    anchor: usize,
    /// The collection itself and its children so far; `height` is the tallest child's.
    size: Size,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map {
        entries: Vec<Entry>,
        /// Keys so far, so duplicates are found without a quadratic scan.
        seen: HashSet<String>,
        /// A key read, waiting for its value.
        key: Option<(String, usize)>,
    },
}

#[derive(Default)]
struct Loader {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    /// Anchored nodes of the current document, by the parser's anchor id.
    anchors: HashMap<usize, (Node, Size)>,
    /// Everything built so far, copies included.
    spent: Size,
}

impl Loader {
    fn event(&mut self, event: Event<'_>, line: usize) -> Result<(), LoadError> {
        match event {
            // Anchors do not reach across documents.
            Event::DocumentStart(_) => self.anchors.clear(),
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::SequenceStart(anchor, _) => self.open(line, anchor, Body::Seq(Vec::new()))?,
            Event::MappingStart(anchor, _) => {
                self.open(line, anchor, Body::Map { entries: Vec::new(), seen: HashSet::new(), key: None })?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().expect("the parser balances starts and ends");
                let value = match frame.body {
                    Body::Seq(items) => Value::Seq(items),
                    Body::Map { entries, .. } => Value::Map(entries),
                };
                let size = Size { height: frame.size.height + 1, ..frame.size };
                self.finish(Node { line: frame.line, value }, size, frame.anchor)?;
            }
            // Tags carry no meaning in a catalog beyond how a scalar reads (`!!str 5`).
            Event::Scalar(text, style, anchor, tag) => {
                let size = Size { nodes: 1, text: text.len(), height: 0 };
                self.charge(size, line)?;
                let scalar = Scalar::parse_from_cow_and_metadata(text, style, tag.as_ref())
                    .ok_or_else(|| LoadError::syntax(line, "a value that matches its tag (e.g. `!!int 3`)"))?;
                self.finish(Node { line, value: scalar_value(&scalar) }, size, anchor)?;
            }
            Event::Alias(id) => {
                let size = self.anchors.get(&id).map(|(_, size)| *size);
                let size = size.ok_or_else(|| LoadError::syntax(line, "an alias that names an earlier anchor of its document"))?;
                self.check_depth(self.stack.len() + size.height, line)?;
                self.charge(size, line)?;
                let mut node = self.anchors[&id].0.clone();
                node.line = line;
                self.finish(node, size, 0)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, line: usize, anchor: usize, body: Body) -> Result<(), LoadError> {
        if let Some(Frame { body: Body::Map { key: None, .. }, .. }) = self.stack.last() {
            return Err(LoadError::syntax(line, "a plain mapping key, not a list or mapping"));
        }
        self.check_depth(self.stack.len() + 1, line)?;
        let size = Size { nodes: 1, text: 0, height: 0 };
        self.charge(size, line)?;
        self.stack.push(Frame { line, anchor, size, body });
        Ok(())
    }

    fn check_depth(&self, depth: usize, line: usize) -> Result<(), LoadError> {
        if depth <= MAX_DEPTH {
            return Ok(());
        }
        Err(LoadError::limit(line, depth_message()))
    }

    /// Counts `size` against the text's budget before it is built.
    fn charge(&mut self, size: Size, line: usize) -> Result<(), LoadError> {
        self.spent.nodes += size.nodes;
        self.spent.text += size.text;
        let past = if self.spent.nodes > MAX_NODES {
            format!("{MAX_NODES} values")
        } else if self.spent.text > MAX_EXPANDED_TEXT {
            format!("{MAX_EXPANDED_TEXT} bytes of text")
        } else {
            return Ok(());
        };
        let message = format!(
            "the text holds more than {past} with its aliases expanded, the most a catalog file may hold \
             (each alias counts a whole copy of its anchor)"
        );
        Err(LoadError::limit(line, message))
    }

    /// Places a finished node in its parent (or as a document), keeping a copy if it is anchored.
    fn finish(&mut self, node: Node, size: Size, anchor: usize) -> Result<(), LoadError> {
        if anchor != 0 {
            // The copy kept for aliases is memory too.
            self.charge(size, node.line)?;
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(parent) = self.stack.last_mut() else {
            if node.value != Value::Null {
                self.docs.push(node);
            }
            return Ok(());
        };
        parent.size.nodes += size.nodes;
        parent.size.text += size.text;
        parent.size.height = parent.size.height.max(size.height);
        match &mut parent.body {
            Body::Seq(items) => items.push(node),
            Body::Map { entries, seen, key } => match key.take() {
                Some((key, key_line)) => entries.push(Entry { key, key_line, value: node }),
                None => {
                    let text = key_text(&node)?;
                    if !seen.insert(text.clone()) {
                        return Err(LoadError::syntax(node.line, "duplicated key in mapping"));
                    }
                    *key = Some((text, node.line));
                }
            },
        }
        Ok(())
    }
}
fn depth_message() -> String {
    format!("lists and mappings nest more than {MAX_DEPTH} levels deep, the most a catalog document may have")
}

fn scalar_value(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Int(*i),
        Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
        Scalar::String(s) => Value::Str(s.to_string()),
    }
}

fn key_text(key: &Node) -> Result<String, LoadError> {
    match &key.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Null => Ok("null".into()),
        Value::Seq(_) | Value::Map(_) => Err(LoadError::syntax(key.line, "a plain mapping key, not a list or mapping")),
    }
}

impl Node {
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// What the node is, for "expected X, found Y" messages. Never the value itself:
    /// the value might be a secret.
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_keep_lines_and_drop_empty_ones() {
        let docs = load("# comment\na: 1\nb:\n  - x\n  - \"2\"\n---\n---\nc: {d: true}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let first = docs[0].as_map().unwrap();
        assert_eq!((first[0].key.as_str(), first[0].key_line), ("a", 2));
        assert_eq!(first[0].value.value, Value::Int(1));
        let Value::Seq(items) = &first[1].value.value else { panic!("b is a list") };
        assert_eq!(items[1], Node { line: 5, value: Value::Str("2".into()) });
        assert_eq!(docs[1].get("c").unwrap().get("d").unwrap().value, Value::Bool(true));
        assert_eq!(docs[1].line, 8);
    }

    #[test]
    fn json_with_tabs_parses_with_lines() {
        let docs = load("{\n\t\"a\": 1,\n\t\"b\": {\n\t\t\"c\": null\n\t}\n}\n").unwrap();
        let b = docs[0].get("b").unwrap();
        assert_eq!(b.as_map().unwrap()[0].key_line, 4);
        assert_eq!(docs[0].to_json(), serde_json::json!({"a": 1, "b": {"c": null}}));
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_errors_with_lines() {
        assert_eq!(load("a: 1\na: 2\n").unwrap_err().line, Some(2));
        let err = load("a: [1\nb: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(!err.message.is_empty());
    }

    #[test]
    fn error_lines_stay_within_the_text() {
        assert_eq!(load("\x01\r\r\0").unwrap_err().line, Some(3));
        assert!(load("a: 1\r\nb: [\x01\r\n").unwrap_err().line.is_some_and(|line| line <= 3), "`\\r\\n` is one break");
    }

    #[test]
    fn anchors_expand_and_tags_are_transparent() {
        let docs = load("base: &b {x: 1}\ncopy: *b\ntagged: !!str 5\n").unwrap();
        assert_eq!(docs[0].get("copy").unwrap().get("x").unwrap().value, Value::Int(1));
        assert_eq!(docs[0].get("tagged").unwrap().value, Value::Str("5".into()));
    }
}
