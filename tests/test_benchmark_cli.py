"""`make bench` (benchmarks/train_speed.py): its options and its table, without timing anything."""

import re

import pytest

from tests.conftest import REPO_ROOT, benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("train_speed") as module:
        yield module


def test_make_bench_runs_the_script() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^bench: setup\n\t\$\(PY\) benchmarks/train_speed.py \$\(ARGS\)$", makefile, flags=re.MULTILINE)


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
        bench.Row("reference", [run(400, -120.0), run(500, -121.0), run(450, -119.0)]),
        bench.Row("vae_lab", [run(900, -120.5), run(1000, -120.5), run(950, -119.5)]),
    ]
    bench.print_table(rows)
    out = capsys.readouterr().out
    vae_lab = next(line for line in out.splitlines() if line.startswith("vae_lab"))
    assert " 950 " in vae_lab and "2.11x" in vae_lab and "63.2" in vae_lab  # median rate, 950/450, 60000/950 s
    assert vae_lab.endswith("-0.17 +- 0.58")  # paired differences -0.5, +0.5, -0.5


def test_reference_decodes_like_vae_lab_with_the_same_weights(bench) -> None:
    import torch

    from vae_lab.networks import Decoder

    torch.manual_seed(0)
    decoder = Decoder(latent_dim=50)
    for layer in (decoder.deconv1, decoder.deconv2, decoder.deconv3):
        torch.nn.init.normal_(layer.bias)  # Keras starts at zero bias: make the bias part of the check
    z = torch.randn(6, 50, requires_grad=True)
    ours, theirs = decoder(z), bench.straightforward_decode(decoder, z)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, z, grad)[0], torch.autograd.grad(theirs, z, grad)[0],
                               rtol=1e-5, atol=1e-5)


def test_each_run_is_a_fresh_process_reporting_json(bench, mnist_data_dir) -> None:
    args = bench.parse_args(["--steps", "7", "--warmup-steps", "5", "--data-dir", str(mnist_data_dir)])
    run = bench.run_in_process(args, seed=1, overrides=None)  # the reference loop: 7 steps, then validation
    assert run.images_per_s > 0 and run.images_per_cpu_s > 0 and run.val_s > 0
    assert -800 < run.val_elbo < -100  # ~-540 after 7 steps from Keras' initial weights
    assert run.peak_rss_mb > 200  # a whole process: torch, MNIST and the model


def test_a_failing_run_stops_the_benchmark_with_one_sentence(bench, mnist_data_dir) -> None:
    args = bench.parse_args(["--steps", "7", "--warmup-steps", "5", "--data-dir", str(mnist_data_dir)])
    with pytest.raises(SystemExit, match=r"^error: the benchmark run .*model.latent_dim=0 failed \(exit 1\)"):
        bench.run_in_process(args, seed=1, overrides=["model.latent_dim=0"])
