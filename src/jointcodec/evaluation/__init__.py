"""Evaluation: accuracy, estimated rate, model size and compute."""

from jointcodec.evaluation.complexity import count_macs, count_params
from jointcodec.evaluation.evaluate import accuracy_metrics, evaluate_model, predict

__all__ = ["count_macs", "count_params", "accuracy_metrics", "evaluate_model", "predict"]
