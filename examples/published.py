"""Published ChestX-ray14 figures, as data, for the reproduction examples to print beside a run.

Nothing here is computed: these are numbers copied from papers, with where they come from
and how they were checked. ``reproduce_auc_table.py`` and
``reproduce_localization_table.py`` import this module; it has no dependencies.

Sources
-------
Wang et al. 2017
    X. Wang, Y. Peng, L. Lu, Z. Lu, M. Bagheri, R. M. Summers, "ChestX-ray8: Hospital-scale
    Chest X-ray Database and Benchmarks on Weakly-Supervised Classification and
    Localization of Common Thorax Diseases", CVPR 2017; extended version arXiv:1705.02315.
Yao et al. 2017
    L. Yao, E. Poblenz, D. Dagunts, B. Covington, D. Bernard, K. Lyman, "Learning to
    diagnose from scratch by exploiting dependencies among labels", arXiv:1710.10501.
CheXNet
    P. Rajpurkar, J. Irvin, K. Zhu, et al., "CheXNet: Radiologist-Level Pneumonia Detection
    on Chest X-Rays with Deep Learning", arXiv:1711.05225, Table 2.
ChexRadiNet
    Y. Han, C. Chen, L. Tang, M. Lin, A. Jaiswal, S. Wang, A. Tewfik, G. Shih, Y. Ding,
    Y. Peng, "Using Radiomics as Prior Knowledge for Thorax Disease Classification and
    Localization in Chest X-rays", AMIA Annu. Symp. Proc. 2021 (PMID 35308939);
    arXiv:2011.12506.

How the numbers were checked (search of stored public text, not the PDFs themselves)
-----------------------------------------------------------------------------------
- Per-class AUC, the three columns Wang / Yao / CheXNet: all 42 values agree with the
  comparison table of the README of github.com/arnoweng/CheXNet (commit 3d45ee77), which
  reproduces CheXNet's Table 2 with the columns "Wang et al.", "Yao et al.", "CheXNet";
  a second, independent copy (a course notebook listing ``wang_auc``, ``yao_auc``,
  ``chexnet_auc`` arrays) gives the same 42 values. These are secondary sources: the
  CheXNet paper's own Table 2 was not readable through the search (the stored
  arxiv-vanity page of 1711.05225 only returned its opening), so the CheXNet and Yao
  columns are verified against two copies of Table 2, not against the papers.
- Caution on Wang et al.'s AUCs: the Wang column is the one CheXNet quotes (an early
  arXiv version of ChestX-ray8). The text of the later arXiv:1705.02315 version found
  in the search (appendix B, Table 17, ResNet-50 on ChestX-ray14, "published data
  split") gives other values (Atelectasis 0.7003, Cardiomegaly 0.8100, Effusion 0.7585,
  ...); they are in :data:`WANG2017_AUC_CXR14_TABLE17` for reference.
- ChexRadiNet: mean AUC 0.843 (NIH ChestX-ray14) and localisation accuracy 0.679 at
  T(IoU) = 0.1 are stated in the abstract; checked against the arXiv abstract page of
  2011.12506 (v3), the Weill Cornell VIVO record (PMID 35308939) and the University of
  Minnesota experts record. Per-class values of the paper were not found, so only these
  two numbers are included.
- Wang et al.'s localisation accuracy: checked against text extractions of the paper
  found in the code search. T(IoBB) in {0.1, 0.25, 0.5, 0.75, 0.9} for the ChestX-ray8
  model is Table 4 of the CVPR paper (the brief that asked for this file called it
  "Table 3"; in the paper Table 3 is the AUC table); T(IoU) in {0.1, ..., 0.7} is
  Table 7 of the arXiv version's supplementary material (same model, 8 boxed classes);
  Table 19 of the arXiv version gives T(IoBB) for the model trained on ChestX-ray14 and
  is included as :data:`WANG2017_LOC_IOBB_CXR14`.
"""
from __future__ import annotations

from typing import Optional

__all__ = ["CHESTXRAY14_CLASSES", "BOXED_CLASSES", "WANG2017_AUC", "YAO2017_AUC", "CHEXNET_AUC", "AUC_COLUMNS",
           "WANG2017_AUC_CXR14_TABLE17", "CHEXRADINET_MEAN_AUC", "CHEXRADINET_LOC_IOU_0_1", "WANG2017_LOC_IOU",
           "WANG2017_LOC_IOBB", "WANG2017_LOC_IOBB_CXR14", "canonical", "published_auc", "mean_of"]

#: The 14 ChestX-ray14 labels, in the order of the dataset (and of CheXNet's Table 2).
CHESTXRAY14_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
#: The eight classes with ground-truth boxes (``BBox_List_2017.csv``).
BOXED_CLASSES: tuple[str, ...] = CHESTXRAY14_CLASSES[:8]

