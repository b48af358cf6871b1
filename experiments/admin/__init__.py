"""Experiments and feature flags in the admin, for marketers.

Every write goes through `experiments.services`, so the admin accepts exactly what the API
accepts: the forms check a save by running the service inside a savepoint that is rolled back,
and the service's errors come back by path (`variants[1].key`, `metric.event`) and land beside
the input they name. Variants are edited as rows (key, weight) by `variants_editor.js`, which
writes the form's hidden JSON input: nobody types JSON.

An experiment is never deleted (archived instead). Its status moves by buttons (start, pause,
resume, complete, archive) that call `experiment_transition`; its results page reads
`results_body`, as the REST results do, and draws the figures with the vendored Chart.js of
`analytics` (`analytics/vendor/chartjs/`). Changing the split of a started experiment needs the
"restart" box: the service then closes the phase (keeping its results) and opens the next.
"""

from experiments.admin import experiments, flags  # noqa: F401 - registers the model admins
