"""How the networks run, chosen apart from what they compute: memory layout, kernels and torch.compile.

Applied when the fit (or test) sets up, to whatever model is trained, and never stored as a model
hyperparameter: a checkpoint records what the model is, not how it was run.
  channels_last  NHWC layout for 4-D weights (oneDNN's preferred one on CPU, tensor cores' on GPU); inputs follow
                 the weights. A no-op for models without convolutions.
  fast_path      true: at fit start on a CPU, time the networks' candidate kernels (`Decoder.stride2`: oneDNN or
                 phase GEMMs) for a few steps and keep the fastest (callbacks/fast_path.py: cached per machine,
                 recorded in manifest.json; in fp32 only a bit-identical path may replace today's, and none is
                 yet, so fp32 fits run no trial). false: today's path.
  compile        null (eager) | default | reduce-overhead (CUDA graphs, GPU) | max-autotune: torch.compile of the
                 encoder and decoder, lazily at the first step; parameter names (checkpoints) are unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from vae_lab.callbacks import fast_path
from vae_lab.config_checks import check_arguments

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
TRIAL_STEPS = 3  # timed steps per candidate per round (x ROUNDS rounds): ~1-3 s of a fit on a 2-core CPU


class Runtime(Callback):
    def __init__(self, channels_last: bool = True, compile: CompileMode | None = None,
                 fast_path: bool = True) -> None:
        check_arguments(Runtime, locals(), "callbacks.runtime")
        self.channels_last, self.compile, self.fast_path = channels_last, compile, fast_path
        self._applied = False

    def setup(self, trainer: L.Trainer | None, pl_module: L.LightningModule, stage: str) -> None:
        if self._applied:
            return
        self._applied = True
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.fast_path and stage == "fit" and trainer is not None and trainer.strategy.root_device.type == "cpu":
            batch = getattr(trainer.datamodule, "hparams", {}).get("batch_size", 100)
            context = trainer.precision_plugin.forward_context
            pl_module.fast_path = choose_decoder_path(pl_module, batch, str(trainer.precision), context).as_dict()
        if self.compile is not None:
            for network in (pl_module.encoder, pl_module.decoder):
                network.compile(mode=self.compile)


def choose_decoder_path(model: Any, batch: int, precision: str, context: Any = contextlib.nullcontext
                        ) -> fast_path.Choice:
    """Set `model.decoder.stride2` to the fastest of its paths on this machine (a no-op without the attribute)."""
    decoder = model.decoder
    if not hasattr(decoder, "stride2"):
        return fast_path.Choice(path="none", cached=False)
    candidates, excluded = ["onednn", "gemm"], {}
    x = (torch.rand(batch, *model.image_shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    x = x.to(memory_format=torch.channels_last) if x.dim() == 4 else x
    parameters = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(path: str) -> list[torch.Tensor]:
        decoder.stride2 = path
        with torch.random.fork_rng(devices=[]), context():  # the run's RNG stream is left as it was
            torch.manual_seed(0)
            loss = -model(x)[0].mean()
        return [loss.detach(), *torch.autograd.grad(loss, parameters)]

    if not precision.startswith(("bf16", "16")):  # fp32 / fp64: only a path with today's exact numbers
        # The phase GEMMs sum the taps in another order (equal to ~1e-7, tests/test_networks.py), never bitwise:
        # known without running a step, so an fp32 fit pays nothing for the choice.
        excluded = {path: f"not bit-identical to onednn in {precision}" for path in candidates[1:]}
        candidates = candidates[:1]
    key = fast_path.machine_key(model=type(model).__name__, latent_dim=model.latent_dim, batch=batch,
                                precision=precision, threads=torch.get_num_threads(), candidates=candidates)
    choice = fast_path.choose(candidates, lambda path: fast_path.timed(lambda: loss_and_grads(path), TRIAL_STEPS),
                              key, fast_path.cache_file())
    decoder.stride2 = choice.path
    choice.excluded = excluded
    return choice
