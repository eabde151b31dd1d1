"""The settings of TLVFC and its baselines (torch-free, for the registry); the method is
`tlvfc.TLVFC`, one class whose variants are these settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from tlrepro.methods.settings import Range, Settings, setting

Transfer = Literal["none", "tlvfc", "dpiat"]
Selection = Literal["maxVar", "minVar", "twoTailed", "interLeaved", "random"]
"""tlrepro.transfer.layer_transfer.SELECTIONS (a test keeps the two equal; this module
stays free of torch)."""
CROSSOVER = Range(0, 1, high_open=True)


@dataclass(frozen=True)
class HeInitSettings(Settings):
    """he_init: He initialisation, no transfer; TLVFC's selection rules at their defaults."""

    transfer: Transfer = "none"
    crossover_p: float = setting(0.0, CROSSOVER)
    """Probability of each shared penultimate feature coming from the source network."""
    keep: ClassVar[Selection] = "interLeaved"
    overwrite: ClassVar[Selection] = "random"


@dataclass(frozen=True)
class DPIATSettings(HeInitSettings):
    transfer: Transfer = "dpiat"


@dataclass(frozen=True)
class TLVFCSettings(HeInitSettings):
    """tlvfc: the variance transfer's filter rules (`keep`, `overwrite`) are settings too."""

    transfer: Transfer = "tlvfc"
    crossover_p: float = setting(0.1, CROSSOVER)
    keep: Selection = "interLeaved"
    overwrite: Selection = "random"
