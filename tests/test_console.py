"""What a user sees: the default entry points on a tiny config print each message once, no warning they cannot act
on, no advertisement, a 1-based epoch label, and end with where the results went and how to open them."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, compose_config, small_train_overrides

# A tqdm state (`Epoch 2/2:  50%|...| 1/2 [00:01<00:01, 1.2it/s]`): redrawn many times by design, not a message.
BAR = re.compile(r"\d+/\S+ \[[^\]]*(it/s|s/it)")
# The formats a log line may carry: the file's `[time][logger][LEVEL] - `, Lightning's own handler's `LEVEL: `.
PREFIX = re.compile(r"^(\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - |[A-Z]+: )")
CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # tqdm's, between its bars


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)


def messages(output: str) -> list[str]:
    """Every line printed, without progress-bar states, blank lines, table rules and the log-format prefixes."""
    lines = (PREFIX.sub("", line).strip() for line in re.split(r"[\r\n]", CURSOR_MOVES.sub("", output)))
    return [line for line in lines if line and not BAR.search(line) and not set(line) <= set("-| ")]


def assert_quiet(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert not re.search(r"Warning|warning|deprecated", done.stderr), done.stderr
    everything = done.stdout + done.stderr
    assert "litlogger" not in everything
    repeated = [line for line, count in Counter(messages(everything)).items() if count > 1]
    assert not repeated, repeated


def closing_block(done: subprocess.CompletedProcess | str, heading: str) -> list[str]:
    """The last lines of stdout, from the last one that starts with `heading`."""
    lines = (done if isinstance(done, str) else done.stdout).rstrip().splitlines()
    return lines[max(index for index, line in enumerate(lines) if line.startswith(heading)):]


def test_train_evaluate_and_sample_end_with_what_ran_and_where_it_went(
    tmp_path: Path, mnist_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: each entry point's @hydra.main function given its composed config (Hydra's own pass-through).
    from vae_lab import evaluate, sample, train

    run_dir = tmp_path / "run"
    train.main(compose_config("train", [*small_train_overrides(mnist_data_dir), "++trainer.limit_train_batches=2",
                                        "++trainer.limit_val_batches=1", "data.eval_batch_size=100",
                                        "callbacks/each=[model_checkpoint]"], run_dir))
    block = closing_block(capsys.readouterr().out, "run finished: ")
    assert block[0] == f"run finished: {run_dir}"
    assert re.search(r"val/elbo -\d+\.\d{4}", block[1])
    assert block[-1] == f"  view it: tensorboard --logdir {run_dir}"
    assert '"status": "completed"' in (run_dir / "result.json").read_text()

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    evaluate.main(compose_config("eval", [f"ckpt_path={ckpt}", f"paths.data_dir={mnist_data_dir}", "num_images=10",
                                          "iwae_samples=2", "device=cpu"], tmp_path / "evaluate"))
    block = closing_block(capsys.readouterr().out, "evaluated ")
    assert block[0] == f"evaluated {ckpt} (10 test images, k=2)" and "test/iwae -" in block[1]
    assert block[-2] == f"  wrote {ckpt.parent / 'metrics.json'} and {ckpt.parent / 'iwae_k_curve.png'}"
    assert block[-1] == f"  view it: tensorboard --logdir {run_dir}"

    sample.main(compose_config("sample", [f"ckpt_path={ckpt}", "n=4", f"output_dir={tmp_path}"], tmp_path / "sample"))
    assert closing_block(capsys.readouterr().out, "sampled ") == [
        f"sampled {ckpt} (n=4, seed=0)", f"  wrote {tmp_path / 'samples.png'}",
        f"  view it: tensorboard --logdir {run_dir}"]


@pytest.mark.slow  # three processes: make test-all
def test_default_train_evaluate_and_sample_print_each_message_once_and_end_with_the_run(
    tmp_path: Path, mnist_data_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    done = run("vae_lab.train", "accelerator=cpu", f"paths.data_dir={mnist_data_dir}", f"hydra.run.dir={run_dir}",
               "trainer.max_epochs=2", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
               "data.eval_batch_size=100")
    assert_quiet(done)
    assert "GPU available" in done.stdout  # Lightning's lines are shown (once: assert_quiet)
    # Lightning's own progress bar (rich where `rich` is installed, else tqdm) counts epochs from 0: "Epoch 1/1"
    assert "Epoch 1/1" in done.stdout and "Epoch 2/" not in done.stdout
    assert re.search(r"encoder\W+Encoder", done.stdout)  # Lightning's model summary stays

    block = closing_block(done, "run finished: ")
    assert block[0] == f"run finished: {run_dir}"
    assert re.search(r"val/elbo -\d+\.\d{4}", block[1])
    assert block[-2:] == [f"  log: {run_dir / 'train.log'}", f"  view it: tensorboard --logdir {run_dir}"]

    log = (run_dir / "train.log").read_text()
    assert "`Trainer.fit` stopped: `max_epochs=2` reached." in log and "data: 70000 grey 28x28 images" in log
    assert log.count("GPU available") == 1 and "litlogger" not in log

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    evaluated = run("vae_lab.evaluate", f"ckpt_path={ckpt}", f"paths.data_dir={mnist_data_dir}", "num_images=10",
                    "iwae_samples=2")
    assert_quiet(evaluated)
    block = closing_block(evaluated, "evaluated ")
    assert block[0] == f"evaluated {ckpt} (10 test images, k=2)" and "test/iwae -" in block[1]
    assert block[-2] == f"  wrote {ckpt.parent / 'metrics.json'} and {ckpt.parent / 'iwae_k_curve.png'}"
    assert block[-1] == f"  view it: tensorboard --logdir {run_dir}"

    sampled = run("vae_lab.sample", f"ckpt_path={ckpt}", "n=4", f"output_dir={tmp_path}")
    assert_quiet(sampled)
    assert closing_block(sampled, "sampled ") == [
        f"sampled {ckpt} (n=4, seed=0)", f"  wrote {tmp_path / 'samples.png'}",
        f"  view it: tensorboard --logdir {run_dir}"]
