"""Offline, seed-deterministic character datasets (digits 0-9, letters A-J).

Each glyph is rasterised once per font with FreeType (through matplotlib's
`ft2font`, so no system fonts are involved and the set of fonts is the one
matplotlib ships); all the per-image variety (geometry, colours, background,
noise) is then drawn from one `torch.Generator` and applied to whole batches,
which keeps 100k images to seconds and makes the output a function of the
options alone. Bit-identical output is only promised within one environment:
another FreeType or torch version may move some pixels.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlrepro.data.prepare import RawSplits
from tlrepro.data.registry import DIGITS, LETTERS_A_TO_J
from tlrepro.errors import SetupError

if TYPE_CHECKING:
    from torch import Tensor

GLYPH_SIZE = 64
"""Side of the square mask each glyph is stored in; the glyph's height fills GLYPH_HEIGHT of it."""
GLYPH_HEIGHT = 44
RENDER_PT = 96
"""Rasterise large and shrink, so the stored masks are well anti-aliased."""
CHUNK_PIXELS = 1 << 22
"""Pixels (per channel, supersampled) rendered at a time: bounds memory for any n_images."""
MIN_CONTRAST = 0.35
"""Least luminance difference between glyph and base background colour."""
MAX_ROTATION_DEG = 20.0

# Adobe glyph names: a font whose glyph for "0" is called "prime" (cmsy10) or
# whose every character is one placeholder (LastResort) has the code point in
# its cmap but no real character behind it.
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _expected_glyph_name(char: str) -> str:
    return _DIGIT_NAMES[int(char)] if char.isdigit() else char


def _has_real_glyphs(font: Any, chars: tuple[str, ...]) -> bool:
    """True when `font` draws every character of `chars` as itself."""
    from matplotlib import ft2font

    indices = [font.get_char_index(ord(c)) for c in chars]
    if 0 in indices or len(set(indices)) != len(indices):
        return False
    if not font.face_flags & ft2font.FaceFlags.GLYPH_NAMES:
        return True
    for char, index in zip(chars, indices, strict=True):
        name, expected = font.get_glyph_name(index), _expected_glyph_name(char)
        if name not in (
            expected,
            f"{expected}oldstyle",
            f"uni{ord(char):04X}",
        ) and not name.startswith(f"{expected}."):
            return False
    return True


