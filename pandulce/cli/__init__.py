"""The `pandulce` command line."""

from __future__ import annotations

import logging
import os

import click

from pandulce import __version__


def configure_logging(verbose: bool = False) -> None:
    """Configure logging once for this process: INFO by default, DEBUG with --verbose."""
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("PANDULCE_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # TorchInductor looks for a CUDA toolkit even on CPU-only machines and warns when there is none.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # Alembic logs one INFO line per autogenerate plugin when it is first imported, on every command.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pandulce")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Train pan dulce classifiers and classify bakery photos."""
    configure_logging(verbose)


def _register_commands() -> None:
    from pandulce.cli import ml, queue, web

    ml.register(main)
    queue.register(main)
    web.register(main)


_register_commands()
