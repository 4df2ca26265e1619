"""Names of the heatmap methods, torch-free: what the command line, the loop's settings and
:func:`chexradi.train.predict` accept, without importing torch to say so.

:data:`chexradi.cam.methods.METHODS` maps the same names to their classes (a test checks
the two agree).
"""
from __future__ import annotations

__all__ = ["CAM_METHODS"]

#: Heatmap methods by name: Grad-CAM, CAM, Grad-CAM++.
CAM_METHODS: tuple[str, ...] = ("gradcam", "cam", "gradcampp")
