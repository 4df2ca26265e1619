"""Numba kernels for the texture matrices, one module per matrix (split along the matrix seams):

- :mod:`.angles` — neighbour offsets in PyRadiomics' order;
- :mod:`.glcm`, :mod:`.glrlm`, :mod:`.glszm`, :mod:`.gldm`, :mod:`.ngtdm` — the matrices;
- :mod:`.lines` — runs and neighbour pairs from one walk along lines (GLRLM's and GLCM's counts);
- :mod:`.shape2d` — marching squares for the 2-D shape features;
- :mod:`.recursive` — ITK's recursive Gaussian along one axis (the LoG image type);
- :mod:`.firstorder` — numpy's pairwise summation and the first-order passes, bit for bit numpy's.

All kernels are ``numba.njit(cache=True)``: compiled once, then loaded from the on-disk cache.
"""
