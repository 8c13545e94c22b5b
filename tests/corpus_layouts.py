"""Miniature copies of public corpus releases, fabricated for the corpus tests.

Each ``make_*`` writes, under a root folder, the real file names, headers and list formats of one release with
a handful of short generated recordings (tones), so the preparation code runs exactly as on the real corpus.
The contents are chosen so that every filter and map has a case to show (held-out speakers, too-long clips,
sentences without an English counterpart, duplicate translations, out-of-split pairs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile

from uattr.data.validate import validate_data_dir

REPO = Path(__file__).resolve().parents[1]


def write_tone(path: Path, seconds: float, rate: int = 16000, seed: int = 0, **options) -> Path:
    """A short tone with a little noise (format from the file name, or ``options`` for soundfile)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    samples = 0.1 * np.sin(2 * np.pi * (200 + 20 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples.astype(np.float32), rate, **options)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------- Common Voice

# Two client ids sharing their first 20 hex digits: the shortened speaker ids must grow to tell them apart.
CV_CLIENTS = {
    "A": "a" * 20 + "1" * 108,
    "B": "a" * 20 + "2" * 108,
    "C": "c" * 128,
    "D": "d" * 128,
    "E": "e" * 128,
    "F": "f" * 128,
    "G": "0" * 128,
    "H": "9" * 128,
}
CV_NEW_HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
                 "gender", "accents", "variant", "locale", "segment"]
CV_OLD_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale",
                 "segment"]
# fr (a v19-style release: sentence_id column, clip_durations.tsv): (clip number, speaker, sentence id, text).
CV_FR = [
    (1, "A", "s1", "Bonjour à tous."),
    (2, "A", "s2", "Il fait beau."),
    (3, "B", "s3", "Le chat dort."),
    (4, "B", "s4", '"Guillemets" sans fin.'),  # unbalanced quotes: the lists are not CSV-quoted
    (5, "C", "s5", "Une phrase de test."),  # test.tsv
    (6, "D", "s6", "Une phrase de dev."),  # dev.tsv
    (7, "A", "s6", "Une phrase de dev."),  # the dev sentence read by a training speaker: held out
    (8, "B", "s8", "Une très longue phrase."),  # 12 s in clip_durations.tsv: dropped
]
CV_FR_DURATIONS_MS = {1: 1000, 2: 1100, 3: 900, 5: 1000, 6: 1000, 7: 1000, 8: 12000}  # clip 4: header read
# de (an older release: no sentence_id, no clip_durations.tsv): (clip number, speaker, text, seconds).
CV_DE = [
    (1, "E", "Guten Morgen.", 1.0),
    (2, "E", "Wie geht es dir?", 1.2),
    (3, "F", "Ein sehr langer Satz.", 10.5),  # ≥ 10 s by its mp3 header: dropped
    (4, "G", "Ein Testsatz.", 1.0),  # test.tsv
    (5, "H", "Ein Entwicklungssatz.", 1.0),  # dev.tsv
]


def _cv_row(header: list[str], lang: str, speaker: str, clip: int, sentence: str, sentence_id: str = "") -> str:
    values = {
        "client_id": CV_CLIENTS[speaker], "path": f"common_voice_{lang}_{clip}.mp3", "sentence_id": sentence_id,
        "sentence": sentence, "up_votes": "2", "down_votes": "0", "locale": lang,
    }
    return "\t".join(values.get(column, "") for column in header)


def make_commonvoice(root: Path) -> Path:
    """``<root>/{fr,de}/{validated,dev,test,[clip_durations]}.tsv`` and ``clips/*.mp3`` (48 kHz, as released)."""
    for clip, speaker, sentence_id, sentence in CV_FR:
        seconds = CV_FR_DURATIONS_MS.get(clip, 800) / 1000 if clip != 8 else 1.0  # clip 8 is "long" by the table
        write_tone(root / "fr" / "clips" / f"common_voice_fr_{clip}.mp3", seconds, 48000, clip)
    rows = {clip: _cv_row(CV_NEW_HEADER, "fr", spk, clip, text, sid) for clip, spk, sid, text in CV_FR}
    header = "\t".join(CV_NEW_HEADER)
    write_lines(root / "fr" / "validated.tsv", [header] + [rows[clip] for clip in sorted(rows)])
    write_lines(root / "fr" / "dev.tsv", [header, rows[6]])
    write_lines(root / "fr" / "test.tsv", [header, rows[5]])
    write_lines(root / "fr" / "clip_durations.tsv", ["clip\tduration[ms]"] + [
        f"common_voice_fr_{clip}.mp3\t{ms}" for clip, ms in CV_FR_DURATIONS_MS.items()
    ])
    for clip, speaker, sentence, seconds in CV_DE:
        write_tone(root / "de" / "clips" / f"common_voice_de_{clip}.mp3", seconds, 48000, clip)
    rows = {clip: _cv_row(CV_OLD_HEADER, "de", spk, clip, text) for clip, spk, text, _ in CV_DE}
    header = "\t".join(CV_OLD_HEADER)
    write_lines(root / "de" / "validated.tsv", [header] + [rows[clip] for clip in sorted(rows)])
    write_lines(root / "de" / "dev.tsv", [header, rows[5]])
    write_lines(root / "de" / "test.tsv", [header, rows[4]])
    return root


