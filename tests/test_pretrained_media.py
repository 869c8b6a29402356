"""Pretrained image and audio encoders from a Hugging Face folder on disk, frozen.

No weights can be downloaded here, so each test builds a tiny randomly initialised model (ViT for images,
Wav2Vec2 for audio), saves it with its processor as safetensors, and trains on top of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepwell as dw

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-vit")
    config = transformers.ViTConfig(image_size=16, patch_size=8, num_channels=3, hidden_size=16,
                                    num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    transformers.ViTModel(config).save_pretrained(folder, safe_serialization=True)
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-wav2vec2")
    config = transformers.Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, conv_dim=(16, 16), conv_stride=(5, 4),
                                         conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                                         num_conv_pos_embedding_groups=2, vocab_size=8)
    transformers.Wav2Vec2Model(config).save_pretrained(folder, safe_serialization=True)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(folder)
    return folder


def test_frozen_pretrained_image_encoder(digits_folder, tiny_vit, tmp_path):
    config = {"target": "label", "columns": {"image": {"type": "image", "image": {"pretrained": str(tiny_vit)}}}}
    model = dw.train(digits_folder, config=config, output=tmp_path, epochs=3, seed=0, quiet=True)
    feature = model.preprocessor.features[0]
    assert type(feature).__name__ == "PretrainedImageFeature" and feature.dim == 16
    assert model.network.architecture["inputs"]["image"] == {"kind": "vector", "width": 16}
    assert (model.run_dir / "model" / "assets" / "image" / "preprocessor_config.json").is_file()
    files = pd.DataFrame({"image": sorted(str(p) for p in digits_folder.rglob("*.png"))[:12]})
    loaded = dw.load(model.run_dir)
    np.testing.assert_allclose(loaded.predict_proba(files), model.predict_proba(files), atol=1e-6)


def test_frozen_image_embeddings_of_a_column_decoded_per_batch_match_in_memory(digits_folder, tiny_vit, tmp_path):
    losses = []
    for mode in ("always", "never"):
        config = {"target": "label", "files_in_memory": mode,
                  "columns": {"image": {"type": "image", "image": {"pretrained": str(tiny_vit)}}}}
        model = dw.train(digits_folder, config=config, output=tmp_path / mode, epochs=2, seed=0, quiet=True)
        losses.append(model.metrics.test.model["log_loss"])
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_frozen_pretrained_audio_encoder_sets_its_sample_rate(spoken_words, tiny_wav2vec2, tmp_path):
    config = {"target": "word", "split": {"column": "split"},
              "columns": {"voice": {"type": "ignore"},
                          "audio": {"type": "audio", "audio": {"pretrained": str(tiny_wav2vec2), "duration": 0.5}}}}
    model = dw.train(spoken_words, config=config, output=tmp_path, epochs=2, seed=0, quiet=True)
    feature = model.preprocessor.features[0]
    assert type(feature).__name__ == "PretrainedAudioFeature" and feature.dim == 16
    assert feature.audio.sample_rate == 8000  # taken from the feature extractor, not the default 16 kHz
    loaded = dw.load(model.run_dir)
    np.testing.assert_allclose(loaded.predict_proba(spoken_words), model.predict_proba(spoken_words), atol=1e-6)


@pytest.mark.parametrize("method", [True, "lora"])
def test_fine_tuned_pretrained_image_encoder(digits_folder, tiny_vit, tmp_path, method):
    image = {"pretrained": str(tiny_vit), "fine_tune": method, "flip": False}
    config = {"target": "label", "columns": {"image": {"type": "image", "image": image}}}
    model = dw.train(digits_folder, config=config, output=tmp_path, epochs=2, seed=0, quiet=True)
    encoder = model.network.encoders["image"]
    assert type(encoder).__name__ == "PretrainedImageEncoder"
    assert encoder.learning_rate_scale == (0.05 if method is True else 1.0)
    saved = model.run_dir / "model" / "assets" / "image" / "model.safetensors"
    assert not saved.exists()  # full: weights.safetensors holds the tuned weights; LoRA refers to its base
    assert dw.Config.from_yaml(model.run_dir / "config.yaml").columns["image"].image.size == 16  # processor's
    files = pd.DataFrame({"image": sorted(str(p) for p in digits_folder.rglob("*.png"))[:12]})
    np.testing.assert_allclose(dw.load(model.run_dir).predict_proba(files), model.predict_proba(files), atol=1e-6)


def test_fine_tuned_pretrained_audio_encoder(spoken_words, tiny_wav2vec2, tmp_path):
    import torch

    audio = {"pretrained": str(tiny_wav2vec2), "fine_tune": True, "duration": 0.5}
    config = {"target": "word", "split": {"column": "split"},
              "columns": {"voice": {"type": "ignore"}, "audio": {"type": "audio", "audio": audio}}}
    model = dw.train(spoken_words, config=config, output=tmp_path, epochs=2, seed=0, quiet=True)
    encoder = model.network.encoders["audio"]
    assert type(encoder).__name__ == "PretrainedAudioEncoder" and encoder.learning_rate_scale == 0.05
    start = transformers.Wav2Vec2Model.from_pretrained(tiny_wav2vec2)
    tuned, initial = encoder.model.state_dict(), start.state_dict()
    # the transformer layers learned; the convolutional feature encoder stayed frozen
    assert not torch.equal(tuned["encoder.layers.0.attention.k_proj.weight"],
                           initial["encoder.layers.0.attention.k_proj.weight"])
    assert torch.equal(tuned["feature_extractor.conv_layers.0.conv.weight"],
                       initial["feature_extractor.conv_layers.0.conv.weight"])
    loaded = dw.load(model.run_dir)
    np.testing.assert_allclose(loaded.predict_proba(spoken_words), model.predict_proba(spoken_words), atol=1e-5)


def test_prompt_tuning_is_for_text_columns(digits_folder, tiny_vit, tmp_path):
    pytest.importorskip("peft")
    config = {"target": "label", "columns": {"image": {"type": "image", "image": {
        "pretrained": str(tiny_vit), "fine_tune": "prompt"}}}}
    with pytest.raises(dw.ConfigError, match="Column 'image': fine_tune: prompt is for text columns"):
        dw.train(digits_folder, config=config, output=tmp_path, epochs=1, quiet=True)


def test_fine_tuned_audio_encoder_matches_the_feature_extractor_normalisation(tiny_wav2vec2):
    import torch

    from deepwell.models.pretrained import PretrainedAudioEncoder

    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(tiny_wav2vec2)
    encoder = PretrainedAudioEncoder({"source": str(tiny_wav2vec2), "dim": 16, "normalize": True,
                                      "learning_rate_scale": 0.05, "augment": False, "time_shift": 0}).eval()
    waves = (np.random.default_rng(0).normal(0, 3000, (2, 4000))).astype(np.int16)
    inputs = extractor(list(waves.astype(np.float32) / 32768.0), sampling_rate=8000, return_tensors="pt")
    with torch.no_grad():
        expected = encoder.model(**inputs).last_hidden_state.mean(dim=1)
        np.testing.assert_allclose(encoder(torch.from_numpy(waves)).numpy(), expected.numpy(), atol=1e-4)


def test_frozen_pretrained_image_and_audio_encoders_export_as_their_own_graphs(digits_folder, spoken_words,
                                                                               tiny_vit, tiny_wav2vec2, tmp_path):
    """The edge runtime decodes the files, runs the frozen encoder's graph (the processor's scaling and
    normalisation inside it) and then the network's: the full model's probabilities within 1e-4."""
    pytest.importorskip("onnxruntime")
    from deepwell import edge
    from deepwell.export.folder import export_model

    image = {"target": "label", "columns": {"image": {"type": "image", "image": {"pretrained": str(tiny_vit)}}}}
    model = dw.train(digits_folder, config=image, output=tmp_path / "img", epochs=2, seed=0, quiet=True)
    files = pd.DataFrame({"image": sorted(str(p) for p in digits_folder.rglob("*.png"))[::9]})
    export_model(model, tmp_path / "img-edge", files)
    assert (tmp_path / "img-edge" / "encoders" / "image.onnx").is_file()
    np.testing.assert_allclose(edge.load(tmp_path / "img-edge").predict(files.to_dict("records")).outputs,
                               model.predict_proba(files), atol=1e-4)
    audio = {"target": "word", "split": {"column": "split"},
             "columns": {"voice": {"type": "ignore"},
                         "audio": {"type": "audio", "audio": {"pretrained": str(tiny_wav2vec2), "duration": 0.5}}}}
    model = dw.train(spoken_words, config=audio, output=tmp_path / "audio", epochs=2, seed=0, quiet=True)
    clips = pd.read_csv(spoken_words)[["audio"]].head(12)
    clips["audio"] = [str(spoken_words.parent / p) for p in clips["audio"]]
    export_model(model, tmp_path / "audio-edge", clips)
    np.testing.assert_allclose(edge.load(tmp_path / "audio-edge").predict(clips.to_dict("records")).outputs,
                               model.predict_proba(clips), atol=1e-4)
