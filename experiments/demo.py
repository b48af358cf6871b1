"""Demo experiment and flag: the home page's call to action is A/B tested on purchases (its
block is bound to `join-cta` in content's demo), and a flag gates a new checkout."""

from __future__ import annotations

from experiments.models import Experiment, FeatureFlag
from experiments.services import experiment_create, flag_create

JOIN_CTA = "join-cta"


def demo_load() -> str:
    made = []
    if not Experiment.objects.filter(key=JOIN_CTA).exists():
        experiment_create(
            key=JOIN_CTA,
            name="Join button: club vs discount",
            hypothesis="Naming the discount on the button makes more visitors buy.",
            variants=[{"key": "control", "weight": 0.5}, {"key": "discount", "weight": 0.5}],
            metric_event="purchase",
            metric_window_hours=72,
            status=Experiment.Status.RUNNING,
        )
        made.append("1 running experiment")
    if not FeatureFlag.objects.filter(key="new-checkout").exists():
        flag_create(
            key="new-checkout",
            name="New checkout",
            description="The one-page checkout, for a quarter of visitors.",
            enabled=True,
            rollout=0.25,
        )
        made.append("1 flag")
    return ", ".join(made) or "already there"
