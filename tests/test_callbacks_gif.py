"""The GIF callback: the tutorial's frame pacing, repeated frames held longer, and the file it writes."""

from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest

from vae_lab.callbacks.gif import TrainingGif, hold_repeats, tutorial_frame_order
from vae_lab.errors import VaeLabError


@pytest.mark.parametrize(
    ("count", "order"),
    [
        (0, []),
        (1, [0, 0]),
        (2, [0, 1, 1]),
        (3, [0, 1, 2, 2]),
        (4, [0, 1, 2, 3]),  # 2*sqrt(3) = 3.46 rounds like 2*sqrt(2) = 2.83: grid 3 only comes back as "the last"
        (5, [0, 1, 2, 4, 4]),
        (6, [0, 1, 2, 4, 5]),
        (10, [0, 1, 2, 4, 6, 8, 9]),  # round(2*sqrt(i)) for i = 0..9: 0 2 3 3 4 4 5 5 6 6
    ],
)
def test_tutorial_pacing_keeps_grids_where_round_two_sqrt_i_grows_then_the_last_again(
    count: int, order: list[int]
) -> None:
    assert tutorial_frame_order(count) == order


def test_a_repeated_grid_is_written_once_and_shown_longer() -> None:
    assert hold_repeats([0, 1, 2, 4, 4], frame_ms=100) == ([0, 1, 2, 4], [100, 100, 100, 200])
    assert hold_repeats([0, 1, 2, 3], frame_ms=50) == ([0, 1, 2, 3], [50, 50, 50, 50])


def write_grids(directory: Path, count: int) -> None:
    for step in range(count):  # distinct grey levels, so no two grids are alike
        iio.imwrite(directory / f"image_at_epoch_{step:04d}.png", np.full((12, 12, 3), 40 * step, np.uint8))


@pytest.mark.parametrize(
    ("pacing", "levels", "durations"),
    [("tutorial", [0, 40, 80, 160, 240], [70, 70, 70, 70, 140]), ("every", [0, 40, 80, 120, 160, 200, 240], [70] * 7)],
)
def test_gif_from_seven_grids(pacing: str, levels: list[int], durations: list[int], tmp_path: Path) -> None:
    write_grids(tmp_path, 7)  # tutorial order: 0 1 2 4 6 6
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[])
    TrainingGif(dirpath=str(tmp_path), pacing=pacing, frame_ms=70).on_train_end(trainer, None)

    frames = iio.imread(tmp_path / "training.gif", index=None)
    assert [int(frame[0, 0, 0]) for frame in frames] == levels
    assert [iio.immeta(tmp_path / "training.gif", index=i)["duration"] for i in range(len(frames))] == durations
    assert iio.immeta(tmp_path / "training.gif")["loop"] == 0  # plays forever, as the tutorial's


@pytest.mark.parametrize("pacing", ["tutorial", "every"])
def test_gif_from_a_single_grid(pacing: str, tmp_path: Path) -> None:
    write_grids(tmp_path, 1)
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[])
    TrainingGif(dirpath=str(tmp_path), pacing=pacing, frame_ms=70).on_train_end(trainer, None)
    assert iio.imread(tmp_path / "training.gif", index=None).shape[0] == 1
    assert iio.immeta(tmp_path / "training.gif", index=0)["duration"] == (140 if pacing == "tutorial" else 70)


def test_no_gif_and_a_warning_without_grids(tmp_path: Path) -> None:
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[])
    with pytest.warns(UserWarning, match="no GIF written"):
        TrainingGif().on_train_end(trainer, None)
    assert not (tmp_path / "training.gif").exists()


def test_unknown_pacing_is_refused_in_one_sentence() -> None:
    with pytest.raises(VaeLabError, match=r"^callbacks\.gif\.pacing=fast is not allowed; use tutorial.*every") as error:
        TrainingGif(pacing="fast")
    assert error.value.exit_code == 2
