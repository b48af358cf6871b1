"""Writes to customer data. Keyword-only, typed, named <entity>_<action>."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema import ValidationError as SchemaValidationError
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.audit import audit_record
from cmsproject.errors import Conflict, FieldError, Forbidden, NotFound, ValidationError
from customers.models import (
    AnonymousId,
    AttributeDefinition,
    Consent,
    Customer,
    LifecycleStage,
    LoyaltyTier,
)
from customers.selectors import (
    ATTRIBUTE_TYPE_SCHEMAS,
    anonymous_link_forget,
    customer_attributes_schema,
    customer_external_id_forget,
    customers_by_external_id,
    customers_holding_attribute,
)
from customers.signals import customer_changed


def customers_ensure_external_ids(*, external_ids: Iterable[str]) -> dict[str, int]:
    """{external id: customer id}, creating a bare profile for ids seen for the first time (an
    API key may send events for a site user we have not heard of yet). Safe under concurrency."""
    wanted = set(external_ids)
    found = customers_by_external_id(external_ids=wanted)
    missing = wanted - set(found)
    if missing:
        # ignore_conflicts: another worker may create the same profile at the same moment.
        Customer.objects.bulk_create(
            [Customer(external_id=external_id) for external_id in sorted(missing)],
            ignore_conflicts=True,
        )
        found.update(customers_by_external_id(external_ids=missing))
    return found


@dataclass(frozen=True)
class CustomerActivity:
    """What one batch of events says about one customer."""

    last_event_at: datetime
    spend: Decimal
    purchases_total: int  # all purchases on record, this batch included


def customers_record_activity(*, activity: dict[int, CustomerActivity]) -> None:
    """Apply a batch's activity in two queries: `last_seen` never moves back, spend adds up, and
    the lifecycle stage moves forward on purchases (lead → customer → repeat customer), never
    back. Rows are locked so two drain workers cannot lose each other's spend."""
    if not activity:
        return
    customers = list(Customer.objects.select_for_update().filter(pk__in=activity).order_by("pk"))
    for customer in customers:
        seen = activity[customer.pk]
        if customer.last_seen is None or seen.last_event_at > customer.last_seen:
            customer.last_seen = seen.last_event_at
        customer.total_spend += seen.spend
        customer.lifecycle_stage = _stage_after_purchases(
            customer.lifecycle_stage, seen.purchases_total
        )
    # One INSERT … ON CONFLICT (id) DO UPDATE of three columns: every row exists (it is locked
    # above), and unlike bulk_update this builds no CASE per row and column.
    Customer.objects.bulk_create(
        customers,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["last_seen", "total_spend", "lifecycle_stage"],
    )


def _stage_after_purchases(stage: str, purchases_total: int) -> str:
    if stage == LifecycleStage.CHURNED and purchases_total:
        return LifecycleStage.REPEAT_CUSTOMER if purchases_total > 1 else LifecycleStage.CUSTOMER
    if purchases_total > 1 and stage != LifecycleStage.REPEAT_CUSTOMER:
        return LifecycleStage.REPEAT_CUSTOMER
    if purchases_total == 1 and stage in (LifecycleStage.VISITOR, LifecycleStage.LEAD):
        return LifecycleStage.CUSTOMER
    return stage