def font_files() -> list[Path]:
    """Every TrueType font matplotlib ships, sorted by file name."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(folder.glob("*.ttf"), key=lambda p: p.name)


def _rasterise(font: Any, char: str) -> Tensor:
    """The glyph's ink, cropped, scaled to GLYPH_HEIGHT (or to fit) and centred, in [0, 1]."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    font.set_size(RENDER_PT, 72)
    font.set_text(char)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = torch.from_numpy(np.array(font.get_image(), dtype=np.float32) / 255.0)
    rows = torch.nonzero(ink.sum(1)).flatten()
    cols = torch.nonzero(ink.sum(0)).flatten()
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = ink.shape
    scale = min(GLYPH_HEIGHT / height, (GLYPH_SIZE - 4) / width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    ink = F.interpolate(
        ink[None, None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
    )[0, 0]
    mask = torch.zeros(GLYPH_SIZE, GLYPH_SIZE)
    top, left = (GLYPH_SIZE - new_h) // 2, (GLYPH_SIZE - new_w) // 2
    mask[top : top + new_h, left : left + new_w] = ink.clamp_(0, 1)
    return mask


@functools.lru_cache(maxsize=4)
def glyph_bank(chars: tuple[str, ...]) -> tuple[Tensor, tuple[str, ...]]:
    """Masks (n_fonts * n_chars, 1, GLYPH_SIZE, GLYPH_SIZE), font-major, and the fonts used."""
    import torch
    from matplotlib import ft2font

    masks, used = [], []
    for path in font_files():
        font = ft2font.FT2Font(os.fspath(path))
        if not _has_real_glyphs(font, chars):
            continue
        glyphs = [_rasterise(font, char) for char in chars]
        if any(float(g.sum()) == 0.0 for g in glyphs):
            continue
        masks.extend(glyphs)
        used.append(path.name)
    if not used:
        raise SetupError(f"no matplotlib font draws all of {''.join(chars)!r}")
    return torch.stack(masks).unsqueeze(1), tuple(used)


def _uniform(generator: Any, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    import torch

    return torch.rand(shape, generator=generator).mul_(high - low).add_(low)


def _luminance(rgb: Tensor) -> Tensor:
    return rgb @ rgb.new_tensor([0.299, 0.587, 0.114])


def _colours(generator: Any, batch: int) -> tuple[Tensor, Tensor]:
    """(foreground, background) RGB in [0, 1] whose luminances differ by >= MIN_CONTRAST.

    Too-close pairs move the foreground toward black or white (whichever side of
    the background has room) instead of being redrawn, so every image consumes
    the same random numbers and the output stays a pure function of the seed.
    """
    import torch

    fg = torch.rand((batch, 3), generator=generator)
    bg = torch.rand((batch, 3), generator=generator)
    l_fg, l_bg = _luminance(fg), _luminance(bg)
    close = (l_fg - l_bg).abs() < MIN_CONTRAST
    darker = fg * ((l_bg - MIN_CONTRAST) / l_fg.clamp_min(1e-6)).clamp(0, 1)[:, None]
    lighter = (
        1 - (1 - fg) * ((1 - l_bg - MIN_CONTRAST) / (1 - l_fg).clamp_min(1e-6)).clamp(0, 1)[:, None]
    )
    moved = torch.where((l_bg > 0.5)[:, None], darker, lighter)
    return torch.where(close[:, None], moved, fg), bg


def _background(generator: Any, bg: Tensor, size: int) -> Tensor:
    """Per image: solid, linear gradient, or low-frequency noise texture around `bg`.

    Both variations are drawn on a 5x5 grid and upsampled once, which costs a
    fraction of building them at full size (bicubic keeps a linear ramp linear
    to within 1% of its range).
    """
    import torch
    import torch.nn.functional as F

    batch = bg.shape[0]
    kind = torch.randint(0, 3, (batch,), generator=generator)[:, None, None, None]
    amplitude = _uniform(generator, (batch, 3, 1, 1), -0.2, 0.2)
    angle = _uniform(generator, (batch, 1, 1, 1), 0.0, 2 * math.pi)
    coarse = torch.linspace(-1.0, 1.0, 5)
    ramp = angle.cos() * coarse[None, None, None, :] + angle.sin() * coarse[None, None, :, None]
    noise = _uniform(generator, (batch, 3, 5, 5), -1.0, 1.0)
    variation = torch.where(kind == 1, ramp * amplitude, noise * amplitude.abs()) * (kind != 0)
    variation = F.interpolate(variation, size=(size, size), mode="bicubic", align_corners=True)
    return bg[:, :, None, None] + variation


def _affine(generator: Any, batch: int) -> Tensor:
    """(B, 2, 3) matrices, output to glyph coordinates: scale, aspect, rotation, shift."""
    import torch

    scale = _uniform(generator, (batch,), 0.75, 1.15)
    aspect = _uniform(generator, (batch,), 0.85, 1.15)
    angle = _uniform(generator, (batch,), -MAX_ROTATION_DEG, MAX_ROTATION_DEG).deg2rad_()
    shift = _uniform(generator, (batch, 2), -0.15, 0.15)
    cos, sin = angle.cos(), angle.sin()
    # inverse of (shift + rotate(angle) @ diag(scale * aspect, scale / aspect))
    inverse = torch.stack(
        [
            torch.stack([cos / (scale * aspect), sin / (scale * aspect)], dim=1),
            torch.stack([-sin * aspect / scale, cos * aspect / scale], dim=1),
        ],
        dim=1,
    )
    offset = -(inverse @ shift[:, :, None])
    return torch.cat([inverse, offset], dim=2)


def _sampling_grid(theta: Tensor, size: int) -> Tensor:
    """What `F.affine_grid(theta, (B, 1, size, size), align_corners=False)` computes.

    Two broadcast multiply-adds instead of its batched matmul over a
    homogeneous base grid: a third of the rendering time saved.
    """
    import torch

    centres = (torch.arange(size) * 2 + 1) / size - 1
    grid = torch.addcmul(
        theta[:, None, None, :, 2], theta[:, None, None, :, 0], centres[None, None, :, None]
    )
    return torch.addcmul(grid, theta[:, None, None, :, 1], centres[None, :, None, None])


def render(
    chars: tuple[str, ...], n_images: int, image_size: int, seed: int
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """uint8 images (N, 3, S, S), balanced int64 labels, and the font files used."""
    import torch
    import torch.nn.functional as F

    bank, fonts = glyph_bank(chars)
    n_classes = len(chars)
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n_images) % n_classes)[torch.randperm(n_images, generator=generator)]
    font_index = torch.randint(0, len(fonts), (n_images,), generator=generator)
    supersample = max(1, GLYPH_SIZE // image_size)
    fine = image_size * supersample
    chunk = max(1, CHUNK_PIXELS // (fine * fine))
    images = torch.empty((n_images, 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, n_images, chunk):
        stop = min(start + chunk, n_images)
        batch = stop - start
        glyphs = bank[font_index[start:stop] * n_classes + labels[start:stop]]
        grid = _sampling_grid(_affine(generator, batch), fine)
        mask = F.grid_sample(
            glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        if supersample > 1:
            mask = F.avg_pool2d(mask, supersample)
        fg, bg = _colours(generator, batch)
        canvas = torch.lerp(
            _background(generator, bg, image_size),
            fg[:, :, None, None].expand(-1, -1, image_size, image_size),
            mask,
        )
        sigma = _uniform(generator, (batch, 1, 1, 1), 0.0, 0.06)
        canvas += sigma * torch.randn(canvas.shape, generator=generator)
        images[start:stop] = canvas.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return images, labels, fonts


def _build(chars: tuple[str, ...], options: dict[str, Any], image_size: int) -> RawSplits:
    import matplotlib
    import torch
    from matplotlib import ft2font

    n_images = int(options.get("n_images", 10000))
    seed = int(options.get("seed", 0))
    images, labels, fonts = render(chars, n_images, image_size, seed)
    notes = {
        "fonts": list(fonts),
        "n_images": n_images,
        "seed": seed,
        "matplotlib": matplotlib.__version__,
        "freetype": ft2font.__freetype_version__,
        "torch": torch.__version__,
    }
    return RawSplits(chars, {"train": (images, labels)}, notes=notes)


def build_digits_syn(options: dict[str, Any], image_size: int, raw_root: Path) -> RawSplits:
    return _build(DIGITS, options, image_size)


def build_letters_syn(options: dict[str, Any], image_size: int, raw_root: Path) -> RawSplits:
    return _build(LETTERS_A_TO_J, options, image_size)