# -- per-class AUC --------------------------------------------------------------------------------
# Wang et al. (2017) as quoted in CheXNet, arXiv:1711.05225, Table 2, column "Wang et al. (2017)".
# Verified: arnoweng/CheXNet README @ 3d45ee77 (copy of that table) and a second copy (see docstring).
WANG2017_AUC: dict[str, float] = {
    "Atelectasis": 0.716, "Cardiomegaly": 0.807, "Effusion": 0.784, "Infiltration": 0.609, "Mass": 0.706,
    "Nodule": 0.671, "Pneumonia": 0.633, "Pneumothorax": 0.806, "Consolidation": 0.708, "Edema": 0.835,
    "Emphysema": 0.815, "Fibrosis": 0.769, "Pleural_Thickening": 0.708, "Hernia": 0.767,
}
# Yao et al. (2017), arXiv:1710.10501, as quoted in CheXNet's Table 2. Verified as above.
YAO2017_AUC: dict[str, float] = {
    "Atelectasis": 0.772, "Cardiomegaly": 0.904, "Effusion": 0.859, "Infiltration": 0.695, "Mass": 0.792,
    "Nodule": 0.717, "Pneumonia": 0.713, "Pneumothorax": 0.841, "Consolidation": 0.788, "Edema": 0.882,
    "Emphysema": 0.829, "Fibrosis": 0.767, "Pleural_Thickening": 0.765, "Hernia": 0.914,
}
# CheXNet, arXiv:1711.05225, Table 2, column "CheXNet (ours)". Verified as above.
CHEXNET_AUC: dict[str, float] = {
    "Atelectasis": 0.8094, "Cardiomegaly": 0.9248, "Effusion": 0.8638, "Infiltration": 0.7345, "Mass": 0.8676,
    "Nodule": 0.7802, "Pneumonia": 0.7680, "Pneumothorax": 0.8887, "Consolidation": 0.7901, "Edema": 0.8878,
    "Emphysema": 0.9371, "Fibrosis": 0.8047, "Pleural_Thickening": 0.8062, "Hernia": 0.9164,
}
# Wang et al., arXiv:1705.02315 (later version), appendix B, Table 17, column "ChestX-ray14" (ResNet-50,
# published split). Verified against a text extraction of that version; differs from the column above.
WANG2017_AUC_CXR14_TABLE17: dict[str, float] = {
    "Atelectasis": 0.7003, "Cardiomegaly": 0.8100, "Effusion": 0.7585, "Infiltration": 0.6614, "Mass": 0.6933,
    "Nodule": 0.6687, "Pneumonia": 0.6580, "Pneumothorax": 0.7993, "Consolidation": 0.7032, "Edema": 0.8052,
    "Emphysema": 0.8330, "Fibrosis": 0.7859, "Pleural_Thickening": 0.6835, "Hernia": 0.8717,
}

#: (column label, per-class AUC) of the published per-class columns, in the order printed.
AUC_COLUMNS: tuple[tuple[str, dict[str, float]], ...] = (
    ("Wang 2017", WANG2017_AUC), ("Yao 2017", YAO2017_AUC), ("CheXNet", CHEXNET_AUC),
)

# -- ChexRadiNet (Han et al., AMIA 2021; arXiv:2011.12506), abstract -----------------------------
#: Mean AUC over the 14 classes on NIH ChestX-ray14. Verified: arXiv abstract, PMID 35308939 record.
CHEXRADINET_MEAN_AUC: float = 0.843
#: Localisation accuracy at T(IoU) = 0.1 (mean over the boxed classes). Verified as above.
CHEXRADINET_LOC_IOU_0_1: float = 0.679

