"""A team keeps its repository current with `copier update` and loses none of its work.

Real git and real copier: a throwaway template repository holds each release, the
working tree as the newest version, and a newer synthetic version changing
template-owned files.
"""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from copier import run_copy, run_recopy, run_update

from helpers.commands import developer_environment, git, run_make
from helpers.template import (
    COPIER_CONFIG,
    TEMPLATE_ROOT,
    available_python_version,
    hooks_dir,
    uv_executable,
)
from helpers.template_versions import (
    NEWER_TARGET,
    build_template_repo,
    current_tag,
    fill_from_commit,
    fill_from_working_tree,
    release_commit,
    released_versions,
    with_a_newer_makefile_target,
)

NEWER_TAG = "v999.0.0"


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every release, then the working tree, then a newer template-owned change."""
    versions = [(f"v{v}", fill_from_commit(release_commit(v))) for v in released_versions()]
    versions += [(current_tag(), fill_from_working_tree), (NEWER_TAG, with_a_newer_makefile_target)]
    return build_template_repo(tmp_path_factory.mktemp("template") / "repo", versions)


@pytest.fixture(scope="module")
def untagged_template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first release, then the working tree, as commits without tags (a clone of main)."""
    first = released_versions()[0]
    versions = [(f"v{first}", fill_from_commit(release_commit(first)))]
    versions += [(current_tag(), fill_from_working_tree)]
    return build_template_repo(tmp_path_factory.mktemp("untagged") / "repo", versions, tagged=False)


