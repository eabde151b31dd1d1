"""TLVFC (AICI 2024) and its baselines: He init, DPIAT, and TLVFC's ablations.

One class, variants as settings: `transfer` (none | tlvfc | dpiat) sets how the
target network starts, from He initialisation and then weights carried over
from the source network of another architecture; `crossover_p` > 0 turns on
feature crossover while training: with probability p each of the first
min(d_t, d_s) penultimate features of the target is replaced by the frozen
source network's globally pooled conv features (`Classifier.pooled_features`) before
the classifier. Evaluation uses the target alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tlrepro import storage
from tlrepro.methods.base import Batches, Method, MethodContext
from tlrepro.methods.tlvfc_settings import HeInitSettings
from tlrepro.models.base import Classifier, he_init
from tlrepro.transfer.recipes import TransferReport, dpiat_transfer, tlvfc_transfer

REPORT_FILE = "transfer_report.json"


class TLVFC(Method):
    """Settings: `HeInitSettings` and its subclasses (the registry's he_init, dpiat, tlvfc)."""

    settings: HeInitSettings

    def __init__(self, context: MethodContext):
        super().__init__(context)
        network, source_model = self.network, context.source_model
        transfer = self.settings.transfer
        self.p = float(self.settings.crossover_p)
        if (transfer != "none" or self.p > 0) and source_model is None:
            raise ValueError(
                "transfer and crossover need the source network; register the method "
                "with uses_source_model=True"
            )
        he_init(network)
        self.report: TransferReport | None = None
        if transfer == "tlvfc":
            self.report = tlvfc_transfer(
                source_model, network, self.settings.keep, self.settings.overwrite
            )
        elif transfer == "dpiat":
            self.report = dpiat_transfer(source_model, network)
        # Held outside the module tree: no optimiser group, no checkpoint copy, and the
        # trainer's train()/eval() never switches its BatchNorm to batch statistics.
        self._support: tuple[Classifier, ...] = ()
        if self.p > 0:
            assert source_model is not None
            self._support = (source_model.eval().requires_grad_(False),)

    def export(self, folder: Path) -> dict[str, Any]:
        """`transfer_report.json`: which source layer fed which target layer, and how much."""
        if self.report is None:
            return {}
        report = self.report.to_json()
        storage.write_json(folder / REPORT_FILE, report)
        return {"transferred_fraction": report["fraction"]}

    def crossed_features(self, x: Tensor) -> Tensor:
        """Target features with a random p-share of the first min(d_t, d_s) dims taken
        from the frozen source network (one mask per step, shared by the batch). The source's
        are its globally pooled last conv stage, as the release's VGG with `avgpool` made
        `AdaptiveAvgPool2d(1)` and no classifier: never VGG's fc6/fc7 outputs, which at
        32 px come from a 1x1 map copied to 7x7."""
        features = self.network.features(x)
        if not (self.training and self._support):
            return features
        with torch.no_grad():
            source = self._support[0].pooled_features(x)
        d = min(features.shape[1], source.shape[1])
        mask = torch.rand(d, device=x.device) < self.p
        mixed = torch.where(mask, source[:, :d].to(features.dtype), features[:, :d])
        return torch.cat([mixed, features[:, d:]], dim=1)

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        x, y = batches["target"]
        loss, stats = self.scored(self.network.head(self.crossed_features(x)), y)
        loss.backward()
        return stats
