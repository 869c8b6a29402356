"""A run's life: prepare (data → resolved config and splits) → fit (→ trained network) → score (metrics,
reference, diagnosis) → run (the run folder, tracking and report). Each step can be called on its own."""
