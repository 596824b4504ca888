"""Training speed of the TF tutorial, two plain PyTorch ports and vae_lab: same model, same loss, same data.

    make bench                                  # 3 alternating repeats of one full epoch each (documented run)
    make bench ARGS="--steps 60 --repeats 3"    # a quick look (~5 minutes on 2 cores)
    make bench ARGS="--rows tf_tutorial vae_lab --variant nchw model.channels_last=false"   # pick rows, add one

Rows, each repeat in this order, every run in a fresh process (this script with `--worker`, or tf_tutorial.py in the
TensorFlow venv), so that nothing one run leaves in its process (thread counts, allocator state, caches, the peak
RSS) carries over into the next:

- `tf_tutorial`: the TensorFlow tutorial's own TF2 code (benchmarks/tf_tutorial.py), on the same IDX files. It runs
  with benchmarks/.venv-tf/bin/python (or this Python, if it can import tensorflow); without either the row is
  skipped with one line saying how to install it (requirements-tf.txt).
- `reference`: a careful port, `Encoder`/`Decoder` from `vae_lab.networks` (Keras' initialisation and layout of
  the same layers) with the decoder run as a direct port of the Keras layers runs it (`straightforward_decode`:
  each stride-2 transposed conv in full, then its last row and column dropped), `monte_carlo_elbo`, a `DataLoader`
  over a `TensorDataset`, `Adam(lr=1e-4)`.
- `plain_port`: the port most people write (benchmarks/plain_port.py): stock `nn` layers, PyTorch's initialisation,
  `ConvTranspose2d(..., padding=1, output_padding=1)`, NCHW, the same DataLoader and Adam.
- `vae_lab`: `vae_lab.train.train(cfg)` with the composed default config (plus `trainer.max_epochs=1`, the step
  limit and the `EpochThroughput` callback); `vae_lab_bf16`: the same with `trainer.precision=bf16-mixed`; then
  every `--variant`.

Latent 50, batch 100, the same seed per repeat for every row (the two ports of vae_lab's networks start from
vae_lab's initial weights; TF and the plain port from their own). Reported per row (medians over repeats): training
images/s after `--warmup-steps` steps, the seconds a full 600-step epoch takes at that rate, the ratio to the TF
tutorial and to the reference, training images per CPU-second of the process (less sensitive than wall time to
other jobs on the machine), warm-up seconds, validation seconds (10,000 test images; not part of the training rate),
everything else in the run (imports excluded; for vae_lab: callbacks, checkpoints, TensorBoard), the peak RSS of the
run's process and the validation ELBO after the run (mean +- sd), also paired with the reference's of the same
repeat (same seed, same initial weights for vae_lab's rows: ~0 means the same math).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
TF_VENV_PYTHON = BENCHMARKS / ".venv-tf" / "bin" / "python"
TF_SETUP = ("python3 -m venv benchmarks/.venv-tf && "
            "benchmarks/.venv-tf/bin/pip install -r benchmarks/requirements-tf.txt")
STEPS_PER_EPOCH = 600  # 60,000 training images / batch 100
BATCH, EVAL_BATCH, LATENT, LR = 100, 1000, 50, 1e-4
ROWS = ("tf_tutorial", "reference", "plain_port", "vae_lab", "vae_lab_bf16")
BF16_OVERRIDES = ["trainer.precision=bf16-mixed"]


@dataclass
class Run:
    images_per_s: float
    images_per_cpu_s: float
    warmup_s: float
    val_s: float
    other_s: float
    peak_rss_mb: float
    val_elbo: float


@dataclass
class Row:
    name: str
    runs: list[Run] = field(default_factory=list)


# ---- where vae_lab keeps things: every vae_lab module name this script uses is here (issue 13 moves them) ---------

VAE_LAB_MODULES = {
    "mnist_files": ("vae_lab.data.mnist_files", "vae_lab.mnist_files"),
}


def vae_lab_module(role: str) -> ModuleType:
    """The first of VAE_LAB_MODULES[role] that exists (a module missing for another reason is an error)."""
    for name in VAE_LAB_MODULES[role]:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if not name.startswith(error.name or "\0"):
                raise
    raise SystemExit(f"error: vae_lab has none of {', '.join(VAE_LAB_MODULES[role])}; update VAE_LAB_MODULES.")


def config_dir() -> Path:
    """vae_lab's Hydra config folder: the one its entry points use, else the repo's or the package's conf/."""
    with contextlib.suppress(ImportError, AttributeError):
        import vae_lab

        found = getattr(vae_lab, "CONFIG_DIR", None)  # older versions kept it in vae_lab.preflight
        found = Path(found or __import__("vae_lab.preflight").preflight.CONFIG_DIR)
        if (found / "train.yaml").is_file():
            return found
    for candidate in (REPO / "conf", REPO / "src" / "vae_lab" / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise SystemExit("error: found no train.yaml in vae_lab's config folders (conf/, src/vae_lab/conf/).")


def load_binarized(data_dir: Path, train: bool) -> Any:
    """The statically binarized split as (N, 1, 28, 28) float32, the same arrays tf_tutorial.py trains on."""
    import torch
    from mnist_arrays import binarized_images

    return torch.from_numpy(binarized_images(data_dir, train)).unsqueeze(1)


# ---- memory: the kernel's RSS high-water mark of this process (Linux), else ru_maxrss ----------------------------


def peak_rss_mb() -> float:
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the two PyTorch ports: one timed loop ----------------------------------------------------------------------


def straightforward_decode(decoder: Any, z: Any) -> Any:
    """`decoder(z)` as a direct port of the Keras layers computes it: full transposed convs, then a crop.

    Keras "same" keeps the first 2n rows/columns of a stride-2 transposed conv's 2n + 1; `vae_lab.networks.Decoder`
    gets them without computing and copying the full output (same weights, same numbers: tests/test_benchmark_cli.py).
    """
    import torch
    from torch.nn import functional as F

    h = torch.relu(decoder.dense(z)).view(-1, 32, 7, 7)
    for deconv in (decoder.deconv1, decoder.deconv2):
        h = torch.relu(F.conv_transpose2d(h, deconv.weight, deconv.bias, stride=2)[..., :-1, :-1])
    return F.conv_transpose2d(h, decoder.deconv3.weight, decoder.deconv3.bias, padding=1)


def tutorial_networks(latent: int = LATENT) -> tuple[Any, Any]:
    """vae_lab's conv Encoder and Decoder for 1 x 28 x 28 binary images: the tutorial's layers and shapes."""
    from vae_lab.networks import Decoder, Encoder

    return Encoder((1, 28, 28), 2 * latent), Decoder(latent, (1, 28, 28), 1)


def tutorial_elbo(x: Any, features: Any, decoder: Any, eps: Any, decode: Any = None) -> Any:
    """The tutorial's single-sample ELBO per image from the encoder's [mean, logvar] features: log p(x|z) (Bernoulli
    logits) + log p(z) - log q(z|x), each term computed in fp32. `decode` defaults to `decoder` itself."""
    import torch
    from plain_port import log_normal_pdf
    from torch.nn import functional as F

    mean, logvar = features.float().chunk(2, dim=1)
    z = eps * torch.exp(0.5 * logvar) + mean
    logits = (decode or decoder)(z.to(features.dtype) if decode is None else z).float()
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))
    return log_px + log_normal_pdf(z, 0.0, 0.0) - log_normal_pdf(z, mean, logvar)


