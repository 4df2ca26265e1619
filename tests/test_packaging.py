"""The built distribution: what the wheel and sdist hold, and the wheel in a fresh virtual environment.

``python -m build`` builds the sdist from a copy of the checkout, then the wheel from the sdist (so a file
the sdist forgets breaks the wheel). The fresh environment gets the wheel and only its declared
dependencies (pinned by constraints.txt, no editable install, no checkout on the path, run from a folder
outside it); there the console script runs ``--help``, ``--version``, one ``extract``, a tiny ``iterate``
on the phantom and ``label-reports``; each extra's absence is named with its install command, and once
the extras are installed each one imports and runs what it promises.
"""
from __future__ import annotations

import csv
import email
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import chexradi
from chexradi.about import DEVELOPMENT_EXTRAS, requirements

from conftest import REPO, TINY_PHANTOM_SPEC

# What a user's copy of the sources does not need to build from: the environment, caches, outputs.
_NOT_SOURCES = shutil.ignore_patterns(".venv*", ".git", "build", "dist", "*.egg-info", "__pycache__", "runs",
                                      "demo-output", ".pytest_cache", ".hypothesis", "_build", "*.nbi", "*.nbc")
#: The extras a user installs.
_USER_EXTRAS = ("pyradiomics", "demo", "plot", "dask", "text", "reportgen", "lbp3d")
_BERT = ("import transformers as t; c = t.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, "
         "num_attention_heads=2, intermediate_size=16); t.BertModel(c).save_pretrained('bert'); "
         "open('bert/vocab.txt', 'w').write(chr(10).join(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'heart'])); "
         "t.BertTokenizer('bert/vocab.txt').save_pretrained('bert'); ")
#: For each extra, what a user runs that needs it, in the fresh environment's work folder (``loop``: a finished
#: tiny run; ``image.nrrd``, ``mask.nrrd``, ``cases.csv``: a case). Without the extra it must fail and name the
#: extra's install command; with it, succeed. ``(without, with)``: the second runs when the first is not enough.
_EXTRA_USES = {
    "pyradiomics": (["chexradi", "extract", "image.nrrd", "mask.nrrd", "--engine", "pyradiomics"], None),
    "dask": (["chexradi", "extract", "--batch", "cases.csv", "--out", "dask.csv", "--scheduler", "dask",
              "--jobs", "1"], None),
    "plot": (["chexradi", "evaluate", "loop", "--plot", "curves.png"], None),
    "text": (["python", "-c", "from chexradi.guidance.pretrained import PretrainedReportEncoder as E; "
              "E('bert', pad_id=0)"],
             ["python", "-c", _BERT + "from chexradi.guidance.pretrained import PretrainedReportEncoder as E; "
              "e = E('bert', pad_id=0); assert e.out_dim == 8"]),
    "reportgen": (["python", "-c", "from chexradi.metrics import text_scores; s = text_scores(['the heart is normal'] "
                   "* 2, ['the heart is normal', 'the lungs are clear'], meteor=False); assert s['BLEU_1'] > 0.4"],
                  None),
    "lbp3d": (["python", "-c", "import numpy as np; from chexradi.radiomics.extractor import Extractor; "
               "m = np.zeros((6, 12, 12), bool); m[1:5, 2:10, 2:10] = True; e = Extractor(imageType={'LBP3D': {}}, "
               "binWidth=1, featureClass={'firstorder': ['Mean']}); "
               "assert 'lbp-3D-k_firstorder_Mean' in e.execute(np.random.default_rng(0).normal(size=(6, 12, 12)), m)"],
              None),
    "demo": (None, ["python", "-c", "from pydicom.data import get_testdata_file as g; assert g('RG1_UNCR.dcm'); "
                    "import matplotlib"]),
}


def _requirement(line: str) -> tuple[str, str, str]:
    """A requirement line in one spelling: name, sorted specifiers, marker."""
    r = Requirement(line)
    return r.name.lower(), ",".join(sorted(str(s) for s in r.specifier)), str(r.marker or "")


