"""Computer vision: class folders and path columns, augmentation, bad files, predictions from any image form."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import deepwell as dw
from deepwell.models.vision import ImageAugment
from deepwell.pipeline.prepare import prepare
from deepwell.sample_data import write_digits

IMAGE = {"size": 16, "flip": False, "width": 8}


def image_config(**extra) -> dict:
    return {"target": "label", "columns": {"image": {"type": "image", "image": IMAGE}}, **extra}


@pytest.fixture(scope="module")
def digits_model(digits_folder, tmp_path_factory) -> dw.Model:
    return dw.train(digits_folder, config=image_config(), output=tmp_path_factory.mktemp("runs"), epochs=12,
                    seed=0, quiet=True)


def test_class_folder_trains_a_cnn_that_beats_the_baseline(digits_model):
    test = digits_model.metrics.test
    assert digits_model.task == "multiclass" and digits_model.classes_ == [str(d) for d in range(10)]
    assert [f.type for f in digits_model.preprocessor.features] == ["image"]
    assert test.model["accuracy"] > 0.7 > 0.2 > test.baseline["accuracy"]
    config = dw.Config.from_yaml(digits_model.run_dir / "config.yaml")
    assert config.columns["image"].image.channels == 1  # grayscale scans detected


def test_images_are_judged_against_a_linear_model_on_pixels(digits_model):
    reference = digits_model.metrics.reference
    assert reference.model["learner"] == "logistic regression on pixels"
    assert reference.model["accuracy"] > 0.7  # digit scans are close to linearly separable
    assert digits_model.diagnosis.evidence["reference"] == reference.model["learner"]


def test_save_load_round_trip_is_identical(digits_model, digits_folder, tmp_path):
    folder = digits_model.save(tmp_path / "m")
    loaded = dw.load(folder)
    files = sorted(str(p) for p in digits_folder.rglob("*.png"))[:40]
    np.testing.assert_array_equal(digits_model.predict_proba(pd.DataFrame({"image": files})),
                                  loaded.predict_proba(pd.DataFrame({"image": files})))


def test_python_api_takes_paths_pil_images_arrays_and_bytes(digits_model, digits_folder):
    path = sorted((digits_folder / "3").glob("*.png"))[0]
    pil = Image.open(path)
    array = np.asarray(pil)
    raw = path.read_bytes()
    proba = digits_model.predict_proba(pd.DataFrame({"image": [str(path), pil, array, raw]}))
    np.testing.assert_allclose(proba, np.repeat(proba[:1], 4, axis=0), atol=1e-6)


def test_predicting_a_folder_reports_bad_files_per_row(digits_model, digits_folder, tmp_path):
    for path in sorted((digits_folder / "7").glob("*.png"))[:2]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "truncated.png").write_bytes(sorted((digits_folder / "7").glob("*.png"))[0].read_bytes()[:30])
    (tmp_path / "notes.txt").write_text("not an image")
    table = digits_model.predict_table(tmp_path)
    assert len(table) == 4
    good = table[table["error"].isna()]
    assert len(good) == 2 and good["prediction"].notna().all()
    bad = table[table["error"].notna()]
    assert {p.rsplit("/", 1)[-1] for p in bad["image"]} == {"truncated.png", "notes.txt"}
    assert bad["prediction"].isna().all()
    with pytest.raises(dw.DataError, match=r"2 row\(s\) could not be predicted: row \d+: ") as caught:
        digits_model.predict(tmp_path)
    assert "predict_table" in str(caught.value)  # says how to keep going


def test_bad_files_in_training_are_skipped_and_listed(tmp_path):
    root = write_digits(tmp_path / "digits", per_class=12)
    (root / "4" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "5" / "readme.txt").write_text("a non-image file in an image folder")
    (root / "empty_class").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = dw.train(root, config=image_config(), output=tmp_path / "runs", epochs=1, quiet=True)
    messages = " ".join(str(w.message) for w in caught)
    assert "skipped 2 row(s)" in messages and "empty class folder" in messages
    skipped = pd.read_csv(model.run_dir / "skipped_files.csv")
    assert sorted(skipped["file"].map(lambda p: p.rsplit("/", 1)[-1])) == ["broken.png", "readme.txt"]
    assert skipped["reason"].str.contains("cannot identify image file").all()
    assert json.loads((model.run_dir / "run.json").read_text())["skipped_files"] == 2
    assert sum(model.metrics.split.values()) == 120


def test_bad_files_can_stop_training(tmp_path):
    root = write_digits(tmp_path / "digits", per_class=12)
    (root / "4" / "broken.png").write_bytes(b"nope")
    with pytest.raises(dw.DataError, match=r"1 file\(s\) in column 'image' cannot be read: .*broken\.png"):
        dw.train(root, config=image_config(on_bad_file="error"), output=tmp_path / "runs", quiet=True)


def test_train_val_test_subfolders_are_honoured(tmp_path):
    root = write_digits(tmp_path / "digits", per_class=20, split_folders=True)
    model = dw.train(root, config=image_config(), output=tmp_path / "runs", epochs=1, quiet=True)
    assert model.metrics.split == {"train": 140, "validation": 30, "test": 30}  # without saying so in the config
    assert model.input_columns == ["image"]  # the folder's split is not an input


def test_path_column_relative_to_the_table_mixed_with_numbers(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    (tmp_path / "img").mkdir()
    for i in range(80):
        colour = rng.integers(0, 256, 3)
        bright = colour.mean() > 127
        Image.fromarray(np.full((12, 12, 3), colour, dtype=np.uint8)).save(tmp_path / "img" / f"{i}.jpg")
        rows.append({"photo": f"img/{i}.jpg", "size_cm": rng.normal(), "bright": "yes" if bright else "no"})
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    model = dw.train(tmp_path / "table.csv", target="bright", output=tmp_path / "runs", epochs=3, quiet=True,
                     config={"target": "bright", "columns": {"photo": {"type": "image", "image": IMAGE}}})
    assert {f.name: f.type for f in model.preprocessor.features} == {"photo": "image", "size_cm": "number"}
    assert model.preprocessor.features[0].channels == 3  # colour detected
    predictions = pd.read_csv(model.run_dir / "predictions.csv")
    assert predictions["photo"].str.endswith(".jpg").all()  # paths, not pixel arrays, in the report
    assert len(model.predict(tmp_path / "table.csv")) == 80  # relative paths resolved against the table


def test_augmentation_is_random_in_training_and_off_in_evaluation():
    augment = ImageAugment(crop_scale=0.7, flip=True, rotation=15, colour_jitter=0.2)
    images = torch.rand(4, 1, 16, 16)
    augment.train()
    torch.manual_seed(0)
    first = augment(images)
    torch.manual_seed(0)
    assert torch.equal(first, augment(images))  # seeded: reproducible
    assert not torch.allclose(first, augment(images))  # but random between calls
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    augment.eval()
    assert torch.equal(augment(images), images)


def test_images_that_do_not_fit_in_memory_are_decoded_per_batch_with_identical_results(digits_folder, tmp_path):
    results = {}
    for mode in ("always", "never"):
        model = dw.train(digits_folder, config=image_config(files_in_memory=mode), output=tmp_path / mode,
                         epochs=2, seed=3, quiet=True)
        config = dw.Config.from_yaml(model.run_dir / "config.yaml")
        assert config.columns["image"].in_memory is (mode == "always")
        results[mode] = model
    assert results["never"].metrics.test == results["always"].metrics.test
    streamed = prepare(digits_folder, config={**image_config(), "data": {"streaming": "always"}})
    assert streamed.stream is None and streamed.config.columns["image"].in_memory is False  # per batch
    history = [pd.read_csv(m.run_dir / "history.csv").drop(columns="seconds") for m in results.values()]
    pd.testing.assert_frame_equal(*history)
    files = pd.DataFrame({"image": sorted(str(p) for p in digits_folder.rglob("*.png"))[:10]})
    np.testing.assert_array_equal(results["never"].predict_proba(files), results["always"].predict_proba(files))


def test_a_file_that_breaks_while_decoding_per_batch_is_named_not_a_worker_traceback(digits_model,
                                                                                      digits_folder, tmp_path):
    from deepwell.errors import DataError
    from deepwell.features.files import LazyFiles
    from deepwell.training.trainer import TensorData, batches

    paths = sorted(digits_folder.rglob("*.png"))[:8]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png any more")
    feature = digits_model.preprocessor.features[0]
    data = TensorData({"image": LazyFiles(feature, paths[:5] + [broken] + paths[5:])}, torch.zeros(9))
    order = torch.arange(9)
    with pytest.raises(DataError, match=r"'image'.*broken\.png could not be read while training"):
        list(batches(data, order, batch_size=4, steps=3))
    good = TensorData({"image": LazyFiles(feature, paths)}, torch.arange(8))
    decoded = [inputs["image"] for _, inputs, _ in batches(good, order[:8], batch_size=4, steps=2)]
    expected = torch.from_numpy(feature.transform(pd.Series([str(p) for p in paths]), errors={}))
    assert torch.equal(torch.cat(decoded), expected)


def test_cnn_backward_on_cpu_survives_shapes_that_broke_channels_last():
    """PyTorch's CPU channels-last convolution backward aborted the process on this shape (heap corruption);
    the CNN keeps the default memory format on CPU. Run in a subprocess so a regression fails, not crashes."""
    import subprocess
    import sys

    code = ("import torch\nfrom deepwell.models.vision import ResidualCNN\ntorch.manual_seed(0)\n"
            "net = ResidualCNN(1, 8, 1, 16)\nfor _ in range(3):\n    net(torch.rand(9, 1, 16, 16)).sum().backward()\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-500:]


def test_a_served_file_column_takes_bytes_never_a_path(digits_model, digits_folder):
    import base64

    from deepwell.inference.predict import predict

    path = sorted((digits_folder / "3").glob("*.png"))[0]
    with pytest.raises(dw.DataError, match="does not read file paths"):
        predict(digits_model, pd.DataFrame({"image": [str(path)]}), file_contents=True)
    content = base64.b64encode(path.read_bytes()).decode()
    _, predictions = predict(digits_model, pd.DataFrame({"image": [content, "bm90IGFuIGltYWdl"]}), file_contents=True)
    assert predictions.errors[0] is None and predictions.errors[1] is not None
    assert predictions.predictions[1] is None


def test_auto_size_follows_the_images_shorter_side(tmp_path):
    from deepwell.config import ColumnConfig
    from deepwell.features.image import ImageFeature

    def chosen(width: int, height: int) -> int:
        paths = []
        for i in range(3):
            path = tmp_path / f"{width}x{height}-{i}.png"
            Image.new("L", (width, height)).save(path)
            paths.append(str(path))
        feature = ImageFeature("image", ColumnConfig(type="image"))
        feature.resolve(pd.Series(paths), None)
        return feature.image.size

    assert chosen(8, 8) == 16  # digit scans are not blown up to 64×64
    assert chosen(30, 28) == 32
    assert chosen(640, 480) == 64  # photos are cut down as before
