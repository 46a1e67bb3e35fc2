"""Abuse stays cheap: the service's guard refuses bad requests fast, bounded and counted.

Each case is sent to a real `bentoml serve` on a loopback port; after each, the
service must still answer a good request.
"""

import json
import re
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from service_process import start_service, stop, wait_until_ready

from mlops_kit.bundle import BundleError, seal
from mlops_kit.core.params import Params
from mlops_kit.serving.bundle import open_bundle
from mlops_kit.serving.guard import (
    MAX_ERROR_BYTES,
    MAX_PROBLEMS,
    SYSTEM_ROUTES,
)

pytestmark = pytest.mark.serving

PREDICTION_ROUTES = ["/predict", "/predict_batch", "/explain"]
# Distinct unknown paths a scanner might try; each must not add a metric series.
UNKNOWN_PATHS = 30


@pytest.fixture(scope="module")
def overloaded_service(bundle: Path, tmp_path_factory) -> Iterator[str]:
    """The service on a copy of the test bundle that takes one request at a time."""
    folder = tmp_path_factory.mktemp("one-at-a-time")
    shutil.copytree(bundle, folder / "bundle")
    metadata = json.loads((folder / "bundle" / "metadata.json").read_text())
    metadata["serve"]["max_concurrency"] = 1
    (folder / "bundle" / "metadata.json").write_text(json.dumps(seal(metadata)))
    process, url = start_service(folder / "bundle", folder / "predictions.jsonl")
    try:
        wait_until_ready(process, url)
        yield url
    finally:
        stop(process)


def example_of(bundle: Path) -> dict:
    return json.loads((bundle / "example_request.json").read_text())


def body_for(route: str, record: dict) -> dict:
    """A valid request body of ``route`` holding ``record``."""
    return {"records": [record]} if route == "/predict_batch" else record


def assert_still_healthy(service: str, bundle: Path, case: str) -> None:
    answer = httpx.post(f"{service}/predict", json=example_of(bundle), timeout=30)
    assert answer.status_code == 200, f"the service broke after {case}: {answer.text}"


def metrics_text(service: str) -> str:
    return httpx.get(f"{service}/metrics", timeout=30).text


def counter(service: str, name: str, labels: str) -> float:
    """One sample of a counter in /metrics (0 when it has none yet)."""
    pattern = re.escape(name + "{" + labels + "}") + r" ([0-9.e+-]+)"
    found = re.search(pattern, metrics_text(service))
    return float(found.group(1)) if found else 0.0


def cpu_seconds(service: str) -> float:
    """The service workers' CPU time, as its gauge reports it."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text(service).splitlines()
        if line.startswith("service_cpu_seconds")
    )


def junk_keys_body(limit: int) -> bytes:
    """The largest body under the size limit made of unknown keys, as a scanner sends."""
    keys, size = {}, 2
    while size < limit - 40:
        key = f"junk_{len(keys)}"
        keys[key] = len(keys)
        size += len(key) + len(str(len(keys))) + 6
    body = json.dumps(keys).encode()
    return body[: body.rfind(b",")] + b"}" if len(body) > limit else body


def test_a_body_of_unknown_keys_is_refused_cheaply_with_a_bounded_error(
    service: str, bundle: Path, params: Params
) -> None:
    """Fails when a body of tens of thousands of unknown keys is not refused, its error is not
    bounded (first problems only, under 64 KiB), health checks stall meanwhile, or refusing
    it costs the service more than a second of CPU."""
    body = junk_keys_body(params.serve.max_body_bytes)
    assert len(body) <= params.serve.max_body_bytes
    health: list[int] = []
    done = threading.Event()

    def check_health() -> None:
        while not done.is_set():
            health.append(httpx.get(f"{service}/readyz", timeout=30).status_code)

    before = cpu_seconds(service)
    watcher = threading.Thread(target=check_health)
    watcher.start()
    try:
        headers = {"content-type": "application/json"}
        answer = httpx.post(f"{service}/predict", content=body, headers=headers, timeout=30)
    finally:
        done.set()
        watcher.join()
    assert answer.status_code == 400, answer.text[:500]
    assert len(answer.content) < MAX_ERROR_BYTES
    assert "unknown field" in answer.text and "junk_0" in answer.text
    assert f"junk_{MAX_PROBLEMS}'" not in answer.text, "more than the first problems listed"
    assert health and set(health) == {200}, health
    assert cpu_seconds(service) - before < 1.0
    assert_still_healthy(service, bundle, "a body of unknown keys")


def test_schema_errors_name_at_most_the_first_problems(
    service: str, bundle: Path, params: Params
) -> None:
    """Fails when a full batch of bad records gets an unbounded error body, or one that does
    not say how many problems there were."""
    bad = {column: {"not": "a value"} for column in params.data.input_columns}
    batch = {"records": [bad] * params.serve.max_batch_size}
    answer = httpx.post(f"{service}/predict_batch", json=batch, timeout=30)
    assert answer.status_code == 400, answer.text[:500]
    assert len(answer.content) < MAX_ERROR_BYTES
    error = answer.json()
    assert len(error["problems"]) == MAX_PROBLEMS
    # At least one problem per field of every record (a nullable field's two types each
    # give one), all counted although only the first are listed.
    counted = int(re.match(r"(\d+) problem", error["error"]).group(1))
    assert counted >= params.serve.max_batch_size * len(params.data.input_columns)
    assert_still_healthy(service, bundle, "a batch of bad records")


@pytest.mark.parametrize("route", PREDICTION_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_gets_415(
    service: str, bundle: Path, route: str, content_type: str | None
) -> None:
    """Fails when a prediction route takes a body not declared application/json."""
    body = json.dumps(body_for(route, example_of(bundle))).encode()
    headers = {"content-type": content_type} if content_type else {}
    request = httpx.Request("POST", f"{service}{route}", content=body, headers=headers)
    if content_type is None:
        request.headers.pop("content-type", None)
    with httpx.Client(timeout=30) as client:
        answer = client.send(request)
    assert answer.status_code == 415, f"{route} with {content_type}: {answer.text}"
    assert "application/json" in answer.text


@pytest.mark.parametrize("route", PREDICTION_ROUTES)
def test_extra_fields_are_refused_on_every_route(service: str, bundle: Path, route: str) -> None:
    """Fails when any prediction route accepts a field it does not know, at the top of the
    body or inside a record."""
    record = {**example_of(bundle), "no_such_column": 1}
    bodies = [body_for(route, record)]
    if route == "/predict_batch":
        bodies.append({"records": [example_of(bundle)], "no_such_key": 1})
    for body in bodies:
        answer = httpx.post(f"{service}{route}", json=body, timeout=30)
        assert answer.status_code == 400, f"{route} took {body}: {answer.text}"
    assert_still_healthy(service, bundle, "extra fields")


def request_series(service: str) -> set[str]:
    """The endpoint labels BentoML's request metrics hold."""
    return set(
        re.findall(r'bentoml_service_request_total\{endpoint="([^"]*)"', metrics_text(service))
    )


