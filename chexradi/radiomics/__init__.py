"""chexradi's radiomics engine: PyRadiomics' numbers from Numba kernels."""
