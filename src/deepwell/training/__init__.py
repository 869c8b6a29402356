"""The training loop: index-batched tensors, AdamW with a warm-up schedule, early stopping, checkpoints."""
