"""Static files: WhiteNoise's hashed, compressed storage, gzip only.

WhiteNoise adds Brotli whenever the `brotli` package happens to be importable (a dev tool pulls it
in), and Brotli at its top quality takes about a minute over the vendored libraries on this
2-core machine: `make run` and every test server would start that much slower, and only in the
venvs that have it. Gzip alone is what every client accepts; a CDN in front recompresses anyway.
"""

from __future__ import annotations

from typing import Any

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage


class GzipManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs: Any) -> Compressor:
        return Compressor(**{**kwargs, "use_brotli": False})
