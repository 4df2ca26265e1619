"""Settings: PyRadiomics names and defaults, dict / file / keyword sources, validation first."""
from __future__ import annotations

import json

import numpy as np
import pytest

from chexradi.radiomics.settings import DEFAULTS, FEATURE_CLASSES, load_settings


def test_defaults_are_pyradiomics_defaults():
    s = load_settings()
    assert s["binWidth"] == 25 and s["binCount"] is None
    assert s["label"] == 1 and s["distances"] == [1]
    assert s["symmetricalGLCM"] is True and s["weightingNorm"] is None
    assert s["voxelArrayShift"] == 0 and s["gldm_a"] == 0
    assert s["minimumROIDimensions"] == 2 and s["padDistance"] == 5
    assert set(s.feature_classes) == set(FEATURE_CLASSES)
    assert all(v == [] for v in s.feature_classes.values())


def test_keyword_overrides_win_over_dict():
    s = load_settings({"binWidth": 10, "label": 2}, binWidth=5)
    assert s["binWidth"] == 5 and s["label"] == 2


def test_pyradiomics_sections_and_feature_class_keyword():
    params = {"setting": {"binWidth": 10}, "featureClass": {"glcm": None, "firstorder": ["Mean"]},
              "imageType": {"Original": {}}}
    s = load_settings(params)
    assert s.feature_classes == {"glcm": [], "firstorder": ["Mean"]}
    s2 = load_settings(params, featureClass={"ngtdm": []})
    assert s2.feature_classes == {"ngtdm": []}
    assert load_settings(s2).feature_classes == {"ngtdm": []}


def test_yaml_and_json_files(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text("setting:\n  binWidth: 5\n  force2D: true\nfeatureClass:\n  glcm:\n  firstorder: [Mean, Median]\n")
    s = load_settings(y)
    assert s["binWidth"] == 5 and s["force2D"] is True
    assert s.feature_classes == {"glcm": [], "firstorder": ["Mean", "Median"]}
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"setting": {"binCount": 32}, "featureClass": {"glszm": []}}))
    s = load_settings(j, label=3)
    assert s["binCount"] == 32 and s["label"] == 3 and s.feature_classes == {"glszm": []}


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"binWidth": -1}, "binWidth=-1"),
        ({"binWidth": 0}, "> 0"),
        ({"binCount": 0}, "binCount"),
        ({"label": 0}, "label"),
        ({"distances": [0]}, "distances"),
        ({"force2Ddimension": 3}, "force2Ddimension"),
        ({"weightingNorm": "taxicab"}, "manhattan"),
        ({"resegmentMode": "percent"}, "sigma"),
        ({"resegmentRange": [1, 2, 3]}, "resegmentRange"),
        ({"symmetricalGLCM": "yes"}, "true or false"),
        ({"interpolator": "sitkCubic"}, "sitkBSpline"),
        ({"binWdth": 10}, "valid settings"),
        ({"featureClass": {"glcmm": []}}, "valid classes"),
        ({"featureClass": {"glcm": ["Contrasts"]}}, "valid:"),
    ],
)
def test_invalid_settings_name_the_problem(kwargs, needle):
    with pytest.raises(ValueError) as err:
        load_settings(**kwargs)
    assert needle in str(err.value)


