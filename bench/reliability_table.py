"""Every input class of the reliability corpus through every image verb: the table of issue 12.

    .venv/bin/python bench/reliability_table.py

Builds the corpus of tests/test_reliability.py in a temp folder, runs each file alone through each
verb (a subprocess, as a user would), and prints one row per file: exit code, and "ok" / "one line"
(a one-line error naming the file, no traceback) / "TRACEBACK" / "temp left".
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_reliability import build_corpus  # noqa: E402

VERBS = {"bicubic": [], "upscale": [], "stylize": ["--style", "monet"], "inpaint": ["--box", "0,0,2,2"]}


def verdict(result: subprocess.CompletedProcess, name: str, folder: Path) -> str:
    if "Traceback" in result.stderr:
        return f"TRACEBACK ({result.returncode})"
    if list(folder.rglob(".*.part")):
        return f"temp left ({result.returncode})"
    if result.returncode == 0:
        return "ok"
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower() or "failed" in line.lower()]
    named = any(Path(name).stem in line for line in errors)
    return f"{'one line' if named else 'unnamed error'} ({result.returncode})"


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        corpus = build_corpus(Path(temp) / "corpus")
        names = sorted(path.name for path in corpus.iterdir())
        print("| input | " + " | ".join(VERBS) + " |")
        print("|---" * (len(VERBS) + 1) + "|")
        for name in names:
            cells = []
            for verb, extra in VERBS.items():
                out = Path(temp) / f"out-{verb}"
                out.mkdir(exist_ok=True)
                result = subprocess.run([sys.executable, "-m", "imgan", verb, str(corpus / name), "-o", str(out),
                                         "--threads", "1", *extra], capture_output=True, text=True, timeout=300)
                cells.append(verdict(result, name, out))
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
