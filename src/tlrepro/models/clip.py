"""CLIP image encoders (open_clip) behind the `Classifier` interface.

A `ClipClassifier` holds the whole open_clip model (image and text towers) so
that a run can turn its dataset's class names into prompts and text embeddings;
`features(x)` is the unit-norm image embedding, so the zero-shot classifier is
exactly a linear `head` with weight `logit_scale * T` (T = normalised text
embeddings of the prompts) and no bias. Only the image tower and the head
train by default; contrastive pretraining unfreezes the text tower itself.

open_clip is imported here only, so planning and non-CLIP jobs never pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlrepro.models.base import Classifier

PROMPT = "a photo of a {}."
"""The paper's prompt; the tiny CLIP is pretrained on captions of the same form."""

# The quick profile's CLIP: open_clip's CLIP with a 2-layer text transformer (10-token
# context) and, as image tower, the quick profile's small VGG (BatchNorm convs) with a
# linear projection; open_clip's own 32 px towers (ViT, ModifiedResNet) did not leave
# their initial collapse in the few hundred steps the CPU budget allows.
TINY_EMBED_DIM = 64
TINY_TEXT: dict[str, Any] = {"context_length": 10, "width": 64, "heads": 2, "layers": 2}


IMAGE_TOWER_PREFIX = "clip.visual."
"""Keys of the image tower in a `ClipClassifier`'s state: the part adaptation trains."""


class ClipClassifier(Classifier):
    def __init__(
        self, num_classes: int, clip: nn.Module, tokenizer: Any, prompt: str = PROMPT
    ) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.feature_dim = clip.visual.output_dim
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.class_names: tuple[str, ...] = ()
        self.class_prompts: tuple[str, ...] | None = None
        size = getattr(clip.visual, "image_size", None)
        self.image_size = (size, size) if isinstance(size, int) else size
        for name, parameter in self.clip.named_parameters():
            parameter.requires_grad_(f"clip.{name}".startswith(IMAGE_TOWER_PREFIX))

    @property
    def encoder(self) -> nn.Module:
        """The image tower: what adaptation trains (and RST sparsifies)."""
        return self.clip.visual

    @property
    def logit_scale(self) -> Tensor:
        return self.clip.logit_scale.detach().exp()

    def features(self, x: Tensor) -> Tensor:
        """Unit-norm image embedding; inputs of another size (32 px digits for a 224 px
        CLIP) are resized bilinearly to the tower's input size first."""
        size = self.image_size
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.normalize(self.clip.encode_image(x), dim=-1)

    def prompts(self, class_names: Sequence[str]) -> list[str]:
        """One prompt per class, in the dataset's label order (never sorted): the run's own
        (`set_class_names(..., prompts)`) for its classes, else `self.prompt` of each name."""
        if self.class_prompts is not None and tuple(class_names) == self.class_names:
            return list(self.class_prompts)
        return [self.prompt.format(name.replace("_", " ")) for name in class_names]

    def text_embeddings(self, class_names: Sequence[str]) -> Tensor:
        """Normalised text embeddings of the class prompts (gradients flow if the tower trains)."""
        tokens = self.tokenizer(self.prompts(class_names)).to(self.clip.logit_scale.device)
        return F.normalize(self.clip.encode_text(tokens), dim=-1)

    @torch.no_grad()
    def set_class_names(
        self, class_names: Sequence[str], prompts: Sequence[str] | None = None
    ) -> None:
        """Make `head` the zero-shot classifier of these classes (computed once, here), from
        `prompts` (one per class, label order) or else `self.prompt` filled with each name."""
        if len(class_names) != self.num_classes:
            raise ValueError(
                f"{len(class_names)} class names for a head of {self.num_classes} classes"
            )
        if prompts is not None and len(prompts) != len(class_names):
            raise ValueError(f"{len(prompts)} prompts for {len(class_names)} classes")
        self.class_names = tuple(class_names)
        self.class_prompts = tuple(prompts) if prompts is not None else None
        self.head.weight.copy_(self.logit_scale * self.text_embeddings(class_names))
        self.head.bias.zero_()


class SmallImageTower(nn.Module):
    """The small VGG's convolutional body and a linear projection into the joint space."""

    def __init__(self, output_dim: int):
        super().__init__()
        from tlrepro.models.small import SmallVGG

        self.body = SmallVGG(num_classes=1).body
        self.proj = nn.Linear(64, output_dim)
        self.output_dim = output_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.body(x))


def tiny_clip(num_classes: int) -> ClipClassifier:
    """A CLIP small enough to pretrain on the CPU in seconds (random init)."""
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer

    clip = CLIP(TINY_EMBED_DIM, {"image_size": 32}, TINY_TEXT, quick_gelu=True)
    clip.visual = SmallImageTower(TINY_EMBED_DIM)
    return ClipClassifier(
        num_classes, clip, SimpleTokenizer(context_length=TINY_TEXT["context_length"])
    )


def pretrained_clip(
    arch: str,
    num_classes: int,
    weights: str | None = None,
    download: bool = True,
    image_size: int | None = None,
) -> ClipClassifier:
    """An open_clip architecture; `weights` a tag ("openai", downloaded and cached by
    open_clip) or the path of a local weights file (offline machines). Only the source
    "pretraining" job loads them (config `pretrain.models.<model>.weights`); runs start
    from its checkpoint, so they build the architecture alone (None: no download).

    A profile's `model_options` (the rehearsal's) may set `download=False`: a tag then
    builds random weights instead (a local file is still read); and `image_size`: the
    image tower's input side (positional embeddings sized for it), which `features`
    resizes every view to, so CLIP's 224 px preprocessing runs unchanged before it."""
    import open_clip

    if not download and weights is not None and not Path(weights).is_file():
        weights = None
    clip = open_clip.create_model(arch, pretrained=weights, force_image_size=image_size)
    return ClipClassifier(num_classes, clip, open_clip.get_tokenizer(arch))


clip_rn50 = partial(pretrained_clip, "RN50-quickgelu")
clip_vit_b16 = partial(pretrained_clip, "ViT-B-16-quickgelu")
