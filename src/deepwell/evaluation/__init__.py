"""Metrics, the trivial baseline every result is shown beside, and (later) diagnosis, fairness, explanations."""
