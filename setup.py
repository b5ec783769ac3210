"""Ship the example config in the wheel; everything else is declared in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """Copy config.example.toml (kept at the repository's top level) into the `timeline.cli` package,
    where `timeline-bot config init` finds it in an installed wheel."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "timeline" / "cli" / "config.example.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).parent / "config.example.toml", target)


setup(cmdclass={"build_py": BuildPy})
