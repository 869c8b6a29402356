"""Capacity search (Optuna), automatic capacity adjustment, and data-size learning curves."""
