//! A parsed JSON document as one flat vector of nodes, its strings borrowed from the text
//! where they have no escapes: what schema validation ([`Tape`], jsonschema's custom
//! representation) and flattening ([`crate::flatten`]) both read, so that a document is
//! parsed once without a map, a `String` or a `Vec` per value (`serde_json::Value` spent
//! more time than the rest of the run together).
//!
//! Layout: an object is `Object { len, end }` followed by its members, each a `Str` (the
//! member's name) then the value's nodes; an array is `Array { len, end }` followed by its
//! elements; `end` is the index just past the container's last node, so a reader skips a
//! subtree in one step. Parsing ([`parse`]) accepts what serde_json accepts, with the same
//! numbers and depth limit, and a refused text gets serde_json's error. Keys must be unique
//! within an object: `serde_json::Value` kept the last of duplicate keys and silently dropped
//! the others.

mod parse;

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node, NodeIdentity, Object};
use serde::de::Error as _;
use serde_json::{Map, Number, Value};

/// One node of a [`Doc`].
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'t> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(Number),
    /// A string value, or a member's name (the node before the member's value).
    Str(Cow<'t, str>),
    /// An object of `len` members; its nodes end before `end`.
    Object { len: u32, end: u32 },
    /// An array of `len` elements; its nodes end before `end`.
    Array { len: u32, end: u32 },
}

/// A parsed document: its nodes in document order, the root first.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc<'t> {
    items: Vec<Item<'t>>,
}

impl<'t> Doc<'t> {
    /// Parses `text` (one JSON value, whitespace around it allowed).
    pub fn parse(text: &'t str) -> Result<Doc<'t>, serde_json::Error> {
        Reader::default().parse(text)
    }

    /// Parses bytes that may not be UTF-8 (the error then says where).
    pub fn parse_slice(bytes: &'t [u8]) -> Result<Doc<'t>, serde_json::Error> {
        Reader::default().parse_slice(bytes)
    }

    /// The root node.
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef {
            items: &self.items,
            at: 0,
        }
    }

    /// The root node when it is an object.
    pub fn root_object(&self) -> Option<ObjectRef<'_>> {
        match self.root().view() {
            View::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The document as a `serde_json::Value` (for quarantine records and messages).
    pub fn to_value(&self) -> Value {
        self.root().value()
    }
}

/// Parses documents one after another with what the earlier ones left: the memory of their
/// nodes ([`Reader::recycle`]), and the member names of objects found without a duplicate (an
/// object with the same names in the same order needs no pairwise check). Parsing a line at a
/// time otherwise allocated and freed a node vector per line, and compared every pair of the
/// root's member names in every document.
#[derive(Debug, Default)]
pub struct Reader {
    nodes: Vec<Item<'static>>,
    shapes: parse::Shapes,
}

impl Reader {
    /// Parses `text` (one JSON value, whitespace around it allowed).
    pub fn parse<'t>(&mut self, text: &'t str) -> Result<Doc<'t>, serde_json::Error> {
        let mut items = emptied(std::mem::take(&mut self.nodes));
        // A first guess at the nodes (one per 16 bytes of text), so most documents never regrow.
        items.reserve(text.len() / 16 + 1);
        match parse::parse(text, &mut items, &mut self.shapes) {
            Ok(()) => Ok(Doc { items }),
            Err(refused) => {
                self.nodes = emptied(items);
                Err(refusal(text.as_bytes(), refused))
            }
        }
    }

    /// Parses bytes that may not be UTF-8 (the error then says where).
    pub fn parse_slice<'t>(&mut self, bytes: &'t [u8]) -> Result<Doc<'t>, serde_json::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.parse(text),
            Err(_) => Err(refusal(bytes, parse::Refused::Syntax)),
        }
    }

    /// Keeps the memory of `doc`'s nodes for the next document.
    pub fn recycle(&mut self, doc: Doc<'_>) {
        self.nodes = emptied(doc.items);
    }
}

