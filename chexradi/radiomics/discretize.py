"""Gray-level discretization (binning) and resegmentation, PyRadiomics conventions.

Fixed bin width (``binWidth``, default 25) anchors the bin edges at 0, not at the
ROI minimum::

    lowBound  = min - (min % binWidth)
    highBound = max + 2 * binWidth
    edges     = arange(lowBound, highBound, binWidth)      # [lowBound, lowBound + W, ...]
    X_b       = digitize(X, edges)                         # 1-based bin index

so that ``X_b = floor(X / W) - floor(min / W) + 1``. A flat region (one edge)
gets the two edges ``[e - 0.5, e + 0.5]``.

Fixed bin count (``binCount``) uses ``numpy.histogram`` edges over the ROI
with the last edge raised by 1 so that the maximum falls in the top bin.

Only voxels inside the mask are discretized; voxels outside keep 0.

PyRadiomics computes the edges from the ROI values in the image's own pixel type: for a
``float32`` image ``min % binWidth``, ``max + 2 * binWidth`` and the ``numpy.histogram`` edges
are float32 arithmetic, which moves the edges (and so the bins) away from a float64 computation.
:func:`bin_edges` does the same arithmetic on whatever dtype it is given; ``discretize(...,
value_dtype=...)`` casts the (float64) ROI values back to the image's original pixel type first
(lossless) so that the edges are PyRadiomics' edges.
"""
from __future__ import annotations

from typing import Optional

import numba
import numpy as np

__all__ = ["bin_edges", "discretize", "resegment_mask"]


def bin_edges(values: np.ndarray, *, bin_width: float = 25.0, bin_count: Optional[int] = None) -> np.ndarray:
    """Bin edges for the ROI values, exactly as PyRadiomics' ``getBinEdges``.

    Parameters
    ----------
    values : ndarray
        1-D array of the gray values inside the ROI.
    bin_width : float
        Width of a bin (ignored when ``bin_count`` is given). Must be > 0.
    bin_count : int, optional
        Fixed number of bins.

    Returns
    -------
    ndarray of float64 edges (length = number of bins + 1).

    The arithmetic is done in the dtype of ``values`` (NumPy 2 promotion), as PyRadiomics does on
    the image's pixel type: pass float32 values for a float32 image.
    """
    values = np.asarray(values)
    if values.size == 0:
        raise ValueError("bin_edges: the ROI has no voxels; check the mask and `label`.")
    if bin_count is not None:
        if int(bin_count) < 1:
            raise ValueError(f"binCount must be a positive integer, got {bin_count!r}.")
        edges = np.histogram(values, int(bin_count))[1]
        edges[-1] += 1  # in the dtype of the edges (float32 for float32 values), as PyRadiomics
        return edges.astype(np.float64)
    if not bin_width > 0:
        raise ValueError(f"binWidth must be > 0, got {bin_width!r}; use e.g. binWidth=25.")
    minimum = values.min()
    maximum = values.max()
    low = minimum - (minimum % bin_width)
    high = maximum + 2 * bin_width
    edges = np.arange(low, high, bin_width)
    if len(edges) == 1:  # flat region: one bin
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return np.asarray(edges, dtype=np.float64)


def discretize(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    bin_width: float = 25.0,
    bin_count: Optional[int] = None,
    value_dtype: Optional[np.dtype] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Discretize the voxels of ``image`` inside ``mask``.

    ``value_dtype``: the pixel type the image had before it was cast to float64 (e.g.
    ``float32``); the bin edges are then computed in that type, exactly as PyRadiomics computes
    them on the image it reads. None: the dtype of ``image``.

    Returns
    -------
    binned : ndarray of int32, same shape as ``image``; 1-based bin index inside
        the mask, 0 outside.
    edges : the bin edges used.
    """
    mask = np.asarray(mask, dtype=bool)
    values = image[mask]
    if value_dtype is not None and np.dtype(value_dtype) != values.dtype:
        values = values.astype(value_dtype)  # lossless: the values came from that type
    edges = bin_edges(values, bin_width=bin_width, bin_count=bin_count)
    binned = np.zeros(image.shape, dtype=np.int32)
    image_c = np.ascontiguousarray(image, dtype=np.float64)
    mask_c = np.ascontiguousarray(mask)
    _digitize_masked(image_c.ravel(), mask_c.ravel(), np.ascontiguousarray(edges, dtype=np.float64), binned.ravel())
    return binned, edges


@numba.njit(cache=True, nogil=True)
def _digitize_masked(image: np.ndarray, mask: np.ndarray, edges: np.ndarray,
                     out: np.ndarray) -> None:  # pragma: no cover - numba
    """``out[i] = numpy.digitize(image[i], edges)`` where ``mask[i]``: the number of edges <= value.

    The bin is first guessed from the mean edge spacing, then moved until
    ``edges[j-1] <= v < edges[j]`` holds: the very comparisons ``np.digitize``
    makes, so the result is identical for uniform (binWidth) and histogram
    (binCount) edges alike.
    """
    m = edges.size
    e0 = edges[0]
    inv = (m - 1) / (edges[m - 1] - e0) if m > 1 and edges[m - 1] > e0 else 0.0
    for i in range(image.size):
        if not mask[i]:
            continue
        v = image[i]
        g = (v - e0) * inv
        if g < 0.0:
            j = 0
        elif g > m:
            j = m
        else:
            j = int(g) + 1
        if j > m:
            j = m
        while j < m and edges[j] <= v:
            j += 1
        while j > 0 and edges[j - 1] > v:
            j -= 1
        out[i] = j


def resegment_mask(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    resegment_range: list[float] | tuple[float, ...],
    mode: str = "absolute",
) -> np.ndarray:
    """Restrict ``mask`` to voxels whose value lies in ``resegment_range``.

    ``mode`` follows PyRadiomics' ``resegmentMode``: ``"absolute"`` (the range is
    in gray values), ``"relative"`` (fractions of the ROI maximum) or ``"sigma"``
    (multiples of the ROI standard deviation around its mean). One value gives a
    lower bound only; two give lower and upper bounds (inclusive, sorted first).
    Raises ``ValueError`` when one voxel or none is left, as PyRadiomics does.
    """
    mask = np.asarray(mask, dtype=bool)
    rng = sorted(float(v) for v in resegment_range)
    if len(rng) not in (1, 2):
        raise ValueError(
            f"resegmentRange must have 1 or 2 values, got {resegment_range!r}; e.g. resegmentRange=[-1000, 400]."
        )
    values = image[mask]
    if mode == "absolute":
        bounds = rng
    elif mode == "relative":
        mx = values.max()
        bounds = [v * mx for v in rng]
    elif mode == "sigma":
        mu = values.mean()
        sd = values.std()
        bounds = [mu + v * sd for v in rng]
    else:
        raise ValueError(f"resegmentMode must be 'absolute', 'relative' or 'sigma', got {mode!r}.")
    new = mask & (image >= bounds[0])
    if len(bounds) == 2:
        new &= image <= bounds[1]
    kept = int(new.sum())
    if kept <= 1:
        raise ValueError(
            f"resegmentRange {list(resegment_range)} ({mode}) kept {kept} voxel(s) of the ROI; "
            "widen the range or drop resegmentRange."
        )
    return new
