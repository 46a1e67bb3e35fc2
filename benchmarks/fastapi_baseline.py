"""The baseline a team would otherwise write: FastAPI + uvicorn around the same model.

Same bundle, same request body, same answer fields; no batching, no schema-derived
validation beyond a dict. Started by serving.py with the generated project's
Python: ``python fastapi_baseline.py <bundle> <port>``.
"""

import json
import sys
from pathlib import Path

import joblib
import pandas as pd
import uvicorn
from fastapi import FastAPI

bundle = Path(sys.argv[1])
metadata = json.loads((bundle / "metadata.json").read_text())
model = joblib.load(bundle / "model.joblib")
columns = list(metadata["input_schema"])
classification = metadata["task"] == "classification"
app = FastAPI()


@app.get("/readyz")
def ready() -> dict:
    """Readiness, for the benchmark's start-up wait."""
    return {"ready": True}


@app.post("/predict")
def predict(record: dict) -> dict:
    """Predict one record."""
    table = pd.DataFrame([record], columns=columns)
    identity = {"model_version": metadata["model_version"], "model_alias": metadata["model_alias"]}
    if not classification:
        return {"prediction": float(model.predict(table)[0]), **identity}
    probabilities = model.predict_proba(table)[0]
    classes = [str(label) for label in model.classes_]
    return {
        "prediction": classes[probabilities.argmax()],
        "probabilities": dict(zip(classes, map(float, probabilities), strict=True)),
        **identity,
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", workers=1)
