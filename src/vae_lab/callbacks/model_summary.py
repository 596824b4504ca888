"""Lightning's model summary without its FLOPs column.

Lightning 2.6 counts FLOPs only for a model that defines `example_input_array`, so for vae_lab's models the
column and the "Total FLOPs" line always read 0 (`make floor` counts the real ones, README "Performance"). This
prints the rest: one row per top-level module (name, type, parameters, train/eval mode) and the totals, as one
log line (so it is in train.log too).
"""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count

log = logging.getLogger(__name__)
LEFT_OUT = ("FLOPs",)


class ModelSummaryWithoutFlops(ModelSummary):
    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        log.info("\n" + format_summary(
            [column for column in summary_data if column[0] not in LEFT_OUT],
            total_parameters, trainable_parameters, model_size, total_training_modes))


def format_summary(columns: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                   model_size: float, total_training_modes: dict[str, int]) -> str:
    widths = [max(len(name), *(len(str(cell)) for cell in cells)) for name, cells in columns]
    rows = [[name for name, _ in columns], *zip(*(cells for _, cells in columns), strict=True)]
    table = [" | ".join(f"{cell!s:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    rule = "-" * max(len(line) for line in table)
    totals = [
        (get_human_readable_count(trainable_parameters), "Trainable params"),
        (get_human_readable_count(total_parameters - trainable_parameters), "Non-trainable params"),
        (get_human_readable_count(total_parameters), "Total params"),
        (get_formatted_model_size(model_size), "Total estimated model params size (MB)"),
        (total_training_modes["train"], "Modules in train mode"),
        (total_training_modes["eval"], "Modules in eval mode"),
    ]
    return "\n".join([table[0], rule, *table[1:], rule, *(f"{value!s:<10}{label}" for value, label in totals)])
