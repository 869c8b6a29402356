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
