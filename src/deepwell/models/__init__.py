"""Networks built from JSON architecture: one encoder per input block, concatenation, an MLP, a head."""

from deepwell.models.network import TabularNetwork

__all__ = ["TabularNetwork"]
