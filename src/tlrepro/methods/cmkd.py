"""CMKD, RST and FixMatch on a CLIP image encoder (TCSVT 2024; docs/clip_uda.md).

One trainable image encoder f and two heads on its unit-norm features:
g, the fixed zero-shot head `logit_scale * f(x) @ T^T` (T: text embeddings of the
target's class prompts), and h, the task head (BatchNorm1d -> LayerNorm ->
Linear) that predicts. CMKD distils g into h on the unlabelled target with
Gini-impurity terms weighted by their agreement; RST (`rst_tau`) keeps the
encoder a sparse residual of its pretrained weights; FixMatch adds
pseudo-labels from a weak view (the training view) to a strong view (flip +
ColorJitter + RandAugment per image, made by the trainer) for both heads.

The methods see labelled source and UNLABELLED target batches: target labels are
never read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from tlrepro import storage
from tlrepro.errors import WeightsError
from tlrepro.methods.base import Batches, Method, MethodContext, step_statistics
from tlrepro.methods.cmkd_settings import ClipAdaptationSettings, CMKDSettings
from tlrepro.models.base import HEAD_PREFIX, head_classes, parameter_count, split_head
from tlrepro.models.clip import IMAGE_TOWER_PREFIX, ClipClassifier

RST_FILE = "rst.safetensors"


# --------------------------------------------------------------------------- loss


def ramp(step: int, ramp_steps: int) -> float:
    """r(t) = 2 / (1 + exp(-t / T)) - 1 with t clamped at T (the paper: T = 10000)."""
    t = min(step, ramp_steps)
    return 2.0 / (1.0 + math.exp(-t / ramp_steps)) - 1.0


def gini_impurity(p: Tensor, weight: Tensor) -> Tensor:
    """GI(P; w) = sum_i w_i (1 - sum_c P_ic^2 / detach(sum_j P_jc)): low when every sample is
    confident and the classes are balanced over the batch."""
    class_mass = p.sum(0).detach()
    return (weight * (1.0 - (p.pow(2) / class_mass).sum(1))).sum()


def cmkd_loss(
    head_source: Tensor,
    zeroshot_source: Tensor,
    labels: Tensor,
    head_target: Tensor,
    zeroshot_target: Tensor,
    r: float,
    l1: float,
    l2: float,
    l3: float,
    label_smoothing: float,
) -> dict[str, Tensor]:
    """The CMKD objective from logits; returns the total and its terms (undetached).

    alpha_i = exp(-KL(p_g,i || p_h,i)) weighs the student's own impurity against that
    of its mixture with the (detached) teacher; log-probabilities come from
    log_softmax (the release takes the log of probabilities without an epsilon)."""
    log_ph = F.log_softmax(head_target, dim=1)
    log_pg = F.log_softmax(zeroshot_target, dim=1)
    p_h, p_g = log_ph.exp(), log_pg.exp()
    alpha = torch.exp(-(p_g * (log_pg - log_ph)).sum(1)).detach()
    p_m = 0.5 * (p_h + p_g.detach())
    terms = {
        "ce_head": F.cross_entropy(head_source, labels, label_smoothing=label_smoothing),
        "ce_zeroshot": F.cross_entropy(zeroshot_source, labels),
        "gi_student": gini_impurity(p_h, alpha) + gini_impurity(p_m, 1.0 - alpha),
        "gi_teacher": gini_impurity(p_g, torch.ones_like(alpha)),
    }
    terms["loss"] = (
        terms["ce_head"]
        + l1 * r * terms["gi_student"]
        + l2 * terms["ce_zeroshot"]
        + l3 * r * terms["gi_teacher"]
    )
    return terms


def fixmatch_loss(weak: Tensor, strong: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Cross-entropy of the strong view against the weak view's argmax where the weak view's
    top probability reaches `threshold`; the mean runs over the whole batch. Returns
    (loss, mask)."""
    confidence, pseudo = F.softmax(weak.detach(), dim=1).max(1)
    mask = (confidence >= threshold).float()
    return (F.cross_entropy(strong, pseudo, reduction="none") * mask).mean(), mask


# --------------------------------------------------------------------------- model


class TaskHead(nn.Sequential):
    """h: BatchNorm1d -> LayerNorm -> Linear without bias, initialised N(0, 1e-3^2). The
    BatchNorm1d bias is fixed at 0, as in the release, so the features it hands on stay
    centred (its scale trains)."""

    def __init__(self, feature_dim: int, num_classes: int):
        norm = nn.BatchNorm1d(feature_dim)
        norm.bias.requires_grad_(False)
        linear = nn.Linear(feature_dim, num_classes, bias=False)
        nn.init.normal_(linear.weight, std=1e-3)
        super().__init__(norm, nn.LayerNorm(feature_dim), linear)


def _clip_network(network: nn.Module) -> ClipClassifier:
    if not isinstance(network, ClipClassifier):
        raise TypeError(
            f"CLIP methods need a CLIP model (tiny_clip, clip_rn50, clip_vit_b16), "
            f"not {type(network).__name__}"
        )
    return network


