"""A new dataset starts a new model lineage: the project switches tables and keeps its history.

One temporary copy of the project runs the pipeline on its configured data, then on
another table with other columns and another target, as after `make dataset`: made
from the project's own table, so it differs from whatever table the team adopted.
"""

import json
import shutil
import sys

import pandas as pd
import pytest
import yaml
from test_pipeline import NOT_COPIED, PROJECT_ROOT, Project

from mlops_kit.core.params import load_params

pytestmark = pytest.mark.integration

NEW_TABLE = "another_table"
CONFIG = "conf/config.yaml"


def module(name: str) -> tuple[str, ...]:
    """The command that runs one of this project's modules."""
    return (
        sys.executable,
        "-m",
        f"mlops_kit.{name}",
    )


def another_table(project: Project) -> tuple[pd.DataFrame, dict]:
    """Another table made from this project's own one: every column renamed, the target
    too, and a classifier's labels of another kind (codes become names, names codes).

    Whatever table the team adopted, the result shares no column with it, so the
    pipeline must start a new lineage; the rows carry the same signal, so the
    thresholds the team's data meets are met again (they are copied). Returns the
    table and its conf/data/ content.
    """
    from mlops_kit.data import load_source

    params = load_params(project.root / "params.yaml")
    data = params.data
    table = load_source(project.root / data.source).dropna(subset=[data.target])
    old_columns = set(table.columns)
    renamed = {column: f"other {column}" for column in data.input_columns}
    target = f"other {data.target}"
    while target in old_columns or target in renamed.values():
        target = f"other {target}"
    assert old_columns.isdisjoint({*renamed.values(), target}), "the other table shares a column"
    frame = table[data.input_columns].rename(columns=renamed)
    labels = table[data.target]
    if data.is_classification:
        classes = sorted(labels.unique())
        numeric = pd.api.types.is_numeric_dtype(labels)
        relabel = {
            label: f"class {label}" if numeric else index for index, label in enumerate(classes)
        }
        frame[target] = labels.map(relabel).to_numpy()
        assert set(frame[target]).isdisjoint(classes), "the other table kept the labels"
    else:
        frame[target] = labels.to_numpy()
    config = {
        "data": {
            "source": f"data/raw/{NEW_TABLE}.csv",
            "task": data.task,
            "target": target,
            "numeric_features": [renamed[column] for column in data.numeric_features],
            "categorical_features": [renamed[column] for column in data.categorical_features],
        },
        "evaluate": {
            "thresholds": {
                name: bound.model_dump(exclude_none=True)
                for name, bound in params.evaluate.thresholds.items()
            }
        },
    }
    return frame, config


def write_dataset_config(project: Project) -> str:
    """Write the table, its conf/data/ and conf/schema/ files; point conf/config.yaml at them."""
    frame, dataset = another_table(project)
    frame.to_csv(project.root / dataset["data"]["source"], index=False)
    (project.root / "conf" / "data" / f"{NEW_TABLE}.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(dataset, sort_keys=False)
    )
    # The schema is derived from the new source, as `make schema` does.
    project.run(*module("config"), f"data={NEW_TABLE}")
    project.run(*module("validation"), "infer")
    config = project.root / CONFIG
    text = config.read_text()
    for group in ("data", "schema"):
        lines = [line for line in text.splitlines() if line.startswith(f"  - {group}: ")]
        assert len(lines) == 1, f"conf/config.yaml has no single '{group}' default"
        text = text.replace(lines[0], f"  - {group}: {NEW_TABLE}")
    config.write_text(text)
    return dataset["data"]["target"]


def client(project: Project):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])


def model_name(project: Project) -> str:
    return load_params(project.root / "params.yaml").mlflow.registered_model_name


def champion(project: Project):
    return client(project).get_model_version_by_alias(model_name(project), "champion")


