//! Self-BLEU against values computed once with sacreBLEU (tests/data/make_self_bleu.py →
//! tests/data/self_bleu.json): 13a tokens exactly, sentence BLEU and self-BLEU to 1e-9
//! relative.

use adasamp_curate::diversity::bleu::{self_bleu, sentence_bleu};
use adasamp_curate::diversity::tokenizer_13a::{is_python_whitespace, tokenize_13a};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    python_whitespace: Vec<u32>,
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    texts: Vec<String>,
    tokens: Vec<Vec<String>>,
    sentence_bleu: Vec<f64>,
    self_bleu: f64,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/self_bleu.json");
    let text = std::fs::read_to_string(path).expect("tests/data/self_bleu.json");
    serde_json::from_str(&text).expect("self_bleu.json parses")
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1e-300) || got == want
}

#[test]
fn whitespace_is_pythons() {
    let want = reference().python_whitespace;
    let got: Vec<u32> = (0..=0x10FFFFu32)
        .filter_map(char::from_u32)
        .filter(|&c| is_python_whitespace(c))
        .map(u32::from)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn tokens_match_sacrebleu_13a() {
    for g in reference().groups {
        for (text, want) in g.texts.iter().zip(&g.tokens) {
            assert_eq!(&tokenize_13a(text), want, "text {text:?}");
        }
    }
}

#[test]
fn sentence_and_self_bleu_match_sacrebleu() {
    let groups = reference().groups;
    assert!(groups.len() >= 10);
    for g in groups {
        let texts: Vec<&str> = g.texts.iter().map(String::as_str).collect();
        for (i, want) in g.sentence_bleu.iter().enumerate() {
            let others: Vec<&str> = texts
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, t)| *t)
                .collect();
            let got = sentence_bleu(texts[i], &others).unwrap();
            assert!(
                close(got, *want),
                "text {i} of {texts:?}: {got} vs sacreBLEU {want}"
            );
        }
        let got = self_bleu(&texts).unwrap();
        assert!(
            close(got, g.self_bleu),
            "{texts:?}: {got} vs sacreBLEU {}",
            g.self_bleu
        );
    }
}