# ------------------------------------------------------------------------------------------------------ VoxCeleb1

VOX_TEST_SPEAKERS = {"id10270": {"x6uYqmx31kE": [1, 2], "8jEAjG6SegY": [8]},
                     "id10271": {"1gtz-CUIygI": [1], "37nktPRUJ58": [2]}}
VOX_DEV_SPEAKERS = {"id10001": {"1zcIwhmdeo4": [1, 2], "7gWzIy6yIIk": [3]},
                    "id10002": {"0_laIeN-Q44": [1], "6WO410QOeuo": [2]},
                    "id10003": {"5ablueV_1tw": [1], "_Owc0gLzbO4": [2]}}
VOX_LISTS = {
    "veri_test2.txt": [
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav",
        "0 id10270/x6uYqmx31kE/00001.wav id10271/1gtz-CUIygI/00001.wav",
        "1 id10271/37nktPRUJ58/00002.wav id10271/1gtz-CUIygI/00001.wav",
        "0 id10271/37nktPRUJ58/00002.wav id10270/x6uYqmx31kE/00002.wav",
    ],
    "list_test_all2.txt": [
        "1 id10001/1zcIwhmdeo4/00001.wav id10001/7gWzIy6yIIk/00003.wav",
        "0 id10001/1zcIwhmdeo4/00002.wav id10002/0_laIeN-Q44/00001.wav",
        "1 id10003/5ablueV_1tw/00001.wav id10003/_Owc0gLzbO4/00002.wav",
        "0 id10270/x6uYqmx31kE/00001.wav id10003/5ablueV_1tw/00001.wav",
    ],
    "list_test_hard2.txt": [
        "1 id10002/0_laIeN-Q44/00001.wav id10002/6WO410QOeuo/00002.wav",
        "0 id10002/6WO410QOeuo/00002.wav id10001/7gWzIy6yIIk/00003.wav",
    ],
}


def make_voxceleb1(root: Path, split_trees: bool = False) -> Path:
    """``<root>/wav/idXXXXX/<video>/<nnnnn>.wav`` (or dev/test unpacked apart) and the three official lists."""
    seed = 0
    for part, speakers in (("vox1_test_wav", VOX_TEST_SPEAKERS), ("vox1_dev_wav", VOX_DEV_SPEAKERS)):
        tree = root / part / "wav" if split_trees else root / "wav"
        for speaker, videos in speakers.items():
            for video, segments in videos.items():
                for segment in segments:
                    seed += 1
                    write_tone(tree / speaker / video / f"{segment:05d}.wav", 0.5, seed=seed)
    for name, lines in VOX_LISTS.items():
        write_lines(root / name, lines)
    return root


# --------------------------------------------------------------------------------------------------------- FLEURS

# (language, split) → recordings as (sentence id, file name, raw transcription).
FLEURS = {
    ("en_us", "test"): [(101, "1001.wav", "The sky is blue."), (101, "1002.wav", "The sky is blue."),
                        (102, "1003.wav", "Cats sleep a lot."), (103, "1004.wav", "Rivers flow to the sea.")],
    ("fr_fr", "test"): [(101, "2001.wav", "Le ciel est bleu."), (102, "2002.wav", "Les chats dorment beaucoup."),
                        (102, "2003.wav", "Les chats dorment beaucoup."),
                        (104, "2004.wav", "Une phrase sans anglais.")],  # no English recording: left out
    ("de_de", "test"): [(101, "3001.wav", "Der Himmel ist blau."), (103, "3002.wav", "Flüsse fließen ins Meer.")],
    ("en_us", "dev"): [(201, "1101.wav", "Dev sentence.")],
    ("fr_fr", "dev"): [(201, "2101.wav", "Phrase de dev.")],
    ("de_de", "dev"): [(201, "3101.wav", "Entwicklungssatz.")],
}


