"""Build the vendored front-end assets from ``node_modules``.

The npm packages pinned in ``package.json`` / ``package-lock.json`` are the only
source of front-end code: nothing is fetched from a CDN at run time. After
``npm ci`` this module copies what the site serves into
``src/smartlondon/web/static/vendor/`` (git-ignored, rebuilt by ``make``) and
compiles ``scss/app.scss`` with the Dart Sass CLI::

    npm ci --no-audit --no-fund
    python -m smartlondon.web.assets            # repository root from the module path or cwd
    python -m smartlondon.web.assets --root DIR

Layout of the output::

    static/vendor/app.css                        GOV.UK Frontend + app styles (system fonts)
    static/vendor/govuk/govuk-frontend.min.js    ES module bundle (+ .map)
    static/vendor/govuk/assets/images/           non-GOV.UK-branded images only (currently none)
    static/vendor/leaflet/                       leaflet.js, leaflet.css, images/
    static/vendor/swagger-ui/                    swagger-ui.css, swagger-ui-bundle.js, swagger-ui-standalone-preset.js

GOV.UK Frontend's fonts (GDS Transport) and its crown-bearing images (favicons,
app icons, crest, Open Graph image, web manifest) are reserved for GOV.UK and
are deliberately not copied: the site uses ``static/favicon.svg`` instead.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["AssetBuildError", "build_assets", "compile_css", "find_root", "main"]

WEB_DIR_IN_REPO = Path("src/smartlondon/web")
SCSS_ENTRY = "scss/app.scss"

#: GOV.UK Frontend images that show the crown / GOV.UK branding (never copied).
GOVUK_RESERVED_IMAGES = frozenset(
    {
        "favicon.ico",
        "favicon.svg",
        "govuk-crest.svg",
        "govuk-icon-180.png",
        "govuk-icon-192.png",
        "govuk-icon-512.png",
        "govuk-icon-mask.svg",
        "govuk-opengraph-image.png",
    }
)

LEAFLET_FILES = ("leaflet.js", "leaflet.css")
SWAGGER_UI_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")


class AssetBuildError(RuntimeError):
    """Raised when the assets cannot be built (missing node_modules, Sass error...)."""


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise AssetBuildError(
            f"{what} not found at {path}. Run `npm ci --no-audit --no-fund` in the repository root first."
        )
    return path


def _node_modules(root: Path) -> Path:
    node_modules = root / "node_modules"
    if not node_modules.is_dir():
        raise AssetBuildError(
            f"{node_modules} does not exist: run npm ci first "
            "(`npm ci --no-audit --no-fund` in the repository root), then re-run "
            "`python -m smartlondon.web.assets`."
        )
    return node_modules


def _is_reserved_govuk_image(name: str) -> bool:
    return name in GOVUK_RESERVED_IMAGES or name.startswith(("govuk-", "favicon"))


def _copy_file(src: Path, dest_dir: Path) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest_dir / src.name)


def _copy_govuk(node_modules: Path, vendor: Path) -> None:
    dist = _require(node_modules / "govuk-frontend" / "dist" / "govuk", "govuk-frontend")
    out = vendor / "govuk"
    _copy_file(_require(dist / "govuk-frontend.min.js", "govuk-frontend.min.js"), out)
    source_map = dist / "govuk-frontend.min.js.map"
    if source_map.exists():
        _copy_file(source_map, out)
    images_out = out / "assets" / "images"
    images_out.mkdir(parents=True, exist_ok=True)
    images = dist / "assets" / "images"
    if images.is_dir():
        for image in sorted(images.iterdir()):
            if image.is_file() and not _is_reserved_govuk_image(image.name):
                _copy_file(image, images_out)
    # Fonts (GDS Transport) and manifest.json (GOV.UK icons) are intentionally skipped.


def _copy_leaflet(node_modules: Path, vendor: Path) -> None:
    dist = _require(node_modules / "leaflet" / "dist", "leaflet")
    out = vendor / "leaflet"
    for name in LEAFLET_FILES:
        _copy_file(_require(dist / name, f"leaflet/dist/{name}"), out)
    shutil.copytree(_require(dist / "images", "leaflet/dist/images"), out / "images", dirs_exist_ok=True)


def _copy_swagger_ui(node_modules: Path, vendor: Path) -> None:
    dist = _require(node_modules / "swagger-ui-dist", "swagger-ui-dist")
    out = vendor / "swagger-ui"
    for name in SWAGGER_UI_FILES:
        _copy_file(_require(dist / name, f"swagger-ui-dist/{name}"), out)


def compile_css(root: Path, output: Path) -> Path:
    """Compile ``app.scss`` to ``output`` (compressed, no source map) with node_modules/.bin/sass."""
    root = Path(root).resolve()
    node_modules = _node_modules(root)
    sass = node_modules / ".bin" / ("sass.cmd" if sys.platform == "win32" else "sass")
    _require(sass, "The Sass CLI (devDependency `sass`)")
    entry = _require(root / WEB_DIR_IN_REPO / SCSS_ENTRY, "app.scss")
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(sass),
        "--style=compressed",
        "--no-source-map",
        "--no-error-css",
        f"--load-path={node_modules}",
        str(entry),
        str(output),
    ]
    try:
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    except OSError as exc:  # e.g. `node` not on PATH
        raise AssetBuildError(f"Could not run {sass}: {exc}. Is Node.js installed?") from exc
    if result.returncode != 0:
        raise AssetBuildError(f"Sass failed to compile {entry}:\n{result.stderr or result.stdout}")
    if result.stderr.strip():  # deprecation warnings and the like
        print(result.stderr.rstrip(), file=sys.stderr)
    css = output.read_text(encoding="utf-8")
    if "GDS Transport" in css:
        raise AssetBuildError(f"{output} references the GDS Transport font, which is reserved for GOV.UK.")
    return output


def build_assets(root: Path) -> None:
    """Rebuild ``src/smartlondon/web/static/vendor`` from ``root/node_modules``."""
    root = Path(root).resolve()
    node_modules = _node_modules(root)
    web_dir = root / WEB_DIR_IN_REPO
    if not web_dir.is_dir():
        raise AssetBuildError(f"{web_dir} does not exist: is {root} the smartlondon repository root?")
    vendor = web_dir / "static" / "vendor"
    # Build into a scratch directory inside node_modules (git-ignored, same file
    # system) and swap it in only once everything succeeded.
    staging = Path(tempfile.mkdtemp(prefix=".smartlondon-vendor-", dir=node_modules))
    try:
        _copy_govuk(node_modules, staging)
        _copy_leaflet(node_modules, staging)
        _copy_swagger_ui(node_modules, staging)
        compile_css(root, staging / "app.css")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)  # mkdtemp creates it 0700
    if vendor.exists():
        shutil.rmtree(vendor)
    vendor.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(vendor))


def find_root(start: Path | None = None) -> Path:
    """The repository root: derived from this module's path, else the current directory."""
    here = Path(__file__).resolve()
    candidates = [here.parents[3]] if len(here.parents) > 3 else []
    candidates.append(Path(start or Path.cwd()).resolve())
    for candidate in candidates:
        if (candidate / "package.json").is_file() and (candidate / WEB_DIR_IN_REPO).is_dir():
            return candidate
    return candidates[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smartlondon.web.assets",
        description="Copy GOV.UK Frontend, Leaflet and Swagger UI from node_modules and compile app.scss.",
    )
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: auto-detected)")
    args = parser.parse_args(argv)
    root = args.root.resolve() if args.root else find_root()
    try:
        build_assets(root)
    except AssetBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Built front-end assets into {root / WEB_DIR_IN_REPO / 'static' / 'vendor'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
