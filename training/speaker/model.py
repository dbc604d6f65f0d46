"""Speaker encoder F (paper sec. 2.2): two 32-unit GRU layers over log-magnitude STFT frames.

The embedding is the last hidden state of the second GRU layer (D = 32).  The network starts with
mean normalisation over the segment (``cmn``: per-bin mean, removing gain and stationary channel
colouring; else only the overall level) and
per-bin standardisation with statistics of the training data, both stored as buffers so that the
exported ONNX graph contains them.
"""
from __future__ import annotations

import torch
from torch import nn

from pnsc.sender.speaker_frontend import N_BINS

EMBED_DIM = 32


class SpeakerEncoder(nn.Module):
    def __init__(self, n_bins: int = N_BINS, hidden: int = EMBED_DIM, layers: int = 2, cmn: bool = False):
        super().__init__()
        self.n_bins, self.hidden, self.layers, self.cmn = n_bins, hidden, layers, cmn
        self.register_buffer("bin_mean", torch.zeros(n_bins))
        self.register_buffer("bin_std", torch.ones(n_bins))
        self.gru = nn.GRU(n_bins, hidden, num_layers=layers, batch_first=True)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.bin_mean.copy_(mean)
        self.bin_std.copy_(std.clamp_min(1e-3))

    def forward(self, logspec: torch.Tensor) -> torch.Tensor:
        """(B, T, n_bins) log magnitudes -> (B, D) embeddings (last GRU hidden state)."""
        if self.cmn:  # per-bin mean over the segment: removes gain and a stationary channel
            x = logspec - logspec.mean(dim=1, keepdim=True)
        else:  # level only: removes gain, keeps the long-term spectral shape
            x = logspec - logspec.mean(dim=(1, 2), keepdim=True)
        x = (x - self.bin_mean) / self.bin_std
        _, h = self.gru(x)
        return h[-1]


def pair_logits(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Siamese pair logit: the dot product z_a^T z_b."""
    return (z_a * z_b).sum(dim=-1)


def siamese_bce(z_a: torch.Tensor, z_b: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Eq. (1): -log sigma(z_i^T z_j) for same-speaker pairs, -log(1 - sigma(.)) otherwise (mean)."""
    return nn.functional.binary_cross_entropy_with_logits(pair_logits(z_a, z_b), same.float())
