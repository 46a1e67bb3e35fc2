"""Serving beyond one machine: Kubernetes manifests that validate, alerts that fire, a dashboard
whose every panel has data.

The manifests of deploy/k8s/ are built with kustomize (`make k8s-manifests`, through
`kubectl kustomize`) and validated offline against the Kubernetes schemas
(kubernetes-validate). The alert rules pass `promtool check rules` and their unit
tests; then a real Prometheus on loopback scrapes a running `make serve`: the
service's metrics answer queries, rules given a tiny threshold fire, and every panel
of the Grafana dashboard returns data.
"""

import copy
import json
import math
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from helpers.kubernetes import by_kind, manifests
from helpers.network import post_json, wait_until
from helpers.prometheus_server import Prometheus, require
from helpers.serving import make_serve

# A registry with a port and a tag YAML would read as a number: both must reach the Deployment.
IMAGE = "registry.example.com:5000/team/model:2026.12"
# PromQL's own words: what is left of an expression without them are metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "deriv",
    "histogram_quantile", "absent", "by", "without", "on", "ignoring", "bool",
    "and", "or", "unless", "group_left", "group_right", "offset",
}  # fmt: skip


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    bare = re.sub(r"\{[^}]*\}", "", expression)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    return set(re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*", bare)) - PROMQL_WORDS


def exported_metrics(url: str) -> set[str]:
    """The series names a running service's /metrics exposes."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def panel_queries(project: Path) -> list[tuple[str, str]]:
    dashboard = json.loads((project / "deploy" / "prometheus" / "dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def alert_rules(project: Path) -> list[dict]:
    rules = yaml.safe_load((project / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_every_manifest_validates_against_the_kubernetes_schemas(render_project) -> None:
    project = render_project()
    documents, built = manifests(project, IMAGE)
    version = latest_version()
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
    # The validator is not vacuous: a misspelt field fails it.
    wrong = copy.deepcopy(by_kind(documents)["Deployment"])
    wrong["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, version, strict=True)

    kinds = by_kind(documents)
    assert set(kinds) == {
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"
    }  # fmt: skip
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    if built:
        assert container["image"] == IMAGE
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Settings come from the ConfigMap and the Secret, never inline.
    assert "env" not in container
    sources = {
        next(iter(source)): next(iter(source.values()))["name"] for source in container["envFrom"]
    }
    assert sources["configMapRef"] == kinds["ConfigMap"]["metadata"]["name"]
    assert "secretRef" in sources
    # Service, PodDisruptionBudget and scraping reach the pods; the autoscaler scales them.
    labels = pod["metadata"]["labels"]
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
    # What the service writes has a writable volume: the root filesystem is read-only.
    settings = kinds["ConfigMap"]["data"]
    mounts = [mount["mountPath"] for mount in container["volumeMounts"]]
    for path in (settings["PREDICTION_LOG"], settings["BENTOML_HOME"]):
        assert any(path.startswith(mount + "/") for mount in mounts), path


def test_promtool_checks_the_alert_rules_and_their_unit_tests_pass(render_project) -> None:
    rules = render_project() / "deploy" / "prometheus"
    promtool = require("promtool")
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [promtool, *command], cwd=rules, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"promtool {command}:\n{result.stdout}{result.stderr}"
    # promtool test rules can fail: an expectation the rules do not meet is reported.
    broken = (rules / "alerts_test.yml").read_text().replace("eval_time: 3m", "eval_time: 15m")
    (rules / "broken_test.yml").write_text(broken)
    result = subprocess.run(
        [promtool, "test", "rules", "broken_test.yml"], cwd=rules, capture_output=True, check=False
    )
    assert result.returncode != 0


def with_tiny_thresholds(rules: dict, names: set[str]) -> dict:
    """``rules`` where each alert of ``names`` fires on anything above zero, at once."""
    tiny = copy.deepcopy(rules)
    for group in tiny["groups"]:
        for rule in group["rules"]:
            if rule["alert"] in names:
                rule["expr"] = re.sub(r">[^>]*$", "> 0", rule["expr"].strip())
                rule.pop("for", None)
    return tiny


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_prometheus_scrapes_make_serve_its_alerts_fire_and_every_panel_has_data(
    project_copy: Path, tmp_path: Path
) -> None:
    project = project_copy
    watched = {"ModelTooOld", "SchemaViolationsHigh"}
    rules = yaml.safe_load((project / "deploy" / "prometheus" / "alerts.yml").read_text())
    tiny = tmp_path / "tiny-thresholds.yml"
    tiny.write_text(yaml.safe_dump(with_tiny_thresholds(rules, watched)))
    example = (project / "models" / "champion" / "example_request.json").read_bytes()
    broken = json.dumps({"unknown_column": 1}).encode()
    prometheus = Prometheus(tmp_path / "prometheus")
    with make_serve(project, "logs/prometheus-test.jsonl") as url:
        try:
            prometheus.start([url.removeprefix("http://")], [tiny])
            wait_until(lambda: prometheus.query("up == 1"), "a first scrape", timeout=30)
            # Twice, a scrape apart: rates need an increase between two samples.
            for _ in range(2):
                assert post_json(f"{url}/predict", example)[0] == 200
                assert post_json(f"{url}/predict", broken)[0] in (400, 422)
                time.sleep(2.5)
            wait_until(
                lambda: prometheus.query("predictions_total > 0"), "predictions_total", timeout=30
            )
            wait_until(lambda: watched <= prometheus.firing(), f"alerts {watched}", timeout=60)
            # The real thresholds hold: no server error, so no error-rate alert.
            assert "ServingErrorRateHigh" not in prometheus.firing()

            exported = exported_metrics(url)
            for rule in alert_rules(project):
                assert metric_names(rule["expr"]) <= exported, rule["alert"]
            for title, expression in panel_queries(project):
                names = metric_names(expression)
                assert names and names <= exported, f"{title}: {names - exported}"
                result = prometheus.query(expression.replace("$__rate_interval", "1m"))
                values = [float(series["value"][1]) for series in result]
                assert any(math.isfinite(value) for value in values), f"{title}: {result}"
        finally:
            prometheus.stop()
