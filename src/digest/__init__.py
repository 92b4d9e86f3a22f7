"""digest: a weekly email digest of personal blogs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("digest")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
