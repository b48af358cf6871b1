"""Trigram indexes for the admin's substring search on email and name (PostgreSQL only).

Django's admin search (`icontains`) asks `UPPER(col::text) LIKE UPPER('%x%')`, which no B-tree
can answer: at 100k customers that is a full scan per keystroke. A GIN trigram index on the same
expression answers it. SQLite (embedded mode) has no such index and needs none at its sizes.
Creating the extension needs a privileged role; where it is refused, search still works, only
without the index (the migration says so and goes on).
"""

from django.db import migrations, transaction

INDEXES = {
    "customers_email_trgm": 'UPPER("email"::text)',
    "customers_name_trgm": 'UPPER("name"::text)',
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as exc:  # a managed database may refuse CREATE EXTENSION
            print(f"\n  pg_trgm unavailable ({exc}); customer search runs without its index")
            return
        for name, expression in INDEXES.items():
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "customers_customer" '
                f"USING gin ({expression} gin_trgm_ops)"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_unique_email")]
    operations = [migrations.RunPython(create, drop)]
