"""`make bench` (benchmarks/train_speed.py, plain_port.py, mnist_arrays.py): options, rows, table, the plain port's
loss and the arrays every row trains on, without timing anything."""

import math
import re

import pytest

from tests.conftest import REPO_ROOT, benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("train_speed") as module:
        yield module


def test_make_bench_runs_the_script() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^bench: setup \$\(TF_PY\)\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE).group(1)
    commands = recipe.replace("\\\n\t", "").split()
    table, layers = commands.index("benchmarks/train_speed.py"), commands.index("benchmarks/layers.py")
    assert commands[table + 1:table + 7] == ["--rows", "tf_tutorial", "plain_port", "vae_lab", "vae_lab_bf16",
                                             "$(ARGS);"]
    assert table < layers and commands[-2:] == ["exit", "$$status"]  # the layer table even if a row failed


def test_options_parse_and_bad_step_counts_are_refused(bench, capsys) -> None:
    args = bench.parse_args(["--steps", "60", "--repeats", "2", "--variant", "bf16", "trainer.precision=bf16-mixed"])
    assert (args.steps, args.repeats, args.variant) == (60, 2, [["bf16", "trainer.precision=bf16-mixed"]])
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "5", "--warmup-steps", "5"])
    assert "--steps=5 and --warmup-steps=5 are not allowed" in capsys.readouterr().err


def test_table_reports_medians_ratio_and_paired_elbo_difference(bench, capsys) -> None:
    def run(rate: float, elbo: float):
        return bench.Run(rate, rate / 2, 1.0, 20.0, 3.0, 1500.0, elbo)

    rows = [
        bench.Row("tf_tutorial", [run(1900, -118.0), run(1800, -119.0), run(2000, -120.0)]),
        bench.Row("reference", [run(400, -120.0), run(500, -121.0), run(450, -119.0)]),
        bench.Row("vae_lab", [run(900, -120.5), run(1000, -120.5), run(950, -119.5)]),
    ]
    bench.print_table(rows)
    out = capsys.readouterr().out
    vae_lab = next(line for line in out.splitlines() if line.startswith("vae_lab"))
    assert " 950 " in vae_lab and "63.2" in vae_lab  # median rate, 60000/950 s
    assert " 0.50x " in vae_lab and " 2.11x " in vae_lab  # 950/1900 (TF), 950/450 (reference)
    assert vae_lab.endswith("-0.17 +- 0.58")  # paired differences -0.5, +0.5, -0.5