# -- Wang et al. 2017 localisation accuracy (ChestX-ray8 model, 8 boxed classes) ------------------
# T(IoU): arXiv:1705.02315 supplementary, Table 7 (accuracy rows; the AFP rows are left out).
WANG2017_LOC_IOU: dict[str, dict[str, float]] = {
    "Atelectasis": {"0.1": 0.6888, "0.2": 0.4722, "0.3": 0.2444, "0.4": 0.0944, "0.5": 0.0500, "0.6": 0.0222,
                    "0.7": 0.0055},
    "Cardiomegaly": {"0.1": 0.9383, "0.2": 0.6849, "0.3": 0.4589, "0.4": 0.2808, "0.5": 0.1780, "0.6": 0.0753,
                     "0.7": 0.0273},
    "Effusion": {"0.1": 0.6601, "0.2": 0.4509, "0.3": 0.3006, "0.4": 0.2026, "0.5": 0.1111, "0.6": 0.0457,
                 "0.7": 0.0196},
    "Infiltration": {"0.1": 0.7073, "0.2": 0.4796, "0.3": 0.2764, "0.4": 0.1219, "0.5": 0.0650, "0.6": 0.0243,
                     "0.7": 0.0000},
    "Mass": {"0.1": 0.4000, "0.2": 0.2588, "0.3": 0.1529, "0.4": 0.0705, "0.5": 0.0117, "0.6": 0.0000,
             "0.7": 0.0000},
    "Nodule": {"0.1": 0.1392, "0.2": 0.0506, "0.3": 0.0379, "0.4": 0.0126, "0.5": 0.0126, "0.6": 0.0126,
               "0.7": 0.0000},
    "Pneumonia": {"0.1": 0.6333, "0.2": 0.3500, "0.3": 0.1666, "0.4": 0.0750, "0.5": 0.0333, "0.6": 0.0166,
                  "0.7": 0.0083},
    "Pneumothorax": {"0.1": 0.3775, "0.2": 0.2346, "0.3": 0.1326, "0.4": 0.0714, "0.5": 0.0306, "0.6": 0.0306,
                     "0.7": 0.0204},
}
# T(IoBB): CVPR 2017 paper, Table 4 (accuracy rows).
WANG2017_LOC_IOBB: dict[str, dict[str, float]] = {
    "Atelectasis": {"0.1": 0.7277, "0.25": 0.5500, "0.5": 0.2833, "0.75": 0.1666, "0.9": 0.1333},
    "Cardiomegaly": {"0.1": 0.9931, "0.25": 0.9794, "0.5": 0.8767, "0.75": 0.7260, "0.9": 0.6849},
    "Effusion": {"0.1": 0.7124, "0.25": 0.5424, "0.5": 0.3333, "0.75": 0.2418, "0.9": 0.2091},
    "Infiltration": {"0.1": 0.7886, "0.25": 0.5772, "0.5": 0.4227, "0.75": 0.3252, "0.9": 0.2520},
    "Mass": {"0.1": 0.4352, "0.25": 0.2823, "0.5": 0.1411, "0.75": 0.1176, "0.9": 0.0588},
    "Nodule": {"0.1": 0.1645, "0.25": 0.0506, "0.5": 0.0126, "0.75": 0.0126, "0.9": 0.0126},
    "Pneumonia": {"0.1": 0.7500, "0.25": 0.5583, "0.5": 0.3833, "0.75": 0.2583, "0.9": 0.2416},
    "Pneumothorax": {"0.1": 0.4591, "0.25": 0.3469, "0.5": 0.1836, "0.75": 0.1020, "0.9": 0.0816},
}
# T(IoBB) of the model trained on ChestX-ray14: arXiv:1705.02315 appendix B, Table 19 (accuracy rows).
WANG2017_LOC_IOBB_CXR14: dict[str, dict[str, float]] = {
    "Atelectasis": {"0.1": 0.6222, "0.25": 0.3944, "0.5": 0.1944, "0.75": 0.0889, "0.9": 0.0722},
    "Cardiomegaly": {"0.1": 1.0, "0.25": 0.9863, "0.5": 0.9452, "0.75": 0.8151, "0.9": 0.6507},
    "Effusion": {"0.1": 0.7974, "0.25": 0.6339, "0.5": 0.4183, "0.75": 0.2287, "0.9": 0.1373},
    "Infiltration": {"0.1": 0.9106, "0.25": 0.7967, "0.5": 0.6504, "0.75": 0.4390, "0.9": 0.3577},
    "Mass": {"0.1": 0.5882, "0.25": 0.4588, "0.5": 0.3058, "0.75": 0.1647, "0.9": 0.0941},
    "Nodule": {"0.1": 0.1519, "0.25": 0.0506, "0.5": 0.0, "0.75": 0.0, "0.9": 0.0},
    "Pneumonia": {"0.1": 0.8583, "0.25": 0.7083, "0.5": 0.4833, "0.75": 0.2917, "0.9": 0.2333},
    "Pneumothorax": {"0.1": 0.5204, "0.25": 0.3367, "0.5": 0.2653, "0.75": 0.1735, "0.9": 0.1224},
}


def canonical(name: str) -> str:
    """ChestX-ray14 spelling of a class name: ``"Pleural Thickening"`` -> ``"Pleural_Thickening"``,
    ``"Infiltrate"`` -> ``"Infiltration"``; names that are not ChestX-ray14 labels are returned unchanged."""
    key = name.strip().replace(" ", "_")
    if key.lower() == "infiltrate":
        return "Infiltration"
    for c in CHESTXRAY14_CLASSES:
        if c.lower() == key.lower():
            return c
    return name


def published_auc(table: dict[str, float], name: str) -> Optional[float]:
    """The AUC of class ``name`` (any spelling :func:`canonical` knows) in ``table``, or None."""
    return table.get(canonical(name))


def mean_of(table: dict[str, float], names: Optional[list[str]] = None) -> Optional[float]:
    """Mean of ``table`` over ``names`` (default: all its classes); None when none of them is in it."""
    vals = [v for v in (published_auc(table, n) for n in (names if names is not None else list(table)))
            if v is not None]
    return sum(vals) / len(vals) if vals else None


if __name__ == "__main__":
    print(f"{'class':<20}" + "".join(f"{label:>11}" for label, _ in AUC_COLUMNS))
    for c in CHESTXRAY14_CLASSES:
        print(f"{c:<20}" + "".join(f"{t[c]:>11.4f}" for _, t in AUC_COLUMNS))
    print(f"{'mean (computed)':<20}" + "".join(f"{mean_of(t):>11.4f}" for _, t in AUC_COLUMNS))
    print(f"ChexRadiNet: mean AUC {CHEXRADINET_MEAN_AUC}, localisation T(IoU)=0.1 {CHEXRADINET_LOC_IOU_0_1}")
