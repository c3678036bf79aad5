"""GX Data Docs that open offline: the scripts and styles their pages load from CDNs, shipped.

`python -m bindlab.datadocs install` (run by `make`) fetches each pinned package from the npm
registry (`npm pack`: the package's own tarball, no dependency tree) and keeps only the files the
pages load, under the virtual environment's share/ folder. `make_offline(docs)` then copies them into
a Data Docs site's static/vendor/ and points every page at them with relative links, so the pages
open styled from file:// and from the loopback file server alike. Where the assets are not
installed (no npm), the pages keep their CDN links and validation says so once; nothing fails.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bindlab.io import writing

# CDN address in GX 1.x's page templates -> (npm package@version, file inside the package).
# The versions are the ones the templates name; "vega@5" and friends float on the CDN, pinned here.
ASSETS: dict[str, tuple[str, str]] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        ("bootstrap@4.3.1", "dist/css/bootstrap.min.css"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        ("bootstrap@4.3.1", "dist/js/bootstrap.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        ("popper.js@1.12.9", "dist/umd/popper.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        ("bootstrap-table@1.19.1", "dist/bootstrap-table.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        ("bootstrap-table@1.19.1", "dist/bootstrap-table.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        ("bootstrap-table@1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        ("bootstrap-table@1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        ("bootstrap-table@1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        ("bootstrap-datepicker@1.9.0", "dist/css/bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        ("bootstrap-datepicker@1.9.0", "dist/js/bootstrap-datepicker.min.js"),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega@5.33.1", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite@5.23.0", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed@6.29.0", "build/vega-embed.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        ("@fortawesome/fontawesome-free@6.6.0", "css/all.min.css"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        ("@forevolve/bootstrap-dark@1.1.0", "dist/css/bootstrap-prefers-dark.css"),
}
# Files a stylesheet above loads relative to itself (Font Awesome's fonts).
EXTRA: dict[str, list[str]] = {"@fortawesome/fontawesome-free@6.6.0": [
    f"webfonts/fa-{w}.woff2" for w in ("brands-400", "regular-400", "solid-900", "v4compatibility")]}
# GX's logo on the page comes from its own web assets; the site's static/ has the same picture.
LOGOS = re.compile(r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/[a-z_-]+\.png(\?d=[0-9TZ.]+)?")
LOCAL_LOGO = "static/images/logo-long.png"
# SRI and CORS attributes: a file:// page cannot fetch with CORS, so the browser would refuse the
# script; the local copies are the registry's bytes (npm checks each tarball's integrity).
STATIC = re.compile(r'(href|src)="(?:\./|(?:\.\./)+)static/')
SRI = re.compile(r'\s+(integrity="[^"]*"|crossorigin="[^"]*")')


def assets_dir() -> Path:
    """Where `install` puts the assets: $BINDLAB_DATADOCS_ASSETS, else the environment's share/."""
    return Path(os.environ.get("BINDLAB_DATADOCS_ASSETS") or Path(sys.prefix) / "share" / "bindlab" / "datadocs")


def _folder(spec: str) -> str:
    """'@fortawesome/fontawesome-free@6.6.0' -> 'fontawesome-free-6.6.0' (one folder per package)."""
    name, version = spec.rsplit("@", 1)
    return f"{name.rsplit('/', 1)[-1]}-{version}"


def local_path(url: str) -> str:
    spec, inner = ASSETS[url]
    return f"{_folder(spec)}/{inner}"


def wanted() -> dict[str, set[str]]:
    files: dict[str, set[str]] = {}
    for spec, inner in ASSETS.values():
        files.setdefault(spec, set()).add(inner)
    for spec, extra in EXTRA.items():
        files[spec].update(extra)
    return files


def installed(root: Path | None = None) -> bool:
    root = root or assets_dir()
    return all((root / _folder(spec) / f).is_file() for spec, files in wanted().items() for f in files)


def install(root: Path | None = None) -> Path:
    """Fetch every pinned package with `npm pack` and keep the files the pages load. Built aside and
    moved into place, so a failed fetch leaves no half-filled folder."""
    root = root or assets_dir()
    if installed(root):
        return root
    if shutil.which("npm") is None:
        raise RuntimeError("npm not found: install Node.js's npm to ship the Data Docs assets")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        tmp = Path(tmp)
        build = tmp / "assets"
        for spec, files in sorted(wanted().items()):
            r = subprocess.run(["npm", "pack", "--silent", spec, "--pack-destination", str(tmp)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"npm pack {spec} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            with tarfile.open(tmp / r.stdout.strip().splitlines()[-1]) as tar:
                for f in sorted(files):
                    member = tar.extractfile(f"package/{f}")
                    if member is None:
                        raise RuntimeError(f"{spec} has no file {f}")
                    out = build / _folder(spec) / f
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(member.read())
        if root.exists():
            shutil.rmtree(root)
        build.rename(root)
    return root


def make_offline(docs: Path, assets: Path | None = None) -> bool:
    """Copy the assets into `docs`/static/vendor and rewrite every page's CDN links to them.
    -> False (pages untouched) when the assets are not installed."""
    assets = assets or assets_dir()
    if not installed(assets):
        return False
    vendor = Path(docs) / "static" / "vendor"
    for spec, files in wanted().items():
        for f in files:
            out = vendor / _folder(spec) / f
            with writing(out):
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(assets / _folder(spec) / f, out)
    for page in Path(docs).rglob("*.html"):
        up = os.path.relpath(docs, page.parent).replace(os.sep, "/")
        html = page.read_text()
        for url in sorted(ASSETS, key=len, reverse=True):  # longest first: no URL is a prefix of a later one
            html = html.replace(f'"{url}"', f'"{up}/static/vendor/{local_path(url)}"')
        html = LOGOS.sub(f"{up}/{LOCAL_LOGO}", html)
        # GX writes some links to the site's static/ one folder short (the validation pages' favicon)
        html = STATIC.sub(lambda m: f'{m.group(1)}="{up}/static/', html)
        html = re.sub(r"<(script|link)\b[^>]*>", lambda m: SRI.sub("", m.group(0)), html)
        with writing(page):
            page.write_text(html)
    return True


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args != ["install"]:
        print("usage: python -m bindlab.datadocs install", file=sys.stderr)
        return 2
    try:
        root = install()
    except RuntimeError as e:  # the study runs without them; its Data Docs then need a network
        print(f"Data Docs assets not installed: {e}", file=sys.stderr)
        return 0
    print(f"Data Docs assets: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
