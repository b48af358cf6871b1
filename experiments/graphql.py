"""GraphQL of experiments: `experiment(key:) { ... results }` and `flags(unit:)`, with the same
rules as REST (results for staff with the experiment view permission; flag values for anyone)."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from cmsproject.errors import Forbidden, NotFound
from experiments.models import Experiment
from experiments.selectors import (
    flag_values,
    unit_clean,
)
from experiments.services import results_body


class VariantResultNode(graphene.ObjectType):
    class Meta:
        name = "ExperimentVariantResult"

    key = graphene.String(required=True)
    exposures = graphene.Int(required=True)
    conversions = graphene.Int(required=True)
    rate = graphene.Float()
    uplift = graphene.Float()
    ci_low = graphene.Float()
    ci_high = graphene.Float()
    p_value = graphene.Float()
    chance_to_win = graphene.Float()
    reason = graphene.String(description="Why a figure is null, when one is.")


class SrmNode(graphene.ObjectType):
    class Meta:
        name = "ExperimentSrm"

    p_value = graphene.Float()
    ok = graphene.Boolean(required=True)


class ResultsNode(graphene.ObjectType):
    class Meta:
        name = "ExperimentResults"

    variants = graphene.List(graphene.NonNull(VariantResultNode), required=True)
    srm = graphene.Field(SrmNode, required=True)
    method = graphene.String(required=True)
    winner = graphene.String()
    decision = graphene.String()
    computed_at = graphene.String()


class ExperimentNode(graphene.ObjectType):
    class Meta:
        name = "Experiment"

    key = graphene.String(required=True)
    name = graphene.String(required=True)
    status = graphene.String(required=True)
    variants = GenericScalar(required=True)
    traffic = graphene.Float(required=True)
    phase = graphene.Int(required=True)
    winner = graphene.String()
    results = graphene.Field(ResultsNode, required=True)

    @staticmethod
    def resolve_winner(experiment: Experiment, info: graphene.ResolveInfo) -> str | None:
        return experiment.winner or None

    @staticmethod
    def resolve_results(experiment: Experiment, info: graphene.ResolveInfo) -> dict[str, Any]:
        return results_body(experiment)


class ExperimentQueries(graphene.ObjectType):
    experiment = graphene.Field(
        ExperimentNode,
        key=graphene.String(required=True),
        description="One experiment and its latest results (staff with the view permission).",
    )
    flags = graphene.Field(
        GenericScalar,
        unit=graphene.String(required=True),
        required=True,
        description='Every flag\'s value for a unit: {"<flag>": true|false|"<variant>"}.',
    )

    @staticmethod
    def resolve_experiment(root: Any, info: graphene.ResolveInfo, key: str) -> Experiment:
        user = getattr(info.context, "user", None)
        if not (user and user.is_authenticated and user.is_staff):
            raise Forbidden("Reading experiments needs staff permission.")
        if not user.has_perm("experiments.view_experiment"):
            raise Forbidden("Reading experiments needs the experiment view permission.")
        experiment = Experiment.objects.filter(key=key).first()
        if experiment is None:
            raise NotFound(f"No experiment '{key}'.")
        return experiment

    @staticmethod
    def resolve_flags(root: Any, info: graphene.ResolveInfo, unit: str) -> dict[str, Any]:
        unit = unit_clean(unit)
        return flag_values(unit=unit)
