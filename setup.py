"""Only what pyproject.toml cannot say: the wheel carries hls_templates/ and boards/.

They stay top-level folders of the checkout (the layout shows the flow: Python package, engine
templates, board files); a wheel carries them as package data under codesign/_data/, every file
of every folder. setuptools maps them with package_dir, which needs the package list here rather
than in a [tool.setuptools.packages] table. codesign/locations.py finds them in either place.
"""
from pathlib import Path

from setuptools import find_packages, setup

DATA = {"codesign._data.hls_templates": "hls_templates", "codesign._data.boards": "boards"}


def data_packages(package: str, folder: str) -> list[str]:
    """`package` and one (namespace) package per subfolder: setuptools ships a folder's files as
    the package data of the package it maps that folder to."""
    subs = sorted(p.relative_to(folder) for p in Path(folder).rglob("*")
                  if p.is_dir() and "__pycache__" not in p.parts)
    return [package] + [".".join((package, *p.parts)) for p in subs]


data = [p for package, folder in DATA.items() for p in data_packages(package, folder)]
setup(
    packages=find_packages(include=["codesign", "codesign.*"]) + data,
    package_dir=DATA,
    package_data={p: ["*"] for p in data},
)
