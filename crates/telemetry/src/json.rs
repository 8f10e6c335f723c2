//! Pulls a few values out of a JSON object by path, borrowing strings from
//! the line when they have no escapes and skipping everything else without
//! building it. One pass, no `serde_json::Value`, no per-line allocation
//! for the common case.
//!
//! A path is keys joined by `.`; a numeric segment indexes an array
//! (`dns.queries.0.rrname`). A key that itself contains dots (Zeek's
//! `id.orig_h`) matches literally first.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::DecodeError;

/// A set of paths compiled into a tree of keys, built once per format:
/// looking a key up compares lengths first, so skipping the many keys
/// nobody asked for costs next to nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathSet {
    root: Node,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    edges: Vec<Edge>,
}

#[derive(Debug, Clone)]
struct Edge {
    key: String,
    /// The path index whose value this key is.
    capture: Option<usize>,
    /// Paths leading inside this key's value.
    child: Option<Node>,
}

impl Node {
    fn edge(&mut self, key: &str) -> &mut Edge {
        let at = match self.edges.iter().position(|e| e.key == key) {
            Some(at) => at,
            None => {
                self.edges.push(Edge {
                    key: key.to_string(),
                    capture: None,
                    child: None,
                });
                self.edges.len() - 1
            }
        };
        &mut self.edges[at]
    }

    fn insert(&mut self, path: &str, index: usize) {
        // The whole rest as one literal key ("id.orig_h")…
        let e = self.edge(path);
        e.capture = e.capture.or(Some(index));
        // …and every split at a dot as an object key or array index.
        for (dot, _) in path.match_indices('.') {
            let (head, rest) = (&path[..dot], &path[dot + 1..]);
            if !head.is_empty() && !rest.is_empty() {
                self.edge(head)
                    .child
                    .get_or_insert_with(Node::default)
                    .insert(rest, index);
            }
        }
    }

    fn find(&self, key: &str) -> Option<&Edge> {
        self.edges
            .iter()
            .find(|e| e.key.len() == key.len() && e.key == key)
    }
}

impl PathSet {
    /// Compiles `paths`; an empty path asks for nothing.
    pub(crate) fn new(paths: &[&str]) -> Self {
        let mut root = Node::default();
        for (i, p) in paths.iter().enumerate() {
            if !p.is_empty() {
                root.insert(p, i);
            }
        }
        Self {
            root,
            len: paths.len(),
        }
    }
}

/// A value found at a path.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Scalar<'de> {
    /// Not in the object.
    #[default]
    Missing,
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    /// An object or array where a scalar was expected.
    Compound,
}

impl<'de> Scalar<'de> {
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, Self::Missing | Self::Null)
    }

    pub(crate) fn take_str(&mut self) -> Option<Cow<'de, str>> {
        match std::mem::take(self) {
            Self::Str(s) => Some(s),
            other => {
                *self = other;
                None
            }
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer, from a number or a string of digits.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::U64(v) => Some(*v),
            Self::I64(v) => u64::try_from(*v).ok(),
            Self::F64(v) if *v >= 0.0 && v.fract() == 0.0 && *v < 1.8e19 => Some(*v as u64),
            Self::Str(s) => crate::lines::parse_u64(s.as_bytes()),
            _ => None,
        }
    }
}

/// Parses `line` (JSON with an object at the top) and fills `out[i]` with
/// the value at path `i` of `paths`.
pub(crate) fn extract<'de>(
    line: &'de str,
    paths: &PathSet,
    out: &mut [Scalar<'de>],
) -> Result<(), DecodeError> {
    debug_assert!(out.len() >= paths.len);
    let mut de = serde_json::Deserializer::from_str(line);
    let level = Level {
        node: &paths.root,
        out,
        top: true,
    };
    level.deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(json_error)
}

fn json_error(e: serde_json::Error) -> DecodeError {
    DecodeError::Json {
        message: e.to_string(),
        column: e.column(),
    }
}

/// Checks a line is UTF-8 before it goes to the JSON parser, so the error
/// says so rather than "invalid unicode code point".
pub(crate) fn utf8(line: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8 { field: "JSON line" })
}

struct Level<'n, 'o, 'de> {
    node: &'n Node,
    out: &'o mut [Scalar<'de>],
    top: bool,
}

enum Step<'n> {
    Capture(usize),
    Descend(&'n Node),
    Skip,
}

