"""English detection with langdetect, deterministic and thread-safe.

langdetect's module-level `detect_langs` shares one global factory (loaded lazily, unguarded) and draws from
a random generator unless `DetectorFactory.seed` is set. Here a private factory is loaded once under a lock
with seed 0 (C4's `DetectorFactory.seed = 0`), and every call builds its own `Detector`, whose generator is
re-seeded from that seed for each text: same text -> same answer, from any thread.
"""

from __future__ import annotations

import threading

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

_LOCK = threading.Lock()
_FACTORY: DetectorFactory | None = None
SEED = 0


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
