"""REST views of experiments and feature flags.

Staff with the experiments permissions manage them; anyone may ask which variant a unit gets
(`/assignment/`) or which flags are on for it (`/flags/?unit=`), as GrowthBook's SDK endpoints
do: the answer is computable from the public hash anyway, and targeting stays on the server.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import StaffModelPermission
from cmsproject.errors import FieldError, NotFound, ValidationError
from cmsproject.fastpath import served_before_drf, throttled_response
from cmsproject.pagination import PageNumberPagination
from cmsproject.throttling import anonymous_throttle_then_get
from experiments.models import KEY_VALIDATOR, Experiment, FeatureFlag
from experiments.selectors import (
    EXPERIMENT_RULES_KEY,
    FLAG_RULES_KEY,
    ExperimentRule,
    assignment_for,
    experiment_rules,
    flag_values,
    needs_segments,
    unit_clean,
    unit_segments,
)
from experiments.services import (
    experiment_create,
    experiment_declare_winner,
    experiment_results_compute,
    experiment_update,
    flag_create,
    flag_delete,
    flag_update,
    results_body,
)

PROBLEM = OpenApiResponse(description="application/problem+json")
UNIT = OpenApiParameter(
    "unit", str, required=True, description="An anonymous id, or a customer's external id."
)


class StrictSerializer(serializers.Serializer):
    """Unknown keys are an error, not silently ignored: a typo must not pass as accepted."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {key: ["Unknown field."] for key in sorted(unknown)}
                )
        return super().to_internal_value(data)


class MetricSerializer(StrictSerializer):
    event = serializers.CharField(max_length=100)
    window_hours = serializers.IntegerField(required=False, default=72)


class AnalysisSerializer(StrictSerializer):
    method = serializers.ChoiceField(choices=Experiment.Method.choices, required=False)
    alpha = serializers.FloatField(required=False)
    min_exposures = serializers.IntegerField(min_value=1, required=False)
    min_runtime_hours = serializers.FloatField(required=False)


class ExperimentWriteSerializer(StrictSerializer):
    key = serializers.CharField(max_length=63, validators=[KEY_VALIDATOR])
    name = serializers.CharField(max_length=120)
    hypothesis = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Experiment.Status.choices, required=False)
    variants = serializers.JSONField(required=False)
    traffic = serializers.FloatField(required=False)
    seed = serializers.CharField(max_length=100, required=False, allow_blank=True)
    segment = serializers.CharField(max_length=63, required=False, allow_null=True)
    metric = MetricSerializer()
    analysis = AnalysisSerializer(required=False)
    restart = serializers.BooleanField(required=False, default=False)

    def service_values(self) -> dict[str, Any]:
        """The validated body as the service's keyword arguments."""
        values = dict(self.validated_data)
        metric = values.pop("metric", None)
        if metric is not None:
            values["metric_event"] = metric["event"]
            if "window_hours" in metric:
                values["metric_window_hours"] = metric["window_hours"]
        values.update(values.pop("analysis", None) or {})
        return values


class ExperimentUpdateSerializer(ExperimentWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)
        self.fields.pop("key")


class ExperimentSerializer(serializers.ModelSerializer):
    segment = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    metric = serializers.SerializerMethodField()
    analysis = serializers.SerializerMethodField()
    winner = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "key",
            "name",
            "hypothesis",
            "status",
            "variants",
            "traffic",
            "seed",
            "segment",
            "metric",
            "analysis",
            "phase",
            "phase_started_at",
            "started_at",
            "ended_at",
            "winner",
            "winner_source",
            "created_at",
            "updated_at",
        ]

    def get_metric(self, experiment: Experiment) -> dict[str, Any]:
        return {"event": experiment.metric_event, "window_hours": experiment.metric_window_hours}

    def get_analysis(self, experiment: Experiment) -> dict[str, Any]:
        return {
            "method": experiment.method,
            "alpha": experiment.alpha,
            "min_exposures": experiment.min_exposures,
            "min_runtime_hours": experiment.min_runtime_hours,
        }

    def get_winner(self, experiment: Experiment) -> str | None:
        return experiment.winner or None


class WinnerSerializer(StrictSerializer):
    variant = serializers.CharField(max_length=63)


def experiment_get(*, key: str) -> Experiment:
    experiment = Experiment.objects.select_related("segment").filter(key=key).first()
    if experiment is None:
        raise NotFound(f"No experiment '{key}'.")
    return experiment


class ExperimentAccess:
    permission_classes = (StaffModelPermission,)
    permission_model = Experiment


