"""Explanations: Integrated Gradients per input column (completeness, the column that decides dominates), per token,
saliency on the object, permutation importance with intervals, and `deepwell explain`'s files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwell as dw

pytest.importorskip("captum")
from deepwell.explain.attributions import TOLERANCE  # noqa: E402 - |Σ attributions − (f(row) − f(baseline))|


def one_column_decides(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """The label depends on `signal` only; a number, a category and a text column are noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    words = np.array(["alpha", "beta", "gamma", "delta", "omega"])
    return pd.DataFrame({"signal": signal, "noise": rng.normal(size=rows),
                         "colour": rng.choice(["red", "green", "blue", "black"], rows),
                         "note": [" ".join(rng.choice(words, 4)) for _ in range(rows)],
                         "label": np.where(signal > 0, "up", "down")})


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    frame = one_column_decides()
    model = dw.train(frame, "label", output=tmp_path_factory.mktemp("runs"), quiet=True, track=False,
                     config={"training": {"epochs": 10}, "columns": {"note": {"type": "text"}}})
    return model, frame


def test_the_deciding_column_dominates_attributions_and_importance(decided):
    model, frame = decided
    explanation = model.explain(frame.tail(200))
    table = explanation.frame()
    mean_size = table[model.input_columns].abs().mean()
    assert mean_size.idxmax() == "signal" and mean_size["signal"] > 5 * mean_size.drop("signal").max()
    importance = explanation.importance.table.set_index("column")
    assert importance["importance"].idxmax() == "signal" and importance.loc["signal", "low"] > 0.2
    others = importance.drop("signal")
    assert (others["importance"].abs() < 0.05).all() and (others["low"] <= others["high"]).all()
    first = [r[0] for r in explanation.reasons]
    assert np.mean([re.fullmatch(r"signal=-?[0-9.e+-]+ (raised|lowered) P\(up\) by [0-9.e-]+", r) is not None
                    for r in first]) > 0.9  # the first reason names it, in words


def test_permutation_importance_is_scikit_learns_shuffle_for_shuffle(decided):
    """Shuffling encoded rows equals scikit-learn's permutation_importance shuffling the table's values and
    predicting the table again: the same seeds, the same numbers."""
    from sklearn.inspection import permutation_importance

    model, frame = decided
    rows = frame.tail(150).reset_index(drop=True)
    ours = model.explain(rows.head(1), importance=False)  # attributions only
    assert ours.importance is None
    found = __import__("deepwell.explain.importance", fromlist=["x"]).permutation_importance(model, rows, repeats=4,
                                                                                            seed=3)

    class Fitted:
        def fit(self, *_):
            return self

    def accuracy(_, table, truth):
        return float(np.mean(model.predict(table) == truth.to_numpy()))

    theirs = permutation_importance(Fitted(), rows[model.input_columns], rows["label"], scoring=accuracy,
                                    n_repeats=4, random_state=3)
    expected = dict(zip(model.input_columns, theirs.importances_mean, strict=True))
    assert found.table.set_index("column")["importance"].to_dict() == pytest.approx(expected, abs=1e-9)


def test_completeness_attributions_sum_to_the_output_minus_the_baseline_output(decided, wine_frame, diabetes_frame,
                                                                                 tmp_path):
    model, frame = decided
    assert np.abs(model.explain(frame.head(50), importance=False).attributions.delta).max() < TOLERANCE
    wine = dw.train(wine_frame, "cultivar", output=tmp_path, quiet=True, track=False,
                    config={"training": {"epochs": 5}, "model": {"ensemble_size": 2}})  # multiclass ensemble
    found = wine.explain(wine_frame.head(30), importance=False)
    assert np.abs(found.attributions.delta).max() < TOLERANCE
    assert found.attributions.explained == [f"P({p})" for p in found.predictions]  # the predicted class
    sugar = dw.train(diabetes_frame, "progression", output=tmp_path, quiet=True, track=False,
                     config={"training": {"epochs": 5}})
    values = sugar.explain(diabetes_frame.head(30), importance=False).attributions
    assert np.abs(values.delta).max() < TOLERANCE * diabetes_frame["progression"].std()  # regression, target units
    np.testing.assert_allclose(values.output, sugar.predict(diabetes_frame.head(30)), rtol=1e-4)


def test_text_attributions_split_over_tokens_and_the_deciding_word_leads(tmp_path):
    rng = np.random.default_rng(0)
    filler = ["the", "a", "report", "came", "today", "about", "weather", "market"]
    rows = []
    for _ in range(800):
        words = list(rng.choice(filler, 5))
        good = rng.random() < 0.5
        words.insert(int(rng.integers(0, 5)), "excellent" if good else "terrible")
        rows.append({"text": " ".join(words), "label": "good" if good else "bad"})
    frame = pd.DataFrame(rows)
    model = dw.train(frame, "label", output=tmp_path, quiet=True, track=False,
                     config={"training": {"epochs": 8}, "columns": {"text": {"type": "text"}}})
    found = model.explain(frame.head(40), importance=False).attributions
    assert np.abs(found.delta).max() < TOLERANCE
    for i, tokens in enumerate(found.tokens["text"]):
        assert sum(score for _, score in tokens) == pytest.approx(found.values[i, 0], abs=1e-4)  # exact split
        top = max(tokens, key=lambda t: abs(t[1]))[0]
        assert top == ("excellent" if frame["label"][i] == "good" else "terrible")


