"""Data: radiograph readers, generated lung-field masks, datasets and the synthetic phantom.

Submodules are imported explicitly (``from chexradi.data.lungs import lung_field_mask``)
so that importing :mod:`chexradi.data` stays cheap.
"""
