//! The one GGUF metadata reader: opening a GGUF file's header (checked against truncation) and
//! typed access to its metadata keys, each error naming the key. Used by the tokenizer, the chat
//! template and both backends.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

pub use candle_core::quantized::gguf_file::{Content, Value};

use crate::error::{io_err, EngineError, Result};

/// Reads the GGUF header (metadata and tensor table) and checks that every tensor lies inside
/// the file, so a truncated download is reported before any weight is read. Returns the header
/// and the open file (for reading tensors).
pub fn read_content(path: &Path) -> Result<(Content, BufReader<File>)> {
    let file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| EngineError::InvalidModel {
        path: path.into(),
        reason: format!("not a readable GGUF file: {e}"),
    })?;
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count() as u64;
        let bytes =
            elems / info.ggml_dtype.block_size() as u64 * info.ggml_dtype.type_size() as u64;
        let end = content.tensor_data_offset + info.offset + bytes;
        if end > size {
            return Err(EngineError::InvalidModel {
                path: path.into(),
                reason: format!(
                    "truncated: tensor `{name}` ends at byte {end} but the file has {size} bytes"
                ),
            });
        }
    }
    Ok((content, reader))
}

/// The error for a required key that is absent.
pub fn missing(key: &str) -> EngineError {
    EngineError::Metadata {
        key: key.into(),
        reason: "missing".into(),
    }
}

fn wrong_type(key: &str, expected: &str, v: &Value) -> EngineError {
    EngineError::Metadata {
        key: key.into(),
        reason: format!("expected {expected}, found {:?}", v.value_type()),
    }
}

fn wrong_entry(key: &str, i: usize, expected: &str, v: &Value) -> EngineError {
    EngineError::Metadata {
        key: key.into(),
        reason: format!("entry {i}: expected {expected}, found {:?}", v.value_type()),
    }
}

/// `general.architecture` (required).
pub fn architecture(c: &Content) -> Result<String> {
    const KEY: &str = "general.architecture";
    Ok(get_str(c, KEY)?.ok_or_else(|| missing(KEY))?.to_string())
}

/// A string value (`None` when absent).
pub fn get_str<'a>(c: &'a Content, key: &str) -> Result<Option<&'a str>> {
    match c.metadata.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(wrong_type(key, "a string", v)),
    }
}

/// A bool value, also given as an integer (non-zero = true).
pub fn get_bool(c: &Content, key: &str) -> Result<Option<bool>> {
    match c.metadata.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => value_int(v)
            .map(|i| Some(i != 0))
            .ok_or_else(|| wrong_type(key, "a bool", v)),
    }
}

/// An integer of any GGUF integer type as `i64` (`None` for other types and for `u64` values
/// beyond `i64`).
fn value_int(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::I8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::I16(x) => Some(x.into()),
        Value::U32(x) => Some(x.into()),
        Value::I32(x) => Some(x.into()),
        Value::U64(x) => i64::try_from(x).ok(),
        Value::I64(x) => Some(x),
        _ => None,
    }
}

/// An integer value of any integer type.
pub fn get_int(c: &Content, key: &str) -> Result<Option<i64>> {
    match c.metadata.get(key) {
        None => Ok(None),
        Some(v) => value_int(v)
            .map(Some)
            .ok_or_else(|| wrong_type(key, "an integer", v)),
    }
}

/// A non-negative integer value (a size or a count).
pub fn get_usize(c: &Content, key: &str) -> Result<Option<usize>> {
    match c.metadata.get(key) {
        None => Ok(None),
        Some(v) => value_int(v)
            .and_then(|i| usize::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| wrong_type(key, "a non-negative integer", v)),
    }
}

/// A number (float or integer) as `f32`.
pub fn get_f32(c: &Content, key: &str) -> Result<Option<f32>> {
    match c.metadata.get(key) {
        None => Ok(None),
        Some(v) => value_f32(v)
            .map(Some)
            .ok_or_else(|| wrong_type(key, "a number", v)),
    }
}

fn value_f32(v: &Value) -> Option<f32> {
    match *v {
        Value::F32(x) => Some(x),
        Value::F64(x) => Some(x as f32),
        ref v => value_int(v).map(|x| x as f32),
    }
}

/// An array value.
pub fn get_array<'a>(c: &'a Content, key: &str) -> Result<Option<&'a [Value]>> {
    match c.metadata.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.as_slice())),
        Some(v) => Err(wrong_type(key, "an array", v)),
    }
}

/// An array of strings.
pub fn get_str_array<'a>(c: &'a Content, key: &str) -> Result<Option<Vec<&'a str>>> {
    let Some(a) = get_array(c, key)? else {
        return Ok(None);
    };
    a.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.as_str()),
            v => Err(wrong_entry(key, i, "a string", v)),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// An array of integers (any integer type).
pub fn get_int_array(c: &Content, key: &str) -> Result<Option<Vec<i64>>> {
    let Some(a) = get_array(c, key)? else {
        return Ok(None);
    };
    a.iter()
        .enumerate()
        .map(|(i, v)| value_int(v).ok_or_else(|| wrong_entry(key, i, "an integer", v)))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// An array of numbers as `f32`.
pub fn get_f32_array(c: &Content, key: &str) -> Result<Option<Vec<f32>>> {
    let Some(a) = get_array(c, key)? else {
        return Ok(None);
    };
    a.iter()
        .enumerate()
        .map(|(i, v)| value_f32(v).ok_or_else(|| wrong_entry(key, i, "a number", v)))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pairs: &[(&str, Value)]) -> Content {
        Content {
            magic: candle_core::quantized::gguf_file::VersionedMagic::GgufV3,
            metadata: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            tensor_infos: Default::default(),
            tensor_data_offset: 0,
        }
    }

    #[test]
    fn typed_getters_name_the_key_on_a_wrong_type() {
        let c = content(&[
            ("a.n", Value::U32(7)),
            ("a.s", Value::String("x".into())),
            ("a.f", Value::F64(0.5)),
            ("a.neg", Value::I32(-1)),
            (
                "a.arr",
                Value::Array(vec![Value::I8(1), Value::String("y".into())]),
            ),
        ]);
        assert_eq!(get_usize(&c, "a.n").unwrap(), Some(7));
        assert_eq!(get_f32(&c, "a.n").unwrap(), Some(7.0));
        assert_eq!(get_f32(&c, "a.f").unwrap(), Some(0.5));
        assert_eq!(get_str(&c, "a.s").unwrap(), Some("x"));
        assert_eq!(get_bool(&c, "a.n").unwrap(), Some(true));
        assert_eq!(get_int(&c, "absent").unwrap(), None);
        for e in [
            get_usize(&c, "a.neg").unwrap_err(),
            get_str(&c, "a.n").unwrap_err(),
            get_int_array(&c, "a.arr").unwrap_err(),
        ] {
            assert!(matches!(e, EngineError::Metadata { .. }), "{e}");
        }
        let e = get_int_array(&c, "a.arr").unwrap_err().to_string();
        assert!(e.contains("a.arr") && e.contains("entry 1"), "{e}");
        assert!(
            matches!(architecture(&c), Err(EngineError::Metadata { key, .. }) if key == "general.architecture")
        );
    }
}
