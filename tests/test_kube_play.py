"""The Kubernetes manifests of deploy/k8s/ run on a real engine: `podman kube play`.

No cluster is reachable here, but podman runs Kubernetes YAML. The manifests are the
ones `make k8s-manifests` builds (kubectl kustomize; without kubectl, the
kustomization's resources as they are, with the image set as the overlay would) with
the serving image the CD workflow builds (the `serving_image` fixture, shared with the
container test: no second build). The test changes two things, as an overlay of the
base would: the container's port is published on a free port of 127.0.0.1 only
(`hostPort` with `hostIP`; the base publishes nothing, a Service reaches the pods), and
the ConfigMap's prediction log moves to a file of the test's own, to see the setting
change what the service does. The Secret the Deployment reads is created first, as
`make deploy` does, as a podman secret.

What podman does not run (it says "Kube kind ... not supported" and skips the
document), so these stay checked only against the Kubernetes schemas in
tests/test_deploy_and_watch.py: the Service (no cluster network: the published port
stands in), the HorizontalPodAutoscaler and the PodDisruptionBudget (no controller to
scale or drain; podman plays one replica). Within the Deployment the resource
requests and the rolling-update strategy have no effect (the limits do apply).
Its probes become a container healthcheck that runs `curl` inside the container,
which the slim serving image does not ship (and podman 4.3 turns the named port
`http` into port 0): the test asks the probe paths itself, through the published
port, as the kubelet would from outside the container.
"""

import base64
import json
import time
from pathlib import Path

import pytest
import yaml

from helpers.container_images import podman, require_pod_support
from helpers.kubernetes import by_kind, manifests
from helpers.network import answers_200, free_port, post_json, wait_until_ready
from helpers.serving import champion_prediction

pytestmark = [pytest.mark.e2e, pytest.mark.container]

READY_SECONDS = 180
# Bits of /proc/<pid>/status that say what the process may do.
STATUS_FIELDS = ("Uid", "Gid", "CapEff", "NoNewPrivs")


def with_loopback_port(deployment: dict, port: int) -> int:
    """Publish the serving container's first port on ``port`` of 127.0.0.1 only (an
    overlay's patch); the container port it publishes."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    published = container["ports"][0]
    published.update(hostPort=port, hostIP="127.0.0.1")
    return published["containerPort"]


def probe_port(container: dict, probe: dict) -> int:
    """The container port an HTTP probe asks, its name resolved as the kubelet does."""
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    return next(each["containerPort"] for each in container["ports"] if each.get("name") == port)


def played(output: str) -> tuple[str, list[str]]:
    """The pod and the containers `podman kube play` reports it created."""
    sections: dict[str, list[str]] = {}
    heading = ""
    for line in output.split():
        if line.endswith(":"):
            heading = line[:-1]
        else:
            sections.setdefault(heading, []).append(line)
    (pod,) = sections["Pod"]
    return pod, sections["Container"]


def traces(pod: str) -> dict[str, list[str]]:
    """What the play made that must go with it: the pod, its containers (the infra
    container included) and the volumes they mount."""
    containers = podman("pod", "inspect", pod, "--format", "{{range .Containers}}{{.ID}} {{end}}")
    ids = containers.stdout.split()
    mounts = podman("inspect", *ids, "--format", "{{range .Mounts}}{{.Name}} {{end}}")
    return {"pod": [pod], "container": ids, "volume": sorted(set(mounts.stdout.split()))}


def left_behind(made: dict[str, list[str]]) -> dict[str, list[str]]:
    """Which of ``made`` podman still has."""
    return {
        kind: [name for name in names if podman(kind, "exists", name, check=False).returncode == 0]
        for kind, names in made.items()
    }


def status_of(container: str) -> dict[str, list[str]]:
    """The serving process's (PID 1 of the container) identity and privileges."""
    text = podman("exec", container, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: fields[name].split() for name in STATUS_FIELDS}


def environment_of(container: str) -> dict[str, str]:
    """The environment the serving process started with."""
    text = podman("exec", container, "cat", "/proc/1/environ").stdout
    return dict(entry.split("=", 1) for entry in text.split("\0") if "=" in entry)


