"""Feedback: a score from 0 to 10 with a comment (`POST /api/v1/feedback/`), the batch job that
adds sentiment and key phrases, and the read that NPS reports aggregate (`feedback_scores`).

Writing (`feedback_create`): the body is checked here, so every entry point refuses the same
things. The respondent is decided by who calls: a customer token is that customer; an API key
with `customers:write` may name a customer by `userId` (its external id); anyone else is an
anonymous id, which counts as the customer `identify` linked it to, if any. The customer's
lifecycle stage at that moment is kept in `journey_stage`: NPS per stage must not shift when
the customer moves on.

Scoring (`feedback_sentiment_score`): unscored rows, oldest first, in batches. Each batch is
claimed with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL), so concurrent workers split the
work, and written back only where `scored_at` is still empty, so no row is ever scored twice
(SQLite has no row locks: the guarded write is what keeps a second thread from re-scoring).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from cmsproject.errors import FieldError, Forbidden, ValidationError
from customers.models import Customer, Feedback, LifecycleStage
from customers.selectors import anonymous_link_customer
from customers.services import customers_ensure_external_ids

logger = logging.getLogger(__name__)

# --- Writing ----------------------------------------------------------------------------------
FEEDBACK_FIELDS = frozenset({"score", "comment", "context", "anonymousId", "userId"})
MIN_SCORE, MAX_SCORE = 0, 10
MAX_COMMENT_CHARS = 5000
MAX_CONTEXT_BYTES = 4 * 1024
ANONYMOUS_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # as event ingestion accepts them
ANONYMOUS_ID_HEADER = "X-Anonymous-Id"
ANONYMOUS_STAGE = LifecycleStage.VISITOR  # an id no customer claimed is, so far, a visitor


@dataclass(frozen=True)
class FeedbackCaller:
    """Who is posting, as feedback cares."""

    customer: Customer | None = None  # a customer token: this customer, the only one it may name
    may_name_customers: bool = False  # an API key with `customers:write`


@dataclass(frozen=True)
class _FeedbackInput:
    score: int
    comment: str
    context: dict[str, Any]
    anonymous_id: str
    user_id: str | None


def feedback_create(
    *, body: Any, caller: FeedbackCaller, anonymous_id_header: str | None = None
) -> Feedback:
    """Store one answer. Bad input is a `ValidationError` naming each bad field; a `userId` the
    caller may not speak for is `Forbidden`. Nothing is stored in either case."""
    given = _feedback_checked(body, anonymous_id_header)
    with transaction.atomic():  # a profile made for a new `userId` goes with the answer
        customer_id, stage = _respondent(given, caller)
        return Feedback.objects.create(
            customer_id=customer_id,
            anonymous_id=given.anonymous_id,
            score=given.score,
            comment=given.comment,
            context=given.context,
            journey_stage=stage,
        )


def _feedback_checked(body: Any, anonymous_id_header: str | None) -> _FeedbackInput:
    if not isinstance(body, Mapping):
        raise ValidationError("Send the feedback as a JSON object.")
    errors = [
        FieldError(str(key), "unknown-field", f"Unknown field {key!r}.")
        for key in body
        if key not in FEEDBACK_FIELDS
    ]
    score = body.get("score")
    if "score" not in body or score is None:
        errors.append(FieldError("score", "required", "A whole number from 0 to 10."))
    elif type(score) is not int:  # not True/False, not 9.5, not "9"
        errors.append(FieldError("score", "invalid", "A whole number from 0 to 10."))
    elif not MIN_SCORE <= score <= MAX_SCORE:
        errors.append(FieldError("score", "out-of-range", "A whole number from 0 to 10."))

    comment = body.get("comment")
    if comment is None:
        comment = ""
    elif not isinstance(comment, str):
        errors.append(FieldError("comment", "invalid", "Text."))
    elif len(comment.strip()) > MAX_COMMENT_CHARS:
        errors.append(FieldError("comment", "too-long", f"At most {MAX_COMMENT_CHARS} characters."))
    elif "\x00" in comment:
        # PostgreSQL cannot store U+0000 in text: refuse it here, not with a 500 on insert.
        errors.append(FieldError("comment", "invalid", "Text may not contain U+0000."))

    context = body.get("context")
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        errors.append(FieldError("context", "invalid", "A JSON object."))
    else:
        encoded = json.dumps(context, separators=(",", ":"), ensure_ascii=False)
        if len(encoded.encode()) > MAX_CONTEXT_BYTES:
            errors.append(
                FieldError("context", "too-large", f"At most {MAX_CONTEXT_BYTES} bytes as JSON.")
            )
        elif "\\u0000" in encoded:
            errors.append(FieldError("context", "invalid", "Text may not contain U+0000."))

    anonymous_id = body.get("anonymousId")
    if anonymous_id is not None and not _is_anonymous_id(anonymous_id):
        errors.append(
            FieldError("anonymousId", "invalid", "1-128 characters: letters, digits, _ . : -")
        )
        anonymous_id = None
    if anonymous_id_header is not None and not _is_anonymous_id(anonymous_id_header):
        errors.append(
            FieldError(ANONYMOUS_ID_HEADER, "invalid", "1-128 characters: letters, digits, _ . : -")
        )
        anonymous_id_header = None
    if anonymous_id and anonymous_id_header and anonymous_id != anonymous_id_header:
        errors.append(
            FieldError("anonymousId", "conflict", f"Differs from the {ANONYMOUS_ID_HEADER} header.")
        )

    user_id = body.get("userId")
    if user_id is not None and (
        not isinstance(user_id, str) or not 0 < len(user_id) <= 255 or "\x00" in user_id
    ):
        errors.append(FieldError("userId", "invalid", "A string of 1-255 characters."))

    if errors:
        raise ValidationError("The feedback is invalid; see errors.", errors=errors)
    return _FeedbackInput(
        score=score,
        comment=comment.strip(),
        context=context,
        anonymous_id=anonymous_id or anonymous_id_header or "",
        user_id=user_id,
    )


def _is_anonymous_id(value: Any) -> bool:
    return isinstance(value, str) and ANONYMOUS_ID.fullmatch(value) is not None


def _respondent(given: _FeedbackInput, caller: FeedbackCaller) -> tuple[int | None, str]:
    """(customer id or None, lifecycle stage now) of whoever answered."""
    if caller.customer is not None:
        if given.user_id is not None and given.user_id != caller.customer.external_id:
            raise Forbidden(
                "A customer token may only send its own `userId`.",
                errors=[FieldError("userId", "forbidden", "Not your userId.")],
            )
        return caller.customer.pk, caller.customer.lifecycle_stage
    if given.user_id is not None:
        if not caller.may_name_customers:
            raise Forbidden(
                "Only a customer token or an API key with `customers:write` may send `userId`.",
                errors=[FieldError("userId", "forbidden", "Send anonymousId instead.")],
            )
        # As for events: a site's backend may speak of a user we have not heard of yet.
        customer_id = customers_ensure_external_ids(external_ids=[given.user_id])[given.user_id]
        return customer_id, _stage_of(customer_id)
    if not given.anonymous_id:
        raise ValidationError(
            "Who answered? Send an anonymous id (or a customer token).",
            errors=[
                FieldError(
                    "anonymousId",
                    "required",
                    f"Send anonymousId or the {ANONYMOUS_ID_HEADER} header.",
                )
            ],
        )
    customer_id = anonymous_link_customer(anonymous_id=given.anonymous_id)
    if customer_id is None:
        return None, ANONYMOUS_STAGE
    return customer_id, _stage_of(customer_id)


def _stage_of(customer_id: int) -> str:
    stage = Customer.objects.filter(pk=customer_id).values_list("lifecycle_stage", flat=True)
    return stage.first() or ""


# --- Reading, for analytics -------------------------------------------------------------------
def feedback_scores(*, start: datetime, end: datetime) -> QuerySet:
    """Feedback given in [start, end), as rows of `score`, `journey_stage`, `sentiment_label`,
    `scored_at` and `created_at`: what NPS reports aggregate (in SQL: callers group and count
    this queryset, they never iterate it). No customer, no comment, nothing personal."""
    return (
        Feedback.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .values("score", "journey_stage", "sentiment_label", "scored_at", "created_at")
    )


# --- Sentiment and key phrases ----------------------------------------------------------------
class SentimentLabel(models.TextChoices):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    NONE = "none"  # no comment to score


# VADER's own thresholds for its compound score.
POSITIVE_FROM = 0.05
NEGATIVE_FROM = -0.05
MAX_KEY_PHRASES = 5
MAX_PHRASE_WORDS = 3
MAX_PHRASE_CHARS = 100  # a 5,000-character "word" is no phrase
MIN_WORDS_FOR_PHRASES = 3  # "ok", "great app": nothing to extract
SCORE_BATCH = 500
# The embedded mode's beat runs periodic jobs one after another in one thread (the events drain
# among them), so one run must not hold it for long; the next run goes on where this one stopped.
SCORE_MAX_SECONDS = 20.0


@dataclass(frozen=True)
class CommentScore:
    sentiment: float | None  # VADER compound, -1 to 1; None without a comment
    label: str
    key_phrases: list[str]


@cache
def _sentiment_analyzer() -> Any:
    """Built once per process: it reads VADER's lexicon from disk."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@cache
