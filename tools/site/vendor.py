"""Mermaid for the course site, served from the site's own files (no CDN).

The site renders ```mermaid blocks with mkdocs-material, which loads mermaid.js from a CDN unless
a global `mermaid` is already defined. CI and many learners' machines cannot reach a CDN, so the
build ships mermaid itself: this module fetches one pinned release from the npm registry with
`npm pack` (npm checks the tarball against the registry's integrity hash), checks the pinned
sha512 of the tarball and the sha256 of the one file the site needs, and keeps it in an ignored
folder (`.vendor/`). Nothing large is committed.

Why 11.17.2: mkdocs-material 9.8 asks its CDN for `mermaid@11`, i.e. it is written against the
API of mermaid 11 (`initialize`, `render` returning the SVG text); 11.17.2 is the newest 11.x.
Mermaid 12 changed the major version and is not what the theme was built for. To move the pin,
change the three constants below together (`npm pack mermaid@X --json` prints the integrity).

    python tools/site/vendor.py          # fetch (no-op when present and intact)
    python tools/site/vendor.py --check  # exit 1 when missing or altered
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MERMAID_VERSION = "11.17.2"
# `npm pack mermaid@11.17.2 --json` -> integrity (sha512 of the .tgz, base64)
MERMAID_TGZ_SHA512 = ("sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7Lo"
                      "aRQxULMa80/qt5gHO73aCleBBg==")
# sha256 of package/dist/mermaid.min.js in that tarball (the self-contained browser build that
# defines the global `mermaid`)
MERMAID_JS_SHA256 = "581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8"

VENDOR_DIR = ROOT / ".vendor" / f"mermaid-{MERMAID_VERSION}"
MERMAID_JS = VENDOR_DIR / "mermaid.min.js"
MERMAID_LICENSE = VENDOR_DIR / "LICENSE"


class VendorError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mermaid_ok() -> bool:
    """True when the pinned mermaid file is present and unaltered."""
    return MERMAID_JS.is_file() and MERMAID_LICENSE.is_file() and \
        _sha256(MERMAID_JS) == MERMAID_JS_SHA256


def fetch_mermaid() -> Path:
    """Make sure `.vendor/mermaid-<version>/mermaid.min.js` is there; return its path."""
    if mermaid_ok():
        return MERMAID_JS
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError(
            f"the site needs mermaid {MERMAID_VERSION} in {VENDOR_DIR.relative_to(ROOT)}/ and "
            "fetches it with npm, which is not installed: install node and npm "
            "(Debian: apt-get install -y npm), then run `python tools/site/vendor.py`")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", f"mermaid@{MERMAID_VERSION}", "--json",
                               "--pack-destination", tmp],
                              capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise VendorError(f"`npm pack mermaid@{MERMAID_VERSION}` failed (is the npm "
                              f"registry reachable?):\n{proc.stderr.strip()[-2000:]}")
        tgz = Path(tmp) / f"mermaid-{MERMAID_VERSION}.tgz"
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if digest != MERMAID_TGZ_SHA512:
            raise VendorError(f"mermaid-{MERMAID_VERSION}.tgz has {digest}, the pin says "
                              f"{MERMAID_TGZ_SHA512}: refusing it")
        VENDOR_DIR.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tar:
            for member, dest in (("package/dist/mermaid.min.js", MERMAID_JS),
                                 ("package/LICENSE", MERMAID_LICENSE)):
                data = tar.extractfile(member)
                if data is None:
                    raise VendorError(f"{member} is missing from mermaid-{MERMAID_VERSION}.tgz")
                part = dest.with_suffix(dest.suffix + ".part")
                part.write_bytes(data.read())
                part.replace(dest)
    if not mermaid_ok():
        raise VendorError(f"{MERMAID_JS} does not have the pinned sha256 {MERMAID_JS_SHA256}")
    return MERMAID_JS


def main(argv: list[str]) -> int:
    if "--check" in argv:
        ok = mermaid_ok()
        print(json.dumps({"mermaid": MERMAID_VERSION, "path": str(MERMAID_JS), "ok": ok}))
        return 0 if ok else 1
    try:
        path = fetch_mermaid()
    except VendorError as exc:
        print(f"site: {exc}", file=sys.stderr)
        return 1
    print(f"site: mermaid {MERMAID_VERSION} in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
