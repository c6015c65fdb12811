"""The documented Kubernetes deployment (deploy/k8s/, docs/deploy.md), checked offline: there is
no cluster, no Helm and no container runtime here, so nothing below ran a pod. What is checked:

- every file parses; `kubectl kustomize deploy/k8s` builds the objects and kubectl reads each one
  back (`annotate --local`: no API server), when kubectl is installed;
- each object, and the Job a step pod would be, has only fields the Kubernetes API defines (the
  `kubernetes` client's models, through dagster-k8s), when dagster-k8s is installed (a dev dependency);
- the step pod's Job, built by dagster-k8s's own `construct_dagster_k8s_job` from the container
  context the chart hands the runs (`includeConfigInLaunchedRuns`), has its own emptyDir scratch
  at TMPDIR, the settings ConfigMap and the store's Secret, the image, and no volume but the data
  one (the raw drop and the warehouse): the lake is on the object store;
- the settings, image and Secret names are the ones docs/deploy.md gives, and every variable in
  the ConfigMap is a declared setting (or TMPDIR).
"""

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import settings
from lake.store import OBJECT_STORES, object_store_scheme

try:  # dagster-k8s, a dev dependency (and its dependency, the Kubernetes client)
    import dagster_k8s
    import kubernetes
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
except ImportError:
    dagster_k8s = None
needs_dagster_k8s = pytest.mark.skipif(dagster_k8s is None, reason="dagster-k8s is not installed (a dev dependency: "
                                       "pip install -e .[dev])")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
DOCS = (ROOT / "docs" / "deploy.md").read_text()
IMAGE = "registry.example.com/inferledger:0.1.0"
SCRATCH = "/scratch"


def _values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def _deployment() -> dict:
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    return deployment


