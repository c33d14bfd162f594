"""The default spaces and targets files, one copy each: ``configs/`` links to them in a checkout,
and an installed revcli reads them here when it runs outside one."""

from __future__ import annotations

from importlib import resources


def text(name: str) -> str:
    """The content of the default file ``name`` (``spaces.toml``, ``targets.toml``)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
