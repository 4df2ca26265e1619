"""README.md's and docs/*.md's code blocks, checked so that they cannot go stale without a failing test.

- A copy of a command's ``--help`` equals the command's output (``python docs/blocks.py --sync-help`` rewrites).
- Every shell line is checked against what it calls: a ``chexradi`` line against the click commands (command,
  options, choices and ranges, number of arguments), ``make X`` against the Makefile, ``python script.py --opt``
  against the script's ``--help``, ``pip install "chexradi[x]"`` against the extras. The lines in :data:`SHELL_RUNS`
  also run, in a folder holding the files they name.
- Every Python block compiles; every chexradi name it imports or reaches as ``chexradi.x`` exists, and every call of
  a chexradi function binds to its signature (a renamed argument fails); a name the block uses without defining it
  must be one the surrounding text gives (:data:`PY_BLOCKS` says which). The blocks in :data:`PY_BLOCKS` marked
  ``run`` execute, on small inputs: the files they name are made in a scratch folder, the variables the text gives
  are small arrays and models, and sizes a user would run at (400 images, 20 epochs) are cut by the substitutions
  listed with each block -- each substitution must match the block, so a changed block fails until it is updated.
- YAML blocks parse; the label-set example loads as a label set.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import pytest
import yaml

from conftest import REPO, SHARED_DATA, TINY_PHANTOM_SPEC

sys.path.insert(0, str(REPO / "docs"))
import blocks as doc_blocks  # noqa: E402  (docs/blocks.py: how the documents' blocks are read)

from chexradi.cli import cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ALL = doc_blocks.all_blocks()
TINY_PHANTOM = f'"{TINY_PHANTOM_SPEC}"'   # as a Python string literal in a block
TINY_ROUNDS = 'rounds=2, train={"epochs": 1, "batch_size": 10}, radiomics={"jobs": 1}'


def _blocks(*langs: str, document: Optional[str] = None) -> list[doc_blocks.Block]:
    """The blocks in these languages (of one document, when given)."""
    return [b for b in ALL if b.lang in langs and document in (None, b.document)]


# ------------------------------------------------------------------------------------------------ --help copies


@pytest.mark.parametrize("block", [b for b in ALL if b.help_of], ids=lambda b: b.where)
def test_help_copies_equal_the_commands(block: doc_blocks.Block) -> None:
    assert block.body == doc_blocks.help_text(block.help_of), (
        f"{block.where} is a stale copy of `chexradi {' '.join(block.help_of)} --help`; "
        f"run `python docs/blocks.py --sync-help`")


# ------------------------------------------------------------------------------------------------ shell lines


def shell_lines(block: doc_blocks.Block) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    out, current = [], ""
    for raw in block.body.splitlines():
        line = raw.rstrip()
        if current == "" and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    return out


def _words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def check_chexradi(args: list[str]) -> None:
    """Parse ``chexradi ARGS`` against the click commands without running anything or touching files."""
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="chexradi")
    args = list(args)
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"no command {args[0]!r} in {ctx.command_path!r}"
        ctx = click.Context(sub, info_name=args.pop(0), parent=ctx)
        cmd = sub
    options = {o: p for p in cmd.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    positional = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--help" or word == "-h":
            return
        if word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            assert name in options, f"`{ctx.command_path}` has no option {name}; it has {sorted(options)}"
            param = options[name]
            if not (param.is_flag or param.count):
                if not eq:
                    i += 1
                    assert i < len(args), f"{name} needs a value"
                    value = args[i]
                if not isinstance(param.type, (click.Path, click.File)):
                    param.type.convert(value, param, ctx)     # a choice, a range, a number: raises if wrong
        else:
            positional.append(word)
        i += 1
    if any(a.nargs == -1 for a in arguments):
        return
    assert len(positional) <= sum(a.nargs for a in arguments), \
        f"`{ctx.command_path}` takes {[a.name for a in arguments]}, got {positional}"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def _script_help(script: str) -> str:
    res = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert res.returncode == 0, f"{script} --help failed: {res.stderr[-1000:]}"
    return res.stdout


def check_pip(words: list[str]) -> None:
    """``pip install`` of chexradi: the extras named exist, a wheel named has this version."""
    import chexradi
    from chexradi.about import requirements

    extras = {r.extra for r in requirements() if r.extra}
    targets = [w for w in words if not w.startswith("-")]
    assert targets, words
    for target in targets:
        m = re.fullmatch(r"(?P<what>[^\[]+)(\[(?P<extras>[\w,-]+)\])?", target)
        assert m, target
        named = set(filter(None, (m.group("extras") or "").split(",")))
        assert named <= extras, f"no extra {sorted(named - extras)}; the extras are {sorted(extras)}"
        what = m.group("what")
        if what.endswith(".whl"):
            assert Path(what).name == f"chexradi-{chexradi.__version__}-py3-none-any.whl", what
        else:
            assert what in ("chexradi", "."), what


def check_line(line: str) -> None:
    words = _words(line)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):          # OMP_NUM_THREADS=1 chexradi ...
        words.pop(0)
    head = words[0]
    if head == "chexradi":
        check_chexradi(words[1:])
    elif head == "torchrun":
        assert "-m" in words and words[words.index("-m") + 1] == "chexradi", line
        check_chexradi(words[words.index("-m") + 2:])
    elif head == "make":
        assert set(words[1:]) <= _make_targets(), f"no make target {set(words[1:]) - _make_targets()}"
    elif head == "python" and words[1].endswith(".py"):
        script = words[1]
        assert (REPO / script).is_file(), f"{script} does not exist"
        text = _script_help(script)
        for word in words[2:]:
            if word.startswith("--"):
                option = word.split("=")[0]
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"{script} has no option {option}"
    elif head == "python" and words[1] == "-m" and words[2] == "chexradi":
        check_chexradi(words[3:])
    elif head == "pip" and words[1] == "install":
        check_pip(words[2:])
    else:
        raise AssertionError(f"no check for a shell line starting with {head!r}: {line}")


@pytest.mark.parametrize("block", _blocks("bash"), ids=lambda b: b.where)
def test_shell_lines_match_what_they_call(block: doc_blocks.Block) -> None:
    lines = shell_lines(block)
    assert lines, block.where
    for line in lines:
        try:
            check_line(line)
        except (AssertionError, click.BadParameter, click.UsageError) as exc:
            raise AssertionError(f"{block.where}: {line}\n  {exc}") from None


def test_the_line_checker_catches_what_goes_stale() -> None:
    check_line("chexradi extract --batch cases.csv --out f.csv --jobs 4 --engine numba")
    for bad in ("chexradi extract a b --no-such-option", "chexradi extract a b --engine torch",
                "chexradi extract a b --jobs -3", "chexradi nosuch", "chexradi extract a b c",
                "chexradi reportgen train --beam 3", "make no-such-target", "python examples/nosuch.py",
                "chexradi iterate --data phantom --heatmap-method nosuch", "ls -l",
                'pip install "chexradi[nosuch]"', "pip install dist/chexradi-0.0.1-py3-none-any.whl"):
        with pytest.raises((AssertionError, click.BadParameter, click.UsageError)):
            check_line(bad)


# ------------------------------------------------------------------------------------------------ signatures

#: A signature as the docs write it: ``chexradi.extract(image, mask, *, spacing=None) -> dict`` (or ``ext.execute``,
#: ``ext`` being an Extractor).
_SIGNATURE = re.compile(r"^(?:\w+ = )?(?P<path>chexradi(?:\.\w+)+|ext\.\w+)\((?P<params>[^()]*)\)(?: -> [\w\[\], ]+)?(?:\s+#.*)?$")


def documented_signatures(block: doc_blocks.Block) -> list[tuple[str, str]]:
    return [(m.group("path"), m.group("params")) for m in map(_SIGNATURE.match, block.body.splitlines()) if m]


def check_signature(path: str, params: str) -> None:
    """The parameters the docs list are the function's: names, kinds and defaults, in order."""
    if path.startswith("ext."):
        path = "chexradi.Extractor." + path[4:]
    fn = _chexradi_object(path)
    if inspect.isclass(fn):
        fn = fn.__init__
    real = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    written = ast.parse(f"def f({params}): pass").body[0].args
    doc = [(a.arg, "POSITIONAL_OR_KEYWORD") for a in written.args]
    doc += [(written.vararg.arg, "VAR_POSITIONAL")] if written.vararg else []
    doc += [(a.arg, "KEYWORD_ONLY") for a in written.kwonlyargs]
    doc += [(written.kwarg.arg, "VAR_KEYWORD")] if written.kwarg else []
    assert doc == [(p.name, p.kind.name) for p in real], f"{path}({params}) is {path}{inspect.signature(fn)}"
    defaults = dict(zip([a.arg for a in written.args][::-1], written.defaults[::-1]))
    defaults.update({a.arg: d for a, d in zip(written.kwonlyargs, written.kw_defaults) if d is not None})
    for p in real:
        if p.name in defaults:
            assert ast.literal_eval(defaults[p.name]) == p.default, f"{path}: {p.name} defaults to {p.default!r}"


