//! Catalog text (YAML or JSON) as a small tree that remembers the line of every
//! node and every mapping key, so each diagnostic can point at a line.
//!
//! Parser choice: `saphyr` loads YAML 1.2 (a superset of JSON, so one parser
//! serves `.json` files too) into nodes that carry source spans, rejects
//! duplicate mapping keys and bounds alias expansion. `serde_yaml` is
//! unmaintained and its forks only report positions for the first error;
//! `yaml-rust2` gives positions on events only, so we would rebuild what
//! saphyr's annotated loader already does.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScanError, YamlData};

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

/// Text that is not well-formed YAML/JSON; nothing after it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl From<ScanError> for SyntaxError {
    fn from(err: ScanError) -> Self {
        SyntaxError { line: err.marker().line(), message: err.info().to_string() }
    }
}

/// Every document of `text`, in order; empty documents (a stray `---`) are dropped.
pub(crate) fn load(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let docs = MarkedYaml::load_from_str(text)?;
    let mut nodes = Vec::with_capacity(docs.len());
    for doc in &docs {
        let node = convert(doc)?;
        if node.value != Value::Null {
            nodes.push(node);
        }
    }
    Ok(nodes)
}

fn convert(node: &MarkedYaml<'_>) -> Result<Node, SyntaxError> {
    let line = node.span.start.line();
    let value = match &node.data {
        YamlData::Value(scalar) => scalar_value(scalar),
        YamlData::Representation(text, style, tag) => match Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref()) {
            Some(scalar) => scalar_value(&scalar),
            None => return Err(bad_value(line)),
        },
        YamlData::Sequence(items) => Value::Seq(items.iter().map(convert).collect::<Result<_, _>>()?),
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                entries.push(Entry { key: key_text(key)?, key_line: key.span.start.line(), value: convert(value)? });
            }
            Value::Map(entries)
        }
        // Tags carry no meaning in a catalog: read the tagged node as if untagged.
        YamlData::Tagged(_, inner) => return convert(inner).map(|inner| Node { line, value: inner.value }),
        YamlData::BadValue => return Err(bad_value(line)),
        YamlData::Alias(_) => {
            return Err(SyntaxError { line, message: "an alias that does not name an earlier anchor".into() });
        }
    };
    Ok(Node { line, value })
}

fn bad_value(line: usize) -> SyntaxError {
    SyntaxError { line, message: "a value that matches its tag (e.g. `!!int 3`)".into() }
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

fn key_text(key: &MarkedYaml<'_>) -> Result<String, SyntaxError> {
    let converted = convert(key)?;
    match converted.value {
        Value::Str(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Null => Ok("null".into()),
        Value::Seq(_) | Value::Map(_) => {
            Err(SyntaxError { line: converted.line, message: "a plain mapping key, not a list or mapping".into() })
        }
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
        assert_eq!(load("a: 1\na: 2\n").unwrap_err().line, 2);
        let err = load("a: [1\nb: 2\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn anchors_expand_and_tags_are_transparent() {
        let docs = load("base: &b {x: 1}\ncopy: *b\ntagged: !!str 5\n").unwrap();
        assert_eq!(docs[0].get("copy").unwrap().get("x").unwrap().value, Value::Int(1));
        assert_eq!(docs[0].get("tagged").unwrap().value, Value::Str("5".into()));
    }
}
