"""`uattr score-labels`: a label attribute's classifier on extracted embeddings, its metrics against hand-computed
ones, its predictions against `UnifiedEncoder.classify` on the audio, its rows in RESULTS.md, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from data_fixtures import make_data_dir
from train_fixtures import TINY_W2V_BERT
from uattr.attributes import AttributeConfig
from uattr.bin.main import main as uattr_main
from uattr.data.audio import AudioSource
from uattr.losses import LossConfig
from uattr.model import ModelConfig, UnifiedEncoder
from uattr.scoring.classification import classification_metrics, per_class_metrics
from uattr.upstream.base import UpstreamConfig


def test_metrics_against_hand_computed_values() -> None:
    labels = ["en", "en", "en", "fr"]
    predicted = ["en", "en", "fr", "fr"]
    metrics = classification_metrics(labels, predicted)
    assert metrics["accuracy"] == pytest.approx(75.0)
    assert metrics["balanced_accuracy"] == pytest.approx(100 * (2 / 3 + 1) / 2)  # recalls: en 2/3, fr 1
    # F1: en (precision 1, recall 2/3) 0.8; fr (precision 1/2, recall 1) 2/3
    assert metrics["macro_f1"] == pytest.approx(100 * (0.8 + 2 / 3) / 2)
    assert (metrics["n_utterances"], metrics["n_classes"]) == (4, 2)
    assert per_class_metrics(labels, predicted) == {
        "en": {"accuracy": pytest.approx(200 / 3), "n_utterances": 3}, "fr": {"accuracy": 100.0, "n_utterances": 1}
    }
    # A label no prediction can match (a language the classifier never learned) is a class with recall 0.
    unknown = classification_metrics(["en", "de"], ["en", "en"])
    assert unknown["accuracy"] == 50.0 and unknown["balanced_accuracy"] == 50.0 and unknown["n_classes"] == 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uattr.upstream.create import create_upstream

    root = tmp_path_factory.mktemp("label_model")
    encoder = create_upstream("w2v-bert", root / "encoder", **TINY_W2V_BERT)
    config = ModelConfig(
        UpstreamConfig(name=f"hf:{encoder}"),
        {
            "speaker": AttributeConfig(dim=8),
            "language": AttributeConfig(expert="label", classes=["en", "fr"], loss=LossConfig("ce")),
        },
    )
    torch.manual_seed(0)
    return UnifiedEncoder(config).save_pretrained(root / "model")


def noise_data_dir(root: Path, speakers: tuple[str, ...]) -> Path:
    """make_data_dir's layout with noise of several colours: its steady tones all but vanish in the encoder's
    normalised filterbanks, so every utterance would get one class."""
    data = make_data_dir(root, speakers=speakers, utts_per_speaker=2, seconds=0.4)
    rng = np.random.default_rng(0)
    for index, wav in enumerate(sorted((root / "wav").glob("*.wav"))):
        noise = np.cumsum(rng.standard_normal(6400), axis=0) if index % 2 else rng.standard_normal(6400)
        soundfile.write(wav, (0.1 * noise / np.abs(noise).max()).astype(np.float32), 16000)
    return data


def balanced_classifier(model_dir: Path, data: Path, out: Path) -> Path:
    """The model with its classifier's bias moved so that half of ``data`` falls on each side: random weights
    put every utterance in one class, and a test of predictions would not see them differ."""
    model = UnifiedEncoder.from_pretrained(model_dir)
    audio = AudioSource(data)
    expert = model.classifier("language")
    with torch.no_grad():
        logits = expert.logits(model.embed([audio.load(utt) for utt in audio.ids], 16000, ["language"])["language"])
        expert.loss_fn.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    return model.save_pretrained(out)


def test_predictions_are_classify_on_the_audio_and_reach_results_md(model_dir: Path, tmp_path: Path) -> None:
    data = noise_data_dir(tmp_path, ("a", "b", "c", "d"))
    model_dir = balanced_classifier(model_dir, data, tmp_path / "model")
    assert uattr_main(["extract", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "emb")]) == 0
    scores = tmp_path / "exp" / "joint" / "scores" / "language_data"
    assert uattr_main([
        "score-labels", "--model", str(model_dir), "--attribute", "language", "--emb",
        str(tmp_path / "emb" / "language" / "data" / "emb.scp"), "--labels", str(data / "utt2lang"), "--per-class",
        "--predictions", str(scores / "predictions"), "--out", str(scores / "metrics.json"), "--test-set", "data",
        "--condition", "language",
    ]) == 0

    model = UnifiedEncoder.from_pretrained(model_dir)
    audio = AudioSource(data)
    classes, posteriors = model.classify([audio.load(utt) for utt in audio.ids], 16000, "language")
    lines = [line.split() for line in (scores / "predictions").read_text().splitlines()]
    utt2lang = dict(line.split() for line in (data / "utt2lang").read_text().splitlines())
    assert [line[0] for line in lines] == list(utt2lang)
    for (utt, label, predicted, posterior), row in zip(lines, posteriors[[audio.ids.index(u) for u in utt2lang]]):
        assert label == utt2lang[utt]
        assert predicted == classes[int(row.argmax())]
        assert float(posterior) == pytest.approx(float(row.max()), abs=1e-5)
    predicted = [line[2] for line in lines]
    assert len(set(predicted)) == 2

    written = json.loads((scores / "metrics.json").read_text())
    expected = classification_metrics(list(utt2lang.values()), predicted)
    assert {key: written[key] for key in expected} == pytest.approx(expected)
    assert written["meta"]["task"] == "classification" and written["meta"]["attribute"] == "language"
    assert set(written["per_class"]) == {"en", "fr"}

    assert uattr_main(["results", "--exp-dir", str(tmp_path / "exp"), "--out", str(tmp_path / "RESULTS.md")]) == 0
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## Classification\n\n### data\n" in results
    assert (f"| joint | language | {expected['accuracy']:.2f} | {expected['balanced_accuracy']:.2f} | "
            f"{expected['macro_f1']:.2f} | 8 | 2 |") in results
    assert f"| joint | language [en] | {written['per_class']['en']['accuracy']:.2f} | – | – | 4 | – |" in results


def test_errors_name_the_attribute_the_table_and_the_utterances(model_dir: Path, tmp_path: Path, capsys) -> None:
    data = noise_data_dir(tmp_path, ("a", "b"))
    assert uattr_main(["extract", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "emb")]) == 0

    def score(attribute: str, table: str, labels: Path) -> str:
        assert uattr_main(["score-labels", "--model", str(model_dir), "--attribute", attribute, "--emb",
                           str(tmp_path / "emb" / table / "data" / "emb.scp"), "--labels", str(labels)]) != 0
        return capsys.readouterr().err

    assert "attribute 'speaker' is not a label attribute" in score("speaker", "speaker", data / "utt2lang")
    assert "unknown attribute 'age'" in score("age", "language", data / "utt2lang")
    assert "8-d embeddings, but the classifier of 'language' takes 32-d ones" in score(
        "language", "speaker", data / "utt2lang")
    more = tmp_path / "utt2lang"
    more.write_text((data / "utt2lang").read_text() + "z-u9 fr\n")
    error = score("language", "language", more)
    assert "no embedding of 1 labelled utterance(s)" in error and "'z-u9'" in error