def test_a_cnn_text_encoder_gets_per_token_shares_of_its_own_effect(tmp_path):
    """text_cnn: tokens by Integrated Gradients on the token embeddings alone; they add up to f(row) − f(row with its
    token vectors at zero), and the deciding word leads."""
    import torch

    rng = np.random.default_rng(1)
    texts, labels = [], []
    for _ in range(400):
        good = rng.random() < 0.5
        words = list(rng.choice(["a", "plain", "day", "with", "some", "news"], 5))
        words.insert(int(rng.integers(0, 5)), "excellent" if good else "terrible")
        texts.append(" ".join(words))
        labels.append("good" if good else "bad")
    frame = pd.DataFrame({"text": texts, "label": labels})
    model = dw.train(frame, "label", output=tmp_path, quiet=True, track=False, config={
        "training": {"epochs": 4}, "columns": {"text": {"type": "text", "text": {"encoder": "cnn"}}}})
    rows = frame.head(20)
    found = model.explain(rows, importance=False).attributions
    members = getattr(model.network, "members", [model.network])
    hooks = [m.encoders["text"].embedding.register_forward_hook(lambda *args: torch.zeros_like(args[2]))
             for m in members]
    try:
        zeroed = model.predict_proba(rows)[:, 1]
    finally:
        for hook in hooks:
            hook.remove()
    for i, tokens in enumerate(found.tokens["text"]):
        assert sum(s for _, s in tokens) == pytest.approx(found.output[i] - zeroed[i], abs=5e-3)
        assert max(tokens, key=lambda t: abs(t[1]))[0] == ("excellent" if labels[i] == "good" else "terrible")


def squares(folder: Path, per_class: int = 60, size: int = 32, seed: int = 0) -> tuple[Path, dict[str, tuple]]:
    """Noise images; class "square" has a bright square somewhere, "plain" has none. Returns the table and each
    square's box."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows, boxes = [], {}
    for label in ("square", "plain"):
        for i in range(per_class):
            pixels = rng.integers(0, 110, (size, size), dtype=np.uint8)
            path = folder / f"{label}{i}.png"
            if label == "square":
                top, left = rng.integers(2, size - 10, 2)
                pixels[top:top + 8, left:left + 8] = 255
                boxes[path.name] = (top, left)
            Image.fromarray(pixels).save(path)
            rows.append({"picture": path.name, "label": label})
    pd.DataFrame(rows).to_csv(folder / "pictures.csv", index=False)
    return folder / "pictures.csv", boxes


def test_image_saliency_lies_on_the_object_and_deepwell_explain_writes_the_files(tmp_path):
    table, boxes = squares(tmp_path)
    config = {"columns": {"picture": {"type": "image", "image": {"size": 32, "width": 8, "augment": False}}},
              "training": {"epochs": 8}}
    model = dw.train(table, "label", config=config, output=tmp_path / "runs", quiet=True, track=False)
    frame = pd.read_csv(table)
    rows = [i for i, name in enumerate(frame["picture"]) if name in boxes][:12]
    found = model.explain(table, rows, importance=False).attributions
    inside = []
    for i, row in enumerate(rows):
        top, left = boxes[frame["picture"][row]]
        heat = np.abs(found.maps["picture"][i])
        inside.append(heat[top:top + 8, left:left + 8].sum() / heat.sum())
    assert np.median(inside) > 4 * (64 / 32 ** 2)  # the square is 6% of the picture, far more of the saliency
    out = tmp_path / "explained"
    result = subprocess.run([str(Path(sys.executable).with_name("deepwell")), "explain", str(model.run_dir),
                             str(table), "--rows", f"{rows[0]},{rows[1]}-{rows[2]}", "--out", str(out)],
                            capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "top reasons" in result.stdout and "permutation importance" in result.stdout
    written = pd.read_csv(out / "explanations.csv")
    assert written["row"].tolist() == [rows[0], *range(rows[1], rows[2] + 1)]
    assert {"prediction", "explained", "output", "baseline_output", "picture", "reasons"} <= set(written.columns)
    assert pd.read_csv(out / "importance.csv")["column"].tolist() == ["picture"]
    pngs = sorted(p.name for p in (out / "saliency").glob("*.png"))
    assert pngs == sorted(f"row{r}_picture.png" for r in written["row"]) and (out / "importance.png").is_file()
    bad = subprocess.run([str(Path(sys.executable).with_name("deepwell")), "explain", str(model.run_dir),
                          str(table), "--rows", "5000"], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert bad.returncode != 0 and "out of range" in bad.stderr and "Traceback" not in bad.stderr


def test_audio_saliency_covers_the_spectrogram(spoken_words, tmp_path):
    table = spoken_words  # words.csv
    config = {"target": "word", "split": {"column": "split"}, "training": {"epochs": 2},
              "columns": {"voice": {"type": "ignore"}, "audio": {"type": "audio"}}}
    model = dw.train(table, config=config, output=tmp_path, quiet=True, track=False)
    found = model.explain(table, [0, 1], importance=False)
    maps = found.attributions.maps["audio"]
    assert maps.shape[0] == 2 and maps.shape[1] == found.attributions.backgrounds["audio"].shape[1]  # mel bands
    assert np.abs(found.attributions.delta).max() < TOLERANCE * 5
    assert (found.save(tmp_path / "out") / "saliency" / "row0_audio.png").is_file()
