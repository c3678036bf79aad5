"""bindlab: the domain logic of the attribute-binding study (no Prefect, no DVC in here)."""
from bindlab.kernels import pin

__version__ = "0.1.0"

# Before any stage imports torch: the CPU kernels that make training's bytes the same on every
# x86-64 machine with AVX2 (bindlab/kernels.py).
pin()
