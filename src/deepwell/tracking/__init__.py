"""Experiment tracking (MLflow) and the model registry."""
