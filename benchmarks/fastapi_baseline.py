"""The baseline a team would otherwise write: FastAPI + uvicorn around the same compiled model.

Same bundle, same compiled model (``<package>.compiled``, what the generated service
runs), same request body, same answer fields; no batching and no validation beyond
a dict. So the comparison measures the serving layer, not the model. Started by
serving.py with the generated project's Python:
``python fastapi_baseline.py <bundle> <port>``.
"""

import importlib
import json
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

bundle = Path(sys.argv[1])
metadata = json.loads((bundle / "metadata.json").read_text())
compiled = importlib.import_module(f"{metadata['model_name']}.compiled")
model = compiled.load_predictor(bundle, metadata["runtime"])
classification = metadata["task"] == "classification"
app = FastAPI()


@app.get("/readyz")
def ready() -> dict:
    """Readiness, for the benchmark's start-up wait."""
    return {"ready": True}


@app.post("/predict")
def predict(record: dict) -> dict:
    """Predict one record."""
    values, probabilities = model.predict([record])
    identity = {"model_version": metadata["model_version"], "model_alias": metadata["model_alias"]}
    if not classification:
        return {"prediction": float(values[0]), **identity}
    classes = [str(label) for label in model.classes]
    return {
        "prediction": values[0],
        "probabilities": dict(zip(classes, map(float, probabilities[0]), strict=True)),
        **identity,
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", workers=1)
