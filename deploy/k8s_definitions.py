"""The code location for Kubernetes with one pod per step (`dagster-k8s`): the assets, checks,
jobs and resources of `pipelines.definitions`, run by `k8s_job_executor`.

Loaded by the user-code deployment of deploy/k8s/values.yaml (`dagster api grpc -f` this file).
Each step pod gets the image, namespace, environment and volumes of the run (the run launcher's and
the code location's settings): the settings ConfigMap (the lake on the object store, the raw drop
and warehouse on the shared volume), the store's Secret, and an emptyDir of its own for scratch
(TMPDIR), so steps share no disk but the raw drop (docs/deploy.md, "Kubernetes").
Without this file, `-m pipelines.definitions` runs each run's steps inside its run pod.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

import pipelines.definitions  # the module, not its `defs`: one definitions entry point at this module's scope


@dg.definitions
def defs() -> dg.Definitions:
    # At most four step pods of a run at once: the three sites' ingest of a day, and their checks.
    return dg.Definitions.merge(pipelines.definitions.defs(), dg.Definitions(
        executor=k8s_job_executor.configured({"max_concurrent": 4}, name="k8s")))
