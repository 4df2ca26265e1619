"""chexradi: the ChexRadiNet loop on chest X-rays and a fast radiomics engine."""
__version__ = "0.1.0"
