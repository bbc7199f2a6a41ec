"""Weight sharing: mixed layers from which supernets are built.

`MixedOp` holds every candidate of an operation choice and mixes them in
the DARTS, GDAS, ProxylessNAS or single-path (ENAS, SPOS) way.
"""

from tfnas.supernet.mixed import ARCHITECTURE_PHASE, MODES, WEIGHT_PHASE, MixedOp

__all__ = ["ARCHITECTURE_PHASE", "MODES", "WEIGHT_PHASE", "MixedOp"]