class ExperimentListApi(ExperimentAccess, APIView):
    pagination_class = PageNumberPagination  # also tells the OpenAPI document the list is paged

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="Only experiments in it.")],
        responses={200: ExperimentSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        experiments = Experiment.objects.select_related("segment").order_by("-created_at", "key")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in Experiment.Status.values:
                raise ValidationError(
                    "Unknown status.", errors=[FieldError("status", "invalid", "Unknown status.")]
                )
            experiments = experiments.filter(status=wanted)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(experiments, request, view=self)
        return paginator.get_paginated_response(ExperimentSerializer(page, many=True).data)

    @extend_schema(
        request=ExperimentWriteSerializer,
        responses={201: ExperimentSerializer, 400: PROBLEM, 409: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        body = ExperimentWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.service_values()
        values.pop("restart", None)
        experiment = experiment_create(**values)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(ExperimentAccess, APIView):
    @extend_schema(responses={200: ExperimentSerializer, 404: PROBLEM})
    def get(self, request: Request, key: str) -> Response:
        return Response(ExperimentSerializer(experiment_get(key=key)).data)

    @extend_schema(
        request=ExperimentUpdateSerializer,
        responses={200: ExperimentSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        description="Settings, and `status` moves (draft → running ⇄ paused → completed → "
        "archived). Variants, weights, traffic and seed of a started experiment change only "
        "with `restart: true`, which starts a new phase.",
    )
    def patch(self, request: Request, key: str) -> Response:
        experiment = experiment_get(key=key)
        body = ExperimentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        experiment = experiment_update(experiment=experiment, **body.service_values())
        return Response(ExperimentSerializer(experiment_get(key=experiment.key)).data)


class ExperimentResultsApi(ExperimentAccess, APIView):
    @extend_schema(
        responses={200: OpenApiResponse(description="The latest results"), 404: PROBLEM},
        description="Per variant: exposures, conversions, rate, uplift against control with "
        "its interval and p-value (the experiment's method), chance to win; SRM; winner. A "
        "figure that cannot be computed is null, with a `reason`.",
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(results_body(experiment_get(key=key)))

    @extend_schema(
        request=None,
        responses={200: OpenApiResponse(description="The recomputed results"), 409: PROBLEM},
        description="Recompute now (staff who may change experiments).",
    )
    def post(self, request: Request, key: str) -> Response:
        self._require_change(request)
        experiment = experiment_get(key=key)
        experiment_results_compute(experiment=experiment)
        return Response(results_body(experiment_get(key=key)))

    def _require_change(self, request: Request) -> None:
        if not request.user.has_perm("experiments.change_experiment"):
            self.permission_denied(request, message="You may not change experiments.")


class ExperimentWinnerApi(ExperimentAccess, APIView):
    @extend_schema(
        request=WinnerSerializer,
        responses={200: ExperimentSerializer, 400: PROBLEM, 409: PROBLEM},
        description="Declare a winner by hand: everyone sees it from now on; the experiment "
        "completes with its results kept.",
    )
    def post(self, request: Request, key: str) -> Response:
        if not request.user.has_perm("experiments.change_experiment"):
            self.permission_denied(request, message="You may not change experiments.")
        body = WinnerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        experiment = experiment_declare_winner(
            experiment=experiment_get(key=key), variant=body.validated_data["variant"]
        )
        return Response(ExperimentSerializer(experiment).data)


def unit_param(request: Request) -> str:
    return unit_clean(request.query_params.get("unit"))


class AssignmentApi(APIView):
    permission_classes = (AllowAny,)

    @extend_schema(
        parameters=[UNIT],
        responses={
            200: OpenApiResponse(description="{experiment, variant, reason}"),
            400: PROBLEM,
            404: PROBLEM,
        },
        description="The variant a unit gets; the same unit always gets the same one. `variant` "
        "is null when the unit is not in the experiment (`reason` says why); after a winner is "
        "declared it is the winner for everyone.",
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(assignment_body(key=key, unit=unit_param(request)))

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """An SDK's call without credentials is answered before DRF: the anonymous throttle and
        the cached rules in one Redis round trip (bench/README.md, "Experiments")."""
        return served_before_drf(
            super().as_view(**initkwargs), methods=("GET",), answer=_anonymous_assignment
        )


def assignment_body(
    *, key: str, unit: str, rules: dict[str, ExperimentRule] | None = None
) -> dict[str, Any]:
    rule = experiment_rules(prefetched=rules).get(key)
    if rule is None:
        raise NotFound(f"No experiment '{key}'.")
    segments = unit_segments(unit) if needs_segments([rule]) else []
    assignment = assignment_for(rule, unit=unit, segments=segments)
    return {"experiment": key, "variant": assignment.variant, "reason": assignment.reason}


def _anonymous_assignment(request: HttpRequest, key: str) -> HttpResponse:
    unit = unit_clean(request.GET.get("unit"))
    retry_after, rules = anonymous_throttle_then_get(request, EXPERIMENT_RULES_KEY)
    if retry_after is not None:
        return throttled_response(retry_after)
    return JsonResponse(assignment_body(key=key, unit=unit, rules=rules))


def _anonymous_flags(request: HttpRequest) -> HttpResponse | None:
    if "unit" not in request.GET:
        return None  # the staff list: DRF answers (401 here)
    unit = unit_clean(request.GET.get("unit"))
    retry_after, rules = anonymous_throttle_then_get(request, FLAG_RULES_KEY)
    if retry_after is not None:
        return throttled_response(retry_after)
    return JsonResponse(flag_values(unit=unit, rules=rules))


class FlagSerializer(serializers.ModelSerializer):
    segment = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)

    class Meta:
        model = FeatureFlag
        fields = [
            "key",
            "name",
            "description",
            "kind",
            "enabled",
            "rollout",
            "segment",
            "variants",
            "created_at",
            "updated_at",
        ]


class FlagWriteSerializer(StrictSerializer):
    key = serializers.CharField(max_length=63, validators=[KEY_VALIDATOR])
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=FeatureFlag.Kind.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    rollout = serializers.FloatField(required=False)
    segment = serializers.CharField(max_length=63, required=False, allow_null=True)
    variants = serializers.JSONField(required=False)


class FlagUpdateSerializer(FlagWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)
        self.fields.pop("key")


class FlagAccess:
    permission_classes = (StaffModelPermission,)
    permission_model = FeatureFlag


class FlagListApi(APIView):
    """`?unit=`: every flag's value for a unit (anyone). Without it: the flags (staff)."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """`?unit=` without credentials is answered before DRF, as `/assignment/` is."""
        return served_before_drf(
            super().as_view(**initkwargs), methods=("GET",), answer=_anonymous_flags
        )

    def get_permissions(self) -> list[Any]:
        if self.request.method == "GET" and "unit" in self.request.query_params:
            return [AllowAny()]
        return [StaffModelPermission()]

    permission_model = FeatureFlag

    @extend_schema(
        operation_id="flags_list",
        parameters=[
            OpenApiParameter("unit", str, description="Evaluate every flag for this unit.")
        ],
        responses={200: OpenApiResponse(description='{"<flag>": true|false|"<variant>"}')},
    )
    def get(self, request: Request) -> Response:
        if "unit" in request.query_params:
            return Response(flag_values(unit=unit_param(request)))
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            FeatureFlag.objects.select_related("segment").order_by("key"), request, view=self
        )
        return paginator.get_paginated_response(FlagSerializer(page, many=True).data)

    @extend_schema(
        request=FlagWriteSerializer, responses={201: FlagSerializer, 400: PROBLEM, 409: PROBLEM}
    )
    def post(self, request: Request) -> Response:
        body = FlagWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        flag = flag_create(**body.validated_data)
        return Response(FlagSerializer(flag).data, status=status.HTTP_201_CREATED)


def flag_get(*, key: str) -> FeatureFlag:
    flag = FeatureFlag.objects.select_related("segment").filter(key=key).first()
    if flag is None:
        raise NotFound(f"No flag '{key}'.")
    return flag


class FlagDetailApi(FlagAccess, APIView):
    @extend_schema(responses={200: FlagSerializer, 404: PROBLEM})
    def get(self, request: Request, key: str) -> Response:
        return Response(FlagSerializer(flag_get(key=key)).data)

    @extend_schema(
        request=FlagUpdateSerializer, responses={200: FlagSerializer, 400: PROBLEM, 404: PROBLEM}
    )
    def patch(self, request: Request, key: str) -> Response:
        body = FlagUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        flag = flag_update(flag=flag_get(key=key), **body.validated_data)
        return Response(FlagSerializer(flag_get(key=flag.key)).data)

    @extend_schema(responses={204: None, 404: PROBLEM})
    def delete(self, request: Request, key: str) -> Response:
        flag_delete(flag=flag_get(key=key))
        return Response(status=status.HTTP_204_NO_CONTENT)
