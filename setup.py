"""Build the one compiled module; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
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
