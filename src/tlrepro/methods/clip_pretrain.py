"""Source pretraining of a small CLIP: contrastive, with open_clip's own loss.

Every image's caption is the CLIP prompt of its class name ("a photo of a 3.");
the text tower encodes the dataset's few distinct prompts once per step and each
image is paired with its own class's embedding, which equals encoding every
caption in the batch. Evaluation (and the head saved with the model) is the
zero-shot classifier of the current text tower, so the pretraining's accuracies
are zero-shot accuracies on the source.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlrepro.methods.base import Batches, Method, step_statistics
from tlrepro.models.clip import ClipClassifier

MAX_LOGIT_SCALE = math.log(100)
"""open_clip's training clamps the learnt temperature at 100, as OpenAI's CLIP did."""


class ContrastivePretraining(Method):
    def __init__(self, network: nn.Module, *args: Any, **kwargs: Any):
        super().__init__(network, *args, **kwargs)
        if not isinstance(network, ClipClassifier) or not network.class_names:
            raise TypeError("contrastive pretraining needs a CLIP model given its class names")
        from open_clip.loss import ClipLoss

        self.loss = ClipLoss()
        network.clip.requires_grad_(True)
        network.head.requires_grad_(False)  # the zero-shot head is derived, not trained
        tokens = network.tokenizer(network.prompts(network.class_names))
        self.register_buffer("tokens", tokens, persistent=False)

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        x, y = batches[self.streams[0]]
        clip = self.network.clip
        image = F.normalize(clip.encode_image(x), dim=-1)
        text = F.normalize(clip.encode_text(self.tokens), dim=-1)
        # Images of one class share one caption; as separate pairs they would be each
        # other's false negatives. One pair per class in the batch: the mean image.
        members = F.one_hot(y, len(text)).t().float()
        present = members.sum(1) > 0
        prototypes = F.normalize(members[present] @ image, dim=-1)
        loss = self.loss(prototypes, text[present], clip.logit_scale.exp())
        loss.backward()
        return step_statistics(loss, (image @ text.t()).detach(), y)

    @torch.no_grad()
    def after_step(self) -> None:
        self.network.clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Zero-shot logits of the current towers; refreshes the stored head first."""
        self.network.set_class_names(self.network.class_names)
        return self.network(x)
