"""Held-out evaluation of a causal LM: loss and perplexity on the completion tokens, and exact match and token F1
of its greedy answers (SQuAD's normalisation: lower case, no punctuation, no articles, single spaces)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from deepwell.generation.data import Example
from deepwell.generation.tokens import IGNORE, Encoded, padded


@dataclass
class Scores:
    loss: float
    perplexity: float
    exact_match: float | None = None
    token_f1: float | None = None
    answered: int = 0  # held-out examples answered greedily
    samples: list[dict[str, str]] = field(default_factory=list)  # prompt, reference, answer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.inference_mode()
def held_out_loss(model, encoded: list[Encoded], pad_id: int, batch_size: int, device: torch.device) -> float:
    """Mean cross-entropy per completion token (each token counts once, whatever its batch)."""
    model.eval()
    total, tokens = 0.0, 0
    ordered = sorted(encoded, key=lambda e: len(e.ids))
    for start in range(0, len(ordered), batch_size):
        batch = {k: v.to(device) for k, v in padded(ordered[start:start + batch_size], pad_id).items()}
        count = int((batch["labels"][:, 1:] != IGNORE).sum())
        if count:
            total += float(model(**batch).loss) * count
            tokens += count
    return total / max(tokens, 1)


def normalise(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(answer: str, reference: str) -> float:
    got, want = normalise(answer).split(), normalise(reference).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def evaluate(generator, examples: list[Example], encoded: list[Encoded], batch_size: int, answers: int,
             samples: int) -> Scores:
    device = next(generator.model.parameters()).device
    loss = held_out_loss(generator.model, encoded, generator.tokenizer.pad_token_id, batch_size, device)
    scored = [e for e in examples if e.prompt or e.messages][:answers]  # documents have no question to answer
    matches, f1s, shown = [], [], []
    for example in scored:
        budget = generator.count_tokens(example.completion) + 8
        answer = generator.generate(example.prompt if not example.messages else None,
                                    messages=list(example.messages) or None, max_tokens=min(budget, 256),
                                    temperature=0.0).strip()
        matches.append(float(normalise(answer) == normalise(example.completion)))
        f1s.append(token_f1(answer, example.completion))
        if len(shown) < samples:
            shown.append({"prompt": example.prompt, "reference": example.completion, "answer": answer})
    return Scores(round(loss, 5), round(math.exp(min(loss, 50)), 4),
                  round(sum(matches) / len(matches), 4) if matches else None,
                  round(sum(f1s) / len(f1s), 4) if f1s else None, len(scored), shown)
