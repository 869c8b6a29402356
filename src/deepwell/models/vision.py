"""Image encoder: batched augmentation (train mode only) → normalisation → compact residual CNN.

Augmentation is one affine warp per batch (random resized crop, flip, rotation) plus brightness and
contrast jitter, all tensor ops on the training device: no per-image Python, seeded by torch's RNG.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ImageAugment(nn.Module):
    def __init__(self, crop_scale: float, flip: bool, rotation: float, colour_jitter: float) -> None:
        super().__init__()
        self.crop_scale, self.flip, self.rotation, self.jitter = crop_scale, flip, rotation, colour_jitter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        batch, device = x.shape[0], x.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(batch, device=device) * (high - low) + low

        scale = uniform(self.crop_scale, 1.0).sqrt()  # side length of the crop, as a share of the image
        angle = uniform(-self.rotation, self.rotation) * math.pi / 180
        mirror = torch.where(torch.rand(batch, device=device) < 0.5, -1.0, 1.0) if self.flip else \
            torch.ones(batch, device=device)
        shift_x, shift_y = (uniform(-1, 1) * (1 - scale)), (uniform(-1, 1) * (1 - scale))
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos * mirror, -sin, shift_x], dim=1),
                             torch.stack([sin * mirror, cos, shift_y], dim=1)], dim=1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if self.jitter > 0:
            brightness = uniform(1 - self.jitter, 1 + self.jitter).view(-1, 1, 1, 1)
            contrast = uniform(1 - self.jitter, 1 + self.jitter).view(-1, 1, 1, 1)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * contrast + mean * brightness).clamp(0, 1)
        return x


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False), nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False), nn.BatchNorm2d(channels_out))
        self.shortcut = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResidualCNN(nn.Module):
    """Stem → three residual stages (width, 2×, 4× channels; stride 2 between) → global average pool.

    Inputs of 64 pixels or more on their short side are halved by the stem: 4× less compute, little loss.
    Shared by images and spectrograms.
    """

    def __init__(self, channels: int, width: int, depth: int, short_side: int) -> None:
        super().__init__()
        stem_stride = 2 if short_side >= 64 else 1
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, stem_stride, 1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        widths = [width, 2 * width, 4 * width]
        previous = width
        for stage, stage_width in enumerate(widths):
            for block in range(depth):
                layers.append(BasicBlock(previous, stage_width, 2 if stage > 0 and block == 0 else 1))
                previous = stage_width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.layers = nn.Sequential(*layers)
        self.output_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last feeds tensor cores on CUDA. Not on CPU: there it gains little, and PyTorch 2.13's CPU
        # convolution backward corrupts memory in channels-last for some shapes (8 channels, batch of 9).
        if x.is_cuda:
            if self.layers[0].weight.is_contiguous():
                self.layers.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        return self.layers(x)


class ImageEncoder(nn.Module):
    """uint8 [batch, channels, size, size] → features [batch, 4 × width]."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        augment = spec["augment"]
        self.augment = ImageAugment(augment["crop_scale"], augment["flip"], augment["rotation"],
                                    augment["colour_jitter"]) if augment["enabled"] else nn.Identity()
        self.register_buffer("mean", torch.tensor(spec["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.cnn = ResidualCNN(int(spec["channels"]), int(spec["width"]), int(spec["depth"]), int(spec["size"]))
        self.output_dim = self.cnn.output_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.augment(images.float().div_(255.0))
        return self.cnn((x - self.mean) / self.std)
