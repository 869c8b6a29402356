"""Generation benchmark (issue 14): a fact table a tiny causal LM can learn, exact match before and after.

    python benchmarks/run_generation.py [--epochs 30]

No pretrained causal LM installs offline, so the base is made here: a GPT-2-style model (4 layers, width 128)
built from a config with a BPE tokenizer trained by the tokenizers library, then fully fine-tuned by deepwell on
world A — 26 people's favourite colours asked in four phrasings (sample_data.fact_examples(seed=1)). That base
knows the format and world A's facts. Each method then adapts it to world B (seed=0: the same people, colours
drawn again, so most facts changed) with a seeded 25 % of the questions held out: every held-out question asks a
fact training showed in other phrasings. Reports held-out loss, perplexity and exact match of greedy answers
before and after, trainable parameters, the generator folder's size, and wall time.

Writes benchmarks/results/generation.json and generation.md. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SETTINGS = {"validation_fraction": 0.25, "batch_size": 8, "patience": 5,
            "lora": {"rank": 16, "alpha": 32, "dropout": 0.0}, "prompt_tuning": {"virtual_tokens": 8}}
RATES = {"lora": 3e-3, "prompt": 3e-2, "full": 1e-3}


def main() -> None:
    import deepwell as dw
    from deepwell.sample_data import fact_examples, write_tiny_causal_lm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world_a, world_b = fact_examples(seed=1), fact_examples(seed=0)
        changed = sum(a["completion"] != b["completion"] for a, b in zip(world_a, world_b, strict=True)) // 4
        for name, rows in (("a", world_a), ("b", world_b)):
            (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        random = write_tiny_causal_lm(tmp / "random", [r["prompt"] + r["completion"] for r in world_a + world_b],
                                      layers=4, width=128)
        started = time.perf_counter()
        base = dw.finetune(random, tmp / "a.jsonl", method="full", config={**SETTINGS, "validation_fraction": 0.1},
                           epochs=40, learning_rate=1e-3, output=tmp / "runs", name="base", quiet=True, track=False)
        rows = [{"method": "base: full fine-tuning of the random model on world A",
                 **_summary(base.path.parent, time.perf_counter() - started)}]
        for method in ("lora", "prompt", "full"):
            started = time.perf_counter()
            tuned = dw.finetune(base.path, tmp / "b.jsonl", method=method, config=SETTINGS, epochs=args.epochs,
                                learning_rate=RATES[method], output=tmp / "runs", name=method, quiet=True,
                                track=False)
            rows.append({"method": method, **_summary(tuned.path.parent, time.perf_counter() - started)})
            print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generation.json").write_text(json.dumps({"facts_changed": changed, "rows": rows}, indent=1))
    (RESULTS / "generation.md").write_text(markdown(rows, changed, args.epochs))
    print(markdown(rows, changed, args.epochs))


def _summary(run: Path, seconds: float) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    size = sum(p.stat().st_size for p in (run / "model").rglob("*") if p.is_file())
    return {"before": metrics["before"], "after": metrics["after"], "best_epoch": metrics["best_epoch"],
            "trainable_parameters": metrics["trainable_parameters"], "parameters": metrics["parameters"],
            "folder_mb": round(size / 1e6, 3), "wall_s": round(seconds, 1)}


def markdown(rows: list[dict], changed: int, epochs: int) -> str:
    lines = ["# A fact table learned by a tiny causal LM: exact match before and after", "",
             f"World B changes {changed} of 26 people's favourite colours from world A, which the base learned. "
             f"26 of the 104 questions are held out (each asks a fact shown in other phrasings); at most {epochs} "
             "epochs, the best held-out loss kept. Exact match: greedy answer equals the colour.", "",
             "| method | exact match before → after | held-out loss before → after | perplexity after | "
             "trainable parameters | folder | wall |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        b, a = row["before"], row["after"]
        lines.append(f"| {row['method']} (best epoch {row['best_epoch']}) | {b['exact_match']:.3f} → "
                     f"{a['exact_match']:.3f} | {b['loss']:.3f} → {a['loss']:.3f} | {a['perplexity']:.2f} | "
                     f"{row['trainable_parameters']:,} of {row['parameters']:,} | {row['folder_mb']:.2f} MB | "
                     f"{row['wall_s']:.0f} s |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