def test_without_tensorflow_the_tf_row_is_skipped_in_one_line(bench, tmp_path, capsys) -> None:
    args = bench.parse_args(["--tf-python", str(tmp_path / "no-python"), "--variant", "nchw", "model.x=1"])
    rows = bench.planned_rows(args)
    assert [name for name, _, _ in rows] == ["reference", "plain_port", "vae_lab", "vae_lab_bf16", "nchw"]
    assert rows[3][2] == ["trainer.precision=bf16-mixed"] and rows[4] == ("nchw", "vae_lab", ["model.x=1"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("tf_tutorial: skipped, no TensorFlow")
    assert "pip install -r benchmarks/requirements-tf.txt" in out


def test_the_tf_row_runs_tf_tutorial_in_the_tf_python(bench, tmp_path) -> None:
    python = tmp_path / "python"
    python.touch()
    args = bench.parse_args(["--tf-python", str(python), "--steps", "9", "--threads", "1"])
    command = bench.command_for(args, "tf_tutorial", seed=3, overrides=[])
    assert command[:2] == [str(python), str(bench.BENCHMARKS / "tf_tutorial.py")]
    assert command[2:8] == ["--seed", "3", "--steps", "9", "--warmup-steps", "5"] and command[-2:] == ["--threads", "1"]


def test_plain_port_loss_is_the_tutorial_formula() -> None:
    import math

    import torch

    with benchmark_module("plain_port") as port:
        torch.manual_seed(0)
        model = port.PlainCVAE(latent_dim=3)
        x = (torch.rand(4, 1, 28, 28) > 0.5).float()
        eps = torch.randn(4, 3)
        loss = port.compute_loss(model, x, eps)
        assert model.decode(torch.zeros(1, 3)).shape == (1, 1, 28, 28)

        mean, logvar = model.encoder(x)[:, :3], model.encoder(x)[:, 3:]
        z = mean + eps * torch.exp(0.5 * logvar)
        p = torch.sigmoid(model.decoder(z))
        log_px_z = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=(1, 2, 3))
        log_pz = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(1)
        log_qz_x = (-0.5 * ((z - mean) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(1)
        torch.testing.assert_close(loss, -(log_px_z + log_pz - log_qz_x).mean(), rtol=1e-5, atol=1e-4)


def test_every_row_trains_on_vae_labs_binarized_arrays(mnist_data_dir) -> None:
    import numpy as np
    from torchvision.datasets.mnist import read_image_file

    with benchmark_module("mnist_arrays") as arrays:
        test = arrays.binarized_images(mnist_data_dir, train=False)
    pixels = read_image_file(str(mnist_data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte")).numpy()
    assert test.shape == (10000, 28, 28) and test.dtype == np.float32
    np.testing.assert_array_equal(test, (pixels / 255.0 > 0.5).astype(np.float32))  # vae_lab's binarize_static


def test_reference_decodes_like_vae_lab_with_the_same_weights(bench) -> None:
    import torch

    torch.manual_seed(0)
    decoder = bench.tutorial_networks(50)[1]
    for layer in (decoder.deconv1, decoder.deconv2, decoder.deconv3):
        torch.nn.init.normal_(layer.bias)  # Keras starts at zero bias: make the bias part of the check
    z = torch.randn(6, 50, requires_grad=True)
    ours, theirs = decoder(z), bench.straightforward_decode(decoder, z)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, z, grad)[0], torch.autograd.grad(theirs, z, grad)[0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # a process per run: make test-all
@pytest.mark.parametrize("kind", ["reference", "plain_port"])
def test_each_run_is_a_fresh_process_reporting_json(bench, mnist_data_dir, kind) -> None:
    args = bench.parse_args(["--steps", "7", "--warmup-steps", "5", "--data-dir", str(mnist_data_dir)])
    run = bench.run_in_process(args, seed=1, overrides=[], kind=kind)  # the loop: 7 steps, then validation
    assert run.images_per_s > 0 and run.images_per_cpu_s > 0 and run.val_s > 0
    assert -800 < run.val_elbo < -100  # ~-540 (reference) / ~-525 (plain port) after 7 steps
    assert run.peak_rss_mb > 200  # a whole process: torch, MNIST and the model


@pytest.mark.slow  # a process per run: make test-all
def test_a_failing_run_stops_the_benchmark_with_one_sentence(bench, mnist_data_dir) -> None:
    args = bench.parse_args(["--steps", "7", "--warmup-steps", "5", "--data-dir", str(mnist_data_dir)])
    with pytest.raises(SystemExit, match=r"^error: the benchmark run .*model.latent_dim=0 failed \(exit 1\)"):
        bench.run_in_process(args, seed=1, overrides=["model.latent_dim=0"])


def test_layers_prints_each_layer_forward_and_backward(capsys) -> None:
    with benchmark_module("layers") as layers:
        layers.main(["--framework", "torch", "--repeats", "2", "--warmup", "1"])
        names = [name for name, *_ in layers.LAYERS]
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:50].strip(): line[50:].split() for line in lines if line[:50].strip() in names}
    assert list(rows) == names
    for cells in rows.values():  # "fwd / -  bwd / -  -": torch's times (bwd a difference of medians), no TF asked for
        assert float(cells[0]) > 0 and cells[1:3] == ["/", "-"] and cells[4:] == ["/", "-", "-"]
        assert math.isfinite(float(cells[3]))


def test_a_failed_row_leaves_the_others_table_and_the_exit_status(bench, mnist_data_dir, monkeypatch, capsys) -> None:
    def run_in_process(args, seed, overrides, kind=None):
        if kind == "vae_lab":
            raise SystemExit("error: the benchmark run vae_lab failed (exit 1); its messages are above.")
        return bench.Run(1000.0 + seed, 900.0, 1.0, 2.0, 3.0, 1500.0, -500.0)

    monkeypatch.setattr(bench, "run_in_process", run_in_process)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--rows", "plain_port", "vae_lab", "--repeats", "2", "--data-dir", str(mnist_data_dir)])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert next(line for line in out if line.startswith("plain_port ")).split()[1] == "1042"  # median of 1042, 1043
    assert any(line.startswith("vae_lab: failed, error:") for line in out)
    assert not any(line.startswith("vae_lab ") for line in out)
