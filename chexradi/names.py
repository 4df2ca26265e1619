"""The choices chexradi offers, in one torch-free place.

Every module that owns a choice takes its names from here (the radiomics engines, the
architectures and output strides of :mod:`chexradi.nn`, the heatmap methods of
:mod:`chexradi.cam`, the thresholds and components kept, the loop's guidance-mask arms, the
phantom's classes and versions, the report formats, report generation's settings), and so does the command line, which
builds its ``--help`` without importing torch or numba. Nothing is copied, so nothing can
drift: a new choice is added here and in the code that implements it.

This module imports nothing.
"""
from __future__ import annotations

__all__ = ["ENGINES", "RESNET_LAYERS", "DENSENET_CONFIGS", "ARCHITECTURES", "MODEL_NAMES", "OUTPUT_STRIDES",
           "CAM_METHODS", "SOURCE_HEATMAP_METHODS", "LOOP_HEATMAP_METHODS", "THRESHOLD_METHODS", "KEEP_MODES",
           "HEATMAP_REGIONS", "MASK_ARMS", "PHANTOM_CLASSES",
           "PHANTOM_VERSIONS", "REPORT_FORMATS", "ALIGNMENTS", "REPORTGEN_SELECT", "REPORTGEN_DEFAULTS",
           "NO_FINDING", "NORMAL", "DERIVED_COLUMNS", "IMAGE_TYPES"]

#: The derived label columns (the report labeler's defaults, and ChestX-ray14's "No Finding") — no label of the
#: set; no abnormality of any kind. They are the absence of findings, not classes.
NO_FINDING = "No Finding"
NORMAL = "Normal"
DERIVED_COLUMNS: tuple[str, ...] = (NO_FINDING, NORMAL)

#: PyRadiomics' image types (``imageType``) — the original image and its filtered versions.
IMAGE_TYPES: tuple[str, ...] = ("Original", "LoG", "Wavelet", "Square", "SquareRoot", "Logarithm", "Exponential",
                                "Gradient", "LBP2D", "LBP3D")
#: Radiomics engines — chexradi's Numba kernels, or the real PyRadiomics.
ENGINES: tuple[str, ...] = ("numba", "pyradiomics")

#: ResNets by name — torchvision block kind and blocks per stage.
RESNET_LAYERS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
#: DenseNets by name — growth rate, layers per dense block, initial features.
DENSENET_CONFIGS: dict[str, tuple[int, tuple[int, ...], int]] = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet169": (32, (6, 12, 32, 32), 64),
}
ARCHITECTURES: tuple[str, ...] = (*RESNET_LAYERS, *DENSENET_CONFIGS)
#: Every model name :func:`chexradi.nn.create_model` takes — each architecture plain and with ``_ta``.
MODEL_NAMES: tuple[str, ...] = tuple(sorted([*ARCHITECTURES, *(f"{a}_ta" for a in ARCHITECTURES)]))
#: Input side over the final feature map's side.
OUTPUT_STRIDES: tuple[int, ...] = (32, 16, 8)

#: Heatmap methods — Grad-CAM, CAM, Grad-CAM++.
CAM_METHODS: tuple[str, ...] = ("gradcam", "cam", "gradcampp")
#: Heatmaps a guidance source's module offers besides the CAM methods (TandemNet's image attention, the
#: ``tandem`` source); the loop's ``heatmap.method`` may name one when that source is configured.
SOURCE_HEATMAP_METHODS: dict[str, str] = {"tandem": "tandem"}
#: Every value of the loop's ``heatmap.method``.
LOOP_HEATMAP_METHODS: tuple[str, ...] = (*CAM_METHODS, *SOURCE_HEATMAP_METHODS)
#: Heatmap -> mask thresholds.
THRESHOLD_METHODS: tuple[str, ...] = ("fraction", "otsu", "percentile", "fixed")
#: Connected components kept in a mask.
KEEP_MODES: tuple[str, ...] = ("strongest", "largest", "all")
#: Where the loop measures radiomics — inside the thresholded mask or its bounding box.
HEATMAP_REGIONS: tuple[str, ...] = ("mask", "box")

#: Where a guided round's radiomics masks come from.
MASK_ARMS: tuple[str, ...] = ("cam", "truth", "random", "lungs")
#: Alignment losses between image and radiomics embeddings (``None`` — none).
ALIGNMENTS: tuple = ("ntxent", "mse", None)

#: The phantom's findings (ChestX-ray14 spelling) and its versions.
PHANTOM_CLASSES: tuple[str, ...] = ("Nodule", "Mass", "Effusion", "Cardiomegaly", "Pneumothorax", "Infiltration")
PHANTOM_VERSIONS: tuple[str, ...] = ("1", "2")

#: Report sources the labeler reads.
REPORT_FORMATS: tuple[str, ...] = ("iu-xml", "csv", "txt")

# -- report generation (chexradi.reportgen) --------------------------------------------------------
#: What the best epoch of a report generator is selected by (greedy decoding on val; ``"loss"`` — -val word loss).
REPORTGEN_SELECT: tuple[str, ...] = ("BLEU_4", "CIDEr", "ROUGE_L", "loss")
#: Every setting of a report-generation run and its default (chexradi.reportgen.run.DEFAULTS).
REPORTGEN_DEFAULTS: dict = {
    "encoder": "densenet121",     # a classifier name, or a classifier checkpoint (a loop round's best.pt)
    "weights": None,              # a local torchvision state_dict for a named encoder (ImageNet weights)
    "freeze_encoder": False,      # True: keep the encoder fixed (a trained classifier: a checkpoint or weights)
    "label_conditioning": False,
    "views": 2,
    "sections": "findings",
    "min_count": 3,
    "max_length": 60,
    "feature_dim": 512,
    "embed_dim": 256,
    "hidden": 512,
    "dropout": 0.5,
    "label_weight": 1.0,
    "epochs": 30,
    "batch_size": 16,
    "lr": 5e-4,
    "weight_decay": 1e-4,
    "patience": 5,
    "select": "BLEU_4",
    "seed": 0,
    "size": None,
}
