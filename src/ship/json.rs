//! Small JSON documents without `serde_json::Value`: objects written with serde_json's own
//! string and number formatting, and the few members read from a reply or a spool file.
//!
//! `Object` writes exactly what `serde_json::Value` writes: keys in byte order (serde_json's
//! default map is a BTreeMap), a key set twice keeps its last value. `pick` parses a document
//! exactly as `serde_json::from_slice::<Value>` does (the same parser calls, so the same
//! errors, recursion limit and number checks) but keeps only the members asked for. Linking
//! `Value` cost its parser, map and printers: about 13 kB on mipsel.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// A JSON value of an `Object`.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// null.
    Null,
    /// true or false.
    Bool(bool),
    /// A whole number.
    U64(u64),
    /// A number (null when not finite, as serde_json writes it).
    F64(f64),
    /// A string.
    Str(String),
    /// An array.
    List(Vec<Field>),
    /// An object.
    Obj(Object),
}

impl From<&str> for Field {
    fn from(s: &str) -> Self {
        Field::Str(s.to_owned())
    }
}

impl From<String> for Field {
    fn from(s: String) -> Self {
        Field::Str(s)
    }
}

impl From<Option<String>> for Field {
    fn from(s: Option<String>) -> Self {
        s.map_or(Field::Null, Field::Str)
    }
}

impl From<u64> for Field {
    fn from(n: u64) -> Self {
        Field::U64(n)
    }
}

impl From<bool> for Field {
    fn from(b: bool) -> Self {
        Field::Bool(b)
    }
}

impl From<f64> for Field {
    fn from(x: f64) -> Self {
        Field::F64(x)
    }
}

impl From<Object> for Field {
    fn from(o: Object) -> Self {
        Field::Obj(o)
    }
}