impl<'n> Level<'n, '_, '_> {
    fn step(&self, key: &str) -> Step<'n> {
        match self.node.find(key) {
            // Paths leading inside a value win over one asking for the value.
            Some(Edge {
                child: Some(child), ..
            }) => Step::Descend(child),
            Some(Edge {
                capture: Some(i), ..
            }) => Step::Capture(*i),
            _ => Step::Skip,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Level<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.step(&key) {
                Step::Capture(i) => {
                    let v = map.next_value_seed(ScalarSeed)?;
                    // The first occurrence of a duplicated key wins.
                    if matches!(self.out[i], Scalar::Missing) {
                        self.out[i] = v;
                    }
                }
                Step::Descend(node) => {
                    map.next_value_seed(Level {
                        node,
                        out: &mut *self.out,
                        top: false,
                    })?;
                }
                Step::Skip => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(de::Error::custom(
                "a JSON line must be an object, not an array",
            ));
        }
        let mut index = 0usize;
        let mut buf = itoa_buf();
        loop {
            let key = itoa(index, &mut buf);
            let done = match self.step(key) {
                Step::Capture(i) => match seq.next_element_seed(ScalarSeed)? {
                    Some(v) => {
                        if matches!(self.out[i], Scalar::Missing) {
                            self.out[i] = v;
                        }
                        false
                    }
                    None => true,
                },
                Step::Descend(node) => seq
                    .next_element_seed(Level {
                        node,
                        out: &mut *self.out,
                        top: false,
                    })?
                    .is_none(),
                Step::Skip => seq.next_element::<IgnoredAny>()?.is_none(),
            };
            if done {
                return Ok(());
            }
            index += 1;
        }
    }

    // A scalar where an object was expected holds nothing we want.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_object()
    }
}

impl Level<'_, '_, '_> {
    fn not_object<E: de::Error>(self) -> Result<(), E> {
        if self.top {
            Err(E::custom("a JSON line must be an object"))
        } else {
            Ok(())
        }
    }
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn itoa(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}

/// Makes owned strings live as long as the borrowed ones by copying them
/// (all of them, when any is owned) into `scratch`.
pub(crate) fn settle<'a, const N: usize>(
    scratch: &'a mut String,
    parts: [Cow<'a, str>; N],
) -> [&'a str; N] {
    if parts.iter().all(|p| matches!(p, Cow::Borrowed(_))) {
        return parts.map(|p| match p {
            Cow::Borrowed(s) => s,
            Cow::Owned(_) => "",
        });
    }
    scratch.clear();
    let mut ends = [0usize; N];
    for (end, p) in ends.iter_mut().zip(&parts) {
        scratch.push_str(p);
        *end = scratch.len();
    }
    let s: &'a str = scratch.as_str();
    let mut start = 0;
    ends.map(|e| {
        let part = &s[start..e];
        start = e;
        part
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(line: &'a str, paths: &[&str]) -> Result<Vec<Scalar<'a>>, String> {
        let mut out = vec![Scalar::Missing; paths.len()];
        extract(line, &PathSet::new(paths), &mut out).map_err(|e| e.kind().to_string())?;
        Ok(out)
    }

    #[test]
    fn nested_paths_literal_dotted_keys_and_arrays() {
        let line = r#"{"id.orig_h":"192.0.2.7","dns":{"type":"request","queries":[{"rrname":"a.example","rrtype":"A"},{"rrname":"b"}]},"n":5,"x":[1,{"y":2}]}"#;
        let v = get(
            line,
            &[
                "id.orig_h",
                "dns.type",
                "dns.queries.0.rrname",
                "dns.queries.1.rrname",
                "n",
                "missing",
                "x.1.y",
                "dns",
            ],
        )
        .unwrap();
        assert_eq!(v[0], Scalar::Str(Cow::Borrowed("192.0.2.7")));
        assert_eq!(v[1].as_str(), Some("request"));
        assert_eq!(v[2].as_str(), Some("a.example"));
        assert_eq!(v[3].as_str(), Some("b"));
        assert_eq!(v[4], Scalar::U64(5));
        assert_eq!(v[5], Scalar::Missing);
        assert_eq!(v[6], Scalar::U64(2));
        assert_eq!(v[7], Scalar::Missing, "dns is descended into, not captured");
    }

    #[test]
    fn escaped_strings_are_owned_and_settled() {
        let line = r#"{"a":"x\/y","b":"plain"}"#;
        let mut v = get(line, &["a", "b"]).unwrap();
        assert!(matches!(v[0], Scalar::Str(Cow::Owned(_))));
        let mut scratch = String::new();
        let (a, b) = (v[0].take_str().unwrap(), v[1].take_str().unwrap());
        assert_eq!(settle(&mut scratch, [a, b]), ["x/y", "plain"]);
    }

    #[test]
    fn not_an_object_or_not_json_is_an_error() {
        assert_eq!(get("[1,2]", &["a"]).unwrap_err(), "json");
        assert_eq!(get("42", &["a"]).unwrap_err(), "json");
        assert_eq!(get("{\"a\":1", &["a"]).unwrap_err(), "json");
        assert_eq!(get("{\"a\":1} trailing", &["a"]).unwrap_err(), "json");
        assert_eq!(
            utf8(b"{\"a\":\"\xff\"}").unwrap_err().kind(),
            "invalid_utf8"
        );
    }
}
