"""Evaluation: what a trained network gets right and wrong, and how it holds up when the input
changes.

* `metrics`: `confusion_matrix`, `classification_report`, `evaluate_model` -> `Evaluation`
  (probabilities, predictions, accuracy, loss, per-class report, confusion matrix, the most
  confident mistakes), `abstain` (answer only when the top probability reaches a threshold);
* `ensembles`: `mean_proba`, `ensemble_proba`, `Ensemble` (the mean of several models' probabilities);
* `comparison`: two models side by side, with McNemar's exact test;
* `robust`: accuracy under every corruption of `digitlab.data.corrupt` at every severity.

Models here are anything with ``predict_proba(images) -> N x 10`` (a `Sequential`, an `Ensemble`).
Images are uint8 N x H x W, 0 = background, 255 = ink.
"""

from .comparison import Comparison, compare, mcnemar_exact
from .ensembles import Ensemble, ensemble_proba, mean_proba
from .metrics import (
    ClassReport,
    Evaluation,
    abstain,
    classification_report,
    confusion_matrix,
    evaluate_model,
    log_loss,
    percent,
    report_from_confusion,
    test_set_for,
)
from .robust import Robustness, robustness

__all__ = [
    "ClassReport", "Comparison", "Ensemble", "Evaluation", "Robustness", "abstain", "classification_report",
    "compare", "confusion_matrix", "ensemble_proba", "evaluate_model", "log_loss", "mcnemar_exact", "mean_proba",
    "percent", "report_from_confusion", "robustness", "test_set_for",
]
