"""The README tells the truth: its quick-start commands exist, and every entry-point command in it composes."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
HYDRA_ENTRY_POINTS = ("vae_lab.train", "vae_lab.evaluate", "vae_lab.sample")


def code_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def entry_point_commands() -> list[list[str]]:
    commands = []
    for line in code_lines():
        words = shlex.split(line)
        if "-m" in words and words[words.index("-m") + 1] in HYDRA_ENTRY_POINTS:
            commands.append(words[words.index("-m") + 1 :])
    return commands


def test_readme_starts_with_the_two_make_commands() -> None:
    assert code_lines()[:2] == ["make train", "make test"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^train: setup$", makefile, flags=re.MULTILINE)
    assert re.search(r"^test: setup$", makefile, flags=re.MULTILINE)
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", entry_point_commands(), ids=lambda words: " ".join(words)[:60])
def test_readme_entry_point_command_composes(command: list[str], tmp_path: Path) -> None:
    # `--cfg job` makes Hydra compose the config with these overrides and print it, without running the job.
    module, *overrides = command
    if "-m" in overrides or "--multirun" in overrides:
        overrides = [word for word in overrides if word not in ("-m", "--multirun") and "," not in word]
    overrides = [re.sub(r"<[^>]+>", "x", word) for word in overrides]
    result = subprocess.run(
        [sys.executable, "-m", module, *overrides, "--cfg", "job"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_make_train_passes_overrides_to_the_entry_point(tmp_path: Path, mnist_data_dir: Path) -> None:
    args = f"debug=fast accelerator=cpu callbacks=none logger=none hydra.run.dir={tmp_path}"
    args += f" paths.data_dir={mnist_data_dir}"
    result = subprocess.run(
        ["make", "--no-print-directory", "train", f"ARGS={args} ++trainer.enable_progress_bar=false"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "`Trainer.fit` stopped: `max_epochs=1` reached." in result.stdout + result.stderr
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
