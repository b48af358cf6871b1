"""Workers of experiments: the statistics job, on a schedule and on demand."""

from __future__ import annotations

from celery import shared_task

from experiments.models import Experiment
from experiments.services import experiment_results_compute, experiments_results_compute_running


@shared_task(ignore_result=True)
def experiments_results_task() -> int:
    """Beat: every running experiment's results, winner write-back included."""
    return experiments_results_compute_running()


@shared_task(ignore_result=True)
def experiment_results_task(experiment_id: int) -> None:
    """On demand (the admin's "recompute"): one experiment."""
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    if experiment is not None and experiment.phase:
        experiment_results_compute(experiment=experiment)
