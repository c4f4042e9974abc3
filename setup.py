"""Only the compiled hot loop of `wit queries`; everything else is declared in pyproject.toml.

The extension is optional: where it cannot be built, `wit queries` uses its Python path (same
results, slower) and logs a warning saying so.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wit_builder.queries._hotloop", ["wit_builder/queries/_hotloop.c"],
                             optional=True)])