def _objects() -> dict[str, dict]:
    """The kustomization's resources by kind."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = [d for r in kustomization["resources"] for d in yaml.safe_load_all((K8S / r).read_text()) if d]
    return {d["kind"]: d for d in docs}


def _settings_map() -> dict[str, str]:
    return _objects()["ConfigMap"]["data"]


def test_the_manifests_name_one_namespace_configmap_secret_and_volume_as_the_values_do():
    objects, deployment = _objects(), _deployment()
    assert sorted(objects) == ["ConfigMap", "Namespace", "PersistentVolumeClaim"]
    assert yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"] == objects["Namespace"]["metadata"][
        "name"] == "inferledger"
    assert deployment["envConfigMaps"] == [{"name": objects["ConfigMap"]["metadata"]["name"]}]
    assert deployment["envSecrets"] == [{"name": "inferledger-object-store"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}  # run and step pods get all of it
    volumes = {v["name"]: v for v in deployment["volumes"]}
    assert volumes["inferledger-data"]["persistentVolumeClaim"]["claimName"] == objects["PersistentVolumeClaim"][
        "metadata"]["name"]
    assert objects["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on any node
    assert "emptyDir" in volumes["scratch"]  # each pod its own, made and gone with it
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert mounts == {"inferledger-data": "/data/inferledger", "scratch": SCRATCH}
    assert f'{deployment["image"]["repository"]}:{deployment["image"]["tag"]}' == IMAGE
    assert _values()["runLauncher"]["type"] == "K8sRunLauncher"
    assert _values()["postgresql"]["enabled"] is False and _values()["global"]["postgresqlSecretName"] == (
        "dagster-postgresql-secret")


def test_the_settings_put_the_lake_on_the_store_the_data_on_the_volume_and_scratch_in_the_pod():
    data, declared = _settings_map(), {s.env for s in settings.SETTINGS}
    assert set(data) - declared == {"TMPDIR"}, "a variable the product does not read"
    assert object_store_scheme(data["INFERLEDGER_LAKE"]) in OBJECT_STORES  # not on any volume
    for name in ("INFERLEDGER_RAW", "INFERLEDGER_WAREHOUSE"):
        assert data[name].startswith("/data/inferledger/")
    assert data["TMPDIR"] == SCRATCH and data["INFERLEDGER_CACHE_DIR"].startswith(f"{SCRATCH}/")
    resolved = settings.resolve(data)  # every value is one the settings accept
    assert resolved.lake == data["INFERLEDGER_LAKE"] and str(resolved.raw) == data["INFERLEDGER_RAW"]


def test_docs_deploy_names_the_same_image_settings_and_secrets():
    assert DOCS.count(IMAGE) >= 2  # the build and the values
    block = re.search(r"```yaml\n# deploy/k8s/settings.yaml, data:\n(.*?)```", DOCS, re.S)
    assert block, "docs/deploy.md: the ConfigMap's data in a ```yaml block headed `# deploy/k8s/settings.yaml, data:`"
    assert yaml.safe_load(block.group(1)) == _settings_map()
    for secret in ("inferledger-object-store", "dagster-postgresql-secret"):
        assert f"create secret generic {secret}" in DOCS
    assert "kubectl apply -k deploy/k8s" in DOCS and "-f deploy/k8s/values.yaml" in DOCS
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert IMAGE in dockerfile and "dagster-k8s==0.29.27" in dockerfile


def test_the_image_holds_every_package_of_the_project():
    """deploy/Dockerfile copies each top-level package pyproject installs (a missing one is an
    ImportError in every pod)."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "deploy" / "Dockerfile").read_text(), re.M))
    assert {p.removesuffix("*") for p in include} <= copied


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_and_reads_the_manifests():
    built = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert {d["metadata"].get("namespace", "inferledger") for d in docs} == {"inferledger"}
    read = subprocess.run(["kubectl", "annotate", "--local", "-f", "-", "-o", "name", "inferledger/check=offline"],
                          input=built.stdout, capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["namespace/inferledger", "configmap/inferledger-settings",
                                   "persistentvolumeclaim/inferledger-data"]


def _step_job():
    """The Kubernetes Job of one step pod, as k8s_job_executor builds it (`launch_step`): the
    run's container context (what the chart's `includeConfigInLaunchedRuns` passes, the user
    deployment's values in snake case), the run launcher's, and the job's image."""
    deployment, launcher = _deployment(), _values()["runLauncher"]["config"]["k8sRunLauncher"]
    context = K8sContainerContext.create_from_config({"k8s": {
        "env_config_maps": [c["name"] for c in deployment["envConfigMaps"]],
        "env_secrets": [s["name"] for s in deployment["envSecrets"]],
        "volumes": deployment["volumes"], "volume_mounts": deployment["volumeMounts"],
        "run_k8s_config": {"container_config": launcher["runK8sConfig"]["containerConfig"]},
    }})
    run_launcher = SimpleNamespace(job_image=None, dagster_home="/opt/dagster/dagster_home",
                                   instance_config_map="dagster-instance", postgres_password_secret=None)
    config = context.get_k8s_job_config(IMAGE, run_launcher)
    return dagster_k8s.construct_dagster_k8s_job(config, ["dagster", "api", "execute_step"], "dagster-step-abc",
                                                 user_defined_k8s_config=context.run_k8s_config,
                                                 component="step_worker")


@needs_dagster_k8s
def test_a_step_pod_has_its_own_scratch_the_settings_and_the_store_credentials():
    job = kubernetes.client.ApiClient().sanitize_for_serialization(_step_job())
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}}
    assert volumes["inferledger-data"]["persistentVolumeClaim"] == {"claimName": "inferledger-data"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts.items() >= {"scratch": SCRATCH, "inferledger-data": "/data/inferledger"}.items()
    env_from = [next(iter(e)) + ":" + next(iter(e.values()))["name"] for e in container["envFrom"]]
    assert {"configMapRef:inferledger-settings", "secretRef:inferledger-object-store"} <= set(env_from)
    assert container["resources"]["limits"]["memory"] == "8Gi"  # runK8sConfig reaches the step pods
    # Each object (and the step's Job) has only fields the Kubernetes API defines.
    for kind, model in (("Namespace", kubernetes.client.V1Namespace), ("ConfigMap", kubernetes.client.V1ConfigMap),
                        ("PersistentVolumeClaim", kubernetes.client.V1PersistentVolumeClaim)):
        k8s_model_from_dict(model, k8s_snake_case_dict(model, _objects()[kind]))
    k8s_model_from_dict(kubernetes.client.V1Job, k8s_snake_case_dict(kubernetes.client.V1Job, job))


@needs_dagster_k8s
def test_the_k8s_code_location_runs_each_step_in_a_pod_of_its_own_but_the_publish():
    """deploy/k8s_definitions.py loads (as `dagster api grpc -f` does) and every job but the
    publish (in its run pod, beside the warehouse it writes) uses dagster-k8s's executor."""
    spec = importlib.util.spec_from_file_location("k8s_definitions", ROOT / "deploy" / "k8s_definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    executors = {job.name: job.executor_def.name for job in module.defs().resolve_all_job_defs()}
    assert executors == {"__ASSET_JOB": "k8s", "attribute_day": "k8s", "ingest_day_site": "k8s",
                         "publish_warehouse": "in_process"}
