//! The token index against naive scans: counts, longest matches and the greedy coverage on
//! random corpora (u16 and u32 ids, in memory and memory-mapped); integrity errors; building
//! from files with a real tokenizer; the `label overlap` stage and its resume.

use std::path::{Path, PathBuf};

use adasamp_curate::index::build::{write_index, Provenance};
use adasamp_curate::index::format::{self, BinaryKind, TokenWidth};
use adasamp_curate::index::{
    build_index, label_overlap, load_tokenizer, BuildOptions, CorpusTokens, Coverage, Index,
    IndexError, LoadedTokenizer, OverlapOptions, TokenizerInfo,
};
use adasamp_curate::labels;
use adasamp_curate::stage::read_records;
use adasamp_curate::CurateError;
use adasamp_engine::record::{CandidateRecord, SamplerInfo};
use adasamp_sampling::PipelineSpec;
use proptest::prelude::*;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Naive references

fn naive_count(docs: &[Vec<u32>], ngram: &[u32]) -> u64 {
    docs.iter()
        .map(|d| {
            if ngram.is_empty() {
                d.len() as u64
            } else {
                d.windows(ngram.len()).filter(|w| *w == ngram).count() as u64
            }
        })
        .sum()
}

/// The reference implementation's loop: longest n from max_n down, then jump or advance by 1.
fn naive_coverage(docs: &[Vec<u32>], tokens: &[u32], max_n: usize) -> Coverage {
    let (mut i, mut matched, mut breaks, mut was) = (0, 0, 0, false);
    while i < tokens.len() {
        let mut longest = 0;
        for n in (1..=max_n).rev() {
            if i + n > tokens.len() {
                continue;
            }
            if naive_count(docs, &tokens[i..i + n]) > 0 {
                longest = n;
                break;
            }
        }
        if longest > 0 {
            matched += longest;
            i += longest;
            was = true;
        } else {
            if was {
                breaks += 1;
            }
            i += 1;
            was = false;
        }
    }
    Coverage {
        tokens: tokens.len(),
        matched,
        breaks,
    }
}

fn corpus_of(docs: &[Vec<u32>], vocab: u32) -> (CorpusTokens, Vec<u32>) {
    let mut c = CorpusTokens::new(vocab).unwrap();
    for d in docs {
        c.extend(d).unwrap();
        c.end_document();
    }
    let sa = c.suffix_array().unwrap();
    (c, sa)
}

fn no_provenance() -> Provenance {
    Provenance {
        tokenizer: TokenizerInfo {
            sha256: "test".into(),
            kind: "test".into(),
            source: None,
        },
        text_field: "text".into(),
        files: Vec::new(),
    }
}

/// Random documents over `k` symbols (ids `0..k`) and queries over `0..k + 2` (symbol `k` occurs
/// in no document; `k + 1` is outside a vocabulary of `k + 1`).
fn docs_strategy() -> impl Strategy<Value = (usize, Vec<Vec<u32>>, Vec<Vec<u32>>)> {
    (1usize..5).prop_flat_map(|k| {
        (
            Just(k),
            prop::collection::vec(prop::collection::vec(0..k as u32, 0..14), 1..6),
            prop::collection::vec(prop::collection::vec(0..(k as u32 + 2), 0..16), 1..8),
        )
    })
}

fn check_all(
    docs: &[Vec<u32>],
    queries: &[Vec<u32>],
    vocab: u32,
    count: impl Fn(&[u32]) -> u64,
    longest: impl Fn(&[u32]) -> usize,
    coverage: impl Fn(&[u32], usize) -> Coverage,
) -> Result<(), TestCaseError> {
    let mut grams: Vec<Vec<u32>> = queries.to_vec();
    // n-grams that do occur: every window of every document.
    for d in docs {
        for n in 0..=d.len().min(4) {
            grams.extend(d.windows(n.max(1)).map(|w| w[..n].to_vec()));
        }
    }
    for g in &grams {
        let want = if g.iter().any(|&t| t >= vocab) {
            0
        } else {
            naive_count(docs, g)
        };
        prop_assert_eq!(count(g), want, "count of {:?}", g);
        let l = longest(g);
        prop_assert!(l == 0 || count(&g[..l]) > 0);
        prop_assert!(
            l == g.len() || count(&g[..l + 1]) == 0,
            "longest of {:?}",
            g
        );
    }
    for q in queries {
        for max_n in [1, 3, 10] {
            prop_assert_eq!(coverage(q, max_n), naive_coverage(docs, q, max_n));
        }
    }
    Ok(())
}

