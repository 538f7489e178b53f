#!/usr/bin/env python3
"""Writes a real-text corpus for `adasamp bench-index --text`, from what every machine with the
Rust toolchain and Python already has: the prose of the Rust documentation books (the text of
each HTML page's <main>, one document per page) and the Python standard library's source (one
document per .py file). Prints the files written and their sizes.

usage: scripts/index-bench-corpus.py OUT_DIR
"""
import html.parser
import json
import pathlib
import subprocess
import sys
import sysconfig

BOOKS = ["book", "reference", "nomicon", "rust-by-example", "cargo", "rustc", "edition-guide",
         "embedded-book", "unstable-book", "rustdoc", "style-guide", "error_codes"]


class MainText(html.parser.HTMLParser):
    """Collects the text inside <main>, without <script>/<style>."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.skip = 0
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self.depth += 1
        elif tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "main":
            self.depth = max(0, self.depth - 1)
        elif tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data):
        if self.depth and not self.skip:
            self.parts.append(data)


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                             check=True).stdout.strip()
    docs = pathlib.Path(sysroot) / "share/doc/rust/html"
    with open(out / "rust-docs.jsonl", "w") as f:
        for book in BOOKS:
            for page in sorted((docs / book).rglob("*.html")):
                p = MainText()
                p.feed(page.read_text(errors="replace"))
                text = "".join(p.parts).strip()
                if text:
                    f.write(json.dumps({"text": text, "source": str(page.relative_to(docs))}) + "\n")
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    with open(out / "python-stdlib.jsonl", "w") as f:
        for src in sorted(stdlib.rglob("*.py")):
            if "site-packages" in src.parts or "dist-packages" in src.parts:
                continue
            text = src.read_text(errors="replace")
            if text.strip():
                f.write(json.dumps({"text": text, "source": str(src.relative_to(stdlib))}) + "\n")
    for name in ("rust-docs.jsonl", "python-stdlib.jsonl"):
        print(out / name, (out / name).stat().st_size)


if __name__ == "__main__":
    main()
