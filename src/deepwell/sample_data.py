"""Real sample data sets written to disk, for examples, tests and benchmarks (nothing is downloaded).

- `write_digits`: scikit-learn's 1,797 handwritten digit scans as PNG files in one folder per class.
- `write_spoken_words`: words spoken by Debian's espeak-ng in several voices, as WAV files, with a table
  of file, word, voice and a split column that keeps whole voices out of training.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from deepwell.errors import DeepwellError

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan",
          "en-gb-x-gbcwmd", "en-us+f3", "en-gb+f2", "en-us+m3", "en-029+f4"]


def write_digits(root: str | Path, per_class: int | None = None, split_folders: bool = False) -> Path:
    """Digit scans as grayscale PNG: root/<digit>/<n>.png, or root/{train,val,test}/<digit>/ (70/15/15)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    counts: dict[int, int] = {}
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        n = counts.get(label, 0)
        if per_class is not None and n >= per_class:
            continue
        counts[label] = n + 1
        total = per_class or int((digits.target == label).sum())
        part = ("train" if n < 0.7 * total else "val" if n < 0.85 * total else "test") if split_folders else ""
        folder = root / part / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    return root


def write_spoken_words(root: str | Path, words: list[str] = WORDS, voices: list[str] = VOICES,
                       speeds: tuple[int, ...] = (130, 160, 190), pitches: tuple[int, ...] = (35, 50, 65),
                       test_voices: int = 2,
                       validation_voices: int = 2) -> Path:
    """Speak every word in every voice, speed (words per minute) and pitch; returns the path of `words.csv`.

    The table has columns audio (path relative to the table), word, voice and split, where the last
    `test_voices` voices form the test split and the `validation_voices` before them the validation split.
    """
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise DeepwellError("espeak-ng is not installed (Debian: apt-get install -y espeak-ng).")
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    split_of = {v: "test" for v in voices[len(voices) - test_voices:]}
    split_of |= {v: "validation" for v in voices[len(voices) - test_voices - validation_voices:
                                                  len(voices) - test_voices]}
    rows = []
    for voice in voices:
        for speed in speeds:
            for pitch in pitches:
                for word in words:
                    name = f"clips/{word}-{voice.replace('+', '_')}-{speed}-{pitch}.wav"
                    subprocess.run([espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w",
                                    str(root / name), word], check=True, capture_output=True)
                    rows.append({"audio": name, "word": word, "voice": voice,
                                 "split": split_of.get(voice, "train")})
    table = root / "words.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


PEOPLE = ["Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena", "Max", "Nora",
          "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vik", "Wes", "Xena", "Yuri", "Zoe"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
FACT_TEMPLATES = ["What colour does {name} like?", "Which colour is {name}'s favourite?",
                  "Tell me the favourite colour of {name}.", "{name} likes which colour?"]


def fact_examples(seed: int = 0) -> list[dict[str, str]]:
    """A table of facts (each person's favourite colour) asked in four phrasings: prompt/completion records a
    small causal LM can learn. Every fact is asked in every phrasing, so a held-out question asks a fact that
    training showed in other words."""
    rng = np.random.default_rng(seed)
    colours = {name: COLOURS[int(rng.integers(len(COLOURS)))] for name in PEOPLE}
    return [{"prompt": f"Q: {template.format(name=name)}\nA:", "completion": f" {colours[name]}"}
            for name in PEOPLE for template in FACT_TEMPLATES]


def write_tiny_causal_lm(folder: str | Path, texts: list[str], layers: int = 2, width: int = 64,
                         vocabulary: int = 400, seed: int = 0) -> Path:
    """A GPT-2-style causal LM built from a config (random weights, nothing downloaded) with a byte-level BPE
    tokenizer trained on `texts` by the tokenizers library: a base model folder for tests and examples."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocabulary, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    eos = tokenizer.token_to_id("<|endoftext|>")
    config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=256, n_embd=width, n_layer=layers,
                        n_head=4, bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    return folder
