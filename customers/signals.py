"""Signals customers sends for other apps, after the change commits.

`customer_changed`: kwargs `customer_id` (int) and `anonymous_ids` (list[str]: browsers just
linked to the customer by identify, whose own history became the customer's). Segmentation
listens to re-evaluate that customer.
"""

from django.dispatch import Signal

customer_changed = Signal()