def test_kube_play_runs_the_deployment_with_its_probes_settings_and_security(
    serving_image: dict, tmp_path: Path
) -> None:
    require_pod_support()
    project, image = serving_image["project"], serving_image["image"]
    documents, _ = manifests(project, image)
    kinds = by_kind(documents)
    deployment, settings = kinds["Deployment"], kinds["ConfigMap"]
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    # Without kubectl nothing set the image: do what the overlay of make deploy does.
    container["image"] = image

    # A user's overlay: the port on loopback, the prediction log in a file of our own.
    port = free_port()
    container_port = with_loopback_port(deployment, port)
    log = f"{Path(settings['data']['PREDICTION_LOG']).parent}/kube-play-{time.time_ns()}.jsonl"
    settings["data"]["PREDICTION_LOG"] = log
    kube_yaml = tmp_path / "played.yaml"
    kube_yaml.write_text(yaml.safe_dump_all(documents))

    # The Secret `make deploy` creates, with one setting; podman keeps a Secret's data
    # (key: base64 value) as a podman secret of the name envFrom gives.
    (secret,) = [
        source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source
    ]
    secret_file = tmp_path / "secret.json"
    secret_file.write_text(json.dumps({"KUBE_PLAY_SECRET": base64.b64encode(b"kept").decode()}))

    made: dict[str, list[str]] = {}
    secret_made = False
    try:
        podman("secret", "create", secret, str(secret_file))
        secret_made = True
        pod, (serving,) = played(podman("kube", "play", str(kube_yaml)).stdout)
        made = traces(pod)
        url = f"http://127.0.0.1:{port}"

        # Probes: the paths the Deployment declares answer on the port they name.
        probes = {
            kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
        }
        assert {probe_port(container, probe) for probe in probes.values()} == {container_port}
        wait_until_ready(url, READY_SECONDS, path=probes["readinessProbe"]["httpGet"]["path"])
        for kind, probe in probes.items():
            assert answers_200(f"{url}{probe['httpGet']['path']}"), kind
        # Published on loopback only.
        bindings = podman("port", serving).stdout.splitlines()
        assert bindings == [f"{container_port}/tcp -> 127.0.0.1:{port}"], bindings

        # A prediction through the published port: the champion's own answer.
        example = (project / "models" / "champion" / "example_request.json").read_bytes()
        status, answer = post_json(f"{url}/predict", example)
        assert status == 200, answer
        assert str(answer["prediction"]) == champion_prediction(project)
        assert answer["model_alias"] == "champion"

        # Security: not root, no capability, no privilege escalation, read-only root.
        process = status_of(serving)
        user = str(pod_spec["securityContext"]["runAsUser"])
        assert process["Uid"] == [user] * 4 and user != "0", process
        assert int(process["CapEff"][0], 16) == 0, process
        assert process["NoNewPrivs"] == ["1"], process
        refused = podman("exec", serving, "touch", "/app/written", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr
        # ...while the emptyDir volumes stay writable for the service's files.
        for mount in container["volumeMounts"]:
            podman("exec", serving, "touch", f"{mount['mountPath']}/written")

        # Settings: the ConfigMap's and the Secret's reach the server's environment...
        environment = environment_of(serving)
        assert settings["data"].items() <= environment.items(), environment
        assert environment["KUBE_PLAY_SECRET"] == "kept"
        # ...and the changed one changes where the prediction went.
        logged = podman("exec", serving, "cat", log, check=False)
        assert answer["request_id"] in logged.stdout, logged.stderr
    finally:
        down = podman("kube", "down", str(kube_yaml), check=False)
        remains = left_behind(made)
        # Whatever the play left (a failed play can leave its pod), removed anyway.
        for kind in ("pod", "container", "volume"):
            if remains.get(kind):
                podman(kind, "rm", "-f", *remains[kind], check=False)
        if secret_made:
            podman("secret", "rm", secret, check=False)

    assert down.returncode == 0, down.stderr
    # The play made a pod, an infra and a serving container, and one volume per emptyDir.
    assert len(made["container"]) == 2, made
    assert len(made["volume"]) == sum("emptyDir" in volume for volume in pod_spec["volumes"])
    assert remains == {kind: [] for kind in made}, remains