def _sources() -> list[str]:
    """The repository's files: git's (tracked or added) in a git checkout, else the tree without outputs."""
    res = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    if res.returncode == 0 and res.stdout:
        return [f for f in res.stdout.split("\0") if f and (REPO / f).is_file()]
    out = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _NOT_SOURCES(folder, dirs)]
        out += [Path(folder, f).relative_to(REPO).as_posix() for f in files if f not in _NOT_SOURCES(folder, files)]
    return out


def _package_files() -> set[str]:
    return {f for f in _sources() if f.startswith("chexradi/")}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built by ``python -m build`` from a copy of the checkout."""
    root = tmp_path_factory.mktemp("dist")
    src = root / "src"
    for f in _sources():                       # what a clone holds, not this tree's untracked files
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    res = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "out"), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "`project.license`" not in res.stdout + res.stderr, res.stderr     # our metadata in today's form
    version = chexradi.__version__
    out = {"wheel": root / "out" / f"chexradi-{version}-py3-none-any.whl",
           "sdist": root / "out" / f"chexradi-{version}.tar.gz"}
    assert all(p.is_file() for p in out.values()), sorted(os.listdir(root / "out"))
    return out


def test_wheel_holds_the_package_and_its_data_and_nothing_of_the_tests(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as z:
        names = set(z.namelist())
        meta = email.message_from_bytes(z.read(f"chexradi-{chexradi.__version__}.dist-info/METADATA"))
    package = _package_files()
    assert "chexradi/py.typed" in package and "chexradi/reports/labelsets/findings.yaml" in package
    assert package <= names, sorted(package - names)
    files = {n for n in names if ".dist-info/" not in n}
    assert files == package, sorted(files - package)          # nothing else: no tests, benchmarks, examples
    assert f"chexradi-{chexradi.__version__}.dist-info/licenses/LICENSE" in names
    # the metadata is pyproject.toml's: one version, the declared dependencies and extras
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["Version"] == chexradi.__version__ and meta["License-Expression"] == project["license"]
    declared = sorted(project["dependencies"] + [f'{d}; extra == "{e}"' for e, ds in
                                                  project["optional-dependencies"].items() for d in ds])
    assert sorted(map(_requirement, meta.get_all("Requires-Dist"))) == sorted(map(_requirement, declared))
    assert set(meta.get_all("Provides-Extra")) == set(project["optional-dependencies"])
    assert set(_USER_EXTRAS) | set(DEVELOPMENT_EXTRAS) == set(project["optional-dependencies"])


def test_sdist_holds_what_builds_the_wheel_and_not_the_tests(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for need in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "chexradi/py.typed",
                 "chexradi/reports/labelsets/chexpert.yaml", "chexradi/cli/__init__.py"):
        assert need in names, need
    assert not [n for n in names if n.startswith(("tests", "benchmarks", "examples", "docs"))]


# ------------------------------------------------------------------------------------------------ fresh venv


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(venv: Path, cwd: Path, *args: str, ok: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), cwd=cwd, env=_env(venv), capture_output=True, text=True, timeout=timeout)
    if ok:
        assert res.returncode == 0, f"{args}: rc {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _pip_install(venv: Path, cwd: Path, target: str) -> None:
    _run(venv, cwd, str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(REPO / "constraints.txt"), target)


@pytest.fixture(scope="module")
def fresh(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """A new virtual environment with the wheel and its declared dependencies only; a work folder outside the
    checkout. The environment (~6 GB: torch's CUDA build) is removed when the module ends, pass or fail."""
    root = tmp_path_factory.mktemp("fresh")
    venv, work = root / "venv", root / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    try:
        _pip_install(venv, work, str(dists["wheel"]))
        yield venv, work, dists["wheel"]
    finally:
        shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.slow
def test_the_wheel_in_a_fresh_environment(fresh) -> None:
    venv, work, wheel = fresh
    py, cli = str(venv / "bin" / "python"), str(venv / "bin" / "chexradi")
    # the package comes from the environment, not from the checkout
    where = _run(venv, work, py, "-c", "import chexradi, sys; print(chexradi.__file__); print(sys.path)").stdout
    assert where.splitlines()[0].startswith(str(venv)) and str(REPO) not in where
    assert "Commands:" in _run(venv, work, cli, "--help").stdout
    version = _run(venv, work, cli, "--version").stdout
    assert version.splitlines()[0] == f"chexradi {chexradi.__version__}"
    assert re.search(r"torch\s+\d", version) and re.search(r'pyradiomics-bhklab \[pyradiomics\]\s+not installed '
                                                          r'\(pip install "chexradi\[pyradiomics\]"\)', version)
    # one extract: a 2-D case written as NRRD with the environment's own SimpleITK
    _run(venv, work, py, "-c", "import numpy as np, SimpleITK as sitk; rng = np.random.default_rng(1); "
         "sitk.WriteImage(sitk.GetImageFromArray(rng.normal(100, 20, (40, 40))), 'image.nrrd'); "
         "m = np.zeros((40, 40), np.uint8); m[8:30, 10:33] = 1; sitk.WriteImage(sitk.GetImageFromArray(m), 'mask.nrrd')")
    out = _run(venv, work, cli, "extract", "image.nrrd", "mask.nrrd", "--format", "json").stdout
    assert '"original_glcm_Contrast"' in out and '"original_shape2D_PixelSurface"' in out
    # label-reports on a small CSV of reports
    with open(work / "reports.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "report"], ["a", "No acute disease. Stable calcified granuloma."],
                                 ["b", "Moderate cardiomegaly. No effusion."], ["c", "The lungs are clear."]])
    _run(venv, work, cli, "label-reports", "reports.csv", "--out", "labels.csv")
    rows = {r["Image"]: r for r in csv.DictReader(open(work / "labels.csv"))}
    assert rows["b"]["Cardiomegaly"] == "1" and rows["c"]["Normal"] == "1" and rows["a"]["Normal"] == "0"
    # a tiny loop: an image round, then a radiomics-guided round (worker processes import the installed package)
    _run(venv, work, cli, "iterate", "--data", TINY_PHANTOM_SPEC, "--model",
         "resnet18_ta", "--epochs", "1", "--batch-size", "10", "--rounds", "2", "--jobs", "1", "--quiet",
         "--out", "loop")
    assert (work / "loop" / "round_1").is_dir() and (work / "loop" / "history.json").is_file()
    # every extra: missing, what needs it fails naming its install command; installed, it works
    assert set(_EXTRA_USES) == set(_USER_EXTRAS) == {r.extra for r in requirements() if r.extra} - set(
        DEVELOPMENT_EXTRAS)
    (work / "cases.csv").write_text("Image,Mask\nimage.nrrd,mask.nrrd\n")
    for extra, (without, _) in _EXTRA_USES.items():
        if without is None:
            continue                                  # the demo extra serves examples/, not the package
        res = _run(venv, work, *_in(venv, without), ok=False)
        assert res.returncode != 0 and f'pip install "chexradi[{extra}]"' in res.stdout + res.stderr, \
            (extra, res.stdout[-500:], res.stderr[-800:])
    _pip_install(venv, work, f"chexradi[{','.join(_USER_EXTRAS)}] @ {wheel.as_uri()}")
    for extra, (without, with_) in _EXTRA_USES.items():
        res = _run(venv, work, *_in(venv, with_ or without), ok=False)
        assert res.returncode == 0, (extra, res.stdout[-500:], res.stderr[-1500:])
    assert (work / "curves.png").stat().st_size > 0 and (work / "dask.csv").is_file()
    assert "not installed" not in _run(venv, work, cli, "--version").stdout


def _in(venv: Path, command: list[str]) -> list[str]:
    """A command run with the fresh environment's programs."""
    return [str(venv / "bin" / command[0]), *command[1:]]
