"""deploy/ agrees with conf/: the alert on the served model's age uses serve.max_model_age_days."""

import re
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_the_model_age_alert_fires_past_serve_max_model_age_days() -> None:
    days = yaml.safe_load((PROJECT_ROOT / "conf" / "serve" / "default.yaml").read_text())[
        "max_model_age_days"
    ]
    rules = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    every_rule = [rule for group in rules["groups"] for rule in group["rules"]]
    (rule,) = [rule for rule in every_rule if rule["alert"] == "ModelTooOld"]
    threshold = re.fullmatch(r"max\(model_age_seconds\) > ([\d.]+) \* 86400", rule["expr"].strip())
    assert threshold is not None, f"unexpected ModelTooOld expression: {rule['expr']}"
    assert float(threshold.group(1)) == float(days), (
        f"deploy/prometheus/alerts.yml alerts after {threshold.group(1)} days, "
        f"conf/serve/ says {days}: make them agree"
    )
