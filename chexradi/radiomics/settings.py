"""One settings object for the radiomics engine, with PyRadiomics' parameter names.

Settings arrive as

* a flat dict of settings (``{"binWidth": 10, "label": 2}``), optionally with a
  ``featureClass`` entry;
* a PyRadiomics parameter dict or file (YAML or JSON) with the sections
  ``setting``, ``featureClass`` and ``imageType``;
* keyword overrides, which win over both (``featureClass`` is accepted here too).

Everything is validated before any work starts: unknown names, wrong types,
out-of-range values, unknown feature classes and unknown feature names raise
``ValueError`` with a message that lists what is valid.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from ..names import IMAGE_TYPES

__all__ = [
    "DEFAULTS",
    "FEATURE_CLASSES",
    "VOXEL_SETTING_NAMES",
    "Settings",
    "load_settings",
]

#: Feature classes in the order their features appear in the output.
FEATURE_CLASSES: tuple[str, ...] = ("shape", "shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

#: Every setting with its default — PyRadiomics' extractor defaults plus the
#: feature-class defaults PyRadiomics applies inside each class.
DEFAULTS: dict[str, Any] = {
    # ROI checks and mask handling
    "label": 1,
    "label_channel": 0,
    "minimumROIDimensions": 2,
    "minimumROISize": None,
    "geometryTolerance": None,
    "correctMask": False,
    "additionalInfo": False,
    # pre-processing
    "normalize": False,
    "normalizeScale": 1.0,
    "removeOutliers": None,
    "resampledPixelSpacing": None,
    "interpolator": "sitkBSpline",
    "preCrop": False,
    "padDistance": 5,
    "resegmentRange": None,
    "resegmentMode": "absolute",
    "resegmentShape": False,
    # discretization
    "binWidth": 25.0,
    "binCount": None,
    # texture
    "distances": [1],
    "force2D": False,
    "force2Ddimension": 0,
    "voxelArrayShift": 0,
    "symmetricalGLCM": True,
    "weightingNorm": None,
    "gldm_a": 0,
    # voxel-based feature maps (PyRadiomics' voxelSetting section; used by Extractor.feature_maps only)
    "kernelRadius": 1,
    "maskedKernel": True,
    "initValue": 0.0,
    "voxelBatch": -1,
}

#: The settings a parameter file may give in its ``voxelSetting`` section (PyRadiomics merges it into
#: ``setting``).
VOXEL_SETTING_NAMES: tuple[str, ...] = ("kernelRadius", "maskedKernel", "initValue", "voxelBatch")

_WEIGHTING = (None, "manhattan", "euclidean", "infinity", "no_weighting")
_RESEGMENT_MODES = ("absolute", "relative", "sigma")
_INTERPOLATORS = (
    "sitkNearestNeighbor", "sitkLinear", "sitkBSpline", "sitkGaussian", "sitkLabelGaussian",
    "sitkHammingWindowedSinc", "sitkCosineWindowedSinc", "sitkWelchWindowedSinc",
    "sitkLanczosWindowedSinc", "sitkBlackmanWindowedSinc",
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(float(v))


def _check(name: str, ok: bool, expected: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"setting {name}={value!r} is invalid: expected {expected}.")


def _v_bool(name: str, v: Any) -> bool:
    _check(name, isinstance(v, bool), "true or false", v)
    return v


def _v_int(lo: Optional[int] = None, hi: Optional[int] = None, lo_ex: bool = False, none: bool = False):
    def f(name: str, v: Any) -> Optional[int]:
        if v is None and none:
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        rng = []
        if lo is not None:
            rng.append(f"{'>' if lo_ex else '>='} {lo}")
        if hi is not None:
            rng.append(f"<= {hi}")
        desc = "an integer" + (" " + " and ".join(rng) if rng else "") + (" or null" if none else "")
        _check(name, _is_int(v), desc, v)
        if lo is not None:
            _check(name, v > lo if lo_ex else v >= lo, desc, v)
        if hi is not None:
            _check(name, v <= hi, desc, v)
        return int(v)
    return f


def _v_float(lo: Optional[float] = None, lo_ex: bool = True, none: bool = False):
    def f(name: str, v: Any) -> Optional[float]:
        if v is None and none:
            return None
        desc = "a number" + (f" {'>' if lo_ex else '>='} {lo}" if lo is not None else "") + (" or null" if none else "")
        _check(name, _is_num(v), desc, v)
        if lo is not None:
            _check(name, v > lo if lo_ex else v >= lo, desc, v)
        return float(v)
    return f


def _v_float_list(lo: Optional[float] = None, lo_ex: bool = False, none: bool = False, lengths=(1, 2, 3)):
    def f(name: str, v: Any):
        if v is None and none:
            return None
        desc = f"a list of {'/'.join(map(str, lengths))} numbers" + (
            f" each {'>' if lo_ex else '>='} {lo}" if lo is not None else "") + (" or null" if none else "")
        _check(name, isinstance(v, (list, tuple)) and len(v) in lengths and all(_is_num(x) for x in v), desc, v)
        if lo is not None:
            _check(name, all((x > lo) if lo_ex else (x >= lo) for x in v), desc, v)
        return [float(x) for x in v]
    return f


def _v_distances(name: str, v: Any) -> list[int]:
    if _is_int(v):
        v = [v]
    ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) and x > 0 for x in v)
    _check(name, ok, "a non-empty list of integers > 0, e.g. [1] or [1, 2]", v)
    return [int(x) for x in v]


def _v_choice(choices: tuple):
    def f(name: str, v: Any):
        _check(name, v in choices, "one of " + ", ".join(repr(c) for c in choices), v)
        return v
    return f


def _v_interpolator(name: str, v: Any):
    if v is None:
        return None
    if _is_int(v):
        return v
    _check(name, isinstance(v, str) and v in _INTERPOLATORS, "null, a SimpleITK interpolator id or one of "
           + ", ".join(_INTERPOLATORS), v)
    return v


def _v_init_value(name: str, v: Any) -> float:
    if isinstance(v, str) and v.strip().lower().lstrip("+-.") in ("nan", "inf"):  # --setting initValue:nan, YAML nan
        return float(v.strip().replace(".", ""))
    _check(name, isinstance(v, (int, float)) and not isinstance(v, bool), "a number (NaN allowed: nan or .nan)", v)
    return float(v)


def _v_voxel_batch(name: str, v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    _check(name, _is_int(v) and (v == -1 or v >= 1), "-1 (all ROI voxels in one batch) or an integer >= 1", v)
    return int(v)


def _v_voxel_shift(name: str, v: Any):
    _check(name, _is_num(v), "a number (PyRadiomics: an integer)", v)
    return int(v) if float(v).is_integer() else float(v)


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "label": _v_int(0, lo_ex=True),
    "label_channel": _v_int(0),
    "minimumROIDimensions": _v_int(1, 3),
    "minimumROISize": _v_int(0, lo_ex=True, none=True),
    "geometryTolerance": _v_float(0.0, none=True),
    "correctMask": _v_bool,
    "additionalInfo": _v_bool,
    "normalize": _v_bool,
    "normalizeScale": _v_float(0.0),
    "removeOutliers": _v_float(0.0, none=True),
    "resampledPixelSpacing": _v_float_list(0.0, lo_ex=False, none=True, lengths=(2, 3)),
    "interpolator": _v_interpolator,
    "preCrop": _v_bool,
    "padDistance": _v_int(0),
    "resegmentRange": _v_float_list(none=True, lengths=(1, 2)),
    "resegmentMode": _v_choice(_RESEGMENT_MODES),
    "resegmentShape": _v_bool,
    "binWidth": _v_float(0.0),
    "binCount": _v_int(0, lo_ex=True, none=True),
    "distances": _v_distances,
    "force2D": _v_bool,
    "force2Ddimension": _v_int(0, 2),
    "voxelArrayShift": _v_voxel_shift,
    "symmetricalGLCM": _v_bool,
    "weightingNorm": _v_choice(_WEIGHTING),
    "gldm_a": _v_int(0),
    "kernelRadius": _v_int(1),
    "maskedKernel": _v_bool,
    "initValue": _v_init_value,
    "voxelBatch": _v_voxel_batch,
}

assert set(_VALIDATORS) == set(DEFAULTS)


def feature_names(class_name: str) -> dict[str, bool]:
    """Feature names of a class -> deprecated flag (from the feature module)."""
    from .features import get_feature_module

    return dict(get_feature_module(class_name).FEATURES)


@dataclass(frozen=True)
class Settings:
    """Validated settings.

    Attributes
    ----------
    values : dict
        Every setting (defaults filled in), PyRadiomics names.
    feature_classes : dict
        Class name -> list of feature names; an empty list means
        every non-deprecated feature of the class.
    image_types : dict
        PyRadiomics ``imageType`` section (validated: known types, their own settings); the
        numba engine computes every type (:mod:`chexradi.radiomics.filters`).
    explicit : tuple of str
        The names the user set (for provenance and for PyRadiomics).
    """

    values: dict[str, Any]
    feature_classes: dict[str, list[str]]
    image_types: dict[str, dict[str, Any]] = field(default_factory=lambda: {"Original": {}})
    explicit: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def to_params(self) -> dict[str, Any]:
        """The settings as a PyRadiomics parameter dict (``setting``/``featureClass``/``imageType``)."""
        return {
            "imageType": copy.deepcopy(self.image_types),
            "featureClass": {k: list(v) for k, v in self.feature_classes.items()},
            "setting": copy.deepcopy(self.values),
        }

    def pyradiomics_settings(self) -> dict[str, Any]:
        """Keyword settings for ``radiomics.featureextractor.RadiomicsFeatureExtractor``."""
        s = copy.deepcopy(self.values)
        if s.get("binCount") is None:
            s.pop("binCount", None)
        if s.get("geometryTolerance") is None:
            s.pop("geometryTolerance", None)
        return s

    def replace(self, **overrides: Any) -> "Settings":
        """A copy with some settings changed (validated)."""
        return load_settings(self.to_params(), **overrides)


SourceLike = Union[None, Mapping[str, Any], str, Path, Settings]


def _v_sigma(name: str, v: Any) -> list[float]:
    values = [v] if _is_num(v) else v
    ok = isinstance(values, (list, tuple)) and len(values) > 0 and all(_is_num(x) and x > 0 for x in values)
    _check(name, ok, "a non-empty list of sigma values in mm, each > 0, e.g. [1.0, 3.0]", v)
    return list(values)  # as given: an integer sigma names its image log-sigma-1-mm-3D, as in PyRadiomics


def _v_wavelet(name: str, v: Any) -> str:
    _check(name, isinstance(v, str) and bool(v), "a PyWavelets wavelet name such as 'coif1', 'haar', 'db2'", v)
    try:
        import pywt
    except ImportError:  # the name is checked where the wavelet is computed
        return v
    _check(name, v in pywt.wavelist(kind="discrete"), "a discrete PyWavelets wavelet name such as 'coif1', "
           "'haar', 'db2' (pywt.wavelist(kind='discrete') lists them)", v)
    return v


#: Each image type's own settings (besides the general ones, which may be set per image type too).
IMAGE_TYPE_SETTINGS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "Original": {},
    "LoG": {"sigma": _v_sigma},
    "Wavelet": {"wavelet": _v_wavelet, "level": _v_int(1), "start_level": _v_int(0)},
    "Square": {},
    "SquareRoot": {},
    "Logarithm": {},
    "Exponential": {},
    "Gradient": {"gradientUseSpacing": _v_bool},
    "LBP2D": {"lbp2DRadius": _v_float(0), "lbp2DSamples": _v_int(1),
              "lbp2DMethod": _v_choice(("default", "ror", "uniform", "var", "nri_uniform"))},
    "LBP3D": {"lbp3DLevels": _v_int(1), "lbp3DIcosphereRadius": _v_float(0), "lbp3DIcosphereSubdivision": _v_int(0)},
}


#: The image types' own settings, which PyRadiomics also takes in the general ``setting`` section.
FILTER_SETTINGS: dict[str, Callable[[str, Any], Any]] = {k: v for own in IMAGE_TYPE_SETTINGS.values()
                                                          for k, v in own.items()}
#: General settings that act on the whole case (loading, pre-processing, the ROI checks), not per image type.
CASE_SETTINGS = ("label", "label_channel", "minimumROIDimensions", "minimumROISize", "geometryTolerance",
                 "correctMask", "additionalInfo", "normalize", "normalizeScale", "removeOutliers",
                 "resampledPixelSpacing", "interpolator", "preCrop", "padDistance", "resegmentRange",
                 "resegmentMode", "resegmentShape")


def _validate_image_types(image_types: Any, where: str, general: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``imageType`` section checked: known image types, each with known, valid settings (LoG needs sigma,
    here or in the general settings)."""
    if not isinstance(image_types, Mapping) or not image_types:
        raise ValueError(f"imageType ({where}) must be a non-empty mapping such as {{'Original': {{}}}}, "
                         f"got {image_types!r}.")
    out: dict[str, dict[str, Any]] = {}
    for name, args in image_types.items():
        name = str(name)
        if name not in IMAGE_TYPE_SETTINGS:
            raise ValueError(f"imageType {name!r} ({where}) is unknown; valid image types: {', '.join(IMAGE_TYPES)}.")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise ValueError(f"imageType {name} ({where}) must map to its settings (a mapping, or null), "
                             f"got {args!r}.")
        own = IMAGE_TYPE_SETTINGS[name]
        checked: dict[str, Any] = {}
        for key, value in args.items():
            if key in own:
                checked[key] = own[key](f"{name} {key}", value)
            elif key in CASE_SETTINGS:
                raise ValueError(f"imageType {name} ({where}): {key!r} applies to the whole case (loading, "
                                 "pre-processing, the ROI), not to one image type; set it in the general settings.")
            elif key in _VALIDATORS:
                checked[key] = _VALIDATORS[key](f"{name} {key}", value)
            else:
                mine = f"its own settings are {', '.join(own)}, and " if own else ""
                raise ValueError(f"imageType {name} ({where}): unknown setting {key!r}; {mine}any general setting "
                                 "(binWidth, binCount, ...) can be set per image type.")
        if name == "LoG" and "sigma" not in checked and "sigma" not in general:
            raise ValueError(f"imageType LoG ({where}) needs sigma, the list of sigma values in mm (each > 0), e.g. "
                             "{'LoG': {'sigma': [1.0, 3.0]}}; without it PyRadiomics computes no LoG image.")
        out[name] = checked
    return out


