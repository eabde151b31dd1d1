"""Source pretraining of a small CLIP: contrastive, every pair with the same label a positive.

Every image's caption is the CLIP prompt of its class name ("a photo of a 3."),
so a batch holds many copies of each caption. Plain CLIP (InfoNCE over image-caption
pairs) would make those copies each other's negatives; UniCL (Yang et al., "Unified
Contrastive Learning in Image-Text-Label Space", CVPR 2022) counts every pair that
shares a label as a positive: the targets of each row and column of the batch's
image-caption similarity matrix are spread uniformly over its positives. The text
tower encodes the dataset's few distinct prompts once per step, which equals
encoding every caption in the batch. Evaluation (and the head saved with the
model) is the zero-shot classifier of the current text tower, so the pretraining's
accuracies are zero-shot accuracies on the source.

Why not one pair per class, the mean image embedding against its caption (the
earlier recipe): it aligns the class means, not the images, and ended at 9-48%
zero-shot accuracy on seeds 0-2. Why the text tower learns 30x slower than the image
tower (`TEXT_LR_SCALE`): at the same rate it collapsed the ten prompts onto one
embedding (cosine 1.00 after 40 steps) before the image tower could tell the classes
apart, and leaving that state took most of the run, or all of it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tlrepro.methods.base import Batches, Method, MethodContext, step_statistics
from tlrepro.models.clip import ClipClassifier

MAX_LOGIT_SCALE = math.log(100)
"""open_clip's training clamps the learnt temperature at 100, as OpenAI's CLIP did."""


TEXT_LR_SCALE = 0.03
"""The text tower's (and the temperature's) learning rate over the image tower's."""


class ContrastivePretraining(Method):
    def __init__(self, context: MethodContext):
        super().__init__(context)
        network = self.network
        if not isinstance(network, ClipClassifier) or not network.class_names:
            raise TypeError("contrastive pretraining needs a CLIP model given its class names")
        network.clip.requires_grad_(True)
        network.head.requires_grad_(False)  # the zero-shot head is derived, not trained
        tokens = network.tokenizer(network.prompts(network.class_names))
        self.register_buffer("tokens", tokens, persistent=False)

    def parameter_groups(self) -> list[dict[str, Any]]:
        image = [p for p in self.network.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in image}
        text = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": image}, {"params": text, "lr_scale": TEXT_LR_SCALE}]

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        x, y = batches[self.streams[0]]
        clip = self.network.clip
        image = F.normalize(clip.encode_image(x), dim=-1)
        text = F.normalize(clip.encode_text(self.tokens), dim=-1)
        logits = clip.logit_scale.exp() * image @ text[y].t()
        same_label = (y[:, None] == y[None, :]).float()
        # same_label is symmetric, so row j of `targets` also is text j's target over images
        targets = same_label / same_label.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
        loss.backward()
        return step_statistics(loss, (image @ text.t()).detach(), y)

    @torch.no_grad()
    def after_step(self) -> None:
        self.network.clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Zero-shot logits of the current towers; refreshes the stored head first."""
        self.network.set_class_names(self.network.class_names, self.network.class_prompts)
        return self.network(x)
