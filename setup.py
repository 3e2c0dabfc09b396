"""Build of the one compiled part: spatial/_clipper (Clipper2, loaded through ctypes).

Everything else about the package is in pyproject.toml; setuptools reads both.
"""

from setuptools import Extension, setup

CLIPPER2 = "third_party/clipper2"

setup(
    ext_modules=[
        Extension(
            # A plain shared library, not a Python module: spatial/clip.py loads it with
            # ctypes, which releases the GIL for the call (threads split a batch).
            "spatial._clipper",
            sources=[
                "spatial/_clipper.cpp",
                f"{CLIPPER2}/src/clipper.engine.cpp",
            ],
            include_dirs=[f"{CLIPPER2}/include"],
            language="c++",
            # -pthread: the strips of a difference run on threads of their own.
            extra_compile_args=["-std=c++17", "-O2", "-pthread"],
            extra_link_args=["-pthread"],
        )
    ]
)
