"""Workers of feedback. A module of its own beside `customers.tasks`, which imports it so that
workers (and the embedded beat) register the task."""

from __future__ import annotations

from celery import shared_task

from customers.feedback import feedback_sentiment_score

__all__ = ["feedback_sentiment_score_task"]


@shared_task(ignore_result=True)
def feedback_sentiment_score_task() -> int:
    """Every 10 minutes (beat: `feedback-sentiment-score`): sentiment and key phrases of the
    feedback not scored yet. Idempotent, and safe to run twice at once (rows are claimed with
    SKIP LOCKED and written only while unscored). Returns the rows scored."""
    return feedback_sentiment_score()
