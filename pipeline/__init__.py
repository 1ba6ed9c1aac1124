"""Trichoscopy image analysis: hair count, shaft thickness and density, proven on phantom truth."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tricho-pipeline")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

from pipeline.settings import Settings  # noqa: E402

__all__ = ["Settings", "__version__"]
