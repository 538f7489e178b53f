"""Reference values for adasamp's self-BLEU (crates/curate/src/diversity/bleu.rs).

Computes, with sacreBLEU itself, the 13a tokens of varied texts and the self-BLEU of groups of
them: each text's `sentence_bleu` (defaults: 13a, exp smoothing, effective order) against the
group's other texts as references, the mean over the group (summed in order, divided by the
count). Writes self_bleu.json beside this script.

    python3 -m venv venv && venv/bin/pip install sacrebleu==2.6.0
    venv/bin/python crates/curate/tests/data/make_self_bleu.py
"""

import json
import random
import sys
from pathlib import Path

import sacrebleu
from sacrebleu.metrics.bleu import BLEU

GROUPS = [
    # Near-duplicates: high self-BLEU.
    [
        "The quick brown fox jumps over the lazy dog.",
        "The quick brown fox jumped over the lazy dog!",
        "A quick brown fox jumps over the lazy dog.",
        "The quick brown fox jumps over the lazy dogs.",
    ],
    # Numbers, separators, dashes, currency.
    [
        "In 2023, revenue grew 12.5% to $3,400,000.00 (pages 10-12).",
        "Revenue grew by 12.5 % in 2023: $3.4M, see pp. 10 - 12.",
        "Growth: 12,5% -- 3.400.000 dollars; years 2022-2023.",
    ],
    # Unicode: accents, CJK, emoji, non-breaking and ideographic spaces, the ASCII separators.
    [
        "Café déjà vu — naïve résumé, coöperate.",
        "日本語の文です。 これはテスト。",
        "Emoji 😀 and symbols ∑ ∞ ≠, mixed\u00a0spaces\u3000here.",
        "Separators\u001cinside\u001fwords and a zero\u200bwidth space.",
        "Café déjà vu, naïve résumé!",
    ],
    # Empty and whitespace-only texts, very short texts.
    ["", "a", "a", "  \t \n"],
    ["", ""],
    ["x", "y"],
    ["Yes.", "Yes", "yes."],
    # HTML escapes, <skipped>, line breaks and hyphenated line breaks, trailing whitespace.
    [
        "Use &lt;b&gt; &amp; &quot;quotes&quot; here &amp;amp; there.\n",
        "Use <b> & \"quotes\" here &amp; there.   ",
        "hyphen-\nated line\nbreaks <skipped> and more-\n",
        "hyphenated line breaks and more",
    ],
    # Punctuation runs and periods/commas next to digits and letters.
    [
        "Wait... what?! (Really?) [yes] {no} a.b,c 1.2,3 x-1 2-y 3-4",
        "Wait ... what ? ! Really ? yes no a . b , c 1.2,3",
        "...,,,---;;;:::!!!???",
        "'single' `back` ~tilde~ ^caret^ _under_ |pipe| \\back\\ /slash/",
    ],
    # Longer paragraphs with partial overlap (orders 3 and 4 with some matches).
    [
        "Once upon a time, in a small village by the sea, there lived an old fisherman who "
        "went out every morning before dawn. He caught little, but he never complained.",
        "Once upon a time, in a quiet village near the sea, there lived an old fisherman. "
        "Every morning he sailed out before dawn, and he never complained about his catch.",
        "Long ago, by the sea, an old fisherman lived in a small village; each morning he went "
        "out before dawn and, though he caught little, he never once complained.",
        "The stock market closed higher on Tuesday as technology shares rallied.",
    ],
    # Hypothesis lengths tying between two reference lengths (closest-length tie rule).
    ["one two three", "one two three four five", "one two three four", "one two"],
    ["a b c d e", "a b c", "a b c d e f g", "a b c d e"],
]


def seeded_groups():
    """Word salad over a small vocabulary: many shared n-grams, counts above 1, varied
    lengths (seeded, so the file is reproducible)."""
    rng = random.Random(20240612)
    vocab = "the a cat dog sat ran on under mat hat , . ! and of 1 2 3-4 5.6".split()
    groups = []
    for size in [2, 3, 5, 8, 8, 8, 16]:
        group = []
        for _ in range(size):
            n = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 40])
            group.append(" ".join(rng.choice(vocab) for _ in range(n)))
        groups.append(group)
    return groups


def main():
    bleu = BLEU()  # only for its segment pre-processing: rstrip + 13a
    groups = []
    for texts in GROUPS + seeded_groups():
        scores = []
        for i, hyp in enumerate(texts):
            refs = texts[:i] + texts[i + 1:]
            scores.append(sacrebleu.sentence_bleu(hyp, refs).score)
        total = 0.0
        for s in scores:
            total += s
        groups.append({
            "texts": texts,
            "tokens": [bleu._preprocess_segment(t).split() for t in texts],
            "sentence_bleu": scores,
            "self_bleu": total / len(texts),
        })
    out = {
        "sacrebleu_version": sacrebleu.__version__,
        "python_version": sys.version.split()[0],
        "python_whitespace": [c for c in range(0x110000) if chr(c).isspace()],
        "groups": groups,
    }
    path = Path(__file__).with_name("self_bleu.json")
    path.write_text(json.dumps(out, ensure_ascii=True, indent=1) + "\n")
    print(f"wrote {path}: {len(groups)} groups")


if __name__ == "__main__":
    main()