def render_at(template_repo: Path, tag: str, destination: Path, **answers: str) -> Path:
    """Render the template at ``tag`` (or a commit) and commit the result, as a team would."""
    run_copy(
        str(template_repo),
        destination,
        vcs_ref=tag,
        data={"python_version": available_python_version(), **answers},
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    commit_all(destination, f"render {tag}")
    return destination


def commit_all(project: Path, message: str) -> None:
    git("add", "-A", cwd=project)
    git("commit", "--quiet", "--no-verify", "--allow-empty", "-m", message, cwd=project)


def update_to(project: Path, tag: str | None, **answers: str) -> None:
    """Update to ``tag``; ``None`` is copier's default, the newest tag or else HEAD."""
    run_update(
        project,
        vcs_ref=tag,
        data=answers,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
        conflict="inline",
    )


def leftovers(project: Path) -> list[str]:
    """Conflict markers and rejected hunks anywhere in the project."""
    found = [str(path) for path in project.rglob("*.rej")]
    for path in project.rglob("*"):
        if ".git" in path.parts or ".venv" in path.parts or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if "<<<<<<< " in text or ">>>>>>> " in text:
            found.append(str(path))
    return found


def assert_ruff_clean(project: Path) -> None:
    """The project passes ruff's checks with its own configuration."""
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def team_owned(project: Path) -> set[Path]:
    """Files matched by copier.yml's ``_skip_if_exists``: the team's, never updated."""
    package = answers(project)["package_name"]
    owned = set()
    for pattern in COPIER_CONFIG["_skip_if_exists"]:
        owned.update(project.glob(pattern.replace("{{ package_name }}", package)))
    return {path.relative_to(project) for path in owned}


def project_files(project: Path) -> dict[Path, bytes]:
    return {
        path.relative_to(project): path.read_bytes()
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


@pytest.mark.parametrize("version", released_versions())
def test_a_project_from_every_release_updates_to_the_current_template(
    template_repo: Path, tmp_path: Path, version: str
) -> None:
    project = render_at(template_repo, f"v{version}", tmp_path / "old")
    update_to(project, current_tag())
    assert not leftovers(project)
    assert answers(project)["_commit"] == current_tag()
    fresh = render_at(template_repo, current_tag(), tmp_path / "fresh")
    updated, expected = project_files(project), project_files(fresh)
    ignored = team_owned(project) | {Path(".copier-answers.yml")}
    differing = sorted(
        str(name)
        for name in (set(updated) | set(expected)) - ignored
        if updated.get(name) != expected.get(name)
    )
    assert not differing, "template-owned files must equal a fresh render after updating"
    assert_ruff_clean(project)


def add_a_team_feature_the_old_way(project: Path, package: str) -> None:
    """0.1.0 style: a decorated function appended to features.py, listed in conf/data."""
    features = project / "src" / package / "features.py"
    features.write_text(
        features.read_text()
        + "\n\n@derived_feature\n"
        + "def flipper_to_mass(frame: pd.DataFrame) -> pd.Series:\n"
        + '    """Flipper length per gram of body mass."""\n'
        + '    return safe_ratio(frame["flipper_length_mm"], frame["body_mass_g"])\n'
    )
    data_config = project / "conf" / "data" / "penguins.yaml"
    data_config.write_text(data_config.read_text() + "  - flipper_to_mass\n")


def make_team_edits(project: Path, package: str) -> None:
    model = project / "conf" / "model" / "random_forest.yaml"
    model.write_text(model.read_text().replace("n_estimators: 200", "n_estimators: 150"))
    if (project / "src" / package / "derived_features.py").exists():
        derived = project / "src" / package / "derived_features.py"
        derived.write_text(
            derived.read_text()
            + "\n\ndef flipper_to_mass(frame: pd.DataFrame) -> pd.Series:\n"
            + '    """Flipper length per gram of body mass."""\n'
            + '    return safe_ratio(frame["flipper_length_mm"], frame["body_mass_g"])\n'
        )
        data_config = project / "conf" / "data" / "penguins.yaml"
        data_config.write_text(data_config.read_text() + "  - flipper_to_mass\n")
    else:
        add_a_team_feature_the_old_way(project, package)
    (project / "tests" / "test_team.py").write_text(
        f"from {package}.features import add_derived_features\n\n\n"
        "def test_flipper_to_mass_is_positive(raw_data) -> None:\n"
        '    ratio = add_derived_features(raw_data, ["flipper_to_mass"])["flipper_to_mass"]\n'
        "    assert (ratio.dropna() > 0).all()\n"
    )
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Team notes\n\nWe retrain every Monday.\n")


# The first release (features decorated in the template's features.py) and 0.3.0
# (the team's derived_features.py): both layouts move into the team's room.
@pytest.mark.e2e
@pytest.mark.parametrize("release", [released_versions()[0], "0.3.0"])
def test_team_work_survives_an_update_from_an_old_release(
    template_repo: Path, tmp_path: Path, release: str
) -> None:
    project = render_at(template_repo, f"v{release}", tmp_path / "team")
    package = answers(project)["package_name"]
    make_team_edits(project, package)
    run_make(project, "setup")
    run_make(project, "pipeline")  # retrain with the team's changes
    commit_all(project, "team: feature, hyperparameter, test, notes; retrained")

    update_to(project, NEWER_TAG)

    assert not leftovers(project)
    assert answers(project)["_commit"] == NEWER_TAG
    assert "n_estimators: 150" in (project / "conf" / "model" / "random_forest.yaml").read_text()
    data_text = (project / "conf" / "data" / "penguins.yaml").read_text()
    assert "flipper_to_mass" in data_text
    # The rubric's columns moved from the template's conf/ml_test_score/ to the data file.
    assert "time_column: year" in data_text and "sensitive_column: sex" in data_text
    # The team's feature moved into its room; its test now imports the kit's helper.
    features = (project / "src" / package / "features.py").read_text()
    assert "def flipper_to_mass" in features and "def bill_ratio" in features
    assert "@derived_feature" not in features and "def build_preprocessor" in features
    assert not (project / "src" / package / "train.py").exists()
    team_test = (project / "tests" / "test_team.py").read_text()
    assert "from mlops_kit.features import add_derived_features" in team_test
    assert "We retrain every Monday." in (project / "README.md").read_text()
    assert NEWER_TARGET in run_make(project, "help").stdout

    # What CHANGELOG.md asks by hand for this update: the new feature check (data-2)
    # flags `sex`, which tells nothing about the species on its own.
    data_config = project / "conf" / "data" / "penguins.yaml"
    data_config.write_text(data_config.read_text().replace("  - sex\n", ""))
    run_make(project, "setup")
    pipeline = run_make(project, "pipeline")
    assert "Running stage 'train'" in pipeline.stdout  # new code and config really retrain
    run_make(project, "test")


def run_in_project_environment(project: Path, code: str) -> str:
    """Run Python code with the project's runtime dependencies only (no train/serve/dev)."""
    environment = {**developer_environment(), "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(
        [uv_executable(), "run", "--no-default-groups", "--quiet", "python", "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.mark.e2e
def test_a_render_without_release_tags_gets_its_derived_features_moved_into_the_room(
    untagged_template_repo: Path, tmp_path: Path
) -> None:
    oldest = git("rev-list", "--max-parents=0", "HEAD", cwd=untagged_template_repo).strip()
    project = render_at(untagged_template_repo, oldest, tmp_path / "team")
    assert oldest.startswith(answers(project)["_commit"]), "no tags: copier records a commit"
    package = answers(project)["package_name"]
    add_a_team_feature_the_old_way(project, package)
    commit_all(project, "team: a derived feature, the 0.1.0 way")

    update_to(project, None)

    head = git("rev-parse", "HEAD", cwd=untagged_template_repo).strip()
    assert head.startswith(answers(project)["_commit"])
    assert not leftovers(project)
    features = (project / "src" / package / "features.py").read_text()
    assert "@derived_feature" not in features and "def flipper_to_mass" in features
    assert_ruff_clean(project)
    # The 0.1.0 decorator left in place would break the import.
    ratios = run_in_project_environment(
        project,
        "import pandas as pd\n"
        "from mlops_kit.features import add_derived_features\n"
        "frame = pd.DataFrame({'flipper_length_mm': [200.0], 'body_mass_g': [4000.0],"
        " 'bill_length_mm': [40.0], 'bill_depth_mm': [20.0]})\n"
        "added = add_derived_features(frame, ['bill_ratio', 'flipper_to_mass'])\n"
        "print(added['bill_ratio'][0], added['flipper_to_mass'][0])\n",
    )
    assert ratios.split() == ["2.0", "0.05"]


def test_changing_an_answer_during_update_rerenders_template_owned_files(
    template_repo: Path, tmp_path: Path
) -> None:
    project = render_at(template_repo, current_tag(), tmp_path / "project", license="MIT")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nTeam notes.\n")
    commit_all(project, "team notes")
    update_to(project, current_tag(), license="Apache-2.0")
    assert answers(project)["license"] == "Apache-2.0"
    assert "Apache License" in (project / "LICENSE").read_text()
    assert "Team notes." in readme.read_text(), "team-owned README is never rewritten"
    assert not leftovers(project)


def test_a_laptop_project_moves_to_the_team_stack_by_answers(
    template_repo: Path, tmp_path: Path
) -> None:
    project = render_at(template_repo, current_tag(), tmp_path / "project")
    assert not (project / "compose.yaml").exists()
    update_to(
        project,
        current_tag(),
        tracking="server",
        tracking_uri="https://mlflow.example.com",
        data_remote="s3",
        data_remote_url="s3://ml-data/dvc",
    )
    assert (project / "compose.yaml").is_file()
    assert (project / "stack" / "mlflow-server.Dockerfile").is_file()
    assert "url = s3://ml-data/dvc" in (project / ".dvc" / "config").read_text()
    assert "dvc[s3]" in (project / "pyproject.toml").read_text()
    mlflow_config = (project / "conf" / "mlflow" / "default.yaml").read_text()
    assert "tracking_uri: https://mlflow.example.com" in mlflow_config
    assert not leftovers(project)


def test_recopy_resets_template_owned_files_and_keeps_team_owned_ones(
    template_repo: Path, tmp_path: Path
) -> None:
    project = render_at(template_repo, current_tag(), tmp_path / "project")
    makefile, readme = project / "Makefile", project / "README.md"
    pristine_makefile = makefile.read_text()
    makefile.write_text(pristine_makefile + "\n# local hack\n")
    readme.write_text(readme.read_text() + "\nTeam notes.\n")
    commit_all(project, "local edits")
    run_recopy(
        project, vcs_ref=current_tag(), defaults=True, overwrite=True, unsafe=True, quiet=True
    )
    assert makefile.read_text() == pristine_makefile
    assert "Team notes." in readme.read_text()


OLD_DERIVED_FEATURES = '''"""Derived features: columns computed from other columns (the team's)."""

import math

import numpy as np
import pandas as pd


def safe_ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Divide, turning division by zero into a missing value the imputer fills."""
    return numerator.astype(float) / denominator.astype(float).replace(0, np.nan)


def bill_ratio(frame: pd.DataFrame) -> pd.Series:
    """Bill length over bill depth."""
    return safe_ratio(frame["bill_length_mm"], frame["bill_depth_mm"])


def log_mass(frame: pd.DataFrame) -> pd.Series:
    """Log of body mass."""
    return frame["body_mass_g"].map(math.log)
'''


def put_in_the_0_4_0_layout(project: Path, package: str) -> None:
    """What an update from 0.2.0-0.4.0 leaves before the migration runs: the team's
    derived_features.py committed then deleted, the old template features.py and data.py
    kept (the room's files are never overwritten), a team test importing moved modules."""
    room = project / "src" / package
    old = release_commit("0.4.0")
    for name in ("features.py", "data.py"):
        text = git("show", f"{old}:template/src/{{{{ package_name }}}}/{name}", cwd=TEMPLATE_ROOT)
        (room / name).write_text(text)
    (room / "derived_features.py").write_text(OLD_DERIVED_FEATURES)
    (project / "tests" / "test_team.py").write_text(
        f"from {package}.config import Params\n"
        f"from {package}.features import add_derived_features, log_mass\n\n\n"
        "def test_log_mass_is_finite(raw_data, params: Params) -> None:\n"
        '    assert add_derived_features(raw_data, ["log_mass"])["log_mass"].notna().any()\n'
        "    assert log_mass is not None\n"
    )
    if not (project / ".git").exists():  # rendered without tasks: no repository yet
        git("init", "--quiet", cwd=project)
    commit_all(project, "0.4.0 layout")
    (room / "derived_features.py").unlink()


def test_the_team_room_migration_moves_team_code_and_is_idempotent(
    render_project: Callable[..., Path],
) -> None:
    project = render_project()
    package = answers(project)["package_name"]
    features = project / "src" / package / "features.py"
    put_in_the_0_4_0_layout(project, package)
    migration = [sys.executable, str(hooks_dir() / "migrations" / "team_room.py")]
    first = subprocess.run(migration, cwd=project, capture_output=True, text=True, check=True)
    assert "the team's derived features" in first.stdout
    text = features.read_text()
    assert "import math\n" in text and "def log_mass" in text and "def bill_ratio" in text
    assert "def build_preprocessor" in text and "add_derived_features" not in text
    assert "def prepare(" not in (project / "src" / package / "data.py").read_text()
    team_test = (project / "tests" / "test_team.py").read_text()
    assert "from mlops_kit.core.params import Params" in team_test
    assert "from mlops_kit.features import add_derived_features" in team_test
    assert f"from {package}.features import log_mass" in team_test
    after = project_files(project)
    again = subprocess.run(migration, cwd=project, capture_output=True, text=True, check=True)
    assert "nothing to do" in again.stdout and project_files(project) == after
    assert_ruff_clean(project)


def test_the_team_room_migration_leaves_a_project_in_the_new_layout_alone(
    render_project: Callable[..., Path],
) -> None:
    """It runs on every update, so it must not touch what is not an old layout."""
    project = render_project()
    package = answers(project)["package_name"]
    features = project / "src" / package / "features.py"
    migration = [sys.executable, str(hooks_dir() / "migrations" / "team_room.py")]

    def migrate_and_compare(situation: str) -> None:
        before = project_files(project)
        run = subprocess.run(migration, cwd=project, capture_output=True, text=True, check=True)
        assert "nothing to do" in run.stdout, situation
        assert project_files(project) == before, situation

    migrate_and_compare("a fresh render")
    features.write_text(
        features.read_text()
        + "\n\ndef add_derived_features(frame: pd.DataFrame) -> pd.DataFrame:\n"
        + '    """A team function that happens to share an old template name."""\n'
        + "    return frame\n"
    )
    migrate_and_compare("a team function named like one the kit has")


def test_the_data_columns_migration_fills_old_demo_files_once_and_leaves_others_alone(
    render_project: Callable[..., Path],
) -> None:
    """An old penguins.yaml gains time_column and sensitive_column; a second run, a fresh
    render and a team's own dataset file are left as they are."""
    project = render_project()
    migration = [sys.executable, str(hooks_dir() / "migrations" / "data_columns.py")]
    demo = project / "conf" / "data" / "penguins.yaml"
    before = project_files(project)
    fresh = subprocess.run(migration, cwd=project, capture_output=True, text=True, check=True)
    assert "nothing to do" in fresh.stdout and project_files(project) == before
    old = "".join(
        line
        for line in demo.read_text().splitlines(keepends=True)
        if not line.startswith(("time_column:", "sensitive_column:"))
    )
    demo.write_text(old)
    own = project / "conf" / "data" / "churn.yaml"
    own.write_text("source: data/raw/churn.csv\ntask: classification\ntarget: churned\n")
    first = subprocess.run(migration, cwd=project, capture_output=True, text=True, check=True)
    assert "added to conf/data/penguins.yaml" in first.stdout
    data = yaml.safe_load(demo.read_text())
    assert (data["time_column"], data["sensitive_column"]) == ("year", "sex")
    assert own.read_text().count("\n") == 3
    again = subprocess.run(migration, cwd=project, capture_output=True, text=True, check=True)
    assert "nothing to do" in again.stdout
