"""The one thing pyproject.toml cannot say: the GRU's optional C step
(charrnn/cells/_gru_step.c). optional=True: where no C compiler works, the
install goes on and charrnn runs the same maths as PyTorch ops."""

import sys

from setuptools import Extension, setup

# -fno-trapping-math lets gcc vectorize the kernels' clamps; it changes no result.
FLAGS = [] if sys.platform == "win32" else ["-O3", "-fno-trapping-math"]

setup(
    ext_modules=[
        Extension("charrnn.cells._gru_step", ["charrnn/cells/_gru_step.c"], extra_compile_args=FLAGS, optional=True)
    ]
)
