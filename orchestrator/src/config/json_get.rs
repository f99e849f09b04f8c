//! Typed getters over parsed JSON, shared by the walks that read it (a config file in
//! `load`, a plan file in `plan_file`, a plan patch in `plan_patch`, an executor): each error
//! names the file and the field and says what was expected and what was found, in one
//! wording for all of them, so a plan file's `name` and a config's `title` fail alike.

use std::path::Path;

use serde_json::{Map, Value};

use super::error::{ConfigError, Loc};

/// The error of a value at `loc` in `file`: `` `file`: location: message ``.
pub(crate) fn invalid(file: &Path, loc: &Loc, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: file.to_owned(),
        location: loc.render(),
        message: message.into(),
    }
}

/// The typed getters of a walk over the JSON of `file()`. A getter reads an optional field
/// as `None` when it is absent or `null`.
pub(crate) trait Fields {
    /// The file the JSON came from, named in every error.
    fn file(&self) -> &Path;

    /// The error at `loc` saying `message`.
    fn err(&self, loc: &Loc, message: impl Into<String>) -> ConfigError {
        invalid(self.file(), loc, message)
    }

    /// `v` as an object.
    fn object<'v>(&self, v: &'v Value, loc: &Loc) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object()
            .ok_or_else(|| self.err(loc, format!("expected an object, found {}", kind_of(v))))
    }

    /// Field `key` of `obj` as a string.
    fn opt_string(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
    ) -> Result<Option<String>, ConfigError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(
                &loc.field(key),
                format!("expected a string, found {}", kind_of(v)),
            )),
        }
    }

    /// Field `key` of `obj` as a string that is not blank; `why` says what needs it.
    fn req_string(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
        why: &str,
    ) -> Result<String, ConfigError> {
        match self.opt_string(obj, key, loc)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.err(&loc.field(key), format!("must not be empty ({why})"))),
            None => Err(self.err(&loc.field(key), format!("missing ({why})"))),
        }
    }

    /// Field `key` of `obj` as true or false.
    fn opt_bool(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
    ) -> Result<Option<bool>, ConfigError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(
                &loc.field(key),
                format!("expected true or false, found {}", kind_of(v)),
            )),
        }
    }

    /// Field `key` of `obj` as an integer of at least `min`.
    fn opt_u64(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
        min: u64,
    ) -> Result<Option<u64>, ConfigError> {
        self.opt_u64_at(obj.get(key), &loc.field(key), min, u64::MAX)
    }

    /// `v` (at field location `floc`) as an integer from `min` to `max`.
    fn opt_u64_at(
        &self,
        v: Option<&Value>,
        floc: &Loc,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ConfigError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.err(
                    floc,
                    format!("expected an integer >= {min}, found {}", show(v)),
                )),
            },
        }
    }
}

/// What `v` is, for "found ...": `a string`, `an array`, `null`.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `v` for "found ...": a number as written, anything else as its kind.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}
