"""The scoring service's own metrics (the shared ones: ``shared/metrics.py``)."""

from __future__ import annotations

from prometheus_client import Counter

# One per score-changed event the service recorded (a requirement status that moved a tenant's score,
# or a rescore when the catalogue or a preview requirement's date changed it).
SCORE_CHANGES = Counter("csp_score_changes_total", "Security-score changes the scoring service applied.")