def reference_model(seed: int) -> tuple[list[Any], Any]:
    """The reference's parameters and its per-image ELBO: vae_lab's networks, the decoder run uncut and cropped."""
    import torch

    torch.manual_seed(seed)  # the same initial weights as vae_lab's run with this seed
    encoder, decoder = tutorial_networks()

    def elbo(x: torch.Tensor) -> torch.Tensor:
        features = encoder(x)
        eps = torch.randn(len(x), LATENT)
        return tutorial_elbo(x, features, decoder, eps, decode=lambda z: straightforward_decode(decoder, z))

    return [*encoder.parameters(), *decoder.parameters()], elbo


def plain_port_model(seed: int) -> tuple[list[Any], Any]:
    import torch
    from plain_port import PlainCVAE, compute_loss

    torch.manual_seed(seed)
    model = PlainCVAE(LATENT)
    return list(model.parameters()), lambda x: -compute_loss(model, x)  # the batch's mean ELBO


def torch_loop_run(name: str, data_dir: Path, seed: int, steps: int, warmup_steps: int) -> Run:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    fit_start = time.perf_counter()
    train_x, test_x = load_binarized(data_dir, train=True), load_binarized(data_dir, train=False)
    parameters, elbo = (reference_model if name == "reference" else plain_port_model)(seed)
    optimizer = torch.optim.Adam(parameters, lr=LR)
    loader = DataLoader(TensorDataset(train_x), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    images = 0
    start = time.perf_counter()
    for step, (x,) in enumerate(loader):
        if step == steps:
            break
        loss = -elbo(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step + 1 == warmup_steps:
            warm, cpu_warm = time.perf_counter(), time.process_time()
        elif step >= warmup_steps:
            images += len(x)
    end, cpu_end = time.perf_counter(), time.process_time()
    with torch.no_grad():  # mean over all 10,000 images (equal batches: the mean of the batch means)
        val = statistics.fmean(elbo(x).mean().item() for x in test_x.split(EVAL_BATCH))
    val_s = time.perf_counter() - end
    fit_s = time.perf_counter() - fit_start
    return Run(images / (end - warm), images / (cpu_end - cpu_warm), warm - start, val_s,
               fit_s - (end - start) - val_s, peak_rss_mb(), val)


# ---- vae_lab: train(cfg) with the composed default config -------------------------------------------------------


def compose_train_config(overrides: list[str], output_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[f"hydra.run.dir={output_dir}", f"paths.output_dir={output_dir}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} values resolve as under @hydra.main
    return cfg


def vae_lab_run(data_dir: Path, seed: int, steps: int, warmup_steps: int, overrides: list[str]) -> Run:
    from vae_lab.train import train

    with tempfile.TemporaryDirectory(prefix="vae_lab_bench_") as tmp:
        cfg = compose_train_config(
            [
                f"paths.data_dir={data_dir}",
                f"seed={seed}",
                "trainer.max_epochs=1",
                f"++trainer.limit_train_batches={steps}",
                "+callbacks.throughput._target_=throughput.EpochThroughput",  # benchmarks/throughput.py
                f"+callbacks.throughput.warmup_steps={warmup_steps}",
                *overrides,
            ],
            Path(tmp),
        )
        fit_start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # Lightning's summary and progress bar; stdout keeps the table
            metrics = train(cfg)
        fit_s = time.perf_counter() - fit_start
    rate = metrics["perf/train_images_per_s"]
    train_s = (steps - warmup_steps) * BATCH / rate
    warmup_s, val_s = metrics["perf/warmup_s"], metrics["perf/val_s"]
    return Run(rate, metrics["perf/train_images_per_cpu_s"], warmup_s, val_s, fit_s - train_s - warmup_s - val_s,
               peak_rss_mb(), metrics["val/elbo"])


# ---- the TF tutorial: benchmarks/tf_tutorial.py in the Python that has TensorFlow ----------------------------------


def tf_python(explicit: Path | None = None) -> Path | None:
    """A Python that can run tf_tutorial.py: --tf-python, else $VAE_LAB_TF_PYTHON, else benchmarks/.venv-tf, else
    this one with tensorflow."""
    explicit = explicit or (Path(os.environ["VAE_LAB_TF_PYTHON"]) if os.environ.get("VAE_LAB_TF_PYTHON") else None)
    if explicit is not None:
        return explicit if explicit.exists() else None
    if TF_VENV_PYTHON.exists():
        return TF_VENV_PYTHON
    return Path(sys.executable) if importlib.util.find_spec("tensorflow") else None


# ---- report ----------------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:8.2f} +- {sd:4.2f}"


def print_table(rows: list[Row]) -> None:
    """Medians per row; `x TF` and `x ref` are ratios of median rates to the tf_tutorial and reference rows."""
    by_name = {row.name: row for row in rows}
    tf_row, ref_row = by_name.get("tf_tutorial"), by_name.get("reference")
    tf_rate = median([r.images_per_s for r in tf_row.runs]) if tf_row else None
    ref_rate = median([r.images_per_s for r in ref_row.runs]) if ref_row else None
    header = (f"{'run':<16} {'train img/s':>11} {'s/epoch':>8} {'x TF':>6} {'x ref':>6} {'img/CPU-s':>9} "
              f"{'warm-up s':>9} {'val s':>6} {'other s':>7} {'peak RSS MB':>11} {'val ELBO (mean +- sd)':>22} "
              f"{'minus ref (paired)':>19}")
    print(header)
    print("-" * len(header))
    for row in rows:
        rate = median([r.images_per_s for r in row.runs])
        # Same seed, same initial weights: for vae_lab's rows the paired difference is what "the same math" predicts
        # to be ~0; the TF and plain-port rows start from other weights, so theirs is only noise plus init.
        paired = (spread([r.val_elbo - ref.val_elbo for r, ref in zip(row.runs, ref_row.runs, strict=True)])
                  if ref_row and len(ref_row.runs) == len(row.runs) else "")
        print(
            f"{row.name:<16} {rate:11.0f} {STEPS_PER_EPOCH * BATCH / rate:8.1f} "
            f"{f'{rate / tf_rate:5.2f}x' if tf_rate else '-':>6} {f'{rate / ref_rate:5.2f}x' if ref_rate else '-':>6} "
            f"{median([r.images_per_cpu_s for r in row.runs]):9.0f} "
            f"{median([r.warmup_s for r in row.runs]):9.2f} {median([r.val_s for r in row.runs]):6.2f} "
            f"{median([r.other_s for r in row.runs]):7.2f} {median([r.peak_rss_mb for r in row.runs]):11.0f} "
            f"{spread([r.val_elbo for r in row.runs]):>22} {paired:>19}"
        )
    print("per-repeat train img/s: " + "; ".join(
        f"{row.name} " + " ".join(f"{r.images_per_s:.0f}" for r in row.runs) for row in rows))


def cpu_flags() -> str:
    """The flags that decide the kernels here: AVX2, AVX-512 and its BF16/VNNI/AMX extensions."""
    try:
        flags = next(line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags"))
    except (OSError, StopIteration):
        return "?"
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in flags) or "no AVX2"


def machine_line(threads: int | None = None) -> str:
    import platform

    import torch

    cpu = platform.processor() or "?"
    try:  # the name, and family/model numbers: a name such as "AMD EPYC" alone does not say which generation
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                    if ":" in line)
        info = {key.strip(): value.strip() for key, value in info.items()}
        cpu = f"{info['model name']}, family {info.get('cpu family', '?')} model {info.get('model', '?')}"
    except (OSError, KeyError):
        pass
    return (f"machine: {cpu} ({cpu_flags()}), {os.cpu_count()} CPUs, torch {torch.__version__}, intra-op threads "
            f"{threads or torch.get_num_threads()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    parser.add_argument("--steps", type=int, default=STEPS_PER_EPOCH,
                        help=f"training steps per run (default {STEPS_PER_EPOCH} = one full epoch)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="first steps left out of the rate (default 5)")
    parser.add_argument("--seed", type=int, default=42, help="repeat r uses seed + r (default 42)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="folder holding MNIST/raw")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for every run (vae_lab: threads=N); default: each library's own")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), metavar="ROW",
                        help=f"the standard rows to run, of {', '.join(ROWS)} (default all)")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "OVERRIDE"),
                        help="an extra vae_lab row: a name, then Hydra overrides (repeatable)")
    parser.add_argument("--tf-python", type=Path, default=None,
                        help=f"the Python with TensorFlow for tf_tutorial (default {TF_VENV_PYTHON.relative_to(REPO)})")
    parser.add_argument("--worker", choices=("reference", "plain_port", "vae_lab"), help=argparse.SUPPRESS)
    parser.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.warmup_steps < args.steps <= STEPS_PER_EPOCH:
        parser.error(f"--steps={args.steps} and --warmup-steps={args.warmup_steps} are not allowed; "
                     f"use 0 < warm-up steps < steps <= {STEPS_PER_EPOCH}.")
    return args


