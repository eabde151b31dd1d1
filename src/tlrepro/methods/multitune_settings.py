"""MultiTune's settings (torch-free, for the registry); the method is `multitune.MultiTune`."""

from __future__ import annotations

from dataclasses import dataclass, field

from tlrepro.methods.settings import NON_NEGATIVE, POSITIVE, SettingError, Settings, setting


@dataclass(frozen=True)
class Branch(Settings):
    """One fine-tuned copy of the pretrained network and its fine-tuning setting."""

    name: str = setting()
    lr_scale: float = setting(within=POSITIVE)
    """Learning-rate multiplier of the branch's pretrained layers."""
    l2sp: float = setting(within=NON_NEGATIVE)
    """Strength alpha of L2-SP, alpha/2 * ||w - w_pretrained||^2, on those layers."""
    reinit_blocks: int = setting(within=NON_NEGATIVE)
    """How many top residual blocks start from a fresh initialisation (at most the
    network's number of blocks, checked when the method is built)."""


def _default_branches() -> list[Branch]:
    return [
        Branch("finetune", lr_scale=1.0, l2sp=0.0, reinit_blocks=0),
        Branch("l2sp_reinit", lr_scale=0.1, l2sp=0.01, reinit_blocks=1),
    ]


@dataclass(frozen=True)
class MultiTuneSettings(Settings):
    branches: list[Branch] = field(default_factory=_default_branches)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.branches) < 2:
            raise SettingError(
                f"setting 'branches' must list at least two branches, got {len(self.branches)}"
            )