def promotion(project: Project) -> dict:
    return json.loads((project.root / "reports" / "promotion.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("lineage") / "project"
    shutil.copytree(PROJECT_ROOT, root, ignore=NOT_COPIED)
    copy = Project(root)
    copy.run("git", "init", "--quiet", "--initial-branch=main")
    copy.commit("sources")
    return copy


@pytest.fixture(scope="module")
def first_champion(project: Project) -> str:
    """The champion of the shipped data, registered as by a project without lineage tags."""
    project.compose_and_repro()
    version = champion(project)
    # Versions registered before lineage tags existed: their lineage comes from the
    # run's params and the model's signature instead.
    for key in [key for key in version.tags if key.startswith("lineage.")]:
        client(project).delete_model_version_tag(model_name(project), version.version, key)
    return str(version.version)


@pytest.fixture(scope="module")
def new_target(project: Project, first_champion: str) -> str:
    """The pipeline run again on another table (the shipped data stays in conf/)."""
    target = write_dataset_config(project)
    project.compose_and_repro()
    return target


def test_the_first_model_of_a_new_table_is_promoted_on_the_thresholds_alone(
    project: Project, first_champion: str, new_target: str
) -> None:
    outcome = promotion(project)
    assert outcome["promote"], outcome["reasons"]
    assert outcome["champion"] is None, "a champion of other columns was scored on this data"
    assert outcome["lineage"]["new"]
    assert outcome["reasons"][0].startswith(f"new lineage: champion v{first_champion} learned")
    assert "judged by the thresholds alone" in outcome["reasons"][0]
    assert str(champion(project).version) == outcome["challenger_version"] != first_champion
    bundle = json.loads((project.root / "models" / "champion" / "metadata.json").read_text())
    assert bundle["target"] == new_target
    report = project.run(*module("evaluate"), "report").stdout
    assert "new lineage" in report and "other lineage" in report
    project.run(*module("evaluate"), "gate")


def test_the_old_versions_stay_in_the_registry_and_the_new_one_records_what_it_learned(
    project: Project, first_champion: str, new_target: str
) -> None:
    registry = client(project)
    versions = registry.search_model_versions(f"name = '{model_name(project)}'")
    assert first_champion in {str(version.version) for version in versions}
    new = registry.get_model_version(model_name(project), promotion(project)["challenger_version"])
    assert new.tags["lineage.target"] == new_target
    columns = json.loads(new.tags["lineage.columns"])
    assert columns and all(column != new_target for column in columns)
    assert new.tags["lineage.source"] == f"data/raw/{NEW_TABLE}.csv"


def test_rollback_never_serves_a_model_of_another_table(
    project: Project, first_champion: str, new_target: str
) -> None:
    before = str(champion(project).version)
    refused = project.run(*module("rollback"), check=False)
    assert refused.returncode != 0
    assert "no previous one to roll back to" in refused.stderr, refused.stderr
    assert "never crosses lineages" in refused.stderr, refused.stderr
    assert str(champion(project).version) == before


def test_labels_re_exported_in_another_kind_start_a_new_lineage_in_one_line(
    project: Project, new_target: str
) -> None:
    """The same table re-exported with class names instead of codes (or codes instead of
    names): the champion cannot be scored on labels of another kind (scikit-learn
    refuses to compare 1 with "1"), so the run says what changed and starts a new
    lineage, judged by the thresholds alone. Regression has no labels to change."""
    params = load_params(project.root / "params.yaml")
    if not params.data.is_classification:
        pytest.skip("regression: a target has no label kind to change")
    before = str(champion(project).version)
    source = project.root / params.data.source
    table = pd.read_csv(source)
    labels = table[new_target]
    numeric = pd.api.types.is_numeric_dtype(labels)
    classes = sorted(labels.dropna().unique())
    relabel = {label: f"kind {label}" if numeric else code for code, label in enumerate(classes)}
    table[new_target] = labels.map(relabel)
    table.to_csv(source, index=False)
    project.run(*module("validation"), "infer")
    project.run(*module("config"))
    run = project.repro(check=False)
    if run.returncode != 0:
        # The table checks may stop new class shares first: the team accepts the data.
        output = run.stdout + run.stderr
        assert "Traceback" not in output and "make accept-data" in output, output
        project.dvc("repro", "prepare")
        project.run(*module("accept"), "--reason", "labels re-exported")
        run = project.repro()
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output
    outcome = promotion(project)
    assert outcome["promote"] and outcome["lineage"]["new"], outcome["reasons"]
    assert "the labels changed from" in outcome["reasons"][0], outcome["reasons"]
    assert f"champion v{before}" in outcome["reasons"][0], outcome["reasons"]
    new = client(project).get_model_version(model_name(project), outcome["challenger_version"])
    assert json.loads(new.tags["lineage.labels"]) == sorted(relabel.values()), new.tags


def test_a_lost_tracking_store_stops_evaluate_in_one_line_and_the_next_run_recovers(
    project: Project, new_target: str
) -> None:
    (project.root / "mlflow.db").unlink()
    # Only the evaluate stage's params change: DVC would skip training.
    project.run(*module("config"), "evaluate.promotion_margin=0.01")
    stopped = project.repro(check=False)
    assert stopped.returncode != 0
    output = stopped.stdout + stopped.stderr
    assert "Traceback" not in output, output
    assert "does not hold" in output and "`make pipeline`" in output, output
    recovered = project.repro()
    assert "Running stage 'train'" in recovered.stdout, recovered.stdout
    outcome = promotion(project)
    # The store is new, so its first version; asked of the bundle, not of this process,
    # whose MLflow still holds the deleted database open.
    assert outcome["promote"] and outcome["challenger_version"] == "1", outcome["reasons"]
    bundle = json.loads((project.root / "models" / "champion" / "metadata.json").read_text())
    assert bundle["model_version"] == "1"


def test_back_on_the_shipped_data_a_champion_of_the_other_table_is_neither_shipped_nor_gated(
    project: Project, new_target: str
) -> None:
    """The registry's champion learned the other table: exporting it for the shipped data
    is refused, and the gate says why the bundle cannot be scored on this test split
    (neither crashes on the columns it lacks)."""
    project.run("git", "checkout", "--quiet", "--", CONFIG)
    project.run(*module("config"))
    project.repro("split")
    export = project.run(*module("export"), "--from-registry", check=False)
    assert export.returncode != 0
    assert "cannot serve the configured data" in export.stderr, export.stderr
    gate = project.run(*module("evaluate"), "gate", check=False)
    assert gate.returncode != 0
    assert "cannot be scored on the current test split" in gate.stderr, gate.stderr
