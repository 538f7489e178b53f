//! Helpers shared by the engine's integration tests (each test file uses a part of them).
#![allow(dead_code)]

pub mod tiny;

use adasamp_engine::{fetch, BackendChoice, LoadedModel};

/// The default model on `backend` (2048-token context), or `None` with a note when its file is
/// absent.
pub fn default_model(backend: BackendChoice, requant_q8: bool) -> Option<LoadedModel> {
    let p = fetch::cached_path(&fetch::DEFAULT_MODEL);
    if !p.exists() {
        eprintln!(
            "note: {} absent; run `adasamp model fetch` to enable the default-model tests",
            p.display()
        );
        return None;
    }
    Some(
        adasamp_engine::load(
            Some(&p),
            backend,
            adasamp_engine::LoadOptions {
                requant_q8,
                ..adasamp_engine::LoadOptions::with_max_seq_len(Some(2048))
            },
            &mut |_: &str| {},
        )
        .expect("default model loads"),
    )
}
