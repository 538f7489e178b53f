//! Typed, checked reading of a JSON request body's fields: every error is a 400 naming the
//! field, and [`Fields::finish`] refuses fields nobody read (a misspelt `temprature` is an
//! error, not a silent default).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The fields of one JSON object, read one by one.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    read: BTreeSet<&'static str>,
}

/// A short description of a JSON value for error messages (strings cut to 40 characters).
pub fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 40 => {
            format!("{:?}…", s.chars().take(40).collect::<String>())
        }
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

impl<'a> Fields<'a> {
    /// The fields of `body`, which must be a JSON object.
    pub fn of(body: &'a Value) -> Result<Self, ApiError> {
        match body {
            Value::Object(map) => Ok(Self {
                map,
                read: BTreeSet::new(),
            }),
            other => Err(ApiError::bad_request(
                "invalid_body",
                format!(
                    "the request body must be a JSON object, not {}",
                    describe(other)
                ),
            )),
        }
    }

    /// The raw value of `key` (`null` counts as absent).
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.insert(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A number.
    pub fn f64(&mut self, key: &'static str) -> Result<Option<f64>, ApiError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| ApiError::invalid(key, format!("{n} is not a finite number"))),
            Some(v) => Err(ApiError::invalid(
                key,
                format!("expected a number, got {}", describe(v)),
            )),
        }
    }

    /// A number checked by `ok` (`what` says the accepted range).
    pub fn f64_in(
        &mut self,
        key: &'static str,
        ok: impl Fn(f64) -> bool,
        what: &str,
    ) -> Result<Option<f64>, ApiError> {
        match self.f64(key)? {
            Some(x) if !ok(x) => Err(ApiError::invalid(key, format!("{x} {what}"))),
            other => Ok(other),
        }
    }

    /// An integer.
    pub fn i64(&mut self, key: &'static str) -> Result<Option<i64>, ApiError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    return Ok(Some(i));
                }
                // 3.0 is accepted as 3; 3.5 or 1e30 is not.
                match n.as_f64() {
                    Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(Some(x as i64)),
                    _ => Err(ApiError::invalid(
                        key,
                        format!("expected an integer in range, got {n}"),
                    )),
                }
            }
            Some(v) => Err(ApiError::invalid(
                key,
                format!("expected an integer, got {}", describe(v)),
            )),
        }
    }

    /// An integer checked by `ok` (`what` says the accepted range).
    pub fn i64_in(
        &mut self,
        key: &'static str,
        ok: impl Fn(i64) -> bool,
        what: &str,
    ) -> Result<Option<i64>, ApiError> {
        match self.i64(key)? {
            Some(x) if !ok(x) => Err(ApiError::invalid(key, format!("{x} {what}"))),
            other => Ok(other),
        }
    }

    /// A boolean.
    pub fn bool(&mut self, key: &'static str) -> Result<Option<bool>, ApiError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::invalid(
                key,
                format!("expected true or false, got {}", describe(v)),
            )),
        }
    }

    /// A string.
    pub fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, ApiError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::invalid(
                key,
                format!("expected a string, got {}", describe(v)),
            )),
        }
    }

    /// A string or a list of strings (at most `max`).
    pub fn strings(&mut self, key: &'static str, max: usize) -> Result<Vec<String>, ApiError> {
        let out = match self.raw(key) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ApiError::invalid(
                        key,
                        format!("expected strings, got {}", describe(other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => Err(ApiError::invalid(
                key,
                format!(
                    "expected a string or a list of strings, got {}",
                    describe(v)
                ),
            ))?,
        };
        if out.len() > max {
            return Err(ApiError::invalid(
                key,
                format!("{} entries; at most {max} are accepted", out.len()),
            ));
        }
        Ok(out)
    }

    /// Marks `key` as known but without effect (accepted and ignored, e.g. `user`).
    pub fn ignore(&mut self, key: &'static str) {
        self.read.insert(key);
    }

    /// Refuses the first field that was never read.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !self.read.contains(k.as_str())) {
            Some(k) => Err(ApiError::invalid(
                &k.chars().take(64).collect::<String>(),
                "unknown field",
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let v = json!({"a": "x", "b": 1.5, "c": 2.0, "d": [1], "e": null});
        let mut f = Fields::of(&v).unwrap();
        assert!(f
            .f64("a")
            .unwrap_err()
            .message
            .starts_with("a: expected a number"));
        assert!(f
            .i64("b")
            .unwrap_err()
            .message
            .contains("b: expected an integer"));
        assert_eq!(f.i64("c").unwrap(), Some(2));
        assert!(f.strings("d", 4).unwrap_err().message.starts_with("d:"));
        assert_eq!(f.str("e").unwrap(), None);
        f.finish().unwrap();
        let v = json!({"temprature": 1});
        let f = Fields::of(&v).unwrap();
        let e = f.finish().unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temprature"));
        assert!(Fields::of(&json!([1])).is_err());
    }
}
