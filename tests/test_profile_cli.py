"""`make profile` (benchmarks/profile_train.py): op grouping, the printed shares, and one real profiled run."""

import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT, benchmark_module


@pytest.fixture(scope="module")
def profiler_script() -> Iterator[ModuleType]:
    with benchmark_module("profile_train") as module:
        yield module


def test_make_profile_runs_the_script() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^profile: setup\n\t\$\(PY\) benchmarks/profile_train.py \$\(ARGS\)$", makefile,
                     flags=re.MULTILINE)


def test_ops_are_grouped_by_kind_of_work(profiler_script) -> None:
    kind_of = profiler_script.kind_of
    assert kind_of("aten::convolution_backward") == "convolution backward"
    assert kind_of("aten::mkldnn_convolution") == kind_of("aten::_convolution") == "convolution forward"
    assert kind_of("aten::threshold_backward") == kind_of("aten::log_sigmoid_forward") == kind_of("aten::clamp_min")
    assert kind_of("Optimizer.step#Adam.step").startswith("Python around the step")
    assert kind_of("aten::_fused_adam_") == "Adam (the fused kernel)"
    assert kind_of("aten::isfinite") == profiler_script.OTHER


def test_profile_prints_shares_and_milliseconds_per_step(profiler_script, capsys) -> None:
    report = {"steps": 4, "self_cpu_us": {"aten::convolution_backward": 6000.0, "aten::_convolution": 3000.0,
                                          "aten::mm": 1000.0}}
    profiler_script.print_profile(report, top=2)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"convolution backward\s+60\.0%\s+1\.50", lines[1])  # 6 ms over 4 steps
    assert re.fullmatch(r"dense layers \(matmul\)\s+10\.0%\s+0\.25", lines[3])
    assert re.fullmatch(r"all \(self CPU time, profiler on\)\s+100\.0%\s+2\.50", lines[4])
    assert lines[-2].startswith("aten::convolution_backward") and lines[-1].startswith("aten::_convolution")


def test_bad_step_counts_are_refused(profiler_script, capsys) -> None:
    with pytest.raises(SystemExit):
        profiler_script.parse_args(["--steps", "0"])
    assert "--warmup-steps=20 and --steps=0 are not allowed; use 1 or more, 600 (one epoch) at most together." in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        profiler_script.parse_args(["--steps", "590"])


@pytest.mark.slow  # the script in its own process: make test-all
def test_a_real_profiled_run_of_train(mnist_data_dir) -> None:
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "profile_train.py"), "--warmup-steps", "2",
               "--steps", "3", "--data-dir", str(mnist_data_dir), "logger=none", "callbacks=none"]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    kinds_block = result.stdout.split("\n\ntop ")[0].splitlines()[1:-1]  # between the header and the "all" line
    shares = {line[:72].strip(): float(line[72:].split()[0].rstrip("%")) for line in kinds_block}
    assert shares["convolution backward"] > 10 and shares["convolution forward"] > 5
    assert abs(sum(shares.values()) - 100) < 0.5
