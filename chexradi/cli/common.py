"""What every ``chexradi`` command shares: the group, exit-code exceptions, logging, ``--setting``
parsing, the scheduler option. The choices commands offer come from :mod:`chexradi.names`
(torch-free), so ``--help`` imports neither torch nor numba.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import click


__all__ = ["cli", "ConfigError", "CaseFailed", "CONTEXT", "parse_setting", "settings_callback",
           "scheduler_callback", "setup_logging"]

class ConfigError(click.ClickException):
    """Invalid settings, parameter file, cases file or output path: exit code 2, message only."""

    exit_code = 2


class CaseFailed(click.ClickException):
    """The single case could not be processed: exit code 1, message only."""

    exit_code = 1


class _ClickHandler(logging.Handler):
    """Log records to the current stderr (works under click's test runner too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(verbose: int) -> None:
    """Send the `chexradi` logger to stderr for this invocation; undone when the command ends."""
    log = logging.getLogger("chexradi")
    handler = _ClickHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous = log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG)

    def restore() -> None:
        log.removeHandler(handler)
        log.setLevel(previous)

    click.get_current_context().call_on_close(restore)


# ------------------------------------------------------------------------------------------------
# --setting NAME:VALUE
# ------------------------------------------------------------------------------------------------
def parse_setting(item: str) -> tuple[str, Any]:
    """Parse ``NAME:VALUE``; the value is read as a YAML scalar, list or mapping.

    ``binWidth:10`` -> ("binWidth", 10); ``force2D:true`` -> True;
    ``distances:[1,2]`` -> [1, 2]; ``binCount:null`` -> None; ``binWidth:1e1`` -> 10.0.

    Raises
    ------
    ValueError
        No colon, an empty name, or a value that is not valid YAML.
    """
    import yaml

    name, sep, raw = item.partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{item!r} is not NAME:VALUE; write e.g. binWidth:10, force2D:true or distances:[1,2].")
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        raise ValueError(f"{item!r}: the value {raw!r} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if isinstance(value, str):  # YAML 1.1 reads '1e1' as text: accept plain numbers anyway
        try:
            num = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(num):
                value = num
    return name, value


def settings_callback(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        try:
            name, value = parse_setting(item)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
        out[name] = value
    return out


# ------------------------------------------------------------------------------------------------
# the group
# ------------------------------------------------------------------------------------------------
#: The click context settings every command shares (``-h`` as ``--help``, help text 100 columns wide).
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def scheduler_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ..radiomics.dask_backend import parse_scheduler

    try:
        kind, address = parse_scheduler(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a scheduler; use processes, dask, or dask:ADDRESS (e.g. "
                                 "dask:tcp://10.0.0.5:8786).") from None
    return kind if address is None else f"dask:{address}"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ..about import version_lines

    click.echo(version_lines())
    ctx.exit()


@click.group(context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print chexradi's version and those of its dependencies and extras, then exit.")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v: info, -vv: debug).")
def cli(verbose: int) -> None:
    """chexradi: radiomics with PyRadiomics' numbers, for the ChexRadiNet loop.

    \b
    Examples:
      chexradi extract image.nrrd mask.nrrd
      chexradi extract --batch cases.csv --out features.csv --jobs 4
      chexradi heatmap run/best.pt cxr.png --out heatmaps
      chexradi iterate --data phantom --model resnet18_ta --out runs/phantom
      chexradi evaluate runs/phantom

    Run `chexradi COMMAND --help` for a command's options.
    """
    setup_logging(verbose)