def worker(args: argparse.Namespace) -> None:
    """One run in this process; its `Run` is the last line of stdout, as JSON."""
    if args.worker in ("reference", "plain_port"):
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        run = torch_loop_run(args.worker, args.data_dir, args.seed, args.steps, args.warmup_steps)
    else:  # train() sets vae_lab's threads from its config
        threads = [] if args.threads is None else [f"threads={args.threads}"]
        run = vae_lab_run(args.data_dir, args.seed, args.steps, args.warmup_steps, [*threads, *args.overrides])
    print(json.dumps(asdict(run)), flush=True)


def command_for(args: argparse.Namespace, kind: str, seed: int, overrides: list[str]) -> list[str]:
    """The command line of one run: tf_tutorial.py in the TF Python, or this script as a worker."""
    common = ["--seed", str(seed), "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
              "--data-dir", str(args.data_dir)]
    if args.threads is not None:
        common += ["--threads", str(args.threads)]
    if kind == "tf_tutorial":
        return [str(tf_python(args.tf_python)), str(BENCHMARKS / "tf_tutorial.py"), *common]
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *common]
    return [*command, "--overrides", *overrides] if overrides else command


def run_in_process(args: argparse.Namespace, seed: int, overrides: list[str] | None, kind: str | None = None) -> Run:
    """One run in a fresh process: `kind` (tf_tutorial, reference, plain_port, vae_lab; default: the reference when
    overrides is None, else vae_lab with `overrides`)."""
    kind = kind or ("reference" if overrides is None else "vae_lab")
    command = command_for(args, kind, seed, overrides or [])
    # TensorFlow's start-up log lines go to stderr: kept back unless the run fails. vae_lab's progress bar is shown.
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False,
                            stderr=subprocess.PIPE if kind == "tf_tutorial" else None)
    if result.returncode != 0:
        if result.stderr:
            sys.stderr.write(result.stderr)
        raise SystemExit(f"error: the benchmark run {' '.join(command[1:])} failed (exit {result.returncode}); "
                         "its messages are above.")
    return Run(**json.loads(result.stdout.strip().splitlines()[-1]))


