"""Losses that tie an image embedding to a guidance embedding: NT-Xent and a masked MSE."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["nt_xent", "masked_mse"]


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.1, valid: Optional[Tensor] = None) -> Tensor:
    """NT-Xent (SimCLR) loss over ``B`` pairs ``(z1_i, z2_i)``.

    With ``u`` the ``2B`` rows of ``[z1; z2]`` scaled to unit length,
    ``s_ab = u_a . u_b / temperature`` and ``p(a)`` the partner of ``a`` (``i`` and
    ``B + i``)::

        loss = 1/(2B) * sum_a -log( exp(s_{a,p(a)}) / sum_{b != a} exp(s_ab) )

    The positives of an anchor are its own pair; every other row of both views
    is a negative. The loss is symmetric in ``z1``, ``z2``. Rows where ``valid``
    is False are removed before anything is computed (neither anchors nor
    negatives); with no valid row the loss is 0 (with a zero gradient), and with
    one valid pair it is 0 (no negatives). Computed in float32.

    Parameters
    ----------
    z1, z2:
        ``(B, P)`` embeddings of the two views (image, guidance).
    temperature:
        Positive divisor of the cosine similarities.
    valid:
        Optional ``(B,)`` bools.

    Raises
    ------
    ValueError
        Shapes that differ or are not 2-D, a temperature <= 0, a bad ``valid``.
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (B, P), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if valid is not None:
        valid = valid.to(device=z1.device).reshape(-1).bool()
        if valid.shape[0] != z1.shape[0]:
            raise ValueError(f"valid has {valid.shape[0]} values for {z1.shape[0]} pairs")
        if not bool(valid.all()):
            if not bool(valid.any()):
                return (z1.float().sum() + z2.float().sum()) * 0.0
            z1, z2 = z1[valid], z2[valid]
    b = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    s = (u @ u.t()) / float(temperature)
    s = s.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=s.device), float("-inf"))
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(s.device)
    return F.cross_entropy(s, partner)


def masked_mse(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean squared error over the valid rows (all columns); 0 with none."""
    per = ((pred.float() - target.float()) ** 2).mean(dim=1)
    w = valid.float()
    return (per * w).sum() / w.sum().clamp(min=1)
