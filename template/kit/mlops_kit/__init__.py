"""mlops-kit: the machinery of this project, owned by the copier-mlops template.

The team's machine learning lives in its own package beside this one (``src/``):
the kit reads it through ``team`` and runs everything around it, the stages of
``dvc.yaml``, the gate, the registry, the compiled bundle, the service and the
monitoring. ``copier update`` upgrades this package; nothing in it is the team's
to edit (the README says where each change belongs).
"""

import os

# Tracking tools must not phone home from a team's machines or CI by default.
# Set the variables to another value in the environment to opt in.
for _variable, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "true",
}.items():
    os.environ.setdefault(_variable, _value)