# --- Profiles: create, update, consents -------------------------------------------------------
# `preferences` is a fixed component, unlike `attributes`: notifications and delivery read these
# keys, so their shape is ours to define. Also a valid OpenAPI 3.0 schema: the API docs show it.
PREFERENCE_CHANNELS = ("email", "sms", "push", "in_app")
PREFERENCE_FREQUENCIES = ("realtime", "daily", "weekly", "monthly", "never")
PREFERENCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "channels": {
            "type": "array",
            "items": {"type": "string", "enum": list(PREFERENCE_CHANNELS)},
            "uniqueItems": True,
            "description": "Channels the customer accepts messages on, in order of preference.",
        },
        "language": {
            "type": "string",
            "pattern": r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
            "maxLength": 35,
            "description": "A BCP 47 language tag, e.g. `en` or `pt-BR`.",
        },
        "topics": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "uniqueItems": True,
            "maxItems": 50,
            "description": "Topics the customer wants to hear about.",
        },
        "frequency": {
            "type": "string",
            "enum": list(PREFERENCE_FREQUENCIES),
            "description": "How often the customer wants marketing messages.",
        },
    },
    "additionalProperties": False,
}
CONSENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {purpose: {"type": "boolean"} for purpose in Consent.Purpose.values},
    "additionalProperties": False,
}
# Customer columns a caller may write; the rest (spend, last seen) are computed from events.
CUSTOMER_WRITABLE_FIELDS = (
    "email",
    "name",
    "external_id",
    "loyalty_tier",
    "lifecycle_stage",
    "attributes",
    "preferences",
)
_SCHEMA_ERROR_CODES = {
    "type": "invalid-type",
    "enum": "invalid-choice",
    "format": "invalid-format",
    "required": "required",
    "additionalProperties": "unknown-field",
}


