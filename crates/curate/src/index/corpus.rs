//! Reading a corpus: which files hold which documents, streamed in pieces.
//!
//! * A file named `*.jsonl` (or `*.ndjson`) holds one document per line: a JSON object whose
//!   text field (`text` unless told otherwise) is a string. Blank lines are skipped; a line that
//!   is not an object, or lacks the field, is an error naming the file, line and field.
//! * Any other file is plain UTF-8 text and is one document. It is handed on in pieces of about
//!   [`PIECE_BYTES`], each ending at a line end (a longer line is one piece), so a large file
//!   never has to be tokenized in one call: the tokens of a document are its pieces' tokens
//!   one after the other. Whole-text tokenization could merge across a piece boundary where
//!   this does not — at most one boundary per piece.
//!
//! Every file's SHA-256 is computed while it is read, so the index records exactly the bytes it
//! was built from.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{CurateError, Result};

/// Target size of a plain-text piece, in bytes.
pub const PIECE_BYTES: usize = 1 << 20;

/// The default JSONL field holding a document's text.
pub const DEFAULT_TEXT_FIELD: &str = "text";

/// How a corpus file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusFormat {
    /// One JSON object per line; each line's text field is a document.
    Jsonl,
    /// Plain UTF-8 text; the whole file is one document.
    Text,
}

impl CorpusFormat {
    /// The format of `path`, by its name: `.jsonl` / `.ndjson` are JSONL, anything else text.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
                Self::Jsonl
            }
            _ => Self::Text,
        }
    }
}

/// A piece of a document's text.
#[derive(Debug)]
pub struct Piece<'a> {
    /// The text.
    pub text: &'a str,
    /// Whether this piece is the document's last.
    pub ends_document: bool,
    /// Bytes of the file consumed since the previous piece (for progress).
    pub bytes: u64,
}

/// What reading a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// SHA-256 of the file's bytes (lowercase hex).
    pub sha256: String,
    /// The file's size.
    pub bytes: u64,
}

/// Reads the documents of `path` in `format`, passing every piece to `sink` in order, and
/// returns the file's hash and size.
pub fn read_documents(
    path: &Path,
    format: CorpusFormat,
    text_field: &str,
    sink: &mut dyn FnMut(Piece<'_>) -> Result<()>,
) -> Result<FileDigest> {
    let file = std::fs::File::open(path).map_err(CurateError::io(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut line = Vec::new();
    let mut lineno = 0usize;
    let bad_line = |lineno: usize, message: String| CurateError::BadLine {
        path: path.to_path_buf(),
        line: lineno,
        message,
    };
    match format {
        CorpusFormat::Jsonl => loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(CurateError::io(path))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            hasher.update(&line);
            total += n as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: Value = serde_json::from_slice(&line)
                .map_err(|e| bad_line(lineno, format!("not JSON: {e}")))?;
            let Value::Object(obj) = v else {
                return Err(bad_line(lineno, "not a JSON object".into()));
            };
            match obj.get(text_field) {
                Some(Value::String(text)) => sink(Piece {
                    text,
                    ends_document: true,
                    bytes: n as u64,
                })?,
                Some(other) => {
                    return Err(bad_line(
                        lineno,
                        format!(
                            "field `{text_field}`: expected a string, got {}",
                            kind_of(other)
                        ),
                    ))
                }
                None => return Err(bad_line(lineno, format!("field `{text_field}`: missing"))),
            }
        },
        CorpusFormat::Text => {
            let mut piece = Vec::with_capacity(PIECE_BYTES + 4096);
            let mut first_line = 1usize;
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(CurateError::io(path))?;
                let at_end = n == 0;
                if !at_end {
                    lineno += 1;
                    hasher.update(&line);
                    total += n as u64;
                    piece.extend_from_slice(&line);
                }
                if piece.len() >= PIECE_BYTES || at_end {
                    let bytes = piece.len() as u64;
                    let text = std::str::from_utf8(&piece).map_err(|e| {
                        bad_line(
                            first_line,
                            format!(
                                "not UTF-8 text (byte {} of the piece starting at this line)",
                                e.valid_up_to()
                            ),
                        )
                    })?;
                    sink(Piece {
                        text,
                        ends_document: at_end,
                        bytes,
                    })?;
                    piece.clear();
                    first_line = lineno + 1;
                }
                if at_end {
                    break;
                }
            }
        }
    }
    Ok(FileDigest {
        sha256: crate::index::format::hex(&hasher.finalize()),
        bytes: total,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: &Path, text_field: &str) -> Result<(Vec<(String, bool)>, FileDigest)> {
        let mut out = Vec::new();
        let d = read_documents(path, CorpusFormat::of(path), text_field, &mut |p| {
            out.push((p.text.to_string(), p.ends_document));
            Ok(())
        })?;
        Ok((out, d))
    }

    #[test]
    fn jsonl_documents_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(
            &p,
            "{\"text\": \"one\"}\n\n{\"body\": \"x\", \"text\": \"two\"}",
        )
        .unwrap();
        let (docs, d) = collect(&p, "text").unwrap();
        assert_eq!(docs, [("one".into(), true), ("two".into(), true)]);
        assert_eq!(d.bytes, std::fs::metadata(&p).unwrap().len());
        assert_eq!(
            d.sha256,
            adasamp_engine::files::sha256_file(&p).unwrap(),
            "hash of the bytes read"
        );
        let e = collect(&p, "body").unwrap_err().to_string();
        assert!(
            e.contains("c.jsonl:1") && e.contains("`body`: missing"),
            "{e}"
        );
        std::fs::write(&p, "{\"text\": 3}\n").unwrap();
        let e = collect(&p, "text").unwrap_err().to_string();
        assert!(e.contains(":1") && e.contains("a number"), "{e}");
        std::fs::write(&p, "[1]\n").unwrap();
        assert!(collect(&p, "text").is_err());
    }

    #[test]
    fn a_text_file_is_one_document_in_line_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.txt");
        let line = "x".repeat(999) + "\n";
        let text = line.repeat(PIECE_BYTES / 1000 * 2 + 10);
        std::fs::write(&p, &text).unwrap();
        let (pieces, d) = collect(&p, "text").unwrap();
        assert!(pieces.len() >= 2, "{}", pieces.len());
        assert!(pieces[..pieces.len() - 1]
            .iter()
            .all(|(t, end)| !end && t.ends_with('\n')));
        assert!(pieces.last().unwrap().1);
        let joined: String = pieces.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(joined, text);
        assert_eq!(d.bytes as usize, text.len());
        std::fs::write(&p, b"ok\n\xff\xfe\n").unwrap();
        let e = collect(&p, "text").unwrap_err().to_string();
        assert!(e.contains("UTF-8"), "{e}");
        std::fs::write(&p, "").unwrap();
        let (pieces, _) = collect(&p, "text").unwrap();
        assert_eq!(pieces, [(String::new(), true)]);
    }
}
