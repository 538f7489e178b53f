//! The local judge on the default model: its letter probabilities are those of one forward over
//! the judging prompt (final row, softmax, top 15), the same when a call's comparisons start
//! from each other's prefix cache, and over-long answers are cut to fit.

use adasamp_curate::quality::outcome::{verdict_letter, LetterProbs};
use adasamp_curate::quality::{Comparison, Judge, LocalJudge};
use adasamp_engine::fetch::{cached_path, DEFAULT_MODEL};
use adasamp_engine::{BackendChoice, Feed, LoadOptions};

fn judge(max_seq_len: usize) -> Option<LocalJudge> {
    let path = cached_path(&DEFAULT_MODEL);
    if !path.exists() {
        eprintln!(
            "note: default model absent; run `adasamp model fetch` to enable the local judge tests"
        );
        return None;
    }
    let opts = LoadOptions {
        max_seq_len: Some(max_seq_len),
        max_sequences: Some(4),
        ..Default::default()
    };
    let lm = adasamp_engine::load(Some(&path), BackendChoice::Auto, opts, &mut |_| {}).unwrap();
    Some(LocalJudge::new(lm))
}

#[test]
fn letter_probabilities_are_those_of_the_final_row() {
    let Some(mut judge) = judge(1024) else { return };
    // SmolLM2's verdict letters are single tokens: A = 49, B = 50
    let tok = &judge.model().tokenizer;
    assert_eq!(tok.encode("A", false).unwrap(), [49]);
    assert_eq!(tok.encode("B", false).unwrap(), [50]);
    let q = "What is the capital of France?";
    let (good, bad) = ("The capital of France is Paris.", "I think it is Berlin.");
    let comparisons = [
        Comparison {
            question: q,
            answer_a: good,
            answer_b: bad,
        },
        Comparison {
            question: q,
            answer_a: bad,
            answer_b: good,
        },
    ];
    // one comparison per call: each forward runs alone, as the direct one below
    let verdicts: Vec<LetterProbs> = comparisons
        .iter()
        .map(|c| {
            judge
                .judge(std::slice::from_ref(c))
                .unwrap()
                .remove(0)
                .unwrap()
        })
        .collect();
    let prompts: Vec<Vec<u32>> = comparisons
        .iter()
        .map(|c| judge.prompt_tokens(c).unwrap().0)
        .collect();
    let mut lm = judge.into_model();
    for (tokens, got) in prompts.iter().zip(&verdicts) {
        let seq = lm.model.new_sequence().unwrap();
        let out = lm.model.forward(&[Feed::tokens(seq, tokens)]).unwrap();
        lm.model.free_sequence(seq);
        let row = out.last_row(0);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
        let mut ids: Vec<usize> = (0..row.len()).collect();
        ids.sort_by(|&i, &j| row[j].total_cmp(&row[i]).then(i.cmp(&j)));
        let mut want = LetterProbs::default();
        for &i in &ids[..15] {
            let p = f64::from(row[i] - max).exp() / z;
            match verdict_letter(&lm.tokenizer.decode(&[i as u32], false).unwrap()) {
                Some(adasamp_curate::quality::outcome::Letter::A) => want.a += p,
                Some(adasamp_curate::quality::outcome::Letter::B) => want.b += p,
                None => {}
            }
        }
        assert!(
            want.a + want.b > 0.0,
            "neither letter in the top 15: {want:?}"
        );
        assert!(
            (got.a - want.a).abs() < 1e-4 && (got.b - want.b).abs() < 1e-4,
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn a_call_served_from_the_prefix_cache_gives_the_verdicts_of_each_comparison_alone() {
    let Some(mut judge) = judge(1024) else { return };
    let questions = ["What is the capital of France?", "Name a prime number."];
    let answers = [
        "The capital of France is Paris.",
        "I think it is Berlin.",
        "7 is prime.",
        "Paris, of course; and 7.",
    ];
    // 2 questions × 4 ordered pairs = 8 comparisons in one call: with 4 sequences, the second
    // wave starts from the first wave's caches (template, instructions, question).
    let mut comparisons = Vec::new();
    for q in questions {
        for (a, b) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
            comparisons.push(Comparison {
                question: q,
                answer_a: answers[a],
                answer_b: answers[b],
            });
        }
    }
    let together: Vec<LetterProbs> = judge
        .judge(&comparisons)
        .unwrap()
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    let notes = judge.notes().join("\n");
    let cached: usize = notes
        .split(" from the prefix cache")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no prefix-cache count in {notes}"));
    assert!(cached > 100, "the cache served little: {notes}");
    for (c, got) in comparisons.iter().zip(&together) {
        let alone = judge
            .judge(std::slice::from_ref(c))
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(*got, alone, "{c:?}");
    }
}

#[test]
fn long_answers_are_cut_to_fit_and_a_long_question_fails_alone() {
    let Some(mut judge) = judge(512) else { return };
    let long_a = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    let long_b = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(150);
    let q = "Write something.";
    let ab = Comparison {
        question: q,
        answer_a: &long_a,
        answer_b: &long_b,
    };
    let ba = Comparison {
        question: q,
        answer_a: &long_b,
        answer_b: &long_a,
    };
    let (t1, cut1) = judge.prompt_tokens(&ab).unwrap();
    let (t2, cut2) = judge.prompt_tokens(&ba).unwrap();
    assert!(cut1 && cut2);
    assert!(
        t1.len() <= 511 && t2.len() <= 511,
        "{} {}",
        t1.len(),
        t2.len()
    );
    assert!(t1.len() > 400, "cut far more than needed: {}", t1.len());
    let huge_q = "Why? ".repeat(1000);
    let bad = Comparison {
        question: &huge_q,
        answer_a: "a",
        answer_b: "b",
    };
    let short = Comparison {
        question: q,
        answer_a: "Hello.",
        answer_b: "Hi.",
    };
    let v = judge.judge(&[ab, bad, short]).unwrap();
    assert!(v[0].is_ok() && v[2].is_ok());
    let e = v[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("question is too long"), "{e}");
    assert!(
        judge
            .notes()
            .iter()
            .any(|n| n.contains("1 of 3 judging prompts had both answers cut")),
        "{:?}",
        judge.notes()
    );
}
