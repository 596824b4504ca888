"""Issue 24's size measure: `wc -l` of the plumbing, per file and in total (goal: <= 1,000 lines).

Plumbing is every `.py` file under `src/` except the model code (`vae_lab/{models,networks,data}/` and modules
named `objectives*`, `likelihoods*`, `priors*`, `posteriors*`), the entry points (`train.py`, `evaluate.py`,
`sample.py`, `report.py`), the image callbacks and empty `__init__.py` files. Everything else counts, wherever it
moved. `--files` prints one line per file.

    python benchmarks/line_counts.py [--files]
"""

from __future__ import annotations

import argparse
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MODEL_FOLDERS = ("vae_lab/models/", "vae_lab/networks/", "vae_lab/data/")
MODEL_MODULES = ("objectives", "likelihoods", "priors", "posteriors")
ENTRY_POINTS = ("train", "evaluate", "sample", "report")
IMAGE_CALLBACKS = ("epoch_images", "gif", "latent_manifold", "reconstructions", "sample_grid", "posterior")
GOAL = 1000


def kind(relative: str, text: str) -> str:
    """`model`, `entry point`, `image callback`, `empty` (not counted) or `plumbing`."""
    parts = relative.split("/")
    if relative.startswith(MODEL_FOLDERS) or (parts[0] == "vae_lab" and parts[1].startswith(MODEL_MODULES)):
        return "model"
    if relative in {f"vae_lab/{name}.py" for name in ENTRY_POINTS}:
        return "entry point"
    if relative in {f"vae_lab/callbacks/{name}.py" for name in IMAGE_CALLBACKS}:
        return "image callback"
    if parts[-1] == "__init__.py" and not text.strip():
        return "empty"
    return "plumbing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", action="store_true", help="one line per file")
    args = parser.parse_args()
    totals: dict[str, list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        relative, text = path.relative_to(SRC).as_posix(), path.read_text()
        group, lines = kind(relative, text), len(text.splitlines())
        files_lines = totals.setdefault(group, [0, 0])
        files_lines[0] += 1
        files_lines[1] += lines
        if args.files and group == "plumbing":
            print(f"{lines:5}  src/{relative}")
    for group, (files, lines) in sorted(totals.items()):
        print(f"{group:15} {files:3} files {lines:6} lines")
    print(f"plumbing: {totals.get('plumbing', [0, 0])[1]} lines (goal <= {GOAL})")


if __name__ == "__main__":
    main()