/// `items` emptied, as a vector of nodes of any text (the same memory: an empty vector's
/// elements are collected in place).
fn emptied<'a, 'b>(mut items: Vec<Item<'a>>) -> Vec<Item<'b>> {
    items.clear();
    items.into_iter().map(|_| Item::Null).collect()
}

/// The error of a refused text: serde_json's for what is not JSON (its message, line and
/// column), stepops' own for a duplicate key (where its object ends) and for too many nodes.
fn refusal(text: &[u8], refused: parse::Refused) -> serde_json::Error {
    let message = match refused {
        parse::Refused::Syntax => match serde_json::from_slice::<Value>(text) {
            Err(e) => return e,
            Ok(_) => "refused by stepops' JSON reader though serde_json reads it".to_owned(),
        },
        parse::Refused::DuplicateKey { key, at } => {
            let before = &text[..at];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.len()
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
            format!(
                "duplicate key {key:?} (a document's keys must be unique within an object) at line {line} column {column}"
            )
        }
        parse::Refused::TooManyNodes => {
            "the document has more than 4,294,967,295 values".to_owned()
        }
    };
    serde_json::Error::custom(message)
}

/// Whether two strings are equal, without a call for the short ones (member names, the
/// repeated values of a column) that most comparisons here are about.
#[inline]
pub fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |x: &[u8], i: usize| u64::from_le_bytes(x[i..i + 8].try_into().unwrap_or([0; 8]));
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A node of a [`Doc`]: cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    items: &'a [Item<'a>],
    at: u32,
}

/// What a node is, for readers that match on it.
#[derive(Debug, Clone, Copy)]
pub enum View<'a> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(&'a Number),
    /// A string.
    Str(&'a str),
    /// An object.
    Object(ObjectRef<'a>),
    /// An array.
    Array(ArrayRef<'a>),
}

impl<'a> NodeRef<'a> {
    fn item(&self) -> &'a Item<'a> {
        &self.items[self.at as usize]
    }

    /// Index just past this node's subtree.
    fn end(&self) -> u32 {
        match self.item() {
            Item::Object { end, .. } | Item::Array { end, .. } => *end,
            _ => self.at + 1,
        }
    }

    /// What the node is.
    pub fn view(&self) -> View<'a> {
        match self.item() {
            Item::Null => View::Null,
            Item::Bool(b) => View::Bool(*b),
            Item::Number(n) => View::Number(n),
            Item::Str(s) => View::Str(s),
            Item::Object { len, .. } => View::Object(ObjectRef {
                node: *self,
                len: *len,
            }),
            Item::Array { len, .. } => View::Array(ArrayRef {
                node: *self,
                len: *len,
            }),
        }
    }

    /// The node as a `serde_json::Value`, member order kept.
    pub fn value(&self) -> Value {
        match self.view() {
            View::Null => Value::Null,
            View::Bool(b) => Value::Bool(b),
            View::Number(n) => Value::Number(n.clone()),
            View::Str(s) => Value::String(s.to_owned()),
            View::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_owned(), v.value()))
                    .collect::<Map<_, _>>(),
            ),
            View::Array(a) => Value::Array(a.iter().map(|v| v.value()).collect()),
        }
    }
}

/// An object node.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    node: NodeRef<'a>,
    len: u32,
}

impl<'a> ObjectRef<'a> {
    /// The first member name that repeats an earlier one.
    fn duplicate_key(&self) -> Option<&'a str> {
        if self.len <= 32 {
            self.iter()
                .enumerate()
                .find(|(n, (a, _))| self.iter().take(*n).any(|(b, _)| same_text(a, b)))
                .map(|(_, (a, _))| a)
        } else {
            let mut seen = std::collections::HashSet::with_capacity(self.len as usize);
            self.iter().map(|(k, _)| k).find(|k| !seen.insert(*k))
        }
    }

    /// Its members in document order.
    pub fn iter(&self) -> Members<'a> {
        Members {
            items: self.node.items,
            next: self.node.at + 1,
            left: self.len,
        }
    }
}