def test_unknown_paths_get_404_under_one_metric_label(service: str, bundle: Path) -> None:
    """Fails when requests to unknown paths are not refused 404, add metric series, or are
    not counted under endpoint "other"."""
    label = 'endpoint="other",status="404"'
    before, size = counter(service, "rejected_requests_total", label), len(metrics_text(service))
    for index in range(UNKNOWN_PATHS):
        answer = httpx.get(f"{service}/scan/{index}/wp-login.php", timeout=30)
        assert answer.status_code == 404, answer.text
    assert counter(service, "rejected_requests_total", label) == before + UNKNOWN_PATHS
    known = {*PREDICTION_ROUTES, *SYSTEM_ROUTES}
    assert request_series(service) <= known, request_series(service) - known
    # The text grows only by a few changed digits, not by a series per path.
    assert len(metrics_text(service)) < size + 1024


def test_the_api_page_loads_nothing_from_elsewhere(service: str) -> None:
    """Fails when the page at / refers to a script, style or font on another host, any of its
    own assets is missing, or it is sent without a policy forbidding other sources."""
    page = httpx.get(f"{service}/", timeout=30)
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references, "the page loads no asset: is it the API page?"
    for reference in references:
        assert "//" not in reference, f"{reference} is not served by the service"
        asset = httpx.get(f"{service}/{reference.removeprefix('./')}", timeout=30)
        assert asset.status_code == 200, reference
    assert "googletagmanager" not in page.text


def test_an_overloaded_service_answers_429_with_retry_after_and_counts_it(
    overloaded_service: str, bundle: Path, params: Params
) -> None:
    """Fails when requests beyond serve.max_concurrency are not refused 429 with Retry-After,
    or the refusals are missing from rejected_requests_total."""
    batch = {"records": [example_of(bundle)] * params.serve.max_batch_size}

    def send(_: int) -> httpx.Response:
        return httpx.post(f"{overloaded_service}/predict_batch", json=batch, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(48)))
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, "no request was refused at max_concurrency 1"
    assert {answer.status_code for answer in answers} <= {200, 429}
    assert all(answer.headers.get("retry-after") for answer in refused)
    counted = counter(
        overloaded_service, "rejected_requests_total", 'endpoint="/predict_batch",status="429"'
    )
    assert counted == len(refused)


def test_a_bundle_whose_files_do_not_match_their_hashes_is_refused(
    bundle: Path, tmp_path: Path
) -> None:
    """Fails when a bundle with a changed, or a missing, file opens for serving."""
    recorded = json.loads((bundle / "metadata.json").read_text())["files"]
    assert set(recorded) >= {path.name for path in bundle.iterdir()} - {"metadata.json"}
    for name in sorted(recorded):
        for damage in ("changed", "missing"):
            copy = tmp_path / f"{name}-{damage}"
            shutil.copytree(bundle, copy)
            if damage == "missing":
                (copy / name).unlink()
            else:
                (copy / name).write_bytes((copy / name).read_bytes() + b" ")
            with pytest.raises(BundleError, match=re.escape(name)):
                open_bundle(copy)
    open_bundle(bundle)  # the untouched one opens


def test_a_bundle_whose_metadata_was_edited_is_refused(bundle: Path, tmp_path: Path) -> None:
    """Fails when a bundle opens whose metadata was changed after export (another model
    version, a column's range widened a thousandfold), or the refusal does not name it."""
    metadata = json.loads((bundle / "metadata.json").read_text())
    ranged = [name for name, rules in metadata["input_schema"].items() if rules.get("max")]
    edits = {"version": lambda m: m.update(model_version="999")}
    if ranged:
        edits["range"] = lambda m: m["input_schema"][ranged[0]].update(
            max=m["input_schema"][ranged[0]]["max"] * 1000
        )
    for name, edit in edits.items():
        copy = tmp_path / name
        shutil.copytree(bundle, copy)
        edited = json.loads((copy / "metadata.json").read_text())
        edit(edited)
        (copy / "metadata.json").write_text(json.dumps(edited, indent=2))
        with pytest.raises(BundleError, match="metadata.json was changed since export"):
            open_bundle(copy)