def _phrase_extractor() -> Any:
    """Built once per process. More candidates than we keep: overlapping ones are dropped."""
    import yake

    return yake.KeywordExtractor(lan="en", n=MAX_PHRASE_WORDS, top=4 * MAX_KEY_PHRASES)


def comment_score(comment: str) -> CommentScore:
    """The sentiment label and key phrases of one comment (pure: no database)."""
    text = comment.strip()
    if not text:
        return CommentScore(sentiment=None, label=SentimentLabel.NONE, key_phrases=[])
    compound = float(_sentiment_analyzer().polarity_scores(text)["compound"])
    if compound >= POSITIVE_FROM:
        label = SentimentLabel.POSITIVE
    elif compound <= NEGATIVE_FROM:
        label = SentimentLabel.NEGATIVE
    else:
        label = SentimentLabel.NEUTRAL
    phrases = key_phrases(text) if len(text.split()) >= MIN_WORDS_FOR_PHRASES else []
    return CommentScore(sentiment=compound, label=label, key_phrases=phrases)


def key_phrases(text: str) -> list[str]:
    """Up to five phrases of one to three words, best first, lower-cased; a phrase inside one
    already kept (or holding one) is left out, so "arrived broken" does not follow "product
    arrived broken"."""
    kept: list[str] = []
    for phrase, _weight in _phrase_extractor().extract_keywords(text):
        normalized = " ".join(phrase.lower().split())
        if not normalized or len(normalized) > MAX_PHRASE_CHARS:
            continue
        padded = f" {normalized} "
        if any(padded in f" {other} " or f" {other} " in padded for other in kept):
            continue
        kept.append(normalized)
        if len(kept) == MAX_KEY_PHRASES:
            break
    return kept


