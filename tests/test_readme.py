"""The README is a manual: short, undated, starting with the install and naming the test commands it promises.

Its commands are run, and its paths and names checked, by tests/test_docs.py with those of docs/.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def bash_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_is_at_most_300_lines() -> None:
    assert len(README.splitlines()) <= 300


def test_readme_starts_with_the_install_and_names_both_test_commands() -> None:
    lines = bash_lines()
    assert lines[0] == "make setup"
    assert {"make train", "make test", "make test-all"} <= set(lines)
    for target in ("setup", "train", "test", "test-all"):
        assert re.search(rf"^{target}:", MAKEFILE, flags=re.MULTILINE), target
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_readme_holds_no_dated_measurement_and_no_history() -> None:
    # Figures with their machine and date live in docs/performance.md, history in CHANGELOG.md.
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", README)
    assert not re.findall(r"\b(?:[Bb]efore|[Uu]ntil) [^.]*\bit was\b", README)
    assert not re.findall(r"\b(?:AMD|Intel|Xeon|EPYC|vCPU)\b", README)


@pytest.mark.slow
def test_make_train_passes_overrides_to_the_entry_point(tmp_path: Path, mnist_data_dir: Path) -> None:
    args = f"debug=fast accelerator=cpu callbacks=none logger=none hydra.run.dir={tmp_path}"
    args += f" paths.data_dir={mnist_data_dir} ++trainer.enable_progress_bar=false"
    result = subprocess.run(["make", "--no-print-directory", "train", f"ARGS={args}"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
