"""Fetch Debian packages as data: ``apt-get download`` into a cache, unpack with ``dpkg-deb -x``.

Nothing is installed: the packages' files land under ``<cache_dir>/root/`` (e.g.
``<cache_dir>/root/usr/share/asterisk/sounds``). The synthetic corpus takes its text from such
packages (fortunes, gettext catalogs) and the real-speech set its audio and transcripts.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


class DebianPackageError(RuntimeError):
    """A Debian package could not be downloaded or unpacked; the message says what to do."""


def fetch_debian_packages(packages: Sequence[str], cache_dir: str | Path) -> Path:
    """Download and unpack ``packages`` (no install); return the unpacked root directory.

    A package already unpacked in the cache (marked by ``<cache_dir>/debs/<name>.unpacked``) is
    not fetched again, so repeated preparation runs work offline.

    Args:
        packages: Debian package names, e.g. ``["fortunes-min"]``.
        cache_dir: where ``debs/`` (the .deb files) and ``root/`` (their contents) go.

    Returns:
        ``<cache_dir>/root``.

    Raises:
        DebianPackageError: apt-get or dpkg-deb is missing, or a download failed (no network
            access to a Debian mirror, unknown package).
    """
    cache_dir = Path(cache_dir)
    debs_dir = cache_dir / "debs"
    root = cache_dir / "root"
    debs_dir.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    missing = [name for name in packages if not (debs_dir / f"{name}.unpacked").exists()]
    if not missing:
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DebianPackageError(
                f"'{tool}' not found: fetching the Debian packages {', '.join(missing)} needs apt-get and "
                "dpkg-deb (a Debian or Ubuntu machine). Alternatively copy the unpacked packages into "
                f"{root} and create {debs_dir}/<package>.unpacked for each."
            )
    logger.info("apt-get download %s (into %s)", " ".join(missing), debs_dir)
    result = subprocess.run(
        ["apt-get", "download", *missing], cwd=debs_dir, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise DebianPackageError(
            f"'apt-get download {' '.join(missing)}' failed (exit {result.returncode}); it needs access to "
            f"a Debian mirror and an up-to-date package list ('apt-get update').\n{result.stderr.strip()}"
        )
    for name in missing:
        debs = sorted(debs_dir.glob(f"{name}_*.deb"))
        if not debs:
            raise DebianPackageError(
                f"apt-get download reported success but no {name}_*.deb is in {debs_dir}"
            )
        # The newest download sorts last only by accident; take the most recent file instead.
        deb = max(debs, key=lambda path: path.stat().st_mtime)
        unpack = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True, check=False
        )
        if unpack.returncode != 0:
            raise DebianPackageError(f"'dpkg-deb -x {deb}' failed: {unpack.stderr.strip()}")
        (debs_dir / f"{name}.unpacked").write_text(deb.name + "\n")
    return root
