"""`make floor` (benchmarks/flop_floor.py): its GEMM list is exactly the model's counted work; its options."""

import re

import pytest

from tests.conftest import REPO_ROOT, benchmark_module


@pytest.fixture(scope="module")
def floor():
    with benchmark_module("flop_floor") as module:  # which imports train_speed, as it does in benchmarks/
        yield module


def test_make_floor_runs_the_script() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^floor: setup\n\tcd benchmarks && \.\./\$\(PY\) flop_floor.py \$\(ARGS\)$", makefile,
                     flags=re.MULTILINE)


@pytest.mark.parametrize(("batch", "latent"), [(100, 50), (3, 2)])
def test_gemm_list_is_exactly_the_work_torch_counts(floor, batch: int, latent: int) -> None:
    per_image_step, per_decoder_pass = floor.counted_flop(batch, latent)
    assert sum(g.flop for g in floor.training_gemms(batch, latent)) == per_image_step * batch
    assert sum(g.flop for g in floor.decoder_gemms(batch, latent)) == per_decoder_pass * batch
    if (batch, latent) == (100, 50):  # the figures the README quotes
        assert (per_image_step, per_decoder_pass) == (34_478_592, 9_640_064)


def test_bad_options_are_refused(floor, capsys: pytest.CaptureFixture[str]) -> None:
    assert floor.parse_args(["--steps", "30", "--repeats", "5"]).steps == 30
    with pytest.raises(SystemExit):
        floor.parse_args(["--steps", "3"])
    assert "--steps=3, --repeats=20, --gemm-size=2048 are not allowed" in capsys.readouterr().err