@pytest.mark.parametrize("block", [b for b in _blocks("text") if documented_signatures(b)], ids=lambda b: b.where)
def test_documented_signatures_are_the_functions(block: doc_blocks.Block) -> None:
    for path, params in documented_signatures(block):
        check_signature(path, params)


def test_the_signature_check_catches_a_renamed_parameter() -> None:
    check_signature("chexradi.load_settings", "source=None, **overrides")
    for params in ("params=None, **settings", "source=None", "source=1, **overrides"):
        with pytest.raises(AssertionError):
            check_signature("chexradi.load_settings", params)


# ------------------------------------------------------------------------------------------------ python blocks


@dataclass(frozen=True)
class PyBlock:
    """How a Python block is checked: ``key`` is a string only that block contains."""

    key: str
    given: tuple[str, ...] = ()                 # names the surrounding text defines
    run: Optional[str] = None                   # the fixture that makes its inputs; None: checked, not run
    subs: tuple[tuple[str, str], ...] = ()      # sizes cut for the test (each must occur in the block)
    why_not_run: str = ""
    slow: bool = False


_TRAINS = "it trains for minutes at the documented sizes; "
PY_BLOCKS: dict[str, list[PyBlock]] = {
    "README.md": [
        PyBlock("rounds=3, out=\"runs/phantom\")", run="plain", slow=True,
                subs=(('"phantom"', TINY_PHANTOM), ("rounds=3", TINY_ROUNDS))),
        PyBlock('chexradi.extract("image.nrrd", "mask.nrrd")', given=("image", "mask"), run="radiomics"),
        PyBlock('create_model("resnet50_ta", num_classes=14, in_chans=1)',
                given=("train_set", "val_set", "test_set"), run="training", slow=True,
                subs=(("epochs=20", "epochs=1, batch_size=4"),)),
        PyBlock("res.explain())                                      #", run="plain"),
    ],
    "docs/data.md": [
        PyBlock("write_phantom(\"phantom\", 400", run="plain",
                subs=(("generate(400, size=256", "generate(8, size=64"), ("write_phantom(\"phantom\", 400, size=256)",
                                                                         "write_phantom(\"phantom\", 8, size=64)"))),
        PyBlock('chestxray14("/data/ChestX-ray14"', why_not_run="it reads the public data sets from their folders"),
        PyBlock('iu_xray("NLMCXR_reports.tgz", images="NLMCXR_png"',
                why_not_run="it joins the NLMCXR images, which are not in the shared data"),
        PyBlock("Standardizer().fit(train_vectors)",
                given=("train", "train_vectors", "model", "val", "val_vectors", "fit", "predict", "val_g"),
                why_not_run="a fragment of a guided round; tests/test_guidance.py runs these parts"),
    ],
    "docs/loop.md": [
        PyBlock("h.auc_table()", run="plain", slow=True,
                subs=(('"phantom"', TINY_PHANTOM), ("rounds=3", TINY_ROUNDS))),
        PyBlock("chexradi.compare([\"runs/cam_s0\"", given=("chexradi",),
                why_not_run="it compares finished runs of several arms (make ablation)"),
    ],
    "docs/lungs.md": [PyBlock('read_radiograph("cxr.dcm")', run="radiograph")],
    "docs/models.md": [
        PyBlock("class_names=CHESTXRAY14_CLASSES", run="imagenet_weights", slow=True),
        PyBlock("@register_model(family=\"text_encoder\"", run="registry"),
        PyBlock("with GradCAM(model, target_layer=\"backbone.layer4\")", given=("model", "x"), run="network"),
        PyBlock('heatmap_to_mask(h, method="fraction", value=0.5, sigma=2.0', given=("h",), run="heatmap"),
        PyBlock("result = fit(model, train_set, val_set, epochs=20, batch_size=32",
                given=("x_train", "y_train", "val_set", "test_set", "model"), run="training", slow=True,
                subs=(("epochs=20, batch_size=32", "epochs=1, batch_size=4"),)),
        PyBlock("evaluator=LossEvaluator(required_keys=", given=("text_model", "token_train", "token_val",
                                                                "TokenObjective", "pad_collate"),
                why_not_run="a fragment; tests/test_fit_models.py trains text models through fit"),
    ],
    "docs/report-generation.md": [
        PyBlock('train_report_generator("phantom", "runs/rg"', run="reportgen", slow=True,
                subs=(('"phantom"', TINY_PHANTOM), ("epochs=10", "epochs=1, batch_size=10"))),
    ],
    "docs/reports.md": [
        PyBlock('label_reports("NLMCXR_reports.tgz"', run="iu_archive"),
    ],
    "docs/text-guidance.md": [
        PyBlock('guidance={"sources": ["tandem"]}', run="plain", slow=True,
                subs=(('"phantom"', TINY_PHANTOM), ("rounds=1,", "rounds=1, train={\"epochs\": 1, \"batch_size\": 10},"))),
    ],
}