def make_fleurs(root: Path) -> Path:
    """``<root>/<lang>/{dev,test}.tsv`` (no header, 7 columns) and ``<root>/<lang>/audio/<split>/*.wav``."""
    for (lang, split), recordings in FLEURS.items():
        lines = []
        for number, (sentence, name, raw) in enumerate(recordings):
            seconds = 0.5 + 0.1 * number
            write_tone(root / lang / "audio" / split / name, seconds, seed=int(name[:-4]) % 97)
            tokens = " ".join(raw.lower().replace(" ", "|"))
            gender = ("MALE", "FEMALE")[number % 2]
            lines.append(f"{sentence}\t{name}\t{raw}\t{raw.lower()}\t{tokens}\t{int(seconds * 16000)}\t{gender}")
        write_lines(root / lang / f"{split}.tsv", lines)
    return root


# ---------------------------------------------------------------------------------------------------------- mTEDx

# it-en test: YAML items in file order (line i of test.it / test.en is item i). Talk CqQ4d8SzQDc's items are
# listed out of offset order, so segment indices must follow the offsets.
MTEDX_TEST = [
    ({"duration": 1.25, "offset": 0.5, "speaker_id": "CqQ4d8SzQDc", "wav": "CqQ4d8SzQDc.wav"},
     "Buongiorno a tutti.", "Good morning everyone."),
    ({"duration": 0.75, "offset": 3.0, "speaker_id": "CqQ4d8SzQDc", "wav": "CqQ4d8SzQDc.wav"},
     "Grazie.", "Thank you."),
    ({"duration": 1.0, "offset": 1.9, "speaker_id": "CqQ4d8SzQDc", "wav": "CqQ4d8SzQDc.wav"},
     "Oggi parliamo di scienza.", "Today we talk about science."),
    ({"duration": 2.2, "offset": 0.3, "speaker_id": "0u7tTptBo9I", "wav": "0u7tTptBo9I.wav"},
     "La musica è universale.", "Music is universal."),
    ({"duration": 0.6, "offset": 2.8, "speaker_id": "0u7tTptBo9I", "wav": "0u7tTptBo9I.wav"},
     "Grazie mille.", "Thank you."),
]
MTEDX_VALID = [
    ({"duration": 1.0, "offset": 0.2, "speaker_id": "Vv1xB2oC3dE", "wav": "Vv1xB2oC3dE.wav"},
     "Una frase di sviluppo.", "A development sentence."),
]
MTEDX_TALK_SECONDS = {"CqQ4d8SzQDc": 4.0, "0u7tTptBo9I": 3.5, "Vv1xB2oC3dE": 1.5}


def make_mtedx(root: Path) -> Path:
    """``<root>/it-en/data/{test,valid}/txt/<split>.{yaml,it,en}`` and ``.../wav/<talk>.flac``."""
    for split, items in (("test", MTEDX_TEST), ("valid", MTEDX_VALID)):
        data = root / "it-en" / "data" / split
        # The release writes one flow-style mapping per line, as MuST-C does.
        yaml_lines = ["- {" + ", ".join(f"{key}: {value}" for key, value in item.items()) + "}" for item, _, _ in items]
        write_lines(data / "txt" / f"{split}.yaml", yaml_lines)
        write_lines(data / "txt" / f"{split}.it", [source for _, source, _ in items])
        write_lines(data / "txt" / f"{split}.en", [target for _, _, target in items])
        for talk in sorted({item["speaker_id"] for item, _, _ in items}):
            write_tone(data / "wav" / f"{talk}.flac", MTEDX_TALK_SECONDS[talk], seed=len(talk))
    return root


# ------------------------------------------------------------------------------------------------------ VoxPopuli

# The columns voxpopuli.get_asr_data writes.
VOXPOPULI_ASR_HEADER = ["id", "raw_text", "normalized_text", "speaker_id", "split", "gender"]
# (source id, split, speaker, transcript); every one has an English interpretation in s2s.tsv.
VOXPOPULI_FR = [
    ("20180313-0900-PLENARY-15-fr_20180313-15:26:37_3", "test", "124737", "Madame la Présidente, merci."),
    ("20180313-0900-PLENARY-15-fr_20180313-15:30:02_1", "test", "96781", "Nous devons agir « maintenant »."),
    ("20190115-0900-PLENARY-7-fr_20190115-10:02:11_0", "test", "124737", "Le débat est clos."),
    ("20190115-0900-PLENARY-7-fr_20190115-10:05:40_2", "dev", "28260", "La séance est ouverte."),
    ("20170704-0900-PLENARY-3-fr_20170704-09:12:55_4", "train", "96781", "Ceci est un segment d'entraînement."),
]