def _join_path(base: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{base}[{part}]"
    return f"{base}.{part}" if base else str(part)


def _schema_errors(*, schema: dict[str, Any], instance: Any, root: str) -> list[FieldError]:
    """Every way `instance` fails `schema`, each at the path a client wrote (`attributes.plan`,
    `preferences.channels[1]`), one error per missing or unknown key."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    found: dict[tuple[str, str], FieldError] = {}
    for error in validator.iter_errors(instance):
        path = root
        for part in error.absolute_path:
            path = _join_path(path, part)
        code = _SCHEMA_ERROR_CODES.get(str(error.validator), "invalid")
        if error.validator == "required":
            # jsonschema names the missing key only in its message; recompute it instead.
            for key in error.validator_value:
                if key not in error.instance:
                    found[(_join_path(path, key), code)] = FieldError(
                        _join_path(path, key), code, "This field is required."
                    )
        elif error.validator == "additionalProperties":
            known = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in known:
                    found[(_join_path(path, key), code)] = FieldError(
                        _join_path(path, key), code, f"Unknown key; known: {sorted(known)}."
                    )
        else:
            found[(path, code)] = FieldError(path, code, _schema_error_detail(error))
    return sorted(found.values(), key=lambda e: (e.attr, e.code))


def _schema_error_detail(error: SchemaValidationError) -> str:
    # jsonschema's own messages repeat the offending value, which may be long: say what is
    # expected instead.
    if error.validator == "type":
        return f"Expected a value of type {error.validator_value}."
    if error.validator == "enum":
        return f"Expected one of {error.validator_value}."
    if error.validator == "format":
        return (
            "Expected a date as YYYY-MM-DD." if error.validator_value == "date" else "Bad format."
        )
    return error.message[:200]


def _raise_if(errors: list[FieldError], detail: str = "The customer has invalid fields.") -> None:
    if errors:
        raise ValidationError(f"{detail} See errors.", errors=errors)


def _merge_patch(current: dict[str, Any], patch: Any, *, root: str) -> dict[str, Any]:
    """JSON merge patch (RFC 7396) at the top level: given keys replace, `null` removes a key,
    absent keys stay. So a client can change one attribute without resending the others."""
    if not isinstance(patch, Mapping):
        raise ValidationError(
            f"`{root}` must be an object.",
            errors=[FieldError(root, "invalid-type", "Expected an object.")],
        )
    merged = {**current, **patch}
    return {key: value for key, value in merged.items() if value is not None}


def _object_errors(value: Any, *, root: str) -> list[FieldError]:
    if isinstance(value, Mapping):
        return []
    return [FieldError(root, "invalid-type", "Expected an object.")]


def _customer_column_errors(customer: Customer, *, fields: Iterable[str]) -> list[FieldError]:
    """The model's own checks (choices, lengths, email syntax) of the columns being written, so
    callers other than the REST serializer (GraphQL, admin actions, workers) get them too."""
    columns = set(fields) - {"attributes", "preferences"}
    exclude = [field.name for field in Customer._meta.fields if field.name not in columns]
    try:
        customer.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        return [
            FieldError(field, (error.code or "invalid").replace("_", "-"), " ".join(error.messages))
            for field, errors in exc.error_dict.items()
            for error in errors
        ]
    return []


def _customer_uniqueness_check(customer: Customer) -> None:
    """External ids and emails each name one customer. Checked here for a clear error; the
    database's unique indexes (external_id, lower(email)) settle races between two writers."""
    others = Customer.objects.exclude(pk=customer.pk) if customer.pk else Customer.objects.all()
    if customer.external_id and others.filter(external_id=customer.external_id).exists():
        raise Conflict(
            "Another customer has this external_id.",
            errors=[FieldError("external_id", "unique", "Another customer has this value.")],
        )
    if customer.email and others.filter(email__iexact=customer.email).exists():
        raise Conflict(
            "Another customer has this email.",
            errors=[FieldError("email", "unique", "Another customer has this value.")],
        )


def _customer_save(customer: Customer, *, update_fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction stays usable
            customer.save(update_fields=update_fields)
            if customer.user_id and (update_fields is None or "external_id" in update_fields):
                # Ingestion caches which external id a customer token speaks for.
                user_id = customer.user_id
                transaction.on_commit(lambda: customer_external_id_forget(user_id=user_id))
    except IntegrityError as exc:  # a concurrent write took the value after our check
        field = "email" if "one_customer_per_email" in str(exc) else "external_id"
        raise Conflict(
            f"Another customer has this {field}.",
            errors=[FieldError(field, "unique", "Another customer has this value.")],
        ) from exc


def _normalized(field: str, value: Any) -> Any:
    if field == "email" and isinstance(value, str):
        # Lower case, so one address is one customer however it was typed.
        return value.strip().lower()
    if field == "external_id" and isinstance(value, str):
        return value.strip() or None  # unique, so "no id" must be NULL, never ""
    return value


def customer_check(*, customer: Customer, fields: Iterable[str], consents: Any = None) -> None:
    """Validate the `fields` of an unsaved state of `customer` (and `consents`, when given):
    `ValidationError` naming every bad path, then `Conflict` for a taken external_id or email.
    The admin's forms call it too, so the admin and the APIs accept the same profiles."""
    fields = set(fields)
    errors = _customer_column_errors(customer, fields=fields)
    if "attributes" in fields:
        errors += _attribute_errors(customer.attributes)
    if "preferences" in fields:
        errors += _preference_errors(customer.preferences)
    if consents is not None:
        errors += _consent_errors(consents)
    _raise_if(errors)
    if fields & {"email", "external_id"}:
        _customer_uniqueness_check(customer)


def customer_create(
    *,
    email: str = "",
    name: str = "",
    external_id: str | None = None,
    loyalty_tier: str = LoyaltyTier.NONE,
    lifecycle_stage: str = LifecycleStage.LEAD,
    attributes: Mapping[str, Any] | None = None,
    preferences: Mapping[str, Any] | None = None,
    consents: Mapping[str, bool] | None = None,
) -> Customer:
    """A new profile. Attributes are checked against the attribute definitions (required ones
    included), preferences against `PREFERENCES_SCHEMA`; a taken external_id or email is a
    `Conflict`."""
    customer = Customer(
        email=_normalized("email", email),
        name=name,
        external_id=_normalized("external_id", external_id),
        loyalty_tier=loyalty_tier,
        lifecycle_stage=lifecycle_stage,
        attributes={} if attributes is None else attributes,
        preferences={} if preferences is None else preferences,
    )
    with transaction.atomic():
        customer_check(customer=customer, fields=CUSTOMER_WRITABLE_FIELDS, consents=consents)
        _customer_save(customer)
        if consents:
            _consents_upsert(customer, consents)
    return customer


def customer_update(*, customer: Customer, data: Mapping[str, Any]) -> Customer:
    """A partial update: only the keys in `data` change. `attributes` and `preferences` are
    merge-patched (`null` removes a key). Attributes are validated only when written, so adding
    a required attribute definition does not lock every older profile against other edits.
    Returns the updated customer (a fresh instance)."""
    unknown = sorted(set(data) - {*CUSTOMER_WRITABLE_FIELDS, "consents"})
    _raise_if(
        [FieldError(key, "unknown-field", "This field cannot be written.") for key in unknown]
    )
    with transaction.atomic():
        # Locked: two concurrent merge patches of `attributes` must not drop each other's keys.
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None or locked.erased_at is not None:
            raise NotFound(f"No customer has the id {customer.pk}.")
        changed = [field for field in CUSTOMER_WRITABLE_FIELDS if field in data]
        for field in changed:
            if field in ("attributes", "preferences"):
                value = _merge_patch(getattr(locked, field), data[field], root=field)
            else:
                value = _normalized(field, data[field])
            setattr(locked, field, value)
        customer_check(customer=locked, fields=changed, consents=data.get("consents"))
        if changed:
            _customer_save(locked, update_fields=[*changed, "updated_at"])
        if data.get("consents"):
            _consents_upsert(locked, data["consents"])
        _changed(locked.pk)
    return locked


def _attribute_errors(attributes: Any) -> list[FieldError]:
    return _object_errors(attributes, root="attributes") or _schema_errors(
        schema=customer_attributes_schema(), instance=attributes, root="attributes"
    )


def _preference_errors(preferences: Any) -> list[FieldError]:
    return _object_errors(preferences, root="preferences") or _schema_errors(
        schema=PREFERENCES_SCHEMA, instance=preferences, root="preferences"
    )


def _consent_errors(consents: Any) -> list[FieldError]:
    return _object_errors(consents, root="consents") or _schema_errors(
        schema=CONSENTS_SCHEMA, instance=consents, root="consents"
    )


def consents_set(*, customer: Customer, consents: Mapping[str, bool]) -> dict[str, bool]:
    """Record the customer's answers, `{"personalization": true, "sms": false, ...}`: each purpose
    given is upserted with `given_at` now; purposes not given keep their earlier answer. Returns
    every answer on record."""
    _raise_if(_consent_errors(consents), "The consents are invalid.")
    _consents_upsert(customer, consents)
    _changed(customer.pk)
    return dict(Consent.objects.filter(customer=customer).values_list("purpose", "granted"))


def _changed(customer_id: int, anonymous_ids: list[str] | None = None) -> None:
    """Tell listeners (segmentation) once the change commits."""
    transaction.on_commit(
        lambda: customer_changed.send(
            sender=Customer, customer_id=customer_id, anonymous_ids=anonymous_ids or []
        ),
        robust=True,
    )


def _consents_upsert(customer: Customer, consents: Mapping[str, bool]) -> None:
    now = timezone.now()
    # One INSERT ... ON CONFLICT: safe when the same customer answers twice at once.
    Consent.objects.bulk_create(
        [
            Consent(customer=customer, purpose=purpose, granted=granted, given_at=now)
            for purpose, granted in sorted(consents.items())
        ],
        update_conflicts=True,
        unique_fields=["customer", "purpose"],
        update_fields=["granted", "given_at"],
    )


# --- Attribute definitions --------------------------------------------------------------------
ATTRIBUTE_DEFINITION_FIELDS = ("key", "label", "type", "required", "choices", "description")


def _attribute_definition_errors(definition: AttributeDefinition) -> list[FieldError]:
    errors: list[FieldError] = []
    try:
        definition.full_clean(validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        errors += [
            FieldError(field, (error.code or "invalid").replace("_", "-"), " ".join(error.messages))
            for field, field_errors in exc.error_dict.items()
            for error in field_errors
        ]
    choices = definition.choices
    if definition.type == AttributeDefinition.Type.ENUM:
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(choice, str) and choice for choice in choices)
            or len(set(choices)) != len(choices)
        ):
            errors.append(
                FieldError("choices", "invalid", "An enum needs a list of distinct strings.")
            )
    elif choices:
        errors.append(FieldError("choices", "invalid", "Only an enum attribute has choices."))
    return errors


def _attribute_definition_breaks(
    definition: AttributeDefinition, *, previous: AttributeDefinition
) -> str | None:
    """Why changing `previous` into `definition` would make stored values invalid, or None.

    A new type or fewer choices must still accept every value customers hold; otherwise their
    next attribute write would fail for a value they did not send.
    """
    if definition.type == previous.type and set(definition.choices) >= set(previous.choices):
        return None
    schema = {"type": "object", "properties": {definition.key: _value_schema(definition)}}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    values = customers_holding_attribute(key=definition.key).values_list("attributes", flat=True)
    bad = sum(1 for attributes in values.iterator() if not validator.is_valid(attributes))
    if bad:
        return f"{bad} customer(s) hold values of `{definition.key}` the new definition refuses."
    return None


def _value_schema(definition: AttributeDefinition) -> dict[str, Any]:
    if definition.type == AttributeDefinition.Type.ENUM:
        return {"enum": list(definition.choices)}
    return ATTRIBUTE_TYPE_SCHEMAS[definition.type]


def attribute_definition_check(*, definition: AttributeDefinition) -> None:
    """Validate an unsaved state of `definition`: `ValidationError` naming bad fields, then, for
    a change of an existing one, `Conflict` if values customers hold would no longer pass. The
    admin's form calls it too."""
    _raise_if(_attribute_definition_errors(definition), "The attribute definition is invalid.")
    previous = (
        AttributeDefinition.objects.filter(pk=definition.pk).first() if definition.pk else None
    )
    if previous is None:
        if AttributeDefinition.objects.filter(key=definition.key).exists():
            raise Conflict(
                f"An attribute `{definition.key}` exists.",
                errors=[FieldError("key", "unique", "Another attribute has this key.")],
            )
        return
    if previous.key != definition.key:
        raise ValidationError(
            "The key of an attribute cannot change.",
            errors=[FieldError("key", "read-only", "Customers store values under this key.")],
        )
    reason = _attribute_definition_breaks(definition, previous=previous)
    if reason:
        raise Conflict(reason, errors=[FieldError("type", "breaks-values", reason)])


def attribute_definition_create(
    *,
    key: str,
    label: str,
    type: str,  # the field's name in the API and the model
    required: bool = False,
    choices: list[str] | None = None,
    description: str = "",
) -> AttributeDefinition:
    definition = AttributeDefinition(
        key=key,
        label=label,
        type=type,
        required=required,
        choices=[] if choices is None else choices,
        description=description,
    )
    attribute_definition_check(definition=definition)
    try:
        with transaction.atomic():
            definition.save()
    except IntegrityError as exc:  # created concurrently, after the check
        raise Conflict(f"An attribute `{key}` exists.") from exc
    return definition


def attribute_definition_update(
    *, definition: AttributeDefinition, data: Mapping[str, Any]
) -> AttributeDefinition:
    """A partial update. The key cannot change (customers store values under it); a change of
    type or choices that stored values would fail is a `Conflict` saying how many."""
    writable = set(ATTRIBUTE_DEFINITION_FIELDS) - {"key"}
    unknown = sorted(set(data) - writable)
    _raise_if(
        [FieldError(key, "read-only", "This field cannot change.") for key in unknown],
        "The attribute definition is invalid.",
    )
    for field, value in data.items():
        setattr(definition, field, value)
    if "type" in data and data["type"] != AttributeDefinition.Type.ENUM and "choices" not in data:
        definition.choices = []  # leaving enum drops its choices rather than refusing the change
    attribute_definition_check(definition=definition)
    definition.save()
    return definition


def attribute_definition_delete(*, definition: AttributeDefinition) -> None:
    """Refused while customers hold a value under the key: those values would become unknown
    keys, and every later write of their attributes would fail until removed."""
    holding = customers_holding_attribute(key=definition.key).count()
    if holding:
        raise Conflict(
            f"{holding} customer(s) hold a value of `{definition.key}`; remove those values first."
        )
    definition.delete()


# --- Customer logins (customer JWTs for a site's users) ----------------------------------------
def customer_token_issue(*, external_id: str) -> str:
    """An access JWT for the site user `external_id`, for a site backend holding an API key with
    `customers:impersonate`. The profile and its login are created on first use.

    The login is never a staff account: an API key must not be a way to act as staff, so a
    profile linked (in the admin) to a staff user is refused rather than impersonated.
    """
    external_id = _normalized("external_id", external_id)
    if not external_id:
        raise ValidationError(
            "An external_id is required.",
            errors=[FieldError("external_id", "required", "This field may not be blank.")],
        )
    customer_id = customers_ensure_external_ids(external_ids=[external_id])[external_id]
    with transaction.atomic():
        # Locked: two first requests for one new customer must not create two logins.
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if customer.erased_at is not None:
            raise Conflict("This customer was erased.")
        user = customer.user if customer.user_id else None
        if user is None:
            user = _customer_login_create(customer)
        elif user.is_staff or user.is_superuser:
            raise Forbidden("This customer's login is a staff account; it cannot be impersonated.")
        elif not user.is_active:
            raise Forbidden("This customer's login is disabled.")
    return str(AccessToken.for_user(user))


def _customer_login_create(customer: Customer) -> Any:
    """A login with no password (only tokens reach it) and no personal data: the profile holds
    the email and name, so erasure has one place to blank. The colon is outside what Django's
    username validator allows, so no human-made account can take the name first."""
    user_model = get_user_model()
    user = user_model(**{user_model.USERNAME_FIELD: f"customer:{customer.pk}"})
    user.set_unusable_password()
    user.save()
    customer.user = user
    customer.save(update_fields=["user", "updated_at"])
    return user


# --- Audit of personal-data reads --------------------------------------------------------------
def customers_read_audit(*, actor: Any, customer_ids: list[int], via: str) -> None:
    """Record that staff or an API key read these customers' personal data (DESIGN: personal-data
    reads are audited). One entry per request, not per customer; nothing when nothing was read."""
    if not customer_ids:
        return
    single = len(customer_ids) == 1
    audit_record(
        actor=actor,
        action="customers.read",
        object_type="customers.customer",
        object_id=str(customer_ids[0]) if single else "",
        object_repr=f"customer {customer_ids[0]}" if single else f"{len(customer_ids)} customers",
        details={"via": via, "ids": customer_ids},
    )


# --- Identity ------------------------------------------------------------------------------------
IDENTITY_TRAITS = ("email", "name")


def customer_identify(
    *, anonymous_id: str, external_id: str, traits: Mapping[str, Any] | None = None
) -> tuple[Customer, int]:
    """Link a browser's anonymous id to the customer `external_id` names (created if new),
    apply `traits` (email and name; other keys as attributes, validated), and merge the
    anonymous history into the customer's. Idempotent. Returns the customer and how many events
    moved. An anonymous id already linked to someone else is a `Conflict`."""
    from analytics.services import events_link_anonymous

    traits = dict(traits or {})
    with transaction.atomic():
        customer_id = customers_ensure_external_ids(external_ids=[external_id])[external_id]
        link, _created = AnonymousId.objects.get_or_create(
            value=anonymous_id, defaults={"customer_id": customer_id}
        )
        if link.customer_id != customer_id:
            raise Conflict(
                "This anonymous id belongs to another customer.",
                errors=[FieldError("anonymousId", "linked", "Already linked to another customer.")],
            )
        customer = Customer.objects.get(pk=customer_id)
        update = {key: traits.pop(key) for key in IDENTITY_TRAITS if traits.get(key)}
        if traits:
            update["attributes"] = traits
        if update:
            customer = customer_update(customer=customer, data=update)
        moved = events_link_anonymous(anonymous_id=anonymous_id, customer_id=customer_id)
        transaction.on_commit(lambda: anonymous_link_forget(anonymous_ids=[anonymous_id]))
        _changed(customer_id, [anonymous_id])
    return customer, moved
