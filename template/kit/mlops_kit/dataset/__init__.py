"""Adopt a table: profile it and write the configs that make it this project's data.

``make dataset SOURCE=<csv or parquet> TARGET=<column>`` (this module's ``main``)
reads the table, decides each column's role, measures what a good model of it
scores, and writes:

- ``conf/data/<name>.yaml``: the source, the task and target, the feature lists,
  the slice, time and sensitive columns, and the quality bar (thresholds and
  tolerances in the metrics' own units, which depend on the target);
- ``conf/schema/<name>.yaml``: the validation rules, derived from the table;
- ``conf/config.yaml``: its ``data`` and ``schema`` defaults switched to them.

Every inference is printed with its reason, and written as a comment beside the
value, so a wrong guess is corrected by editing the file it names. Tables the
project cannot learn from are refused with what is wrong and what is accepted.

In the order a table goes through them: ``table`` reads it and refuses what
cannot be used, ``roles`` decides what each column is for, ``quality``
measures the bar a model of it must meet, ``configs`` writes the files, and
``adopt`` runs the whole command (``python -m mlops_kit.dataset``).
"""
