"""A data scientist explores in a notebook: `make notebooks` runs every one headless, offline.

Each test works on a copy of the run's trained project. `make notebooks` runs in a
network namespace of its own with no interface up, not even loopback, when this
machine allows one (root and util-linux's `unshare`): the notebook's kernel talks
to the runner over Unix sockets, and nothing it does can reach a network. The
shipped notebook names no column: it must run on a table the template never saw.
"""

import base64
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml

from helpers.commands import developer_environment, in_project, run_make
from helpers.template import uv_executable

pytestmark = pytest.mark.e2e

OWN_TABLES = Path(__file__).with_name("helpers") / "own_tables.py"
SHIPPED = Path("notebooks") / "1.0-kit-explore.py"


def network_cut() -> bool:
    """Whether commands can run here in a network namespace with no interface up."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--", "ip", "-o", "link", "show", "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == ""


def make_notebooks_offline(project: Path, *variables: str) -> subprocess.CompletedProcess:
    """`make notebooks` with the network cut off when the machine allows it (else with a
    warning); the completed process, whatever its exit status.

    First, with the network on, uv reinstalls the copy's own two packages (their folder
    moved with the copy, and building them may ask the index for hatchling): the
    environment is then as `make setup` leaves a project.
    """
    subprocess.run(
        [uv_executable(), "sync", "--frozen", "--quiet"],
        cwd=project,
        check=True,
        env=developer_environment(),
    )
    command = ["make", "--no-print-directory", "notebooks", *variables, f"UV={uv_executable()}"]
    if network_cut():
        command = ["unshare", "--net", "--", *command]
    else:
        warnings.warn(
            "make notebooks ran with the network on: needs root and unshare", stacklevel=2
        )
    return subprocess.run(
        command,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=developer_environment(),
    )


def outputs(notebook: Path) -> tuple[str, int, list[dict]]:
    """An executed notebook's printed text, its number of images and its error outputs."""
    cells = json.loads(notebook.read_text())["cells"]
    produced = [output for cell in cells for output in cell.get("outputs", [])]
    text = "".join(
        "".join(output["text"]) for output in produced if output["output_type"] == "stream"
    )
    images = sum("image/png" in output.get("data", {}) for output in produced)
    errors = [output for output in produced if output["output_type"] == "error"]
    return text, images, errors


def test_make_notebooks_runs_the_shipped_notebook_on_the_trained_project_offline(
    project_copy: Path,
) -> None:
    script = project_copy / SHIPPED
    committed = script.read_bytes()
    run = make_notebooks_offline(project_copy)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert f"{SHIPPED}: " in run.stdout and "code cells ran" in run.stdout, run.stdout

    text, images, errors = outputs(script.with_suffix(".ipynb"))
    assert errors == []
    data = yaml.safe_load((project_copy / "params.yaml").read_text())["data"]
    assert f"{data['task']} of {data['target']!r} from {data['source']}" in text
    metadata = json.loads((project_copy / "models/champion/metadata.json").read_text())
    assert f"champion: {metadata['model_name']} v{metadata['model_version']}" in text
    # The train/test drift chart, the task's two charts of the model card, and one
    # chart per group column of conf/ (slice, sensitive, categorical features).
    by = {data["slice_column"], data["sensitive_column"], *data["categorical_features"]} - {None}
    assert images == 3 + len(by), text

    # The script git keeps is what review reads: running it leaves it byte for byte,
    # and the notebook holding the outputs is ignored by git.
    assert script.read_bytes() == committed
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(script.with_suffix(".ipynb"))], cwd=project_copy
    )
    assert ignored.returncode == 0, "the executed .ipynb is not git-ignored"


@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_the_notebook_explores_an_adopted_table_and_a_failing_cell_is_one_line(
    project_copy: Path, tmp_path: Path
) -> None:
    """After `make dataset` the notebook reads the new table's roles from conf/, and says
    the demo's champion learned other data instead of scoring it. A cell added in
    Jupyter reaches the script, and when it fails, one line names the notebook, the
    cell, its line in the script and the error."""
    source = tmp_path / "wine.csv"
    in_project(project_copy, "python", str(OWN_TABLES), "write", "wine", str(source))
    run_make(project_copy, "dataset", f"SOURCE={source}", "TARGET=target", timeout=1800)
    run = make_notebooks_offline(project_copy)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    text, images, errors = outputs(project_copy / SHIPPED.with_suffix(".ipynb"))
    assert errors == []
    data = yaml.safe_load((project_copy / "params.yaml").read_text())["data"]
    assert f"{data['task']} of 'target' from data/raw/wine.csv" in text
    assert f"numeric features: {data['numeric_features']}" in text
    assert "the champion learned other data" in text
    assert images == 1  # the train/test drift chart; no champion to draw

    # A data scientist copies the notebook in Jupyter and inserts a cell reading a
    # column the table lacks; the .ipynb has no script yet.
    notebook = json.loads((project_copy / SHIPPED.with_suffix(".ipynb")).read_text())
    code = [index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"]
    broken = {
        "cell_type": "code",
        "execution_count": None,
        "id": "broken",
        "metadata": {},
        "outputs": [],
        "source": ["# the bill's length, as in the demo\n", 'frame["bill"]'],
    }
    notebook["cells"].insert(code[1] + 1, broken)
    new = project_copy / "notebooks" / "2.0-ab-bills.ipynb"
    new.write_text(json.dumps(notebook))
    failed = make_notebooks_offline(project_copy)
    assert failed.returncode != 0
    script = new.with_suffix(".py")
    assert 'frame["bill"]' in script.read_text(), "the new notebook got no script"
    line = script.read_text().splitlines().index('frame["bill"]') + 1
    reported = [row for row in failed.stderr.splitlines() if not row.startswith("make")]
    assert reported == [
        f'notebooks/{script.name}: cell {code[1] + 2}, line {line} (frame["bill"]): '
        f"KeyError: 'bill'; the traceback is in notebooks/{new.name}"
    ], failed.stderr
    # The shipped notebook still passed beside it.
    assert f"{SHIPPED}: " in failed.stdout and "code cells ran" in failed.stdout


@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_a_committed_notebook_loses_its_outputs_to_the_pre_commit_hook(
    project_copy: Path,
) -> None:
    """Outside notebooks/ a .ipynb is not ignored: nbstripout strips it before commit."""
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n a chart").decode()  # what nbformat stores
    cell = {
        "cell_type": "code",
        "execution_count": 3,
        "id": "shown",
        "metadata": {},
        "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["4 rows\n"]},
            {"output_type": "display_data", "data": {"image/png": image}, "metadata": {}},
        ],
        "source": ["print('4 rows')"],
    }
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    analysis = project_copy / "analysis.ipynb"
    analysis.write_text(json.dumps(notebook))
    assert outputs(analysis)[:2] == ("4 rows\n", 1)
    subprocess.run(["git", "add", "analysis.ipynb"], cwd=project_copy, check=True)
    hook = subprocess.run(
        [".venv/bin/pre-commit", "run", "nbstripout", "--files", "analysis.ipynb"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert hook.returncode == 1, hook.stdout  # pre-commit: the hook changed the file
    assert outputs(analysis) == ("", 0, [])
    assert json.loads(analysis.read_text())["cells"][0]["execution_count"] is None