fn shift(docs: &[Vec<u32>], base: u32) -> Vec<Vec<u32>> {
    docs.iter()
        .map(|d| d.iter().map(|&t| t + base).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn u16_index_matches_naive_scans((k, docs, queries) in docs_strategy()) {
        prop_assume!(docs.iter().any(|d| !d.is_empty()));
        let vocab = k as u32 + 1;
        let (c, sa) = corpus_of(&docs, vocab);
        prop_assert_eq!(c.text().len() as u64, c.tokens() + c.documents());
        c.with_view(
            &sa,
            |v| {
                check_all(&docs, &queries, vocab, |g| v.count(g), |q| v.longest_prefix(q), |q, n| {
                    adasamp_curate::index::greedy_coverage(q, n, |x| v.longest_prefix(x)).unwrap()
                })
            },
            |_| Err(TestCaseError::fail("a small vocabulary must be stored as u16")),
        )?;
    }

    #[test]
    fn u32_index_matches_naive_scans((_k, docs, queries) in docs_strategy()) {
        prop_assume!(docs.iter().any(|d| !d.is_empty()));
        // Ids on both sides of the u16 limit; vocabulary 70000.
        let base = 65_533;
        let vocab = 70_000;
        let docs = shift(&docs, base);
        let queries = shift(&queries, base);
        let (c, sa) = corpus_of(&docs, vocab);
        c.with_view(
            &sa,
            |_| Err(TestCaseError::fail("vocabulary 70000 must be stored as u32")),
            |v| {
                check_all(&docs, &queries, vocab, |g| v.count(g), |q| v.longest_prefix(q), |q, n| {
                    adasamp_curate::index::greedy_coverage(q, n, |x| v.longest_prefix(x)).unwrap()
                })
            },
        )?;
    }

    #[test]
    fn suffix_array_is_sorted((_k, docs, _q) in docs_strategy()) {
        prop_assume!(docs.iter().any(|d| !d.is_empty()));
        let (_, sa) = corpus_of(&docs, 7);
        let mut ids: Vec<u32> = Vec::new();
        for d in &docs {
            if !d.is_empty() {
                ids.extend(d);
                ids.push(7);
            }
        }
        let mut want: Vec<u32> = (0..ids.len() as u32).collect();
        want.sort_by(|&a, &b| ids[a as usize..].cmp(&ids[b as usize..]));
        prop_assert_eq!(sa, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Long, repetitive documents over 1–3 symbols: deep suffix-array intervals, so the binary
    /// searches (not only the direct comparison of a few candidates) decide every answer.
    #[test]
    fn deep_intervals_match_naive_scans(
        k in 1u32..4,
        docs in prop::collection::vec(prop::collection::vec(0u32..3, 50..400), 1..4),
        queries in prop::collection::vec(prop::collection::vec(0u32..4, 5..30), 1..6),
    ) {
        let docs: Vec<Vec<u32>> = docs.iter().map(|d| d.iter().map(|&t| t % k).collect()).collect();
        let (c, sa) = corpus_of(&docs, 4);
        c.with_view(
            &sa,
            |v| {
                check_all(&docs, &queries, 4, |g| v.count(g), |q| v.longest_prefix(q), |q, n| {
                    adasamp_curate::index::greedy_coverage(q, n, |x| v.longest_prefix(x)).unwrap()
                })
            },
            |_| Err(TestCaseError::fail("u16 expected")),
        )?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn mapped_index_answers_like_the_naive_scan(
        (k, docs, queries) in docs_strategy(),
        wide in any::<bool>(),
    ) {
        prop_assume!(docs.iter().any(|d| !d.is_empty()));
        let (vocab, base) = if wide { (70_000, 65_533) } else { (k as u32 + 1, 0) };
        let docs = shift(&docs, base);
        let queries = shift(&queries, base);
        let (c, sa) = corpus_of(&docs, vocab);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("idx");
        let h = write_index(&out, &c, &sa, no_provenance()).unwrap();
        prop_assert_eq!(h.token_width, if wide { TokenWidth::U32 } else { TokenWidth::U16 });
        let index = Index::open(&out).unwrap();
        check_all(
            &docs,
            &queries,
            vocab,
            |g| index.count(g),
            |q| index.longest_prefix(q),
            |q, n| index.coverage(q, n).unwrap(),
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// Integrity

fn small_index(dir: &Path, name: &str, docs: &[Vec<u32>]) -> PathBuf {
    let (c, sa) = corpus_of(docs, 10);
    let out = dir.join(name);
    write_index(&out, &c, &sa, no_provenance()).unwrap();
    out
}

fn open_err(dir: &Path) -> CurateError {
    Index::open(dir).unwrap_err()
}

#[test]
fn truncated_swapped_or_foreign_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let a = small_index(tmp.path(), "a", &[vec![1, 2, 3], vec![2, 3, 4, 5]]);
    let b = small_index(tmp.path(), "b", &[vec![1, 2, 3], vec![2, 3, 4, 6]]);
    assert_eq!(Index::open(&a).unwrap().count(&[2, 3]), 2);

    // Truncated token file.
    let t = format::binary_path(&a, BinaryKind::Tokens);
    let full = std::fs::read(&t).unwrap();
    std::fs::write(&t, &full[..full.len() - 1]).unwrap();
    let e = open_err(&a);
    assert!(
        matches!(&e, CurateError::Index(IndexError::Size { expected, found, .. }) if expected - 1 == *found),
        "{e}"
    );
    assert!(e.to_string().contains("tokens.bin") && e.to_string().contains("truncated"));
    // Cut inside the prefix.
    std::fs::write(&t, &full[..10]).unwrap();
    assert!(matches!(
        open_err(&a),
        CurateError::Index(IndexError::Size { .. })
    ));
    std::fs::write(&t, &full).unwrap();

    // The suffix array of another build (same length).
    let sa_a = format::binary_path(&a, BinaryKind::SuffixArray);
    let sa_b = format::binary_path(&b, BinaryKind::SuffixArray);
    let mine = std::fs::read(&sa_a).unwrap();
    std::fs::copy(&sa_b, &sa_a).unwrap();
    let e = open_err(&a);
    assert!(
        matches!(&e, CurateError::Index(IndexError::Mismatch { field, .. }) if field == "build id"),
        "{e}"
    );
    // Token and suffix-array files swapped.
    std::fs::copy(&t, &sa_a).unwrap();
    let e = open_err(&a);
    assert!(
        matches!(&e, CurateError::Index(IndexError::Mismatch { field, .. }) if field == "kind"),
        "{e}"
    );
    std::fs::write(&sa_a, &mine).unwrap();
    assert!(Index::open(&a).is_ok());

    // Not an index file at all.
    std::fs::write(&sa_a, vec![0u8; mine.len()]).unwrap();
    assert!(open_err(&a).to_string().contains("magic"));
    std::fs::write(&sa_a, &mine).unwrap();

    // Header: another version, malformed, missing.
    let hp = a.join(format::HEADER_FILE);
    let header = std::fs::read_to_string(&hp).unwrap();
    std::fs::write(&hp, header.replace("\"version\": 1", "\"version\": 9")).unwrap();
    let e = open_err(&a).to_string();
    assert!(e.contains("version is 9, expected 1"), "{e}");
    std::fs::write(&hp, &header[..header.len() / 2]).unwrap();
    let e = open_err(&a).to_string();
    assert!(
        e.contains("header.json") && e.contains("not an index header"),
        "{e}"
    );
    std::fs::remove_file(&hp).unwrap();
    assert!(matches!(open_err(&a), CurateError::Io { .. }));
    assert!(matches!(
        Index::open(&tmp.path().join("nowhere")).unwrap_err(),
        CurateError::Io { .. }
    ));
}

#[test]
fn corpus_errors() {
    let mut c = CorpusTokens::new(5).unwrap();
    assert!(c
        .extend(&[1, 5])
        .unwrap_err()
        .to_string()
        .contains("token id 5"));
    assert!(!c.end_document(), "nothing was appended");
    assert!(matches!(
        c.suffix_array().unwrap_err(),
        CurateError::Index(IndexError::Corpus { .. })
    ));
    assert!(CorpusTokens::new(0).is_err());
}

// ---------------------------------------------------------------------------------------------
// Building from files, with a word-level tokenizer.json

/// A word-level tokenizer over `w0 … w{n-1}` (whitespace-separated), unknown words → `w0`.
fn word_tokenizer(dir: &Path, n: usize) -> LoadedTokenizer {
    let vocab: Map<String, Value> = (0..n).map(|i| (format!("w{i}"), i.into())).collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, json.to_string()).unwrap();
    load_tokenizer(Some(&p), &mut |_| {}).unwrap()
}

fn words(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn builds_from_jsonl_and_text_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = word_tokenizer(&tmp.path().join("tok"), 50);
    let jsonl = tmp.path().join("docs.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "{{\"text\": \"{}\"}}\n{{\"text\": \"\"}}\n{{\"text\": \"{}\", \"id\": 3}}\n",
            words(&[1, 2, 3]),
            words(&[3, 4])
        ),
    )
    .unwrap();
    let txt = tmp.path().join("book.txt");
    std::fs::write(&txt, format!("{}\n{}\n", words(&[5, 6]), words(&[7, 1, 2]))).unwrap();
    let out = tmp.path().join("idx");
    let r = build_index(
        &[jsonl.clone(), txt.clone()],
        &tok,
        &out,
        &BuildOptions::default(),
    )
    .unwrap();
    let h = &r.header;
    assert_eq!((h.documents, h.tokens, h.vocab_size), (3, 10, 50));
    assert_eq!(h.token_width, TokenWidth::U16);
    assert_eq!(h.files.len(), 2);
    assert_eq!((h.files[0].documents, h.files[0].empty_documents), (2, 1));
    assert_eq!(h.files[1].tokens, 5);
    assert_eq!(
        h.files[1].sha256,
        adasamp_engine::files::sha256_file(&txt).unwrap()
    );
    assert_eq!(h.tokenizer, tok.info);
    assert!(r.to_string().contains("10 tokens in 3 documents"), "{r}");

    let index = Index::open(&out).unwrap();
    assert_eq!(index.count(&[1, 2]), 2, "in docs.jsonl and book.txt");
    assert_eq!(index.count(&[3, 3]), 0, "across two JSONL documents");
    assert_eq!(
        index.count(&[6, 7]),
        1,
        "across a line of one text document"
    );
    assert_eq!(index.count(&[4, 5]), 0, "across two files");
    assert_eq!(index.count(&[]), 10);
    assert_eq!(index.document_tokens(0, 10), [1, 2, 3]);

    // Rebuilding replaces the directory.
    std::fs::write(&txt, words(&[9])).unwrap();
    build_index(&[txt], &tok, &out, &BuildOptions::default()).unwrap();
    let index = Index::open(&out).unwrap();
    assert_eq!((index.count(&[9]), index.count(&[1])), (1, 0));

    let custom = BuildOptions {
        text_field: "body".into(),
    };
    let e = build_index(&[jsonl], &tok, &out, &custom)
        .unwrap_err()
        .to_string();
    assert!(e.contains("docs.jsonl:1") && e.contains("`body`"), "{e}");
    assert_eq!(
        Index::open(&out).unwrap().count(&[9]),
        1,
        "a failed build leaves the old index"
    );
}

#[test]
fn large_vocabularies_are_stored_as_u32() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = word_tokenizer(&tmp.path().join("tok"), 70_000);
    let f = tmp.path().join("c.txt");
    std::fs::write(&f, words(&[69_999, 3, 69_999, 3])).unwrap();
    let out = tmp.path().join("idx");
    let r = build_index(&[f], &tok, &out, &BuildOptions::default()).unwrap();
    assert_eq!(r.header.token_width, TokenWidth::U32);
    let index = Index::open(&out).unwrap();
    assert_eq!(index.count(&[69_999, 3]), 2);
    assert_eq!(index.longest_prefix(&[3, 69_999, 3, 69_999]), 3);
}

#[test]
fn default_model_tokenizer_has_a_stable_identity_and_u16_ids() {
    let model = adasamp_engine::fetch::cached_path(&adasamp_engine::fetch::DEFAULT_MODEL);
    if !model.exists() {
        eprintln!("default model not cached: default_model_tokenizer test skipped");
        return;
    }
    let a = load_tokenizer(Some(&model), &mut |_| {}).unwrap();
    let b = load_tokenizer(Some(&model), &mut |_| {}).unwrap();
    assert_eq!(a.info.sha256, b.info.sha256);
    assert_eq!(a.tokenizer.vocab_size(), 49152);
    let tmp = tempfile::tempdir().unwrap();
    let other = word_tokenizer(&tmp.path().join("tok"), 50);
    assert_ne!(a.info.sha256, other.info.sha256);
    let f = tmp.path().join("c.jsonl");
    std::fs::write(
        &f,
        "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}\n{\"text\": \"A lazy dog sleeps.\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("idx");
    let r = build_index(&[f], &a, &out, &BuildOptions::default()).unwrap();
    assert_eq!(r.header.token_width, TokenWidth::U16);
    let index = Index::open(&out).unwrap();
    let q = a.tokenizer.encode(" lazy dog", false).unwrap();
    assert_eq!(index.count(&q), 2);
    let g = a.tokenizer.encode("The quick brown cat", false).unwrap();
    let c = index.coverage(&g, 10).unwrap();
    // "The quick brown" is one match; " cat" occurs nowhere in the corpus.
    assert_eq!((c.tokens, c.matched, c.breaks), (4, 3, 1), "{c:?}");
}

// ---------------------------------------------------------------------------------------------
// label overlap

fn record(prompt: &str, seed: u64, generation: &str, tokens: Option<Vec<u32>>) -> CandidateRecord {
    let mut extra = Map::new();
    extra.insert(labels::PROMPT_ID.into(), prompt.into());
    extra.insert("kept".into(), Value::Bool(true));
    CandidateRecord {
        id: Some(format!("{prompt}/p/s{seed}")),
        prompt: "q".into(),
        system_prompt: None,
        raw: false,
        generation: generation.into(),
        generation_tokens: tokens,
        sampler_info: SamplerInfo {
            name: "p".into(),
            config: PipelineSpec {
                name: "p".into(),
                weight: 1.0,
                processors: Vec::new(),
            },
            extra: Map::new(),
        },
        seed: Some(seed),
        finish_reason: None,
        usage: None,
        logprobs: None,
        extra,
    }
}

fn write_records(path: &Path, rs: &[CandidateRecord]) {
    let text: String = rs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

fn label(r: &CandidateRecord, key: &str) -> f64 {
    r.extra[key].as_f64().unwrap()
}

#[test]
fn label_overlap_writes_labels_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = word_tokenizer(&tmp.path().join("tok"), 50);
    let corpus = tmp.path().join("c.jsonl");
    std::fs::write(
        &corpus,
        format!(
            "{{\"text\": \"{}\"}}\n{{\"text\": \"{}\"}}\n",
            words(&[1, 2, 3, 4]),
            words(&[5, 6])
        ),
    )
    .unwrap();
    let idx = tmp.path().join("idx");
    build_index(&[corpus], &tok, &idx, &BuildOptions::default()).unwrap();
    let index = Index::open(&idx).unwrap();

    // Text: [1 2 3] [4] 9 [5 6] 9 → matched 6 of 8, 2 breaks.
    let a = record("a", 0, &words(&[1, 2, 3, 4, 9, 5, 6, 9]), None);
    // Tokens from the index's tokenizer take precedence over the text.
    let mut b = record("a", 1, &words(&[9, 9]), Some(vec![5, 6]));
    b.extra.insert(
        labels::TOKENIZER_SHA256.into(),
        tok.info.sha256.clone().into(),
    );
    // Tokens from another tokenizer are ignored: the text is re-tokenized.
    let mut c = record("b", 0, &words(&[9]), Some(vec![1, 2]));
    c.extra
        .insert(labels::TOKENIZER_SHA256.into(), "another".into());
    let empty = record("b", 1, "", None);
    let dup = record("a", 0, "w1", None);
    let input = tmp.path().join("in.jsonl");
    write_records(&input, &[a, b, c, empty, dup]);
    let output = tmp.path().join("out.jsonl");

    let rep = label_overlap(&index, &tok, &input, &output, &OverlapOptions::default()).unwrap();
    assert_eq!(
        (rep.read, rep.written, rep.already_done),
        (5, 4, 0),
        "{rep}"
    );
    assert_eq!(rep.dropped_total(), 1, "{rep}");
    let s = rep.to_string();
    assert!(
        s.contains("1 scored on their generation_tokens, 3 re-tokenized"),
        "{s}"
    );
    let out = read_records(&output).unwrap();
    let got: Vec<(f64, f64, f64)> = out
        .iter()
        .map(|r| {
            (
                label(r, labels::OVERLAP_MATCHED),
                label(r, labels::OVERLAP_COVERAGE),
                label(r, labels::OVERLAP_BREAKS),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (6.0, 0.75, 2.0),
            (2.0, 1.0, 0.0),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0)
        ]
    );
    assert_eq!(
        out[0].extra["kept"],
        Value::Bool(true),
        "unknown fields survive"
    );

    // A killed run: the last record half-written. The rerun writes it once more, nothing else.
    let text = std::fs::read_to_string(&output).unwrap();
    let cut = text.trim_end().rfind('\n').unwrap() + 1 + 10;
    std::fs::write(&output, &text[..cut]).unwrap();
    let rep = label_overlap(&index, &tok, &input, &output, &OverlapOptions::default()).unwrap();
    assert_eq!(
        (rep.already_done, rep.written, rep.dropped_total()),
        (3, 1, 1),
        "{rep}"
    );
    assert!(rep.to_string().contains("torn"), "{rep}");
    let again = read_records(&output).unwrap();
    assert_eq!(again, out);
    // Everything done: nothing written.
    let rep = label_overlap(&index, &tok, &input, &output, &OverlapOptions::default()).unwrap();
    assert_eq!((rep.already_done, rep.written), (4, 0), "{rep}");

    // Another tokenizer, max_n 0: errors.
    let other = word_tokenizer(&tmp.path().join("tok2"), 60);
    let e = label_overlap(&index, &other, &input, &output, &OverlapOptions::default()).unwrap_err();
    assert!(
        matches!(e, CurateError::Index(IndexError::TokenizerMismatch { .. })),
        "{e}"
    );
    let e = label_overlap(&index, &tok, &input, &output, &OverlapOptions { max_n: 0 })
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_n"), "{e}");
}
