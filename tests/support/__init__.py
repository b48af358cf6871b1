"""What tests that run real processes share: starting and stopping them (`processes`), the product
as separate services-mode processes (`cms`), and PostgreSQL and Redis servers of a test's own
that it may stop and start (`private_services`)."""
