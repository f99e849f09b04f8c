//! JSON text -> `serde_json::Value`, refusing duplicate keys.
//!
//! `serde_json::from_str::<Value>` keeps the last of two equal keys: a config with `"command"`
//! twice in one stage ran the second one and never said so. This parse builds the same `Value`
//! through a visitor that fails on a key already in its object, naming the key's path
//! (`pipelines[0].stages[1].command`); serde_json adds the line and column, and its recursion
//! limit still applies (the visitor nests through `deserialize_any`).

use std::path::Path;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::ConfigError;

/// Parses the JSON text of `file` (a config, a plan file, a plan patch); bad JSON is an
/// error naming the file, line and column.
pub(crate) fn parse_file_text(file: &Path, text: &str) -> Result<Value, ConfigError> {
    parse_unique(text).map_err(|e| ConfigError::Json {
        path: file.to_owned(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json appends " at line L column C"; we print the position first, so drop it.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Parses `text`; a duplicate key is an error naming its path.
pub(crate) fn parse_unique(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Unique { at: None }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Where a value sits: its parent and its key or index. Lives on the stack of the visitor
/// that holds the value, so the path is only rendered when there is an error.
struct Seg<'a> {
    parent: Option<&'a Seg<'a>>,
    key: Key<'a>,
}

enum Key<'a> {
    Name(&'a str),
    Index(usize),
}

fn render(at: Option<&Seg<'_>>, last: &str) -> String {
    let mut parts = Vec::new();
    let mut cur = at;
    while let Some(seg) = cur {
        parts.push(seg);
        cur = seg.parent;
    }
    let mut out = String::new();
    for seg in parts.iter().rev() {
        match seg.key {
            Key::Name(n) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(n);
            }
            Key::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(last);
    out
}

struct Unique<'a> {
    at: Option<&'a Seg<'a>>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so this is always a number.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let seg = Seg {
                parent: self.at,
                key: Key::Index(out.len()),
            };
            match seq.next_element_seed(Unique { at: Some(&seg) })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "duplicate key `{}` (each key may appear once in an object)",
                    render(self.at, &key)
                )));
            }
            let seg = Seg {
                parent: self.at,
                key: Key::Name(&key),
            };
            let value = map.next_value_seed(Unique { at: Some(&seg) })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_named_with_their_path() {
        let e = parse_unique(
            r#"{"pipelines":[{"id":"p","stages":[{},{"command":"a","command":"b"}]}]}"#,
        )
        .expect_err("duplicate");
        assert!(
            e.to_string()
                .starts_with("duplicate key `pipelines[0].stages[1].command`"),
            "{e}"
        );
        let e = parse_unique(r#"{"a":1,"a":2}"#).expect_err("top level");
        assert!(e.to_string().starts_with("duplicate key `a`"), "{e}");
    }

    #[test]
    fn the_value_is_what_serde_json_builds() {
        let text = r#"{"a":[1,-2,3.5,true,null,"s",{"b":{}}],"c":{"a":1}}"#;
        let ours = parse_unique(text).expect("parse");
        let theirs: Value = serde_json::from_str(text).expect("parse");
        assert_eq!(ours, theirs);
        assert!(parse_unique("{} x").is_err(), "trailing characters");
        assert!(parse_unique(&"[".repeat(200)).is_err(), "recursion limit");
    }
}