def _py_cases() -> list[tuple[doc_blocks.Block, PyBlock]]:
    cases = []
    for block in _blocks("python"):
        specs = [s for s in PY_BLOCKS.get(block.document, []) if s.key in block.body]
        assert len(specs) == 1, f"{block.where}: a Python block needs exactly one entry in PY_BLOCKS, has {len(specs)}"
        cases.append((block, specs[0]))
    return cases


PY_CASES = _py_cases()


def test_every_registered_python_block_exists() -> None:
    found = {(b.document, s.key) for b, s in PY_CASES}
    stale = [(doc, s.key) for doc, specs in PY_BLOCKS.items() for s in specs if (doc, s.key) not in found]
    assert not stale, f"PY_BLOCKS entries that match no block (the docs changed): {stale}"


class _Names(ast.NodeVisitor):
    """Names a block binds anywhere (imports, assignments, definitions), and the names it loads."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.loaded: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.bound.add((a.asname or a.name).split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.bound.add(a.asname or a.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.bound.add(node.name)
        for arg in node.args.args + node.args.kwonlyargs:
            self.bound.add(arg.arg)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bound.add(node.name)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.bound.add(node.id)
        else:
            self.loaded.add(node.id)


def _chexradi_object(path: str) -> Any:
    try:
        return doc_blocks.lookup(path)
    except LookupError as exc:
        raise AssertionError(str(exc)) from None


def static_check(block: doc_blocks.Block, spec: PyBlock) -> None:
    tree = ast.parse(block.body, filename=block.where)
    names = _Names()
    names.visit(tree)
    free = names.loaded - names.bound - set(dir(builtins)) - set(spec.given)
    assert not free, f"{block.where} uses {sorted(free)} without defining them (nor does PY_BLOCKS give them)"
    assert not set(spec.given) - names.loaded, \
        f"{block.where}: PY_BLOCKS gives {sorted(set(spec.given) - names.loaded)}, which it never uses"
    # what each chexradi name refers to
    alias: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chexradi"):
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
                _chexradi_object(alias[a.asname or a.name])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("chexradi"):
                    alias[a.asname or a.name] = a.name

    def dotted(expr: ast.AST) -> Optional[str]:
        if isinstance(expr, ast.Name):
            return alias.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = dotted(expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            path = dotted(node)
            if path:
                _chexradi_object(path)
        if isinstance(node, ast.Call):
            path = dotted(node.func)
            if not path:
                continue
            fn = _chexradi_object(path)
            try:
                sig = inspect.signature(fn)
            except (TypeError, ValueError):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            try:
                sig.bind(*[None] * len(node.args), **{k.arg: None for k in node.keywords})
            except TypeError as exc:
                raise AssertionError(f"{block.where}:{node.lineno}: {path}(...) does not match its signature "
                                     f"{sig}: {exc}") from None


@pytest.mark.parametrize("block,spec", PY_CASES, ids=[b.where for b, _ in PY_CASES])
def test_python_blocks_refer_to_what_exists(block: doc_blocks.Block, spec: PyBlock) -> None:
    static_check(block, spec)
    assert spec.run or spec.why_not_run, f"{block.where}: PY_BLOCKS says neither how to run it nor why not"


def test_the_static_check_catches_what_goes_stale() -> None:
    good = doc_blocks.Block("x.md", 1, "python", "import chexradi\nchexradi.extract(image, mask, binWidth=10)\n")
    static_check(good, PyBlock("x", given=("image", "mask")))
    for body in ("import chexradi\nchexradi.extract_all(a)\n",                       # a renamed function
                 "from chexradi.reports import labels\n",                              # a renamed import
                 "from chexradi.reports import label\nlabel('text', label_set='chexpert')\n",  # a renamed argument
                 "import chexradi\nchexradi.compare(runs)\n"):                         # a name nobody defines
        block = doc_blocks.Block("x.md", 1, "python", body)
        with pytest.raises(AssertionError):
            static_check(block, PyBlock("x"))


# ----------------------------------------------------------------------------------------------- running them


def _nrrd(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def _radiomics_inputs(folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 20.0, (48, 48))
    mask = np.zeros((48, 48), np.uint8)
    mask[6:22, 8:40] = 1
    mask[26:44, 10:38] = 2
    _nrrd(folder / "image.nrrd", image)
    _nrrd(folder / "mask.nrrd", (mask == 1).astype(np.uint8))
    _nrrd(folder / "mask2.nrrd", (mask == 2).astype(np.uint8))
    (folder / "params.yaml").write_text("setting:\n  binWidth: 10\nfeatureClass:\n  firstorder: []\n  glcm: []\n")
    return {"image": image, "mask": mask}


def _phantom_images(folder: Path, names: tuple[str, ...]) -> None:
    from PIL import Image

    from chexradi.data.phantom import make_case

    for k, name in enumerate(names):
        case = make_case(k, size=64, seed=0)
        Image.fromarray((case.image * 255).astype(np.uint8)).save(folder / name)


def _network(classes: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Mass", "Pneumothorax")):
    from chexradi.nn import create_model

    return create_model("resnet18_ta", num_classes=len(classes), class_names=list(classes))


def _fixture(kind: str, folder: Path) -> dict[str, Any]:
    import torch

    ns: dict[str, Any] = {"__name__": "__main__"}
    if kind == "plain":
        pass
    elif kind == "radiomics":
        ns.update(_radiomics_inputs(folder))
    elif kind == "radiograph":
        from pydicom.data import get_testdata_file

        shutil.copy(get_testdata_file("RG1_UNCR.dcm"), folder / "cxr.dcm")
    elif kind == "network":
        ns.update(model=_network().eval(), x=torch.rand(2, 1, 64, 64))
    elif kind == "heatmap":
        yy, xx = np.mgrid[:64, :64]
        ns["h"] = np.exp(-((yy - 30.0) ** 2 + (xx - 20.0) ** 2) / 60.0).astype(np.float32)
    elif kind == "training":
        from chexradi.train import ArrayDataset

        rng = np.random.default_rng(0)
        x = rng.random((8, 64, 64)).astype(np.float32)
        y = (rng.random((8, 14)) > 0.5).astype(np.float32)
        y[:2], y[2:4] = 1, 0                               # both classes present for the AUC
        classes = ("Nodule",) + tuple(f"C{k}" for k in range(13))
        ns.update(train_set=ArrayDataset(x, y), val_set=ArrayDataset(x, y), test_set=ArrayDataset(x, y),
                  x_train=x, y_train=y, model=_network(classes))
    elif kind == "imagenet_weights":                       # a user's local ImageNet file, here random weights
        import torchvision

        torch.save(torchvision.models.densenet121(weights=None).state_dict(), folder / "densenet121-a639ec97.pth")
    elif kind == "registry":
        pass                                                 # _run_case restores the registry afterwards
    elif kind == "reportgen":
        _phantom_images(folder, ("chest.png", "frontal.png", "lateral.png"))
    elif kind == "iu_archive":
        archive = SHARED_DATA / "iu-xray-reports" / "NLMCXR_reports.tgz"
        if not archive.is_file():
            pytest.skip(f"the IU X-ray reports archive is not here ({archive}); set CHEXRADI_SHARED_DATA")
        shutil.copy(archive, folder / "NLMCXR_reports.tgz")
    else:
        raise AssertionError(kind)
    return ns


def _substituted(block: doc_blocks.Block, spec: PyBlock) -> str:
    code = block.body
    for old, new in spec.subs:
        assert old in code, f"{block.where}: the substitution {old!r} no longer matches; update PY_BLOCKS"
        code = code.replace(old, new)
    return code


def _run_case(block: doc_blocks.Block, spec: PyBlock, tmp_path: Path) -> None:
    from chexradi.nn import registry

    cwd = os.getcwd()
    models = dict(registry._REGISTRY)                         # a block may register a model of its own
    os.chdir(tmp_path)
    try:
        ns = _fixture(spec.run, tmp_path)
        exec(compile(_substituted(block, spec), block.where, "exec"), ns)
    finally:
        os.chdir(cwd)
        registry._REGISTRY.clear()
        registry._REGISTRY.update(models)


_RUN = [(b, s) for b, s in PY_CASES if s.run]


@pytest.mark.parametrize("block,spec", [pytest.param(b, s, marks=[pytest.mark.slow] if s.slow else [])
                                        for b, s in _RUN], ids=[b.where for b, _ in _RUN])
def test_python_blocks_run_on_small_inputs(block: doc_blocks.Block, spec: PyBlock, tmp_path: Path) -> None:
    _run_case(block, spec, tmp_path)


# ------------------------------------------------------------------------------------------------ shell runs

#: Shell lines that also run, in a folder with the files they name (each ``(document, line start, subs)``).
SHELL_RUNS: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
    ("README.md", "chexradi extract image.nrrd mask.nrrd", ()),
    ("README.md", "chexradi extract --batch cases.csv --out features.csv --jobs 4 --param params.yaml",
     (("--jobs 4", "--jobs 1"),)),
    ("README.md", "chexradi extract --batch cases.csv --out features.csv --validate", ()),
    ("README.md", "chexradi extract ct.nrrd lung.nrrd --maps maps/", (("ct.nrrd lung.nrrd", "image.nrrd mask.nrrd"),)),
    ("README.md", "chexradi label-reports reports.csv --text-col findings,impression --labels chexpert", ()),
    ("docs/data.md", "chexradi phantom --out phantom --n 400 --size 256", (("--n 400 --size 256", "--n 8 --size 64"),)),
]


def _shell_folder(folder: Path) -> None:
    _radiomics_inputs(folder)
    (folder / "cases.csv").write_text("Image,Mask\nimage.nrrd,mask.nrrd\nimage.nrrd,mask2.nrrd\n")
    (folder / "reports.csv").write_text(
        "Image,findings,impression\n"
        "a.png,The heart is enlarged.,Cardiomegaly. No pneumothorax.\n"
        "b.png,The lungs are clear.,No acute disease.\n")


@pytest.mark.parametrize("document,start,subs", SHELL_RUNS, ids=[f"{d}:{s[:40]}" for d, s, _ in SHELL_RUNS])
def test_shell_lines_run_on_a_fixture(document: str, start: str, subs, tmp_path: Path) -> None:
    lines = [ln for b in _blocks("bash", document=document) for ln in shell_lines(b) if ln.startswith(start)]
    assert len(lines) == 1, f"{document}: {len(lines)} shell lines start with {start!r}; update SHELL_RUNS"
    line = lines[0]
    for old, new in subs:
        assert old in line, f"{document}: {old!r} is no longer in {line!r}; update SHELL_RUNS"
        line = line.replace(old, new)
    _shell_folder(tmp_path)
    words = _words(line)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "chexradi", *words[1:]], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, f"{line}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    if "--out" in words and "--validate" not in words:         # it wrote what it says it writes
        assert (tmp_path / words[words.index("--out") + 1]).exists(), line


# ------------------------------------------------------------------------------------------------ yaml


@pytest.mark.parametrize("block", _blocks("yaml"), ids=lambda b: b.where)
def test_yaml_blocks_parse(block: doc_blocks.Block, tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(block.body)]
    assert docs and all(d is not None for d in docs), block.where
    if block.body.startswith("name: my-set"):                 # the label-set example loads as a label set
        from chexradi.reports import load_label_set

        path = tmp_path / "my_set.yaml"
        path.write_text(block.body)
        label_set = load_label_set(str(path))
        assert "Lesion" in label_set.names and "Normal" in label_set.columns