def voxpopuli_target_id(source_id: str, tgt: str = "en") -> str:
    """What get_s2s_data names the interpretation of ``source_id``: ``<event>-<tgt>_<utt>``."""
    event, utt = source_id.split("_", 1)
    return f"{event.rsplit('-', 1)[0]}-{tgt}_{utt}"


def make_voxpopuli(root: Path, annotated_target: bool = False) -> Path:
    """``<root>/transcribed_data/fr/{asr_<split>.tsv,<year>/<id>.ogg}`` and ``.../fr/en/{s2s.tsv,<year>/*.ogg}``;
    with ``annotated_target``, ``s2s_ref.tsv`` with the targets' transcripts instead (get_s2s_data
    --use-annotated-target)."""
    src_dir = root / "transcribed_data" / "fr"
    ogg = {"format": "OGG", "subtype": "VORBIS"}
    s2s = ["\t".join(["src_id", "src_text", "src_speaker_id", "tgt_id", "tgt_text"])]
    for number, (source, split, speaker, text) in enumerate(VOXPOPULI_FR):
        target = voxpopuli_target_id(source)
        write_tone(src_dir / source[:4] / f"{source}.ogg", 0.8, seed=number, **ogg)
        write_tone(src_dir / "en" / target[:4] / f"{target}.ogg", 0.9, seed=number + 10, **ogg)
        transcript = voxpopuli_target_text(number) if annotated_target else ""
        s2s.append("\t".join([source, text, speaker, target, transcript]))
    for split in ("train", "dev", "test"):
        rows = ["\t".join(VOXPOPULI_ASR_HEADER)]
        for source, row_split, speaker, text in VOXPOPULI_FR:
            if row_split == split:
                rows.append("\t".join([source, text, text.lower(), speaker, split, "female"]))
        write_lines(src_dir / f"asr_{split}.tsv", rows)
    write_lines(src_dir / "en" / ("s2s_ref.tsv" if annotated_target else "s2s.tsv"), s2s)
    return root


def voxpopuli_target_text(number: int) -> str:
    """The human transcript of the interpretation of ``VOXPOPULI_FR[number]`` in s2s_ref.tsv."""
    return f"Interpretation number {number}."


# -------------------------------------------------------------------------------------------------------- recipes


def copy_recipe(corpus: str, dest: Path) -> Path:
    """A copy of ``egs/<corpus>/uattr1`` whose relative symlinks (uattr.sh, path.sh, cmd.sh, utils) still resolve.

    The recipe writes data/ and exp/ into its own folder, so tests run a copy in ``dest`` rather than the
    checkout: ``dest/egs/TEMPLATE`` and ``dest/utils`` point at the checkout's.
    """
    (dest / "egs").mkdir(parents=True, exist_ok=True)
    (dest / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    (dest / "utils").symlink_to(REPO / "utils")
    recipe = dest / "egs" / corpus / "uattr1"
    shutil.copytree(REPO / "egs" / corpus / "uattr1", recipe, symlinks=True, ignore=shutil.ignore_patterns(
        "data", "exp", "dump"))
    return recipe


def run_recipe_script(recipe: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a recipe script (``local/data.sh``, ``run.sh``) in the recipe folder with this venv's uattr on PATH."""
    environment = dict(os.environ)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    environment.update(env or {})
    return subprocess.run(  # no standard input: a script that reads it must not wait on the test's
        ["bash", *args], cwd=recipe, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300, check=False,
    )


def prepare_in_recipe_copy(corpus: str, root: Path, dest: Path, *options: str) -> Path:
    """Run ``local/data.sh --root ROOT OPTIONS`` in a copy of the corpus's recipe under ``dest``; its data/ folder."""
    recipe = copy_recipe(corpus, dest)
    done = run_recipe_script(recipe, "local/data.sh", "--root", str(root), *options)
    assert done.returncode == 0, done.stderr
    return recipe / "data"


def assert_valid_data_dirs(data: Path, names: Iterable[str], **options: Any) -> None:
    """Each named dir under ``data`` passes ``validate_data_dir(..., **options)``; else its problems are the failure."""
    for name in names:
        report = validate_data_dir(data / name, **options)
        assert report.ok, [str(problem) for problem in report.problems]


def retrieval_task_lines(data: Path) -> list[str]:
    """The task lines of ``data/retrieval_tasks``, without its header comment."""
    return [line for line in (data / "retrieval_tasks").read_text().splitlines() if not line.startswith("#")]
