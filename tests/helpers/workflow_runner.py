"""Run a GitHub Actions workflow's jobs on this machine, step by step.

GitHub's runners are out of reach, so the workflow tests execute every `run:`
step of every job in order, in a rendered project, with the environment GitHub
would provide set to plausible values. `uses:` steps are stood in for by the
local equivalent listed in ACTIONS; an action, expression or context the runner
does not know fails the test, so a workflow cannot gain a step nobody ran. A `run:`
step may be given the output of the very same command run earlier on the same project
(``reused``): its summary is written as the step would write it, and the log says so.
"""

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.commands import git
from helpers.container_images import SCRIPTS
from helpers.template import uv_executable

# CI's scoring step, word for word: the golden path's score of the same project is
# reused for it rather than computed again (minutes).
SCORING_STEP = 'make ml-test-score REPORT="$GITHUB_STEP_SUMMARY"'

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class UnsupportedStep(Exception):
    """A step, action or expression this runner cannot reproduce locally."""


@dataclass
class Context:
    """What GitHub would provide: event, inputs, secrets, repository variables, step
    outputs, environment."""

    event_name: str
    inputs: dict[str, object]
    env: dict[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    github: dict[str, str] = field(default_factory=dict)
    # Repository (configuration) variables: GitHub gives an unset one as "".
    variables: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> object:
        """Resolve a context path such as ``steps.report.outputs.promoted``."""
        parts = name.split(".")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.outputs.get(parts[1], {}).get(parts[3], "")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs.get(parts[1], "")
        if parts[0] == "github" and len(parts) == 2:
            return self.github.get(parts[1], "")
        if parts[0] == "vars" and len(parts) == 2:
            return self.variables.get(parts[1], "")
        if parts[0] == "secrets" and len(parts) == 2:
            return f"fake-{parts[1].lower()}"
        raise UnsupportedStep(f"unknown context {name!r}")

    def evaluate(self, expression: str) -> object:
        """Evaluate a GitHub expression built from contexts, strings, ==, !=, &&, || and ()."""
        tokens = re.findall(r"'[^']*'|&&|\|\||==|!=|\(|\)|[A-Za-z_][\w.-]*|\S", expression)
        python = []
        for token in tokens:
            if token in {"&&", "||"}:
                python.append({"&&": "and", "||": "or"}[token])
            elif token in {"==", "!=", "(", ")"} or token.startswith("'"):
                python.append(token)
            elif token in {"true", "false"}:
                python.append(token.capitalize())
            elif re.fullmatch(r"[A-Za-z_][\w.-]*", token):
                python.append(repr(self.value(token)))
            else:
                raise UnsupportedStep(f"unsupported expression {expression!r}")
        return eval(" ".join(python), {"__builtins__": {}})  # tokens are vetted above

    def substitute(self, text: str) -> str:
        """Replace every ${{ ... }} in ``text`` by its value."""
        return EXPRESSION.sub(lambda match: str(self.evaluate(match.group(1))), text)


def stand_in(step: dict, project: Path, context: Context) -> None:
    """Do locally what a `uses:` step does on GitHub, or refuse."""
    action = step["uses"].split("@")[0]
    options = {key: context.substitute(str(value)) for key, value in step.get("with", {}).items()}
    if action == "actions/checkout":
        return  # the project folder is the checkout
    if action == "astral-sh/setup-uv":
        return  # uv is on PATH (UV and PATH are set by the caller)
    if action == "actions/upload-artifact":
        # Each line is a path or a glob; the action fails on one that matches nothing.
        for line in options["path"].split():
            found = list(project.glob(line))
            assert found, f"{line} matches nothing"
            assert all(path.is_file() or any(path.iterdir()) for path in found), line
        return
    if action == "docker/login-action":
        assert options["registry"] == "ghcr.io" and options["password"]
        return
    if action == "peter-evans/create-pull-request":
        for line in options.get("add-paths", "").split():
            assert list(project.glob(line)), f"pull request would add nothing for {line}"
        if "body-path" in options:
            assert (project / options["body-path"]).read_text().strip()
        return
    if action == "actions/github-script":
        assert "github.rest.issues.create" in options["script"]
        return
    raise UnsupportedStep(f"no local stand-in for {step['uses']}")


def run_job(
    workflow: dict, job: dict, project: Path, context: Context, reused: dict[str, str]
) -> list[str]:
    """Run a job's steps in order; return a log line per step. Fails on the first failure."""
    with tempfile.TemporaryDirectory() as scratch:
        return run_steps(workflow, job, project, context, scratch, reused)


def run_steps(
    workflow: dict,
    job: dict,
    project: Path,
    context: Context,
    scratch: str,
    reused: dict[str, str],
) -> list[str]:
    """Run the steps of ``job``, keeping GitHub's per-step files in ``scratch``; a step
    whose command is a key of ``reused`` appends that summary instead of running."""
    log = []
    env = {
        **context.env,
        **{k: context.substitute(str(v)) for k, v in workflow.get("env", {}).items()},
    }
    env.update({k: context.substitute(str(v)) for k, v in job.get("env", {}).items()})
    env["UV_PYTHON_DOWNLOADS"] = "never"  # never download an interpreter here
    for index, step in enumerate(job["steps"]):
        name = step.get("name") or step.get("run") or step.get("uses")
        if "if" in step and not context.evaluate(
            str(step["if"]).removeprefix("${{").removesuffix("}}")
        ):
            log.append(f"skipped (if: {step['if']}): {name}")
            continue
        if "uses" in step:
            stand_in(step, project, context)
            log.append(f"stood in: {step['uses']}")
            continue
        if step["run"].strip() in reused:
            with Path(env["GITHUB_STEP_SUMMARY"]).open("a") as summary:
                summary.write(reused[step["run"].strip()])
            log.append(f"reused: {name}")
            continue
        # Outside the project, as on GitHub: the work tree must stay as the steps leave it.
        files = {
            key: Path(scratch) / f"{key.lower()}-{index}" for key in ("GITHUB_OUTPUT", "GITHUB_ENV")
        }
        for path in files.values():
            path.write_text("")
        step_env = {
            **env,
            **{k: context.substitute(str(v)) for k, v in step.get("env", {}).items()},
        }
        step_env.update({key: str(path) for key, path in files.items()})
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=project,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"step {name!r} failed ({result.returncode}):\n"
                f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
            )
        outputs = dict(
            line.split("=", 1)
            for line in files["GITHUB_OUTPUT"].read_text().splitlines()
            if "=" in line
        )
        if "id" in step:
            context.outputs[step["id"]] = outputs
        env.update(
            dict(
                line.split("=", 1)
                for line in files["GITHUB_ENV"].read_text().splitlines()
                if "=" in line
            )
        )
        for path in files.values():
            path.unlink()
        log.append(f"ran: {name}")
    return log


