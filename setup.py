"""Build the one compiled module and ship the example config; the rest is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """Copy config.example.toml (kept at the repository's top level) into the `cli` package,
    where `timeline-bot config init` finds it in an installed wheel."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "cli" / "config.example.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).parent / "config.example.toml", target)


setup(
    cmdclass={"build_py": BuildPy},
    ext_modules=[
        # The query tokeniser's fast path (timeline/query/_scan.c). Optional: without a C
        # compiler the install goes on, and normalise.py uses its pure-Python reference path.
        Extension(
            "timeline.query._scan",
            sources=["timeline/query/_scan.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
    ],
)