def planned_rows(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(row name, kind of run, vae_lab overrides) in the order each repeat runs them; prints one line per row left
    out (the TF tutorial without TensorFlow)."""
    rows = []
    for name in args.rows:
        if name == "tf_tutorial" and tf_python(args.tf_python) is None:
            where = args.tf_python or TF_VENV_PYTHON.relative_to(REPO)
            print(f"tf_tutorial: skipped, no TensorFlow ({where} not found); to add the row: {TF_SETUP}", flush=True)
            continue
        kind = "vae_lab" if name.startswith("vae_lab") else name
        rows.append((name, kind, BF16_OVERRIDES if name == "vae_lab_bf16" else []))
    return rows + [(v[0], "vae_lab", v[1:]) for v in args.variant]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    configs = planned_rows(args)
    vae_lab_module("mnist_files").ensure_mnist_files(args.data_dir, allow_download=False)  # tf_tutorial reads them
    rows = [Row(name) for name, _, _ in configs]
    print(machine_line(args.threads), flush=True)
    started = time.perf_counter()
    failed: dict[str, str] = {}  # a row whose run failed is not run again; the others still make the table
    for repeat in range(args.repeats):
        for row, (name, kind, overrides) in zip(rows, configs, strict=True):
            if name in failed:
                continue
            try:
                run = run_in_process(args, args.seed + repeat, overrides, kind)
            except SystemExit as error:
                failed[name] = str(error)
                print(error, file=sys.stderr, flush=True)
                continue
            row.runs.append(run)
            print(f"[repeat {repeat + 1}/{args.repeats}] {name}: {run.images_per_s:.0f} img/s, "
                  f"val ELBO {run.val_elbo:.2f}", file=sys.stderr, flush=True)
    print(f"{args.repeats} alternating repeats x {args.steps} steps of batch {BATCH}, latent {LATENT}, fp32 unless "
          f"a row says otherwise, one process per run; total {time.perf_counter() - started:.0f} s")
    print_table([row for row in rows if row.name not in failed])
    for name, why in failed.items():
        print(f"{name}: failed, {why}")
    print(machine_line(args.threads))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
