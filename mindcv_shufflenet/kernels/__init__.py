"""Hand-written kernels used in place of MindSpore's where those are slow (see ``cpu_ops``)."""

from .cpu_ops import KernelBuildError, enabled, native_kernels, use_native_kernels

__all__ = ["KernelBuildError", "enabled", "native_kernels", "use_native_kernels"]
