"""Trichoscopy image analysis: hair count, shaft thickness and density, proven on phantom truth.

The Python API (tables with the CSV columns)::

    from pipeline import analyze_image, analyze_folder, compare
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tricho-pipeline")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

from pipeline.settings import Settings  # noqa: E402

_API = ("analyze_image", "analyze_folder", "compare", "ImageAnalysis", "FolderAnalysis", "CourseComparison")
__all__ = ["Settings", "__version__", *_API]


def __getattr__(name: str):
    """The API functions, imported on first use (``import pipeline`` stays light)."""
    if name in _API:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
