"""The kit's core: the rules of the machinery as plain functions and records.

The parameters (``params``), what a model learned from (``lineage``), named metrics
(``scoring``) and the promotion gate (``gate``), distribution drift (``drift``),
strict JSON and markdown tables, and the faults of the machine. Nothing here imports
an adapter (MLflow, DVC, Hydra, ONNX, BentoML) or a job of the kit, nor the team's
package: the import contract in ``kit/tests`` keeps it so.
"""
