"""Issue 12's size measure: lines of the code *around* the models against the *core*, per file and in total.

Core: networks, objectives, the LightningModules, the DataModules and batching. Around: config checking, resume,
checkpoints, RNG state, manifest, NaN guard, sweep bookkeeping and report, throughput and the runtime choice.
Not counted (as the issue says): the image and console callbacks, the MNIST file source, the entry points.
Two figures per file: all lines (`wc -l`) and code lines (no blank, comment or docstring lines).

    python benchmarks/line_counts.py [--files]
"""

from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = ("vae_lab/networks/", "vae_lab/models/", "vae_lab/data/", "vae_lab/objectives.py")
NOT_COUNTED = ("vae_lab/data/mnist_files.py", "vae_lab/train.py", "vae_lab/evaluate.py", "vae_lab/sample.py",
               "vae_lab/console.py", "vae_lab/__init__.py", "vae_lab/callbacks/__init__.py")
IMAGE_AND_CONSOLE_CALLBACKS = ("gif", "sample_grid", "reconstructions", "latent_manifold", "epoch_images",
                               "posterior", "hparams", "tensorboard", "progress_bar", "model_summary", "epoch_log")


def kind(relative: str) -> str:
    callbacks = {f"vae_lab/callbacks/{name}.py" for name in IMAGE_AND_CONSOLE_CALLBACKS}
    if relative in NOT_COUNTED or relative in callbacks:
        return "not counted"
    return "core" if relative.startswith(CORE) else "around"


def code_lines(text: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", action="store_true", help="one line per file")
    args = parser.parse_args()
    totals: dict[str, list[int]] = {"core": [0, 0, 0], "around": [0, 0, 0], "not counted": [0, 0, 0]}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        text = path.read_text()
        lines, code = len(text.splitlines()), code_lines(text)
        group = kind(relative)
        totals[group][0] += 1
        totals[group][1] += lines
        totals[group][2] += code
        if args.files:
            print(f"{group:12} {lines:5} {code:5}  {relative}")
    for group, (files, lines, code) in totals.items():
        print(f"{group:12} {files:3} files {lines:6} lines {code:6} code lines")
    core, around = totals["core"], totals["around"]
    print(f"around / core: {around[1] / core[1]:.2f}x lines, {around[2] / core[2]:.2f}x code lines (goal <= 1.5x)")


if __name__ == "__main__":
    main()
