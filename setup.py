"""Only the compiled hot loops of `wit queries` and `wit crawl`; everything else is declared in
pyproject.toml.

The extensions are optional: where one cannot be built, its stage uses the Python path (same
results, slower) and logs a warning saying so.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wit_builder.queries._hotloop", ["wit_builder/queries/_hotloop.c"],
                             depends=["wit_builder/core/siphash.h", "wit_builder/core/words.h"],
                             optional=True),
                   Extension("wit_builder.crawl._crawlfast", ["wit_builder/crawl/_crawlfast.c"],
                             depends=["wit_builder/core/siphash.h", "wit_builder/core/words.h"],
                             optional=True),
                   # products rounded before each sum, as OpenCV's: no fused multiply-add
                   Extension("wit_builder.crawl.download._area",
                             ["wit_builder/crawl/download/_area.c"],
                             extra_compile_args=["-ffp-contract=off"], optional=True)])
