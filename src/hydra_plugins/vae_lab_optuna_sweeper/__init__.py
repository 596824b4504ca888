"""Hydra's Optuna sweeper, continuing a stored study instead of adding `n_trials` to it (`resume=<sweep dir>`).

Hydra's `OptunaSweeper` loads a stored study (`load_if_exists=True`) but then runs `n_trials` more and numbers its
jobs from 0 again, into the folders of the trials already there. This wrapper, before the search starts, queues
again the trials a kill left running (`resume.continue_study`), runs only what `n_trials` has left, and
numbers the jobs on from the finished trials, so trial N keeps job folder N. It lives in `hydra_plugins` because
Hydra instantiates sweepers only from there; Hydra imports it at every start, so it imports Optuna's sweeper only
when used.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """`hydra.sweeper._target_` of conf/hparams_search/vae_optuna.yaml; takes OptunaSweeper's arguments."""

    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

        self.optuna = OptunaSweeper(**kwargs)
        self.storage, self.study_name, self.n_trials = kwargs["storage"], kwargs["study_name"], kwargs["n_trials"]

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from vae_lab.resume import continue_study

        self.optuna.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        done = continue_study(self.storage, self.study_name) if self.storage is not None else 0
        search = self.optuna.sweeper  # the plugin's implementation: its trial budget and its next job number
        search.n_trials, search.job_idx = max(self.n_trials - done, 0), done

    def sweep(self, arguments: list[str]) -> Any:
        return self.optuna.sweep(arguments)
