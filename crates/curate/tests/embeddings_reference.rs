//! The embedder against sentence-transformers: vectors computed once with
//! sentence-transformers 6.0.1 on the CPU (tests/data/make_embeddings.py →
//! tests/data/embeddings.json); each embedding's cosine with the reference ≥ 0.999 and the
//! same token count after truncation. Needs the default embedder in the cache
//! (`adasamp model fetch embedder`); without it the test says so and passes.

use adasamp_curate::diversity::embed::{default_embedder_dir, Embedder, DEFAULT_EMBEDDER_FILES};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    texts: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

fn embedder() -> Option<Embedder> {
    let present = DEFAULT_EMBEDDER_FILES
        .iter()
        .all(|m| adasamp_engine::fetch::cached_path(m).exists());
    if !present {
        eprintln!("note: the default embedder is absent; run `adasamp model fetch embedder` to enable this test");
        return None;
    }
    Some(Embedder::load(&default_embedder_dir()).expect("the default embedder loads"))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_sentence_transformers() {
    let Some(e) = embedder() else { return };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/embeddings.json");
    let r: Reference =
        serde_json::from_str(&std::fs::read_to_string(path).expect("embeddings.json")).unwrap();
    assert_eq!(e.max_seq_length(), r.max_seq_length);
    assert_eq!(e.dim(), r.texts[0].embedding.len());
    let texts: Vec<&str> = r.texts.iter().map(|t| t.text.as_str()).collect();
    // Batched two ways: all at once and in batches of three (different padding).
    for batch in [32, 3] {
        let got = e.embed(&texts, batch).unwrap();
        let mut lowest = f64::INFINITY;
        for (g, want) in got.iter().zip(&r.texts) {
            let c = cosine(g, &want.embedding);
            lowest = lowest.min(c);
            assert!(c >= 0.999, "batch {batch}: cosine {c} for {:?}", want.text);
            let norm: f64 = g.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        eprintln!("batch {batch}: lowest cosine with sentence-transformers {lowest:.9}");
    }
    for want in &r.texts {
        assert_eq!(
            e.token_ids(&want.text).unwrap().len(),
            want.tokens,
            "{:?}",
            want.text
        );
    }
}

#[test]
fn a_missing_or_malformed_model_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    let err = Embedder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
}
