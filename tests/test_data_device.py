"""Where the in-memory dataset lives: the GPU path is exercised on CPU with the device as a parameter."""

from pathlib import Path
from types import SimpleNamespace

import torch

from vae_lab.data.datamodule import resolve_data_device
from vae_lab.data.mnist import BinarizedMNIST


def test_auto_follows_a_cuda_root_device_and_stays_on_cpu_otherwise() -> None:
    assert resolve_data_device("auto", torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert resolve_data_device("auto", torch.device("cpu")) == torch.device("cpu")
    assert resolve_data_device("auto", None) == torch.device("cpu")  # no trainer attached
    assert resolve_data_device("cpu", torch.device("cuda", 0)) == torch.device("cpu")
    assert resolve_data_device("cuda:2", None) == torch.device("cuda", 2)


def test_batches_are_sliced_on_the_data_device(mnist_data_dir: Path) -> None:
    # "meta" stands in for a GPU: tensors that live on another device, with shapes but no host copy.
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), batch_size=100, data_device="meta")
    dm.setup("fit")
    cpu_val = dm.splits["val"][0]
    x, y = next(iter(dm.train_dataloader()))
    assert x.device.type == "meta" and x.shape == (100, 1, 28, 28) and y.shape == (100,)
    assert dm.splits["train"][0].device.type == "meta"
    assert dm.splits["val"][0] is dm.splits["test"][0]  # moved once, still one tensor
    assert cpu_val.device.type == "cpu"  # the move made new tensors; nothing was modified in place


def test_auto_keeps_data_on_cpu_under_a_cpu_trainer(mnist_data_dir: Path) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), batch_size=100)
    dm.setup("fit")
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    before = dm.splits["train"][0]
    x, _ = next(iter(dm.train_dataloader()))
    assert x.device.type == "cpu" and dm.splits["train"][0] is before  # no copy made