def feedback_sentiment_score(
    *, batch_size: int = SCORE_BATCH, max_seconds: float = SCORE_MAX_SECONDS
) -> int:
    """Score unscored feedback, oldest first, batch after batch until none is left or
    `max_seconds` have passed (the batch under way is finished). Returns the rows scored by this
    call. Safe to run twice at once, and again: scored rows are never scored again."""
    deadline = time.monotonic() + max_seconds
    scored = 0
    while True:
        claimed, written = _score_batch(batch_size)
        scored += written
        if claimed < batch_size or time.monotonic() >= deadline:
            return scored


SCORED_FIELDS = ["sentiment", "sentiment_label", "key_phrases", "scored_at"]


def _score_batch(batch_size: int) -> tuple[int, int]:
    """(rows claimed, rows written) for one batch, in one transaction."""
    with transaction.atomic():
        unscored = Feedback.objects.filter(scored_at__isnull=True)
        rows = list(
            unscored.order_by("created_at", "id")
            .select_for_update(skip_locked=True)
            .only("id", "comment")[:batch_size]
        )
        if not rows:
            return 0, 0
        now = timezone.now()
        for row in rows:
            result = comment_score(row.comment)
            row.sentiment = result.sentiment
            row.sentiment_label = result.label
            row.key_phrases = result.key_phrases
            row.scored_at = now
        # bulk_update writes through this queryset: a row scored meanwhile is left as it is.
        written = unscored.bulk_update(rows, SCORED_FIELDS)
    if written < len(rows):
        logger.info("%d feedback rows were scored by another worker", len(rows) - written)
    return len(rows), written
