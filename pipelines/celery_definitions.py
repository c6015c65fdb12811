"""The same code location, with every job's steps run on Celery workers (`dagster-celery`).

Nothing here but the executor: the assets, checks, jobs and resources are those of
`pipelines.definitions`. The run that starts a job only plans it and hands each step to the
broker; a worker picks the step up, rebuilds the job from this module and runs it. So every
worker needs this package, the same Dagster instance (DAGSTER_HOME: run and event storage)
and the same INFERLEDGER_* paths, which must name storage every worker sees (docs/deploy.md).

    INFERLEDGER_CELERY_BROKER    e.g. redis://redis:6379/0
    INFERLEDGER_CELERY_BACKEND   where step results come back, e.g. redis://redis:6379/1

Workers: `dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml`.
Runs: `dg dev -m pipelines.celery_definitions`, or the UI/daemon of a deployment.
"""

import dagster as dg
from dagster_celery import celery_executor

import pipelines.definitions  # the module, not its `defs`: one definitions entry point at this module's scope
from settings import BY_NAME

# Dagster reads the broker and the backend from the environment itself (settings.DAGSTER_READS).
celery = celery_executor.configured(
    {"broker": {"env": BY_NAME["celery_broker"].env}, "backend": {"env": BY_NAME["celery_backend"].env}},
    name="celery",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(pipelines.definitions.defs(), dg.Definitions(executor=celery))


def job(name: str) -> dg.JobDefinition:
    """One job of this location by name: what a worker (or `dg.build_reconstructable_job`) calls
    to rebuild the job of a step it was handed."""
    return defs().resolve_job_def(name)
