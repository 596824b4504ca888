"""The per-machine kernel choice (callbacks/runtime.py), with fake timings: no timed tests."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from vae_lab.callbacks import runtime
from vae_lab.callbacks.runtime import choose_decoder_path
from vae_lab.models.cvae import CVAE


def fake_timer(seconds: dict[str, float], calls: list[str]):
    def time_step(name: str) -> float:
        calls.append(name)
        return seconds[name]
    return time_step


def test_picks_the_fastest_and_caches_it(tmp_path: Path) -> None:
    calls: list[str] = []
    cache = tmp_path / "fast_paths.json"
    choice = runtime.choose(["onednn", "gemm"], fake_timer({"onednn": 0.050, "gemm": 0.030}, calls), "k", cache)
    assert choice.path == "gemm" and not choice.cached
    assert choice.seconds_per_step == {"onednn": 0.050, "gemm": 0.030}
    assert calls == ["onednn", "gemm"] * runtime.ROUNDS  # alternating rounds
    assert json.loads(cache.read_text()) == {"k": "gemm"}
    again = runtime.choose(["onednn", "gemm"], fake_timer({}, calls := []), "k", cache)  # nothing timed
    assert again.path == "gemm" and again.cached and calls == []


@pytest.mark.parametrize("gemm_seconds", [0.050, 0.060, 0.049])  # equal, slower, faster by less than the margin
def test_keeps_todays_path_unless_clearly_faster(gemm_seconds: float, tmp_path: Path) -> None:
    choice = runtime.choose(["onednn", "gemm"], fake_timer({"onednn": 0.050, "gemm": gemm_seconds}, []), "k",
                            tmp_path / "c.json")
    assert choice.path == "onednn"


def test_median_of_rounds_not_one_lucky_round(tmp_path: Path) -> None:
    rounds = iter([0.050, 0.010, 0.050, 0.060, 0.050, 0.060])  # gemm fast once, slow twice
    choice = runtime.choose(["onednn", "gemm"], lambda name: next(rounds), "k", tmp_path / "c.json")
    assert choice.path == "onednn"


def test_cache_keys_apart_machines_and_shapes(tmp_path: Path) -> None:
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps({runtime.machine_key(batch=100): "gemm"}))
    assert runtime.choose(["onednn", "gemm"], fake_timer({}, []), runtime.machine_key(batch=100), cache).cached
    other = runtime.choose(["onednn", "gemm"], fake_timer({"onednn": 1.0, "gemm": 2.0}, []),
                           runtime.machine_key(batch=32), cache)
    assert other.path == "onednn" and not other.cached
    assert json.loads(runtime.machine_key(batch=100))["cpu"]  # model and SIMD flags from /proc/cpuinfo, or "?"


def test_fp32_keeps_todays_exact_numbers_and_the_run_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = CVAE(latent_dim=4)
    monkeypatch.setattr(runtime, "timed", lambda step, steps: pytest.fail("fp32 has one exact candidate: no trial"))
    state = torch.get_rng_state()
    choice = choose_decoder_path(model, batch=4, precision="32-true")
    assert choice.path == "onednn" and model.decoder.stride2 == "onednn"
    assert "gemm" in choice.excluded  # other rounding: never the fp32 default
    assert torch.equal(torch.get_rng_state(), state)  # the run's random stream is untouched
    assert "stride2" not in model.hparams and "fast_path" not in model.state_dict()


def test_bf16_times_both_paths_and_sets_the_winner(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = CVAE(latent_dim=4)
    fake = {"onednn": 0.05, "gemm": 0.02}
    monkeypatch.setattr(runtime, "timed", lambda step, steps: (step(), fake[model.decoder.stride2])[1])
    choice = choose_decoder_path(model, batch=4, precision="bf16-mixed",
                                 context=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert choice.path == "gemm" and model.decoder.stride2 == "gemm" and choice.seconds_per_step == fake
    assert choose_decoder_path(model, batch=4, precision="bf16-mixed").cached  # same machine and shape: cached


def test_the_choice_is_recorded_in_the_manifest(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from vae_lab.callbacks.manifest import RunManifest

    model = CVAE(latent_dim=4)
    model.fast_path = asdict(runtime.Choice("gemm", cached=False, seconds_per_step={"onednn": 0.05, "gemm": 0.03}))
    trainer = SimpleNamespace(is_global_zero=True, datamodule=None, accelerator=object(), world_size=1, num_nodes=1,
                              strategy=SimpleNamespace(root_device="cpu"), precision="bf16-mixed", ckpt_path=None)
    RunManifest(str(tmp_path), {"seed": 1}).on_fit_start(trainer, model)
    recorded = json.loads((tmp_path / "manifest.json").read_text())["runtime"]
    assert recorded["path"] == "gemm" and recorded["seconds_per_step"] == {"onednn": 0.05, "gemm": 0.03}
