"""Causal language models: fine-tune (LoRA, prompt tuning, full) a Hugging Face folder on instruction data,
evaluate it before and after, generate from it, and serve it (serving/generation.py)."""
