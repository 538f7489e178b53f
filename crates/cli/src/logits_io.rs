//! Reading and writing logits matrices as safetensors (tensor `logits`, F32 `[N, V]`): the file
//! contract of `adasamp apply` and `adasamp sample`.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

/// A row-major `[rows, vocab]` f32 matrix (the engine's logits type).
pub use adasamp_engine::Logits;

/// Reads tensor `logits` (F32, rank 2) from a safetensors file.
pub fn read(path: &Path) -> Result<Logits> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("{}: not a valid safetensors file ({e})", path.display()))?;
    let t = st.tensor("logits").map_err(|_| {
        let names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
        anyhow!(
            "{}: no tensor named `logits` (tensors present: {})",
            path.display(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )
    })?;
    if t.dtype() != Dtype::F32 {
        bail!(
            "{}: tensor `logits` has dtype {:?}; expected F32",
            path.display(),
            t.dtype()
        );
    }
    let shape = t.shape();
    if shape.len() != 2 {
        bail!(
            "{}: tensor `logits` has shape {shape:?}; expected [N, V]",
            path.display()
        );
    }
    let (rows, vocab) = (shape[0], shape[1]);
    if vocab == 0 {
        bail!(
            "{}: tensor `logits` has an empty vocabulary dimension (shape {shape:?})",
            path.display()
        );
    }
    let data: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Logits { rows, vocab, data })
}

/// Writes tensor `logits` (F32 `[N, V]`) atomically: a temporary file in the same directory,
/// renamed into place.
pub fn write(path: &Path, logits: &Logits) -> Result<()> {
    let bytes: Vec<u8> = logits.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![logits.rows, logits.vocab], &bytes)
        .map_err(|e| anyhow!("building tensor: {e}"))?;
    let out = safetensors::serialize([("logits", view)], None)
        .map_err(|e| anyhow!("serialising: {e}"))?;
    Ok(adasamp_engine::files::write_atomic(path, &out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("adasamp-io-{}", std::process::id()));
        let p = dir.join("x.safetensors");
        let l = Logits {
            rows: 2,
            vocab: 3,
            data: vec![1.0, 2.0, f32::NEG_INFINITY, 0.0, -1.0, 5.0],
        };
        write(&p, &l).unwrap();
        assert_eq!(read(&p).unwrap(), l);
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read(&p)
            .unwrap_err()
            .to_string()
            .contains("not a valid safetensors"));
        let bytes = std::fs::read(dir.join("x.safetensors")).unwrap();
        assert!(!bytes.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
