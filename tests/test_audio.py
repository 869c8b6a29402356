"""Speech: espeak-ng words as WAV files, log-mel CNN, resampling and mixing, bad files, any audio form."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

import deepwell as dw
from deepwell.edge.media import decode_audio, read_audio, trim_silence
from deepwell.models.audio import AudioEncoder, LogMel, mel_filter_bank

AUDIO = {"n_mels": 32, "width": 8, "duration": 0.8}


def words_config(**extra) -> dict:
    return {"target": "word", "split": {"column": "split"},
            "columns": {"voice": {"type": "ignore"}, "audio": {"type": "audio", "audio": AUDIO}}, **extra}


@pytest.fixture(scope="module")
def words_model(spoken_words, tmp_path_factory) -> dw.Model:
    config = words_config(training={"batch_size": 8, "epochs": 25, "patience": 25, "seed": 0})
    return dw.train(spoken_words, config=config, output=tmp_path_factory.mktemp("runs"), quiet=True)


def test_spoken_words_are_learned_from_audio_paths(words_model):
    assert [f.type for f in words_model.preprocessor.features] == ["audio"]
    test = words_model.metrics.test
    assert test.rows == 8  # one unseen voice × 4 words × 2 speeds
    assert test.model["log_loss"] < test.baseline["log_loss"]
    assert words_model.metrics.validation.model["accuracy"] > 0.4 > 0.25  # chance is 0.25


def test_speech_is_judged_against_a_linear_model_on_log_mel_statistics(words_model):
    reference = words_model.metrics.reference
    assert reference.model["learner"] == "logistic regression on log-mel statistics"
    assert reference.model["accuracy"] > 0.25  # above chance on an unseen voice


def test_audio_column_is_inferred_from_paths(spoken_words):
    profile = dw.describe(spoken_words).set_index("name")
    assert profile.loc["audio", "type"] == "audio"


def test_save_load_round_trip_and_every_audio_form(words_model, spoken_words, tmp_path):
    table = pd.read_csv(spoken_words)
    path = spoken_words.parent / table["audio"][0]
    loaded = dw.load(words_model.save(tmp_path / "m"))
    np.testing.assert_array_equal(words_model.predict_proba(spoken_words), loaded.predict_proba(spoken_words))
    wave, rate = soundfile.read(path, dtype="int16")
    resampled = read_audio(path, 16000)  # a waveform in memory, at the model's rate
    forms = pd.DataFrame({"audio": [str(path), path.read_bytes(), resampled]})
    proba = loaded.predict_proba(forms)
    np.testing.assert_allclose(proba, np.repeat(proba[:1], 3, axis=0), atol=1e-5)
    assert rate == 22050  # espeak-ng's rate: the model resampled it to 16 kHz itself


def test_decoding_mixes_to_mono_resamples_and_pads(tmp_path):
    seconds, rate = 0.5, 48000
    t = np.arange(int(seconds * rate)) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "tone.flac", stereo, rate)
    wave = decode_audio(tmp_path / "tone.flac", 16000, 16000)
    assert wave.shape == (16000,) and wave.dtype == np.int16
    assert np.all(wave[:3000] == 0) and np.all(wave[-3000:] == 0)  # centred, zero-padded
    middle = wave[6000:10000] / 32767
    assert 0.2 < np.abs(middle).max() < 0.3  # the mix of a 0.5 tone and silence
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * 16000 / len(middle) - 440) < 10  # still 440 Hz after resampling
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, rate, format="WAV")
    from_bytes = decode_audio(buffer.getvalue(), 16000, 16000).astype(int)
    assert np.abs(from_bytes - wave).max() <= 1  # 16-bit WAV vs 24-bit FLAC rounding


def test_silence_is_trimmed_before_the_clip_is_centred(tmp_path):
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(rate // 4) / rate)).astype(np.float32)
    late = np.concatenate([np.zeros(rate // 2, np.float32), tone, np.zeros(rate // 10, np.float32)])
    assert len(trim_silence(late, rate)) == len(tone)
    early = decode_audio(tone, rate, rate, trim=True)
    np.testing.assert_array_equal(decode_audio(late, rate, rate, trim=True), early)  # the pause is gone
    assert not np.array_equal(decode_audio(late, rate, rate), early)  # without trimming it shifts the word
    assert np.array_equal(trim_silence(np.zeros(800, np.float32), rate), np.zeros(800))  # silence stays


def test_auto_duration_covers_the_long_clips_and_old_models_do_not_trim(tmp_path):
    from deepwell.config import ColumnConfig
    from deepwell.features.audio import AudioFeature

    rate = 16000
    paths = []
    for i, seconds in enumerate([0.4] * 15 + [1.33] * 5):  # a quarter of the clips are long
        wave = np.concatenate([np.zeros(rate // 5), 0.3 * np.ones(int(seconds * rate))]).astype(np.float32)
        soundfile.write(tmp_path / f"{i}.wav", wave, rate)
        paths.append(str(tmp_path / f"{i}.wav"))
    feature = AudioFeature("audio", ColumnConfig(type="audio"))
    feature.resolve(pd.Series(paths), None)
    assert feature.audio.duration == 1.4  # 95th percentile of the trimmed lengths, rounded up
    feature.set_state({"mean": 0.0, "std": 1.0})  # the state of a model saved before trimming existed
    assert feature.audio.trim_silence is False


def test_bad_audio_files_are_skipped_and_listed(spoken_words, tmp_path):
    table = pd.read_csv(spoken_words)
    table["audio"] = [str(spoken_words.parent / p) for p in table["audio"]]
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    bad = pd.DataFrame([{"audio": str(tmp_path / "broken.wav"), "word": "yes", "voice": "x", "split": "train"},
                        {"audio": str(tmp_path / "missing.wav"), "word": "no", "voice": "x", "split": "train"}])
    with pytest.warns(dw.DeepwellWarning, match="skipped 2 row"):
        model = dw.train(pd.concat([table, bad], ignore_index=True), config=words_config(),
                         output=tmp_path / "runs", epochs=1, quiet=True)
    skipped = pd.read_csv(model.run_dir / "skipped_files.csv")
    assert sorted(skipped["file"].str.rsplit("/", n=1).str[-1]) == ["broken.wav", "missing.wav"]
    assert "does not exist" in " ".join(skipped["reason"])


def test_mel_filter_bank_covers_the_spectrum():
    filters = mel_filter_bank(16000, 512, 40)
    assert filters.shape == (40, 257) and (filters >= 0).all() and filters.max() <= 1
    centres = filters.argmax(dim=1)
    assert torch.all(centres[1:] > centres[:-1])  # increasing centre frequencies
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(16000) / 16000)
    mel = LogMel({"sample_rate": 16000, "n_mels": 40, "window": 400, "hop": 160})(tone[None])
    assert mel.shape == (1, 40, 101)
    peak_hz = float(centres[mel[0].mean(dim=1).argmax()]) * 8000 / 256
    assert 800 < peak_hz < 1200


def test_spec_augment_and_warps_are_training_only():
    spec = {"spectrogram": {"sample_rate": 16000, "n_mels": 32, "window": 400, "hop": 160}, "mean": -5.0,
            "std": 3.0, "width": 4, "depth": 1,
            "augment": {"enabled": True, "time_shift": 1600, "frequency_warp": 0.15, "time_stretch": 0.15,
                        "frequency_masks": 2, "frequency_mask_width": 6, "time_masks": 2, "time_mask_width": 10}}
    encoder = AudioEncoder(spec)
    waves = (torch.randn(4, 16000) * 3000).to(torch.int16)
    encoder.eval()
    assert torch.equal(encoder(waves), encoder(waves))
    encoder.train()
    torch.manual_seed(0)
    first = encoder(waves)
    torch.manual_seed(0)
    assert torch.equal(first, encoder(waves))
    assert not torch.equal(first, encoder(waves))
    mel = torch.randn(3, 32, 50)
    torch.manual_seed(1)
    masked = encoder._spec_augment(mel)
    assert (masked == 0).any() and torch.equal(masked[masked != 0], mel[masked != 0])