def test_unknown_setting_lists_valid_names():
    with pytest.raises(ValueError) as err:
        load_settings({"binwidth": 25})
    assert "'binwidth'" in str(err.value) and "binWidth" in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting: [binWidth: 5\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_settings(bad)
    badj = tmp_path / "bad.json"
    badj.write_text("{setting: 1}")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_settings(badj)
    with pytest.raises(ValueError, match="directory"):
        load_settings(tmp_path)


def test_deprecated_features_only_when_named():
    from chexradi.radiomics.extractor import Extractor

    ext = Extractor(featureClass={"firstorder": []})
    names = {c: n for c, n, _ in ext._class_list()}["firstorder"]
    from chexradi.radiomics.settings import feature_names

    deprecated = [n for n, d in feature_names("firstorder").items() if d]
    assert not set(deprecated) & set(names)
    if deprecated:
        ext = Extractor(featureClass={"firstorder": deprecated})
        assert {c: n for c, n, _ in ext._class_list()}["firstorder"] == deprecated


def test_class_list_is_worked_out_once_per_settings_object():
    from chexradi.radiomics.extractor import Extractor

    ext = Extractor(featureClass={"glcm": ["Contrast"], "shape2D": []})
    first = ext._class_list()
    assert ext._class_list() is first
    assert [(c, k) for c, _, keys in first for k in keys][:1] == [("shape2D", "original_shape2D_MeshSurface")]
    assert first[1] == ("glcm", ["Contrast"], ["original_glcm_Contrast"])
    ext.settings = load_settings(featureClass={"firstorder": ["Mean"]})  # a new settings object: worked out anew
    assert ext._class_list() == [("firstorder", ["Mean"], ["original_firstorder_Mean"])]
    image = np.arange(64, dtype=float).reshape(8, 8)
    assert list(ext.execute(image, np.ones((8, 8), np.uint8))) == ["original_firstorder_Mean"]


def test_all_defaults_validate():
    for name, value in DEFAULTS.items():
        load_settings(**{name: value})


# ------------------------------------------------------------------ imageType (filtered images)
def test_every_pyradiomics_image_type_has_its_settings():
    from radiomics import getImageTypes

    from chexradi.names import IMAGE_TYPES
    from chexradi.radiomics.settings import IMAGE_TYPE_SETTINGS

    assert sorted(IMAGE_TYPES) == sorted(getImageTypes())
    assert tuple(IMAGE_TYPE_SETTINGS) == IMAGE_TYPES


@pytest.mark.parametrize("image_types,needle", [
    ({"LoGG": {}}, "imageType 'LoGG' (settings) is unknown; valid image types: Original, LoG, Wavelet, Square, "
                   "SquareRoot, Logarithm, Exponential, Gradient, LBP2D, LBP3D."),
    ({"LoG": {}}, "imageType LoG (settings) needs sigma"),
    ({"LoG": {"sigma": [1.0, 0.0]}}, "setting LoG sigma=[1.0, 0.0] is invalid: expected a non-empty list of sigma "
                                     "values in mm, each > 0"),
    ({"LoG": {"sigma": -3}}, "setting LoG sigma=-3 is invalid"),
    ({"LoG": {"sigma": "big"}}, "setting LoG sigma='big' is invalid"),
    ({"LoG": {"sigma": [2], "binWidth": 0}}, "setting LoG binWidth=0 is invalid: expected a number > 0"),
    ({"Wavelet": {"wavelet": "coif99"}}, "setting Wavelet wavelet='coif99' is invalid: expected a discrete PyWavelets"),
    ({"Wavelet": {"wavelet": "morl"}}, "setting Wavelet wavelet='morl' is invalid"),  # continuous
    ({"LoG": {"sigma": [1], "normalize": True}}, "imageType LoG (settings): 'normalize' applies to the whole case"),
    ({"Wavelet": {"level": 0}}, "setting Wavelet level=0 is invalid: expected an integer >= 1"),
    ({"Wavelet": {"start_level": -1}}, "setting Wavelet start_level=-1 is invalid"),
    ({"Gradient": {"gradientUseSpacing": "yes"}}, "setting Gradient gradientUseSpacing='yes' is invalid"),
    ({"LBP2D": {"lbp2DMethod": "fancy"}}, "setting LBP2D lbp2DMethod='fancy' is invalid: expected one of"),
    ({"Square": {"sigma": [1]}}, "imageType Square (settings): unknown setting 'sigma'; any general setting"),
    ({"LoG": {"sigma": [1], "wavelet": "haar"}}, "unknown setting 'wavelet'; its own settings are sigma, and any"),
    ({"Original": 5}, "imageType Original (settings) must map to its settings"),
    ({}, "imageType (settings) must be a non-empty mapping"),
])
def test_bad_image_types_name_the_problem(image_types, needle):
    with pytest.raises(ValueError) as err:
        load_settings(imageType=image_types)
    assert needle in str(err.value)


def test_filter_settings_in_the_general_section():
    s = load_settings(sigma=[1, 3.0], wavelet="haar", imageType={"LoG": {}, "Wavelet": {}})
    assert s.values["sigma"] == [1, 3.0] and s.values["wavelet"] == "haar"
    assert s.pyradiomics_settings()["sigma"] == [1, 3.0]
    with pytest.raises(ValueError, match=r"setting sigma=\[-1\] is invalid"):
        load_settings(sigma=[-1])


def test_image_type_settings_are_normalised_and_reach_pyradiomics(tmp_path):
    s = load_settings(imageType={"Original": None, "LoG": {"sigma": 2, "binWidth": 5}, "Wavelet": {"level": 2.0}})
    assert s.image_types == {"Original": {}, "LoG": {"sigma": [2], "binWidth": 5.0}, "Wavelet": {"level": 2}}
    assert s.to_params()["imageType"] == s.image_types
    p = tmp_path / "params.yaml"
    p.write_text("imageType:\n  LoG: {sigma: [0]}\n")
    with pytest.raises(ValueError, match=r"setting LoG sigma=\[0\] is invalid"):
        load_settings(p)

