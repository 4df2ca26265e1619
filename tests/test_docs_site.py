"""The documentation site builds clean: Sphinx with warnings as errors and nitpicky references (a broken link
between pages, a reference to a name that is not documented, a docstring reStructuredText cannot read all
fail), and its API reference holds every public name (what docs/conf.py lists from the modules' ``__all__``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "docs"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("site") / "html"
    res = subprocess.run([sys.executable, "-m", "sphinx", "-E", "-W", "-n", "--keep-going", "-q", "-b", "html",
                          str(REPO / "docs"), str(out)], capture_output=True, text=True, cwd=REPO, timeout=900)
    return out, res.stdout + res.stderr if res.returncode else ""


def test_the_site_builds_without_a_warning(site: tuple[Path, str]) -> None:
    out, problems = site
    assert not problems, f"make docs fails:\n{problems[-6000:]}"
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    for page in ("site.html", "radiomics.html", "cli-reference.html", "api/index.html", "api/chexradi-radiomics.html",
                 "CHANGELOG.html", "DEVELOPERS.html"):
        assert page in pages, page
    cli_page = (out / "cli-reference.html").read_text()
    for command in ("extract", "iterate", "label-reports", "reportgen-train"):
        assert f'id="chexradi-{command}"' in cli_page, command


def test_every_public_name_has_an_entry(site: tuple[Path, str]) -> None:
    import conf
    from sphinx.util.inventory import InventoryFile

    out, problems = site
    assert not problems
    documented = conf.api_members()
    with open(out / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    entries = {name for kind, items in inventory.items() if kind.startswith("py:") for name in items}
    wanted = {f"{module}.{name}" for module, names in documented.items() for name in names}
    assert len(wanted) > 400 and wanted <= entries, sorted(wanted - entries)[:20]
    modules = set(conf.public_modules())
    assert modules <= entries, sorted(modules - entries)