/// The members of an object: `(name, value)`.
#[derive(Debug, Clone)]
pub struct Members<'a> {
    items: &'a [Item<'a>],
    next: u32,
    left: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, NodeRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let Item::Str(name) = &self.items[self.next as usize] else {
            unreachable!("an object's member starts with its name");
        };
        let value = NodeRef {
            items: self.items,
            at: self.next + 1,
        };
        self.next = value.end();
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// An array node.
#[derive(Debug, Clone, Copy)]
pub struct ArrayRef<'a> {
    node: NodeRef<'a>,
    len: u32,
}

impl<'a> ArrayRef<'a> {
    /// Its elements in order.
    pub fn iter(&self) -> Elements<'a> {
        Elements {
            items: self.node.items,
            next: self.node.at + 1,
            left: self.len,
        }
    }
}

/// The elements of an array.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    items: &'a [Item<'a>],
    next: u32,
    left: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = NodeRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let node = NodeRef {
            items: self.items,
            at: self.next,
        };
        self.next = node.end();
        Some(node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Elements<'_> {}

/// [`Doc`] as a jsonschema instance representation: validators built with
/// `jsonschema::options_for::<Tape>()` read documents in place.
#[derive(Debug)]
pub struct Tape;

impl Json for Tape {
    type Node<'a> = NodeRef<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = ();

    // A lookup scans the members: a pass over them all is cheaper past a few lookups.
    const KEYS_PER_LOOKUP: usize = 4;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(NodeRef<'_>) -> T) -> T {
        let items = [Item::Str(Cow::Borrowed(string))];
        f(NodeRef {
            items: &items,
            at: 0,
        })
    }
}

impl<'a> Node<'a, Tape> for NodeRef<'a> {
    type Object = ObjectRef<'a>;
    type Array = ArrayRef<'a>;
    type Number = &'a Number;

    fn as_object(&self) -> Option<ObjectRef<'a>> {
        match self.view() {
            View::Object(o) => Some(o),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<ArrayRef<'a>> {
        match self.view() {
            View::Array(a) => Some(a),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.view() {
            View::Str(s) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match self.item() {
            Item::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.item() {
            Item::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.item(), Item::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.item() {
            Item::Null => JsonType::Null,
            Item::Bool(_) => JsonType::Boolean,
            Item::Number(_) => JsonType::Number,
            Item::Str(_) => JsonType::String,
            Item::Object { .. } => JsonType::Object,
            Item::Array { .. } => JsonType::Array,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        match (self.view(), expected) {
            (View::Str(s), Value::String(e)) => s == e,
            (View::Bool(b), Value::Bool(e)) => b == *e,
            (View::Null, Value::Null) => true,
            (View::Number(n), Value::Number(e)) => jsonschema::json::cmp::equal_numbers(&n, e),
            (View::Object(_) | View::Array(_), Value::Object(_) | Value::Array(_)) => {
                jsonschema::json::cmp::equal(&self.value(), expected)
            }
            _ => false,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.value())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref(self.item()) as usize))
    }
}

impl<'a> Object<'a, Tape> for ObjectRef<'a> {
    type Node = NodeRef<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.len as usize
    }

    fn get(&self, key: &Box<str>) -> Option<NodeRef<'a>> {
        self.iter()
            .find(|(name, _)| same_text(name, key))
            .map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        self.iter()
    }
}

