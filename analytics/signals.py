"""Signals analytics sends for other apps. Sent after the batch's transaction commits."""

from django.dispatch import Signal

# kwargs: customer_ids (set[int]), anonymous_ids (set[str]): whose events just landed.
# Segmentation listens to re-evaluate exactly these customers.
events_ingested = Signal()
