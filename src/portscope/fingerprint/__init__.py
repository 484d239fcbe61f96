"""OS fingerprinting (``-O``): probes, signature extraction and scoring, all pure.

:mod:`probes` builds the packets, :mod:`signature` turns replies into features,
:mod:`kb` scores them against portscope's own knowledge base
(``portscope/data/os-signatures.toml``). The I/O is in :mod:`portscope.engine.osdetect`.
"""

from portscope.fingerprint.kb import Entry, Match, load, rank, score
from portscope.fingerprint.signature import Observation, extract

__all__ = ["Entry", "Match", "Observation", "extract", "load", "rank", "score"]
