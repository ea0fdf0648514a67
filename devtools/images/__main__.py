"""``python -m devtools.images build [--force] [NAME ...]`` builds (or reuses) the images and prints, per image, its
name, archive, build time and sizes; ``python -m devtools.images list`` prints what is cached for the current
inputs without building anything."""

from __future__ import annotations

import argparse
import sys
import time

from devtools.images import NAMES, NODE_IMAGES, Image, ImageError, cached, ensure_images


def _row(image: Image) -> str:
    info = image.info
    size = info.get("image_bytes") or 0
    archive = info.get("archive_bytes") or image.archive.stat().st_size
    build = f"{info['build_s']}s" if "build_s" in info else "?"
    return (f"{image.name:<11} {image.ref:<32} build {build:>7}  image {int(size) / 1e6:>5.0f} MB  "
            f"archive {int(archive) / 1e6:>4.0f} MB  {image.archive}")


_NAMES_HELP = f"any of {', '.join(NAMES + NODE_IMAGES)} (default: {', '.join(NAMES)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.images", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build what is missing (or everything with --force)")
    build.add_argument("names", nargs="*", metavar="NAME", help=_NAMES_HELP)
    build.add_argument("--force", action="store_true", help="rebuild even if the archive for these inputs exists")
    listing = commands.add_parser("list", help="what is cached for the current inputs (builds nothing)")
    listing.add_argument("names", nargs="*", metavar="NAME", help=_NAMES_HELP)
    args = parser.parse_args(argv)
    names = tuple(args.names) or NAMES
    unknown = [n for n in names if n not in NAMES + NODE_IMAGES]
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}; choose from {', '.join(NAMES + NODE_IMAGES)}")
    started = time.monotonic()
    if args.command == "list":
        found = cached(names)
        for name in names:
            print(_row(found[name]) if name in found else f"{name:<11} not built for the current inputs")
        return 0 if len(found) == len(names) else 1
    try:
        built = ensure_images(names, force=args.force)
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for image in built.values():
        print(_row(image))
    print(f"({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
