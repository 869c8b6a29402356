"""Drift monitoring: what each row measures, the reference profile kept with a model, and drift against it."""
