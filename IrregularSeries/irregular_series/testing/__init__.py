"""Synthetic DICOM series written with pydicom: the built-in demo and the phantoms the tests use."""

from .synthetic import write_demo

__all__ = ["write_demo"]