/// A JSON object whose members stay in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object(Vec<(&'static str, Field)>);

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object(Vec::new())
    }

    /// Sets `key` (replacing its value when it is there).
    pub fn set(&mut self, key: &'static str, value: Field) {
        match self.0.binary_search_by(|(k, _)| (*k).cmp(key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// `self` with `key` set.
    pub fn with(mut self, key: &'static str, value: impl Into<Field>) -> Self {
        self.set(key, value.into());
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Field> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every member of `other` set on `self` (`other`'s value wins).
    pub fn merge(&mut self, other: Object) {
        for (k, v) in other.0 {
            self.set(k, v);
        }
    }

    /// The compact JSON text.
    pub fn to_json(&self) -> String {
        // Cannot fail: every key is a string and the writer is a Vec.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Null => s.serialize_unit(),
            Field::Bool(b) => s.serialize_bool(*b),
            Field::U64(n) => s.serialize_u64(*n),
            Field::F64(x) => s.serialize_f64(*x),
            Field::Str(t) => s.serialize_str(t),
            Field::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Field::Obj(o) => o.serialize(s),
        }
    }
}

/// A member's value as `pick` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// A string.
    Str(String),
    /// A non-negative integer that fits a u64.
    U64(u64),
    /// Anything else (negative, fractional, bool, null, array, object).
    Other,
}

/// The members of `body` at `paths` (1 to 64, each a list of keys from the top), one slot per path:
/// `None` when the path is not there (or goes through something that is not an object).
/// Errors are serde_json's, exactly as parsing `body` into a `Value` reports them.
pub fn pick<const N: usize>(
    body: &[u8],
    paths: [&[&str]; N],
) -> Result<[Option<Member>; N], serde_json::Error> {
    const { assert!(N >= 1 && N <= 64) };
    let mut out: [Option<Member>; N] = std::array::from_fn(|_| None);
    let mut de = serde_json::Deserializer::from_slice(body);
    Level {
        paths: &paths,
        live: u64::MAX >> (64 - N),
        depth: 0,
        out: &mut out,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// One value of the document: `live` has a bit for each path whose first `depth` keys led
/// here.
struct Level<'p, 'o> {
    paths: &'p [&'p [&'p str]],
    live: u64,
    depth: usize,
    out: &'o mut [Option<Member>],
}

impl<'de> DeserializeSeed<'de> for Level<'_, '_> {
    type Value = Member;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_, '_> {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Member, E> {
        Ok(Member::U64(n))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Member, E> {
        Ok(Member::Str(s.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        // Elements are parsed (and checked) like any value; no path goes through an array.
        while seq
            .next_element_seed(Level {
                paths: &[],
                live: 0,
                depth: 0,
                out: &mut [],
            })?
            .is_some()
        {}
        Ok(Member::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            // The live paths through `key`; those that end here, and those that go deeper.
            let (mut end, mut deeper) = (0u64, 0u64);
            for (i, p) in self.paths.iter().enumerate() {
                if self.live & 1 << i != 0 && p.get(self.depth) == Some(&key.as_str()) {
                    // A key seen again replaces all its first value gave (as in a Value's map).
                    self.out[i] = None;
                    if p.len() == self.depth + 1 {
                        end |= 1 << i;
                    } else {
                        deeper |= 1 << i;
                    }
                }
            }
            let v = map.next_value_seed(Level {
                paths: self.paths,
                live: deeper,
                depth: self.depth + 1,
                out: &mut *self.out,
            })?;
            for (i, slot) in self.out.iter_mut().enumerate() {
                if end & 1 << i != 0 {
                    *slot = Some(v.clone());
                }
            }
        }
        Ok(Member::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn objects_are_written_as_serde_json_writes_values() {
        let tricky = "q\"b\\s/\u{1}\n\t\r\u{8}\u{c}\u{7f} \u{e9}\u{1F600}\u{2028}";
        let inner = Object::new()
            .with("z", Field::Null)
            .with("a", true)
            .with("é", 3u64)
            .with("A", tricky)
            .with("", u64::MAX);
        let mut ours = Object::new()
            .with("time", "t")
            .with("event", "start")
            .with("config", inner)
            .with(
                "list",
                Field::List(vec![Field::F64(0.1), Field::F64(1e21), Field::F64(-0.0)]),
            )
            .with("f", 123.456f64)
            .with("nan", f64::NAN)
            .with("none", None::<String>);
        ours.merge(Object::new().with("event", "mine").with("b", false));
        let theirs = json!({
            "time": "t",
            "event": "start",
            "config": {"z": null, "a": true, "é": 3, "A": tricky, "": u64::MAX},
            "list": [0.1, 1e21, -0.0],
            "f": 123.456,
            "nan": f64::NAN,
            "none": None::<String>,
        });
        let mut theirs = theirs;
        // Merged as debug events were: the later value of a key wins.
        theirs["event"] = json!("mine");
        theirs["b"] = json!(false);
        assert_eq!(ours.to_json(), theirs.to_string());
        assert_eq!(Object::new().to_json(), json!({}).to_string());
        assert_eq!(
            serde_json::to_string(ours.get("event").unwrap()).unwrap(),
            theirs["event"].to_string()
        );
    }

    /// What the callers read from a Value: (messageType as a string, agent.seq as a u64,
    /// the first of apiKey/api_key/key and whether it is a string).
    type Read = (Option<String>, Option<u64>, Option<Option<String>>);

    fn through_value(body: &[u8]) -> Result<Read, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let key = ["apiKey", "api_key", "key"]
            .iter()
            .find_map(|k| v.get(*k))
            .map(|k| k.as_str().map(str::to_owned));
        Ok((
            v.get("messageType")
                .and_then(|m| m.as_str())
                .map(str::to_owned),
            v.pointer("/agent/seq").and_then(|s| s.as_u64()),
            key,
        ))
    }

    fn through_pick(body: &[u8]) -> Result<Read, String> {
        let [kind, seq, a, b, c] = pick(
            body,
            [
                &["messageType"],
                &["agent", "seq"],
                &["apiKey"],
                &["api_key"],
                &["key"],
            ],
        )
        .map_err(|e| e.to_string())?;
        let s = |m: Option<Member>| match m {
            Some(Member::Str(s)) => Some(s),
            _ => None,
        };
        let key = [a, b, c].into_iter().flatten().next().map(|m| s(Some(m)));
        Ok((
            s(kind),
            seq.and_then(|m| match m {
                Member::U64(n) => Some(n),
                _ => None,
            }),
            key,
        ))
    }

    #[test]
    fn pick_reads_and_fails_as_a_value_does() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut cases: Vec<Vec<u8>> = [
            r#"{"messageType":"realtimeSnapshot","agent":{"seq":7}}"#,
            r#"{"messageType":"x","messageType":"realtimeSnapshot","agent":{"seq":7}}"#,
            r#"{"agent":{"seq":7},"agent":{"other":1}}"#,
            r#"{"agent":{"seq":7},"agent":5}"#,
            r#"{"agent":{"seq":1},"agent":{"seq":2}}"#,
            r#"{"agent":{"agent":{"seq":3}},"seq":4}"#,
            r#"{"other":{"seq":5},"agent":{"seq":-1}}"#,
            r#"{"agent":{"seq":1.0}}"#,
            r#"{"agent":{"seq":18446744073709551615}}"#,
            r#"{"agent":{"seq":18446744073709551616}}"#,
            r#"{"agent":{"seq":"7"}}"#,
            r#"{"agent":[{"seq":7}]}"#,
            r#"[{"messageType":"realtimeSnapshot"}]"#,
            r#"{"messageType":null,"agent":{"seq":true}}"#,
            r#"{"key":"k1","apiKey":"k2"}"#,
            r#"{"key":"k1","api_key":5}"#,
            r#"{"key":"k1","key":{"x":1}}"#,
            r#"{"key":"a\u00e9\ud83d\ude00b"}"#,
            r#"{"key":"\ud800"}"#,
            r#"{"key":"\x"}"#,
            r#""just a string""#,
            "17",
            "1e400",
            r#"{"a":1e400}"#,
            r#"{"a":-1e-400}"#,
            "",
            "   ",
            "{",
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"{1:2}"#,
            r#"{"a":1} x"#,
            r#"{"a":1}   "#,
            "[1,2,[3,{\"b\":[]}]]",
            "nul",
            "truex",
            r#"{"a":"\u0000"}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        cases.push(b"{\"key\":\"\xff\"}".to_vec());
        cases.push(b"{\"key\":\"a\x01b\"}".to_vec());
        cases.push(deep(127).into_bytes());
        cases.push(deep(128).into_bytes());
        cases.push(deep(129).into_bytes());
        cases.push(format!(r#"{{"agent":{{"x":{}, "seq":9}}}}"#, deep(125)).into_bytes());
        cases.push(format!(r#"{{"agent":{{"x":{}, "seq":9}}}}"#, deep(127)).into_bytes());
        for body in &cases {
            assert_eq!(
                through_pick(body),
                through_value(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Both kinds of answer occur above.
        assert!(cases.iter().any(|b| through_value(b).is_err()));
        assert!(cases
            .iter()
            .any(|b| through_value(b).is_ok_and(|r| r.1 == Some(7))));
    }
}
