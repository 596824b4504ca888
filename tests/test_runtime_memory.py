"""callbacks.runtime's keep_freed_memory: freed tensor memory is reused, not page-faulted in again each step.

Counted in page faults of a fresh process (a behaviour of the allocator), never in seconds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

FAULTS_PER_STEP = """
import json, resource, sys, torch
from vae_lab.callbacks.runtime import keep_freed_memory
from vae_lab.models.cvae import CVAE
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.set_num_threads(1)
torch.manual_seed(0)
model = CVAE(latent_dim=50)
x = (torch.rand(100, 1, 28, 28) > 0.5).float()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    (-model(x)[0].mean()).backward()
for _ in range(3):
    step()
start = faults()
for _ in range(3):
    step()
print(json.dumps({"applied": applied, "faults_per_step": (faults() - start) / 3}))
"""


def faults_per_step(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    default, kept = faults_per_step("default"), faults_per_step("keep")  # a conv VAE's training step, batch 100
    assert kept["applied"] is True
    assert default["faults_per_step"] > 1000  # activations mapped afresh and faulted in, page by page (~12,000 here)
    assert kept["faults_per_step"] < 0.05 * default["faults_per_step"]  # the same pages, reused


def test_runtime_applies_it_on_cpu_only_and_it_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from vae_lab.callbacks import runtime
    from vae_lab.models.cvae import CVAE

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append("kept") or True)
    runtime.Runtime(fast_path=False).setup(None, CVAE(latent_dim=2), "fit")
    runtime.Runtime(fast_path=False, keep_freed_memory=False).setup(None, CVAE(latent_dim=2), "fit")
    assert calls == ["kept"]
