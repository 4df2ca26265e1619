"""VKD's probabilistic parts (van Sonsbeek et al., IPMI 2021): Gaussian KL, sampling, cyclical annealing.

The teacher's posterior ``q(z | x, t)`` (image and report) and the student's prior ``p(z | x)``
(image alone) are diagonal Gaussians given by a mean and a **log-variance**. Two things here
differ on purpose from the authors' public code, which (a) passes the log-variance where the
standard deviation belongs when sampling and (b) computes the KL in the reverse direction:

- :func:`reparameterize` draws ``z = mu + exp(logvar / 2) * eps`` (the standard deviation is
  ``exp(logvar / 2)``);
- :func:`gaussian_kl` is ``KL(q || p)``, the term of the evidence lower bound
  ``E_q[log p(y | z)] - KL(q(z | x, t) || p(z | x))``: it pulls the image-only prior towards the
  report-informed posterior.

The KL weight follows VKD: ``1e-3`` times a cyclical linear annealing schedule
(:func:`cyclical_annealing`, Fu et al., NAACL 2019) with 4 cycles.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["gaussian_kl", "reparameterize", "cyclical_annealing"]


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """``KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)))`` of diagonal Gaussians, summed over the last dim.

    ``0.5 * sum(logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1)``;
    shape: the inputs' without their last dimension.
    """
    if not (mu_q.shape == logvar_q.shape == mu_p.shape == logvar_p.shape):
        raise ValueError(f"gaussian_kl: means and log-variances must have one shape, got {tuple(mu_q.shape)}, "
                         f"{tuple(logvar_q.shape)}, {tuple(mu_p.shape)}, {tuple(logvar_p.shape)}")
    # exp(lv_q - lv_p) + d^2 exp(-lv_p): the same value, without exp(lv_q) / exp(lv_p) overflowing first
    return 0.5 * (logvar_p - logvar_q + (logvar_q - logvar_p).exp() + (mu_q - mu_p) ** 2 * (-logvar_p).exp()
                  - 1.0).sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, *, generator: "torch.Generator | None" = None) -> Tensor:
    """A draw ``mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``, differentiable in ``mu`` and ``logvar``."""
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def cyclical_annealing(step: int, total_steps: int, *, cycles: int = 4, ratio: float = 0.5) -> float:
    """The KL weight's schedule at optimizer step ``step`` (0-based) of ``total_steps``: in ``[0, 1]``.

    The steps are cut into ``cycles`` equal periods of ``total_steps / cycles``; within a period at
    position ``tau`` in ``[0, 1)`` the weight rises linearly, ``tau / ratio``, and stays at 1 once
    ``tau >= ratio`` (Fu et al., 2019). Steps past ``total_steps`` stay at 1.
    """
    for name, v in (("total_steps", total_steps), ("cycles", cycles)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"cyclical_annealing: {name} must be a positive integer, got {v!r}")
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"cyclical_annealing: ratio must be in (0, 1], got {ratio!r}")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"cyclical_annealing: step must be an integer >= 0, got {step!r}")
    if cycles > total_steps:
        raise ValueError(f"cyclical_annealing: {cycles} cycles do not fit in {total_steps} steps; use at most "
                         f"one cycle per step")
    if step >= total_steps:
        return 1.0
    period = total_steps / cycles
    tau = math.fmod(step, period) / period
    return min(1.0, tau / float(ratio))
