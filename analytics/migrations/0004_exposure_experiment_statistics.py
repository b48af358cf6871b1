"""PostgreSQL: statistics on `properties -> 'experiment'`, so the planner knows how many
exposures one experiment has. Without them it assumes a handful, plans one index probe per
exposed unit, and the results job on 1M exposures takes 5.0 s instead of 3.2 s (bench/README.md,
"Experiments"). Other databases have no such statistics: nothing to do there."""

from django.db import migrations

CREATE = (
    "CREATE STATISTICS IF NOT EXISTS event_exposure_experiment_stats "
    "ON ((properties -> 'experiment')) FROM analytics_event"
)
DROP = "DROP STATISTICS IF EXISTS event_exposure_experiment_stats"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("analytics", "0003_event_exposure_index")]

    operations = [migrations.RunPython(create, drop)]
