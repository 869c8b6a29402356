"""Column features: fitted on the training split, turned into tensors, saved as JSON state.

Each column type is one class (see `base.Feature`); `pipeline.Preprocessor` runs them over a table.
"""
