"""The settings of TLVFC and its baselines (torch-free, for the registry); the method is
`tlvfc.TLVFC`, one class whose variants are these settings."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tlrepro.methods.settings import Settings

Transfer = Literal["none", "tlvfc", "dpiat"]
Selection = Literal["maxVar", "minVar", "twoTailed", "interLeaved", "random"]
"""tlrepro.transfer.layer_transfer.SELECTIONS (a test keeps the two equal; this module
stays free of torch)."""


class LayerTransferSettings(Settings):
    """What `tlvfc.TLVFC` reads: the transfer, the crossover and the two selection rules
    (fixed in the baselines, settings of tlvfc)."""

    transfer: Transfer
    crossover_p: float = Field(ge=0, lt=1)
    """Probability of each shared penultimate feature coming from the source network."""
    keep: ClassVar[Selection]
    overwrite: ClassVar[Selection]


class HeInitSettings(LayerTransferSettings):
    """he_init: He initialisation, no transfer; TLVFC's selection rules at their defaults."""

    transfer: Transfer = "none"
    crossover_p: float = Field(0.0, ge=0, lt=1)
    keep: ClassVar[Selection] = "interLeaved"
    overwrite: ClassVar[Selection] = "random"


class DPIATSettings(HeInitSettings):
    transfer: Transfer = "dpiat"


class TLVFCSettings(LayerTransferSettings):
    """tlvfc: the variance transfer's filter rules (`keep`, `overwrite`) are settings too."""

    transfer: Transfer = "tlvfc"
    crossover_p: float = Field(0.1, ge=0, lt=1)
    keep: Selection = "interLeaved"
    overwrite: Selection = "random"
