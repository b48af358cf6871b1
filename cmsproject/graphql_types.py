"""GraphQL types of the platform itself: who is calling."""

from __future__ import annotations

from typing import Any

import graphene

from cmsproject.auth import request_api_key


class Viewer(graphene.ObjectType):
    """The authenticated caller: a staff user, a customer login, or an API key."""

    kind = graphene.String(required=True, description="`user` or `api_key`.")
    username = graphene.String(required=True)
    is_staff = graphene.Boolean(required=True)
    roles = graphene.List(graphene.NonNull(graphene.String), required=True)
    scopes = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="API key scopes."
    )


class PlatformQueries(graphene.ObjectType):
    viewer = graphene.Field(Viewer, description="The caller, or null when anonymous.")
    api_version = graphene.String(required=True)

    @staticmethod
    def resolve_viewer(root: Any, info: graphene.ResolveInfo) -> Viewer | None:
        request = info.context
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        api_key = request_api_key(request)
        if api_key is not None:
            return Viewer(
                kind="api_key", username=str(user), is_staff=False, roles=[], scopes=api_key.scopes
            )
        return Viewer(
            kind="user",
            username=user.get_username(),
            is_staff=user.is_staff,
            roles=sorted(user.groups.values_list("name", flat=True)),
            scopes=[],
        )

    @staticmethod
    def resolve_api_version(root: Any, info: graphene.ResolveInfo) -> str:
        return "v1"