def load_workflow(path: Path) -> dict:
    """Parse a workflow file (YAML reads the `on:` key as True; restore it)."""
    workflow = yaml.safe_load(path.read_text())
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def default_inputs(workflow: dict) -> dict[str, object]:
    """The workflow_dispatch inputs at their defaults."""
    dispatch = (workflow["on"] or {}).get("workflow_dispatch") or {}
    return {name: spec.get("default", "") for name, spec in (dispatch.get("inputs") or {}).items()}


def github_env(scratch: Path) -> dict[str, str]:
    """The variables GitHub's runner sets, with plausible values, plus local stand-ins;
    the job summary and the pushed image go to ``scratch``."""
    uv = uv_executable()
    return {
        **os.environ,
        "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}",
        "UV": uv,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "Acme-ML/Penguin-Model",
        "GITHUB_REF_NAME": "v1.2.3",
        "GITHUB_SHA": "0" * 40,
        "GITHUB_ACTOR": "octocat",
        "GITHUB_STEP_SUMMARY": str(scratch / "summary.md"),
        # Stand-ins for the runner's docker: podman, pushing to an archive, not a registry.
        "CONTAINER": "podman",
        "CONTAINERS_CONF": str(SCRIPTS / "containers.conf"),
        "PUSH_DESTINATION": f"oci-archive:{scratch / 'image.tar'}",
    }


def as_checked_out(project: Path) -> None:
    """Leave ``project`` as actions/checkout would: committed, with origin/main."""
    git("add", "-A", cwd=project)
    git("commit", "--quiet", "--no-verify", "--allow-empty", "-m", "trained", cwd=project)
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=project)


def run_workflow(
    project: Path,
    name: str,
    env: dict[str, str],
    reused: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
) -> Context:
    """Run every job of ``.github/workflows/<name>.yml`` as a manual dispatch, with the
    repository's configuration ``variables``."""
    workflow = load_workflow(project / ".github" / "workflows" / f"{name}.yml")
    context = Context(
        event_name="workflow_dispatch",
        inputs=default_inputs(workflow),
        env=env,
        github={"event_name": "workflow_dispatch", "base_ref": "", "actor": "octocat"},
        variables=variables or {},
    )
    for job_name, job in workflow["jobs"].items():
        log = run_job(workflow, job, project, context, reused or {})
        print(f"{name}/{job_name}:", *log, sep="\n  ")
    return context
