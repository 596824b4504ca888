"""The image callbacks find TensorBoard's writer among any loggers, and get None when TensorBoard is off."""

from pathlib import Path
from types import SimpleNamespace

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vae_lab.callbacks.tensorboard import tensorboard_writer


def test_the_tensorboard_writer_is_found_wherever_it_sits_among_the_loggers(tmp_path: Path) -> None:
    tensorboard = TensorBoardLogger(tmp_path, name="tensorboard")
    csv = CSVLogger(tmp_path, name="csv")
    assert tensorboard_writer(SimpleNamespace(loggers=[csv, tensorboard])) is tensorboard.experiment
    assert tensorboard_writer(SimpleNamespace(loggers=[csv])) is None
    assert tensorboard_writer(SimpleNamespace(loggers=[])) is None
