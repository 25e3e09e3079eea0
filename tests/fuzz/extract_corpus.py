#!/usr/bin/env python3
"""Writes the fuzz seed corpus: the YAML files under samples/ and tests/config/, and the YAML
snippets (C++ string literals, adjacent ones joined) in tests/config/*.cpp, one file each under
tests/fuzz/corpus/. Re-run after adding config tests:  tests/fuzz/extract_corpus.py
"""
import hashlib
import pathlib
import re
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"

LITERAL = re.compile(r'R"([^(]*)\((.*?)\)\1"|"((?:[^"\\\n]|\\.)*)"', re.S)
BETWEEN = re.compile(r'^(\s|//[^\n]*\n|/\*.*?\*/)*$', re.S)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def unescape(text: str) -> str:
    def one(m: re.Match) -> str:
        c = m.group(1)
        if c.startswith("x"):
            return chr(int(c[1:], 16))
        return ESCAPES.get(c, c)
    return re.sub(r"\\(x[0-9a-fA-F]{2}|.)", one, text)


def snippets(source: str):
    pieces = []  # (start, end, text)
    for m in LITERAL.finditer(source):
        text = m.group(2) if m.group(2) is not None else unescape(m.group(3))
        pieces.append((m.start(), m.end(), text))
    joined, current, last_end = [], None, None
    for start, end, text in pieces:
        if current is not None and BETWEEN.match(source[last_end:start]):
            current += text
        else:
            if current is not None:
                joined.append(current)
            current = text
        last_end = end
    if current is not None:
        joined.append(current)
    # YAML-looking: a mapping key somewhere, or a flow collection.
    return [s for s in joined
            if re.search(r"^\s*[\w.-]+\s*:|\{.*:.*\}", s, re.M)
            and not re.match(r"^[\w./<>-]+:\d+:\d+: ", s)]  # not an expected error message


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    seen = set()

    def write(name: str, text: str) -> None:
        digest = hashlib.sha1(text.encode()).hexdigest()
        if digest in seen:
            return
        seen.add(digest)
        (OUT / f"{name}-{digest[:10]}.yaml").write_text(text, encoding="utf-8")

    for path in sorted([*ROOT.glob("samples/**/*.yaml"), *ROOT.glob("tests/config/**/*.yaml")]):
        write(f"file-{path.stem}", path.read_text(encoding="utf-8"))
    for path in sorted(ROOT.glob("tests/config/**/*.cpp")):
        for text in snippets(path.read_text(encoding="utf-8")):
            write(f"{path.stem}", text)
    print(f"{len(seen)} seeds in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
