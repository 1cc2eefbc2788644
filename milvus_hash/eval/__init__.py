"""Retrieval metrics over packed codes (Hamming ranking) and labels."""

from .metrics import (
                      average_precisions,
                      mean_average_precision,
                      pr_curve,
                      precision_recall_at_k,
                      precision_within_radius,
)

__all__ = ["average_precisions", "mean_average_precision", "pr_curve", "precision_recall_at_k",
           "precision_within_radius"]