def _syntax_error(exc: Exception) -> str:
    """Where and what a JSON / YAML parse error is: 'line L, column C: problem'."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    text = str(exc).strip().splitlines()
    problem = getattr(exc, "problem", None) or (text[0] if text else type(exc).__name__)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(problem)


def _read_param_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"parameter file not found: {path}; pass an existing YAML or JSON file.")
    if path.is_dir():
        raise ValueError(f"parameter file {path} is a directory; pass a YAML or JSON file.")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"parameter file {path} is not a text file (not UTF-8); pass a {kind} parameter file "
                         "(sections setting, featureClass, imageType).") from None
    try:
        if kind == "JSON":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError / yaml.YAMLError
        raise ValueError(f"parameter file {path} is not valid {kind} ({_syntax_error(exc)}); fix the syntax "
                         "there (a parameter file is a mapping with the sections setting, featureClass, "
                         "imageType).") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"parameter file {path} must hold a mapping (setting/featureClass/imageType), "
                         f"got {type(data).__name__}.")
    return data


def _normalise_feature_classes(fc: Any, where: str) -> dict[str, list[str]]:
    if fc is None:
        return {}
    if isinstance(fc, (list, tuple)):
        fc = {name: [] for name in fc}
    if not isinstance(fc, Mapping):
        raise ValueError(f"featureClass ({where}) must be a mapping of class -> list of features, "
                         f'e.g. {{"glcm": [], "firstorder": ["Mean"]}}; got {fc!r}.')
    out: dict[str, list[str]] = {}
    for cls, names in fc.items():
        if cls not in FEATURE_CLASSES:
            raise ValueError(f"unknown feature class {cls!r} ({where}); valid classes: {', '.join(FEATURE_CLASSES)}.")
        if names is None:
            names = []
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, (list, tuple)):
            raise ValueError(f"featureClass[{cls!r}] ({where}) must be a list of feature names or empty, got {names!r}.")
        known = feature_names(cls)
        for n in names:
            if n not in known:
                raise ValueError(f"unknown feature {n!r} in class {cls!r} ({where}); valid: {', '.join(sorted(known))}.")
        out[cls] = list(dict.fromkeys(names))
    return out


def load_settings(source: SourceLike = None, **overrides: Any) -> Settings:
    """Build validated :class:`Settings`.

    Parameters
    ----------
    source : None, a dict (flat settings or PyRadiomics sections), a path to a
        YAML/JSON parameter file, or an existing :class:`Settings`.
    **overrides : settings by name (win over ``source``); ``featureClass`` and
        ``imageType`` are accepted too.

    Raises
    ------
    FileNotFoundError
        The parameter file does not exist.
    ValueError
        Invalid file, unknown setting/class/feature, or a value out of range.
    """
    where = "settings"
    if isinstance(source, Settings):
        data: dict[str, Any] = source.to_params()
    elif isinstance(source, (str, Path)):
        path = Path(source)
        data = _read_param_file(path)
        where = f"parameter file {path}"
    elif source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    else:
        raise ValueError(f"settings must be a dict, a YAML/JSON file path or Settings, got {type(source).__name__}.")

    sections = {"setting", "featureClass", "imageType", "voxelSetting"}
    flat: dict[str, Any] = {}
    feature_classes: Any = None
    image_types: Any = None
    for key, value in data.items():
        if key == "setting":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ValueError(f"'setting' section ({where}) must be a mapping, got {value!r}.")
            flat.update(value)
        elif key == "featureClass":
            feature_classes = value
        elif key == "imageType":
            image_types = value
        elif key == "voxelSetting":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ValueError(f"'voxelSetting' section ({where}) must be a mapping, got {value!r}.")
            other = sorted(k for k in value if k not in VOXEL_SETTING_NAMES)
            if other:
                raise ValueError(f"'voxelSetting' section ({where}): unknown setting(s) {', '.join(map(repr, other))}; "
                                 f"valid: {', '.join(VOXEL_SETTING_NAMES)}.")
            flat.update(value)
        else:
            flat[key] = value
    for key, value in overrides.items():
        if key == "featureClass":
            feature_classes = value
        elif key == "imageType":
            image_types = value
        else:
            flat[key] = value

    unknown = sorted(k for k in flat if k not in DEFAULTS and k not in FILTER_SETTINGS)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(map(repr, unknown))} ({where}); valid settings: "
            + ", ".join(sorted(DEFAULTS)) + f"; sections: {', '.join(sorted(sections))}.")
    values = copy.deepcopy(DEFAULTS)
    for key, value in flat.items():
        values[key] = (_VALIDATORS.get(key) or FILTER_SETTINGS[key])(key, value)
    fc = _normalise_feature_classes(feature_classes, where)
    if not fc:
        fc = {name: [] for name in FEATURE_CLASSES}

    if image_types is None:
        image_types = {"Original": {}}
    image_types = _validate_image_types(image_types, where, values)

    return Settings(values=values, feature_classes=fc, image_types=image_types,
                    explicit=tuple(sorted(flat)))
