"""Examples → token ids with labels only on the completion, and the batches a causal LM trains on.

The prompt is tokenized as `Generator.prompt_text` gives it (a chat through the tokenizer's chat template), the
completion after it, then end-of-text; labels are -100 (ignored by the loss) on every prompt token. A sequence
longer than max_length loses the start of its prompt, never its completion's start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from deepwell.errors import DataError
from deepwell.generation.data import Example

IGNORE = -100
BUCKET = 64  # batches are made of a shuffled window of this many batches sorted by length (less padding)


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    labels: list[int]
    origin: str

    @property
    def completion_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode(examples: list[Example], tokenizer, prompt_text: Callable[[Example], str], max_length: int) -> list[Encoded]:
    eos = tokenizer.eos_token_id
    out = []
    for example in examples:
        prompt = tokenizer(prompt_text(example), add_special_tokens=False)["input_ids"] if example.prompt or \
            example.messages else []
        completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"] + [eos]
        if len(completion) >= max_length:
            completion = completion[:max_length - 1]
        prompt = prompt[-(max_length - len(completion)):] if len(prompt) + len(completion) > max_length else prompt
        if not prompt:  # a text learned whole (a knowledge document): the first token has nothing to follow
            prompt, completion = completion[:1], completion[1:]
        out.append(Encoded(prompt + completion, [IGNORE] * len(prompt) + completion, example.origin))
    useless = [e.origin for e in out if e.completion_tokens == 0]
    if useless:
        raise DataError(f"{useless[0]}: the completion is empty after tokenizing ({len(useless)} example(s)).")
    return out


def batches(encoded: list[Encoded], batch_size: int, mode: str, pad_id: int, max_length: int,
            seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of batches, shuffled by `seed`: padded to each batch's longest (lengths grouped), or packed."""
    rng = np.random.default_rng(seed)
    if mode == "pack":
        yield from _packed(encoded, batch_size, max_length, rng)
        return
    order = rng.permutation(len(encoded))
    window = batch_size * BUCKET
    groups = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(encoded[i].ids))
        groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    for index in rng.permutation(len(groups)):
        yield padded([encoded[i] for i in groups[index]], pad_id)


def batch_count(encoded: list[Encoded], batch_size: int, mode: str, max_length: int) -> int:
    """How many batches `batches` makes per epoch (the schedule's length), without building them."""
    if mode == "pack":
        blocks = max(1, sum(len(e.ids) for e in encoded) // max_length)
        return -(-blocks // batch_size)
    window = batch_size * BUCKET
    return sum(-(-min(window, len(encoded) - start) // batch_size) for start in range(0, len(encoded), window))


def padded(items: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(item.ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):  # right padding; the mask keeps padding out of attention and the loss
        ids[row, :len(item.ids)] = torch.tensor(item.ids)
        labels[row, :len(item.ids)] = torch.tensor(item.labels)
        mask[row, :len(item.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _packed(encoded: list[Encoded], batch_size: int, max_length: int,
            rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
    order = rng.permutation(len(encoded))
    ids = np.concatenate([encoded[i].ids for i in order])
    labels = np.concatenate([encoded[i].labels for i in order])
    blocks = max(1, len(ids) // max_length)
    cut = min(len(ids), blocks * max_length)
    width = min(max_length, cut)
    ids, labels = ids[:cut].reshape(-1, width), labels[:cut].reshape(-1, width)
    for start in range(0, len(ids), batch_size):
        block = torch.from_numpy(ids[start:start + batch_size]).long()
        yield {"input_ids": block, "attention_mask": torch.ones_like(block),
               "labels": torch.from_numpy(labels[start:start + batch_size]).long()}
