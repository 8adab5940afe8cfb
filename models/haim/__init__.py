"""HAIM-style in-hospital mortality models on eICU (issue 13, "the cloud that learns").

``eicu`` loads one :class:`~cardiogate.models.haim.eicu.StaySample` per ICU stay with every row
charted after the prediction time (24 h after unit admission) dropped before anything else
reads it; ``embeddings`` turns each modality into one embedding; ``fusion`` is the teacher
(XGBoost on the concatenated embeddings); ``student`` is the small model a gateway could run
(vitals only, logistic regression, a JSON of coefficients); ``metrics`` has AUROC/AUPRC with
bootstrap CIs; ``train`` ties it together and writes ``models/artifacts/risk/``.

Other layouts, loaded with the same rule (nothing recorded after the prediction time reaches a
feature) but not yet trained on: ``mimic`` (the MIMIC-III and MIMIC-IV demos) and ``haim_mm``
(the HAIM-MIMIC-MM per-patient pickles, read through an allow-listed unpickler); ``fleet_history``
(the cloud's own feature windows, alarms and clinicians' labels). ``deterioration`` is the
deterioration-within-hours task on the MIMIC-III demo's vitals, beside NEWS2. ``fusion_net`` is
HAIM's other fusion head, a small torch network over the same embeddings (torch imported lazily:
the [models] extra, never the gateway's install).

Needs the ``[learn]`` extra (xgboost-cpu, scikit-learn, pandas); torch only for ``fusion_net``.
"""

from __future__ import annotations

from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "risk"
"""Where the committed risk artifacts live (shipped as package data)."""
