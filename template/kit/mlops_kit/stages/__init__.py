"""The stage machinery: DVC's stage commands, run warm.

Every stage of ``dvc.yaml`` runs ``python -m mlops_kit.stages.run <module> [args]``,
which means ``python -m mlops_kit.<module> [args]``. Started on its own (``dvc repro``
by hand, ``dvc exp run``) that is all it does. Under ``make pipeline``
(``python -m mlops_kit.stages``) a warm server has already imported pandas,
scikit-learn, pandera, MLflow and matplotlib, and each stage is forked from it, so no
stage pays those imports again (seconds each, on a laptop's core).

- ``__main__``: ``python -m mlops_kit.stages [dvc repro flags]``, the pipeline with a
  warm server beside it.
- ``run``: one stage; forked from the server when there is one, else run in-process.
- ``server``: the warm server.
"""
