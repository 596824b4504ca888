"""Speed options change how the model runs, not what it computes."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vae_lab.callbacks.runtime import Runtime
from vae_lab.errors import exit_on_user_error
from vae_lab.models.cvae import CVAE
from vae_lab.train import build


def _model(seed: int = 0) -> CVAE:
    torch.manual_seed(seed)
    return CVAE(latent_dim=50)


def _run_with(model: CVAE, **options: object) -> CVAE:
    Runtime(**options).setup(None, model, "fit")  # what Lightning calls when the fit sets up
    return model


def test_channels_last_computes_the_same_elbo_and_step() -> None:
    x = (torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    results = []
    for channels_last in (False, True):
        model = _run_with(_model(), channels_last=channels_last)
        optimizer = model.configure_optimizers()
        torch.manual_seed(2)  # the same eps for both models
        loss = -model(x)[0].mean()
        loss.backward()
        optimizer.step()
        results.append((loss.detach(), model.decoder.deconv2.weight.detach().clone(), optimizer.defaults["fused"]))
    (plain_loss, plain_w, plain_fused), (fast_loss, fast_w, fast_fused) = results
    assert plain_fused and fast_fused  # fused Adam on the CPU, always
    assert _run_with(_model(), channels_last=True).encoder.conv2.weight.is_contiguous(
        memory_format=torch.channels_last)
    assert "channels_last" not in _model().hparams  # how a model runs is not stored in its checkpoints
    torch.testing.assert_close(fast_loss, plain_loss, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(fast_w, plain_w, rtol=1e-5, atol=1e-6)  # one Adam step of 1e-4 from the same weights


def test_compile_option_keeps_parameter_names() -> None:
    eager, compiled = _model(), _run_with(_model(), compile="default")  # compiled lazily: nothing runs here
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert compiled.encoder._compiled_call_impl is not None and eager.encoder._compiled_call_impl is None


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("callbacks.runtime.compile=fast", "use null or one of default, reduce-overhead, max-autotune"),
        ("callbacks.runtime.channels_last=maybe", "use true or false"),
        ("data.data_device=gpu0", "use auto"),
    ],
)
def test_bad_speed_options_fail_in_one_sentence(override: str, allowed: str, tmp_path: Path, capsys) -> None:
    key = override.split("=")[0]
    cfg = compose_config("train", [override], tmp_path)
    node = key.rsplit(".", 1)[0]  # what the option's constructor is built from: callbacks.runtime, data
    with pytest.raises(SystemExit) as exited:
        exit_on_user_error(lambda c: build(OmegaConf.select(c, node), node), cfg)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {key}=") and error.count("\n") == 1 and allowed in error


def test_gpu_preset_uses_bf16_and_accepts_cuda_graphs(tmp_path: Path) -> None:
    cfg = compose_config("train", ["accelerator=gpu", "callbacks.runtime.compile=reduce-overhead"], tmp_path)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.data.data_device == "auto"
    assert cfg.callbacks.runtime.compile == "reduce-overhead"
