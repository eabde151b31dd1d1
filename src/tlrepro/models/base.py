"""The shape every model has: a feature extractor and a head, and the head's contract.

Every model the registry builds puts its task-specific layer at `head`: an `nn.Linear`
from `feature_dim` features to the classes, so a saved state's head is exactly its
entries under `HEAD_PREFIX`. A method may replace the head by another module (CMKD's task
head ends in a linear layer after two norms); whatever it is, `num_classes` and
`head_classes` read the class count from the head's last linear weight, and `split_head`
separates a state into body and head. Callers use these, never a model's key names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlrepro.errors import WeightsError

HEAD_PREFIX = "head."
"""Where a model's state keeps its head (`Classifier.head`)."""


def split_head(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(the body's entries, the head's entries with `HEAD_PREFIX` removed) of a state."""
    body = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    head = {k[len(HEAD_PREFIX) :]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
    return body, head


def head_classes(head_state: Mapping[str, Tensor]) -> int:
    """How many classes a head's state predicts: the rows of its last (output) linear
    weight, the last 2-d weight in module order (norm layers' weights are 1-d)."""
    weights = [v for k, v in head_state.items() if k.endswith("weight") and v.dim() == 2]
    if not weights:
        raise ValueError(f"no linear weight among the head's entries {sorted(head_state)}")
    return weights[-1].shape[0]


class Classifier(nn.Module):
    """`forward(x) = head(features(x))`; `head` is the only task-specific layer."""

    head: nn.Module
    """(N, feature_dim) features -> (N, num_classes) logits; an `nn.Linear` as built."""
    feature_dim: int

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pooled_features(self, x: Tensor) -> Tensor:
        """The globally average-pooled output of the last convolutional stage: what TLVFC's
        crossover takes from its source network. `features` for the nets whose head sits on
        that pool (the ResNets, the block nets, SmallVGG); a net whose `features` run on
        through hidden linear layers (VGG's fc6/fc7) overrides it."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @property
    def num_classes(self) -> int:
        return head_classes(self.head.state_dict())

    def load_body(self, state: Mapping[str, Tensor], source: object) -> None:
        """Every entry of `state` but the head's (which belongs to another label space) into
        this model; a body entry missing, left over or of another shape is an error naming
        `source` (batch-norm step counters excepted, which some releases do not store)."""
        body, _ = split_head(state)
        try:
            missing, unexpected = self.load_state_dict(body, strict=False)
        except RuntimeError as error:
            raise WeightsError(f"{source} does not fit {type(self).__name__}: {error}") from None
        leftovers = [
            k for k in missing if not k.startswith(HEAD_PREFIX) and "num_batches_tracked" not in k
        ] + list(unexpected)
        if leftovers:
            raise WeightsError(f"{source} does not fit {type(self).__name__}: {leftovers[:5]}")

    def reset_head(self, num_classes: int) -> None:
        """A fresh linear head for a new label space (fine-tuning keeps everything else)."""
        device = next(self.head.parameters()).device
        self.head = nn.Linear(self.feature_dim, num_classes).to(device)

    def set_class_names(
        self, class_names: Sequence[str], prompts: Sequence[str] | None = None
    ) -> None:
        """Called with the run's class names (label order) before the method is built; a
        model whose head can be made from them (CLIP's zero-shot head) does so, from
        `prompts` (one per class) where given."""


class BlockClassifier(Classifier):
    """A body of `stem`, a sequence of `blocks` each combined with its input by `join`, and
    `final` before global pooling: the layout SpotTune routes over (a frozen and a tuned
    copy of each block) and that ResNet-26 and EfficientNet-Lite0 share."""

    stem: nn.Module
    blocks: nn.ModuleList
    final: nn.Module
    strides: tuple[int, ...]
    """Each block's stride (2 where a stage starts)."""
    widths: tuple[int, ...]
    """Each block's output channels."""
    standardize_input: bool = False
    """Whether `stem` standardises each image first: a network that looks at the same images
    beside this one (SpotTune's policy) must see them the same way."""

    def join(self, index: int, x: Tensor, block_out: Tensor) -> Tensor:
        raise NotImplementedError

    def pool(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.final(x), 1), 1)

    def features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for index, block in enumerate(self.blocks):
            x = self.join(index, x, block(x))
        return self.pool(x)


def parameter_count(module: nn.Module) -> int:
    """How many numbers `module` stores as parameters (buffers such as BN statistics not)."""
    return sum(p.numel() for p in module.parameters())


def he_init(network: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs and unit BatchNorm, as torchvision's ResNets:
    the He-init baseline, and the filters TLVFC ranks when a target layer is wider."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