class ZeroShot(Method):
    """CLIP's zero-shot classifier of the run's classes, untouched: no gradient is ever
    filled, so the optimiser step changes nothing. Also the "source pretraining" of an
    externally pretrained CLIP (it records the weights and their source accuracy)."""

    trains = False

    def __init__(self, context: MethodContext):
        super().__init__(context)
        _clip_network(self.network)

    def train(self, mode: bool = True) -> ZeroShot:
        """Always in eval mode: a forward pass in train mode would move BatchNorm statistics."""
        return super().train(False)

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        x, y = batches[self.streams[0]]
        with torch.no_grad():
            logits = self.network(x)
            return step_statistics(F.cross_entropy(logits, y), logits, y)

    def export(self, folder: Path) -> dict[str, Any]:
        return {"dsp_millions": 0.0}


class ClipAdaptation(Method):
    """What every trained CLIP method shares: the fixed zero-shot head g, the task head h,
    frozen BatchNorm statistics in the encoder, per-group learning rates, RST and DSP.

    Settings (`ClipAdaptationSettings`): `head_lr_scale` (h's lr over the encoder's),
    `rst_tau` (None = dense fine-tuning; else after every step encoder elements within tau
    of their pretrained value are reset to it)."""

    settings: ClipAdaptationSettings

    def __init__(self, context: MethodContext):
        super().__init__(context)
        net = _clip_network(self.network)
        # g: the zero-shot head the model was given for the run's classes, fixed.
        self.register_buffer("zeroshot_weight", net.head.weight.detach().clone())
        net.head = TaskHead(net.feature_dim, net.num_classes)
        self.tau: float | None = self.settings.rst_tau
        self._encoder_names = [name for name, _ in net.encoder.named_parameters()]
        if self.tau is not None:
            for index, p in enumerate(net.encoder.parameters()):
                # Rebuilt identically from the source checkpoint on resume: not persisted.
                self.register_buffer(f"_w0_{index}", p.detach().clone(), persistent=False)

    def zeroshot(self, features: Tensor) -> Tensor:
        return features @ self.zeroshot_weight.t()

    def train(self, mode: bool = True) -> ClipAdaptation:
        """The encoder's BatchNorm layers keep their pretrained running statistics (their
        affine weights still train); the task head's BatchNorm is in train mode."""
        super().train(mode)
        for module in self.network.encoder.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
        return self

    def parameter_groups(self) -> list[dict[str, Any]]:
        encoder = [p for p in self.network.encoder.parameters() if p.requires_grad]
        head = [p for p in self.network.head.parameters() if p.requires_grad]
        return [{"params": encoder}, {"params": head, "lr_scale": self.settings.head_lr_scale}]

    def _initial_weights(self) -> list[Tensor]:
        return [self.get_buffer(f"_w0_{i}") for i in range(len(self._encoder_names))]

    @torch.no_grad()
    def after_step(self) -> None:
        """RST: W <- M * W + (1 - M) * W0 with M = |W - W0| > tau, for every encoder tensor."""
        if self.tau is None:
            return
        for p, w0 in zip(self.network.encoder.parameters(), self._initial_weights(), strict=True):
            p.copy_(torch.where((p - w0).abs() > self.tau, p, w0))

    def saved_state(self) -> dict[str, Tensor]:
        """The image tower and the task head only: the text tower never trains and equals the
        source checkpoint's, and it holds 62 % of RN50's parameters (63.7 of 102.0 M) and 42 %
        of ViT-B/16's (63.4 of 149.6 M), in every run. `load_adapted` rebuilds a run's model
        from its source checkpoint and this state."""
        return {
            key: value
            for key, value in self.network.state_dict().items()
            if key.startswith((IMAGE_TOWER_PREFIX, HEAD_PREFIX))
        }

    def export(self, folder: Path) -> dict[str, Any]:
        """DSP (distinct stored parameters beyond the shared pretrained CLIP, millions); with
        RST also the sparse checkpoint `rst.safetensors` and the fraction of the encoder it
        changed (`density`: how sparse RST kept it, which decides how close it comes to CMKD)."""
        head = parameter_count(self.network.head)
        encoder = parameter_count(self.network.encoder)
        if self.tau is None:
            return {"dsp_millions": (encoder + head) / 1e6}
        tensors = rst_state(self.network, self._initial_weights())
        storage.save_tensors(folder / RST_FILE, tensors)
        changed = sum(v.numel() for k, v in tensors.items() if k.endswith(".index"))
        return {
            "dsp_millions": (changed + head) / 1e6,
            "rst": {
                "file": RST_FILE,
                "bytes": (folder / RST_FILE).stat().st_size,
                "changed_encoder_elements": changed,
                "encoder_elements": encoder,
                "density": changed / encoder,
            },
        }

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(h logits, g logits) from one encoder pass."""
        features = self.network.features(x)
        return self.network.head(features), self.zeroshot(features)


def load_adapted(pretrained: ClipClassifier, state: dict[str, Tensor]) -> ClipClassifier:
    """A CLIP run's model from its source model and its saved state (`saved_state`):
    the image tower and the task head replaced, everything else kept. Modifies and
    returns `pretrained`."""
    pretrained.head = TaskHead(pretrained.feature_dim, head_classes(split_head(state)[1]))
    missing, unexpected = pretrained.load_state_dict(state, strict=False)
    if unexpected or any(key.startswith((IMAGE_TOWER_PREFIX, HEAD_PREFIX)) for key in missing):
        raise WeightsError(
            "this state does not fit the CLIP model: "
            f"{(unexpected or [k for k in missing if k.startswith(IMAGE_TOWER_PREFIX)])[:5]}"
        )
    return pretrained


class ClipSourceOnly(ClipAdaptation):
    """The paper's baseline: encoder and task head trained on the labelled source alone."""

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        return self.supervised_step(*batches["source"])


