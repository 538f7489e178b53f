//! Append-only JSONL files of any serde type, resumable after a kill: an unterminated last
//! line (a killed writer's) is cut off, every complete line is read back, and new items are
//! appended one flushed line each — so an item is either wholly in the file or not at all.
//! (Candidate records have their own reader in `adasamp_engine::record`; this is for the
//! evaluation's own files.)

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{EvalError, Result};

/// A JSONL file reopened for appending, with the items already in it.
#[derive(Debug)]
pub struct Appender<T> {
    path: PathBuf,
    file: File,
    /// The items of its complete lines, in order.
    pub done: Vec<T>,
    /// Whether an unterminated last line was cut off.
    pub cut_torn_line: bool,
}

/// Opens `path` (created when missing) after cutting an unterminated last line; every complete
/// non-blank line must read as a `T` (errors name the file, the line and what is wrong).
pub fn reopen<T: DeserializeOwned>(path: &Path) -> Result<Appender<T>> {
    let io = EvalError::io(path);
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let cut_torn_line = complete < bytes.len();
    if cut_torn_line {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(EvalError::io(path))?;
        f.set_len(complete as u64).map_err(EvalError::io(path))?;
        f.sync_all().map_err(EvalError::io(path))?;
    }
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let mut done = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        done.push(serde_json::from_str(line).map_err(|e| EvalError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(EvalError::io(path))?;
    Ok(Appender {
        path: path.to_path_buf(),
        file,
        done,
        cut_torn_line,
    })
}

impl<T: Serialize> Appender<T> {
    /// Appends `item` as one whole line, flushed.
    pub fn append(&mut self, item: &T) -> Result<()> {
        let mut line = serde_json::to_string(item).map_err(|e| {
            EvalError::bad_parameter(
                "item",
                self.path.display(),
                format!("not serialisable: {e}"),
            )
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(EvalError::io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Item {
        k: u32,
    }

    #[test]
    fn a_torn_line_is_cut_and_appends_follow_the_complete_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        let mut a = reopen::<Item>(&p).unwrap();
        assert!(a.done.is_empty() && !a.cut_torn_line);
        a.append(&Item { k: 1 }).unwrap();
        a.append(&Item { k: 2 }).unwrap();
        drop(a);
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("{\"k\": 3");
        std::fs::write(&p, &text).unwrap();
        let mut a = reopen::<Item>(&p).unwrap();
        assert!(a.cut_torn_line);
        assert_eq!(a.done, [Item { k: 1 }, Item { k: 2 }]);
        a.append(&Item { k: 3 }).unwrap();
        drop(a);
        let a = reopen::<Item>(&p).unwrap();
        assert_eq!(a.done.len(), 3);
        std::fs::write(&p, "{\"k\": 1}\nnope\n").unwrap();
        let e = reopen::<Item>(&p).unwrap_err().to_string();
        assert!(e.contains("x.jsonl:2"), "{e}");
    }
}
