"""Any mix of image, audio, text and table columns goes through one combiner and head."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

import deepwell as dw


def test_image_text_number_and_category_in_one_table(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    rows = []
    for i in range(160):
        bright, urgent = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        level = rng.integers(150, 255) if bright else rng.integers(0, 100)
        Image.fromarray(np.full((10, 10, 3), level, dtype=np.uint8)).save(tmp_path / "photos" / f"{i}.png")
        note = rng.choice(["please act now", "reply immediately today"] if urgent else
                          ["no rush at all", "whenever you like"])
        rows.append({"photo": f"photos/{i}.png", "note": f"{note} for order {i}", "weight": rng.normal(),
                     "shop": rng.choice(["north", "south", "east"]), "escalate": "yes" if bright and urgent else "no"})
    pd.DataFrame(rows).to_csv(tmp_path / "orders.csv", index=False)
    config = {"target": "escalate", "columns": {"photo": {"type": "image", "image": {"size": 8, "width": 4}}}}
    model = dw.train(tmp_path / "orders.csv", config=config, output=tmp_path / "runs", epochs=25, seed=0,
                     quiet=True)
    kinds = {f.name: f.type for f in model.preprocessor.features}
    assert kinds == {"photo": "image", "note": "text", "weight": "number", "shop": "category"}
    assert set(model.network.encoders) == {"numeric", "photo", "note", "shop"}
    validation = model.metrics.validation.model
    assert validation["roc_auc"] > 0.8  # needs both the picture and the words: neither alone suffices
    loaded = dw.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(tmp_path / "orders.csv"),
                                  model.predict_proba(tmp_path / "orders.csv"))