class CMKD(ClipAdaptation):
    """CMKD (+ RST with `rst_tau`, + FixMatch with `fixmatch`). Settings (`CMKDSettings`)
    `l1`, `l2`, `l3` (loss weights), `ramp_steps` (T of r(t)), `fixmatch_threshold`,
    `fixmatch_weight`."""

    settings: CMKDSettings

    def __init__(self, context: MethodContext):
        super().__init__(context)
        if self.streams != ("source", "target"):
            raise ValueError(f"CMKD needs the streams ('source', 'target'), not {self.streams}")
        stats = ["ce_head", "ce_zeroshot", "gi_student", "gi_teacher", "ramp"]
        if self.settings.fixmatch:
            stats += ["fixmatch", "mask_rate"]
            # The trainer's strong view (tlrepro.training.augment.strong_view) of the target batch.
            self.strong_streams = ("target",)
        self.extra_stats = tuple(stats)

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        s = self.settings
        xs, ys = batches["source"]
        xt, _ = batches["target"]  # target labels are never read
        views = [xs, xt] + ([batches["target_strong"][0]] if s.fixmatch else [])
        head, zeroshot = self.encode(torch.cat(views))
        sizes = [len(v) for v in views]
        heads, zeroshots = head.split(sizes), zeroshot.split(sizes)
        r = ramp(step, s.ramp_steps)
        terms = cmkd_loss(
            heads[0],
            zeroshots[0],
            ys,
            heads[1],
            zeroshots[1],
            r,
            s.l1,
            s.l2,
            s.l3,
            self.criterion.label_smoothing,
        )
        loss = terms.pop("loss")
        if s.fixmatch:
            fm_head, mask = fixmatch_loss(heads[1], heads[2], s.fixmatch_threshold)
            fm_zeroshot, _ = fixmatch_loss(zeroshots[1], zeroshots[2], s.fixmatch_threshold)
            terms["fixmatch"] = fm_head + fm_zeroshot
            terms["mask_rate"] = mask.mean()
            loss = loss + s.fixmatch_weight * terms["fixmatch"]
        loss.backward()
        stats = {name: value.detach() for name, value in terms.items()}
        return {
            **stats,
            "ramp": torch.tensor(r, device=ys.device),
            **step_statistics(loss, heads[0], ys),
        }


# --------------------------------------------------------------------------- RST files


def rst_state(network: ClipClassifier, initial: list[Tensor]) -> dict[str, Tensor]:
    """The sparse residual by encoder parameter name (flat indices of the changed elements
    and their new values) plus the dense task head.

    The new values, not W - W0, are stored: W0 + (W - W0) is not always W in floating
    point, and a reloaded model must predict exactly as the trained one."""
    tensors: dict[str, Tensor] = {}
    for (name, p), w0 in zip(network.encoder.named_parameters(), initial, strict=True):
        flat = p.detach().reshape(-1)
        index = torch.nonzero(flat != w0.reshape(-1)).flatten()
        if len(index):
            tensors[f"residual.{name}.index"] = index.to(torch.int32).cpu()
            tensors[f"residual.{name}.value"] = flat[index].cpu()
    for name, value in network.head.state_dict().items():
        tensors[f"{HEAD_PREFIX}{name}"] = value.detach().cpu()
    return tensors


def load_rst(pretrained: ClipClassifier, path: Path) -> ClipClassifier:
    """Rebuild a CMKD+RST model: the pretrained CLIP (as loaded from its checkpoint) with the
    sparse residual written into its encoder and the stored task head. Modifies and returns
    `pretrained`."""
    tensors = storage.load_tensors(storage.verified(path))
    parameters = dict(pretrained.encoder.named_parameters())
    with torch.no_grad():
        for key, index in tensors.items():
            if key.startswith("residual.") and key.endswith(".index"):
                name = key[len("residual.") : -len(".index")]
                if name not in parameters:
                    raise WeightsError(
                        f"{path}: encoder has no parameter {name!r}; this RST file was "
                        "written for another CLIP model"
                    )
                parameter = parameters[name]
                flat = parameter.detach().reshape(-1).clone()
                flat[index.long()] = tensors[f"residual.{name}.value"].to(flat.dtype)
                parameter.copy_(flat.view(parameter.shape))
    _, head_state = split_head(tensors)
    pretrained.head = TaskHead(pretrained.feature_dim, head_classes(head_state))
    pretrained.head.load_state_dict(head_state)
    return pretrained
