"""A user answering copier's questions: good answers render, wrong ones are refused clearly."""

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "   "}, "The project name must not be empty"),
        ({"project_name": "1st model"}, "must start with a letter"),
        ({"package_name": ""}, "The package name must not be empty"),
        ({"package_name": "my-model"}, "is not a valid lowercase Python identifier"),
        ({"package_name": "9lives"}, "not starting with a digit"),
        ({"package_name": "class"}, '"class" is a Python keyword'),
        ({"package_name": "mlflow"}, 'would shadow the dependency or standard module "mlflow"'),
        ({"package_name": "sklearn"}, 'would shadow the dependency or standard module "sklearn"'),
        ({"package_name": "dvc"}, 'would shadow the dependency or standard module "dvc"'),
        ({"project_slug": "-bad-"}, "must be lowercase letters, digits and '-'"),
        ({"description": ""}, "The description must not be empty"),
        ({"author_name": " "}, "The author name must not be empty"),
        ({"author_email": "not-an-email"}, "is not a valid email address"),
        ({"author_email": "me@localhost"}, "expected something like name@example.com"),
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
        ({"data_remote_url": "azure://", "data_remote": "azure"}, "expected azure://<bucket>"),
    ],
)
def test_a_wrong_answer_is_refused_saying_what_is_accepted(
    render_project: Callable[..., Path], answers: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as refusal:
        render_project(**answers)
    assert next(iter(answers)) in str(refusal.value), "the message must name the question"


def test_the_package_name_is_derived_from_the_project_name(
    render_project: Callable[..., Path],
) -> None:
    project = render_project(project_name="Churn Model v2")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "churn_model_v2"
    assert answers["project_slug"] == "churn-model-v2"
    assert (project / "src" / "churn_model_v2" / "train.py").is_file()


def test_the_answers_file_records_every_question_for_updates(
    render_project: Callable[..., Path],
) -> None:
    project = render_project(ml_task="regression", license="Apache-2.0")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["ml_task"] == "regression"
    assert answers["license"] == "Apache-2.0"
    assert {"_commit", "_src_path"} <= set(answers)
    assert "python_keywords" not in answers, "constants must not leak into the answers file"
