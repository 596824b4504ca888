"""The image callbacks find TensorBoard's writer among any loggers, and get None when TensorBoard is off."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vae_lab.callbacks.tensorboard import tensorboard_writer


def test_the_tensorboard_writer_is_found_wherever_it_sits_among_the_loggers(tmp_path: Path) -> None:
    tensorboard = TensorBoardLogger(tmp_path, name="tensorboard")
    csv = CSVLogger(tmp_path, name="csv")
    assert tensorboard_writer(SimpleNamespace(loggers=[csv, tensorboard])) is tensorboard.experiment
    assert tensorboard_writer(SimpleNamespace(loggers=[csv])) is None
    assert tensorboard_writer(SimpleNamespace(loggers=[])) is None


@pytest.mark.parametrize("points", [1, 2, 7])
def test_the_latent_scatter_has_two_coordinates_for_any_number_of_points(points: int) -> None:
    from vae_lab.callbacks.latent_manifold import first_two_coordinates

    coordinates, names = first_two_coordinates(torch.randn(points, 8))
    assert coordinates.shape == (points, 2) and names[0] == "principal component 1"