impl<'a> Array<'a, Tape> for ArrayRef<'a> {
    type Node = NodeRef<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        self.len as usize
    }

    fn elements(&self) -> Elements<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_reads_back_as_the_value_serde_json_parses() {
        let text = r#"{"b": [1, -2, 3.5, 18446744073709551615, "x\"y", true, null, {}, []],
            "a": {"z": {"y": "é"}, "k": "v"}, "c": 1e300}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(Doc::parse(text).unwrap().to_value(), value);
        assert_eq!(Doc::parse_slice(text.as_bytes()).unwrap().to_value(), value);
    }

    #[test]
    fn a_node_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Item<'_>>(), 24);
    }

    #[test]
    fn unescaped_strings_are_borrowed_and_escaped_ones_owned() {
        let doc = Doc::parse(r#"{"plain": "text", "esc\n": "a\tb"}"#).unwrap();
        let borrowed = |i: &Item<'_>| match i {
            Item::Str(s) => matches!(s, Cow::Borrowed(_)),
            _ => panic!("not a string: {i:?}"),
        };
        let flags: Vec<bool> = doc.items[1..].iter().map(borrowed).collect();
        assert_eq!(flags, [true, true, false, false]);
    }

    #[test]
    fn duplicate_names_are_found_at_every_length_and_position() {
        for len in 0..24 {
            // Names of one length that differ in one byte only, at each position.
            let base = "abcdefghijklmnopqrstuvwxyz"[..len].to_owned();
            let mut names: Vec<String> = (0..len)
                .map(|at| {
                    let mut b = base.clone().into_bytes();
                    b[at] = b'_';
                    String::from_utf8(b).unwrap()
                })
                .collect();
            names.push(base.clone());
            let members = |names: &[String]| {
                let body: Vec<String> = names.iter().map(|n| format!("{n:?}: 0")).collect();
                format!("{{{}}}", body.join(", "))
            };
            assert!(Doc::parse(&members(&names)).is_ok(), "length {len}");
            for again in 0..names.len() {
                let mut twice = names.clone();
                twice.push(names[again].clone());
                let e = Doc::parse(&members(&twice)).unwrap_err().to_string();
                let expected = format!("duplicate key {:?}", names[again]);
                assert!(e.starts_with(&expected), "{e}");
            }
        }
        // Escaped names compare unescaped; in an object of more than 32 members (checked
        // with a hash set instead of pairwise), an early repeat and a late one are both found.
        let e = Doc::parse(r#"{"a\n": 1, "b": 2, "a\u000a": 3}"#).unwrap_err();
        assert!(e.to_string().starts_with(r#"duplicate key "a\n""#), "{e}");
        for (first, again) in [(2, 5), (33, 38)] {
            let mut names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
            names[again] = names[first].clone();
            let body: Vec<String> = names.iter().map(|n| format!("{n:?}: 0")).collect();
            let e = Doc::parse(&format!("{{{}}}", body.join(", "))).unwrap_err();
            let expected = format!("duplicate key \"k{first}\"");
            assert!(e.to_string().starts_with(&expected), "{e}");
        }
    }

    #[test]
    fn a_reader_reuses_a_document_s_node_memory() {
        let mut reader = Reader::default();
        let text = format!("[{}]", vec!["1"; 1000].join(","));
        let doc = reader.parse(&text).unwrap();
        let capacity = doc.items.capacity();
        reader.recycle(doc);
        assert_eq!(reader.nodes.capacity(), capacity);
        let doc = reader.parse("[2]").unwrap();
        assert_eq!(doc.items.capacity(), capacity, "the same memory");
        assert_eq!(doc.to_value(), serde_json::json!([2]));
    }

    #[test]
    fn a_reader_finds_duplicates_in_objects_named_like_earlier_ones() {
        let mut reader = Reader::default();
        let text = |names: &[String]| {
            let body: Vec<String> = names
                .iter()
                .map(|n| format!("{n:?}: {{\"x\": 1}}"))
                .collect();
            format!("{{{}}}", body.join(", "))
        };
        for len in 1..=34 {
            let names: Vec<String> = (0..len).map(|i| format!("k{i}")).collect();
            let plain = text(&names);
            for _ in 0..2 {
                let doc = reader.parse(&plain).unwrap();
                assert_eq!(doc.to_value(), Doc::parse(&plain).unwrap().to_value());
                reader.recycle(doc);
            }
            // The same number of members, one name taking another's: found at every pair.
            for at in 0..len {
                for from in (0..len).filter(|f| *f != at) {
                    let mut twice = names.clone();
                    twice[at] = names[from].clone();
                    let e = reader.parse(&text(&twice)).unwrap_err().to_string();
                    let expected = format!("duplicate key {:?}", names[from]);
                    assert!(e.starts_with(&expected), "{len} {at} {from}: {e}");
                }
            }
            let mut reversed = names.clone();
            reversed.reverse();
            assert!(reader.parse(&text(&reversed)).is_ok(), "length {len}");
            assert!(reader.parse(&text(&names)).is_ok(), "length {len}");
        }
    }

    #[test]
    fn errors_are_serde_json_s_and_duplicate_keys_are_refused() {
        let e = Doc::parse(r#"{"a": 1,}"#).unwrap_err().to_string();
        assert_eq!(e, "trailing comma at line 1 column 9");
        let e = Doc::parse(r#"{"a": 1} x"#).unwrap_err().to_string();
        assert_eq!(e, "trailing characters at line 1 column 10");
        let e = Doc::parse(r#"{"a": 1, "b": {"c": 2, "c": 3}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"duplicate key "c" (a document's keys must be unique"#),
            "{e}"
        );
        assert!(e.ends_with("at line 1 column 30"), "{e}");
        let many: Vec<String> = (0..40).map(|i| format!("\"k{}\": {i}", i % 39)).collect();
        let e = Doc::parse(&format!("{{{}}}", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(r#"duplicate key "k0""#), "{e}");
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = Doc::parse(&deep).unwrap_err().to_string();
        assert!(e.starts_with("recursion limit exceeded"), "{e}");
    }

    #[test]
    fn same_text_agrees_with_string_equality_at_every_length_and_position() {
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_text(&a, &a.clone()), "{a}");
            assert!(!same_text(&a, &format!("{a}x")), "{a}");
            for i in 0..n {
                let mut b = a.clone().into_bytes();
                b[i] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_text(&a, &b), "{a} {b}");
            }
        }
    }

    #[test]
    fn the_representation_meets_jsonschema_s_contract() {
        let text = jsonschema::json::conformance::document().to_string();
        let doc = Doc::parse(&text).unwrap();
        jsonschema::json::conformance::assert_conformance::<Tape>(&doc.root());
    }

    #[test]
    fn validation_on_the_tape_agrees_with_validation_on_values() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["id", "answers"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "kind": {"enum": ["a", "b", 3, {"x": [1]}]},
                "when": {"type": "string", "format": "date-time"},
                "name": {"type": "string", "minLength": 2, "maxLength": 3},
                "answers": {"type": "array", "uniqueItems": true, "items": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"q": {"type": "string"}, "v": {"type": ["number", "null"]}}}},
                "tags": {"propertyNames": {"pattern": "^[a-z]+$"}}
            }
        });
        let on_values = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let on_tape = jsonschema::options_for::<Tape>()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        for text in [
            r#"{"id": 1, "answers": []}"#,
            r#"{"id": 0, "answers": []}"#,
            r#"{"id": 1.5, "answers": []}"#,
            r#"{"id": 2, "answers": [{"q": "a", "v": 1}, {"q": "a", "v": 1.0}]}"#,
            r#"{"id": 2, "answers": [{"q": "a", "v": null}, {"q": "b", "w": 1}]}"#,
            r#"{"id": 3, "kind": "b", "answers": []}"#,
            r#"{"id": 3, "kind": 3.0, "answers": []}"#,
            r#"{"id": 3, "kind": {"x": [1]}, "answers": []}"#,
            r#"{"id": 3, "kind": "c", "answers": []}"#,
            r#"{"id": 4, "when": "2026-12-06T10:00:00Z", "answers": []}"#,
            r#"{"id": 4, "when": "yesterday", "answers": []}"#,
            r#"{"id": 5, "name": "ab", "answers": []}"#,
            r#"{"id": 5, "name": "éééé", "answers": []}"#,
            r#"{"id": 6, "tags": {"ok": 1, "NO": 2}, "answers": []}"#,
            r#"{"answers": 7}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let doc = Doc::parse(text).unwrap();
            let expected: Vec<String> = on_values
                .iter_errors(&value)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            let got: Vec<String> = on_tape
                .iter_errors(doc.root())
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert_eq!(got, expected, "{text}");
            assert_eq!(on_tape.is_valid(doc.root()), expected.is_empty(), "{text}");
        }
    }
}
