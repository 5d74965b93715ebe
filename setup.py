"""Build the optional C accelerator; all other metadata lives in pyproject.toml.

The extension is optional: where it cannot be compiled, txamqp091 runs on its
pure-Python codec with the same behaviour.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "txamqp091._speedups",
            ["txamqp091/_speedups.c"],
            optional=True,
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
            ],
        )
    ]
)
