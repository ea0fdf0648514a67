"""The project's container images, built here without a registry or a Docker daemon (contract #3).

``ensure_images()`` returns ``{"helper", "webhook", "sample-app"} -> Image`` (``.ref`` such as
``localhost/lanes/helper:dev``, ``.archive`` an OCI archive that ``ctr -n k8s.io images import`` accepts), built
with Debian's buildah from Dockerfile.helper, Dockerfile.webhook and examples/sample-app/Dockerfile on a base image
made from Debian packages, and cached under ``~/.cache/lanes/images-*`` by a hash of their inputs.
``python -m devtools.images build`` does the same from a shell and prints what it does and how long it takes.
"""

from devtools.images.build import NAMES, NODE_IMAGES, Image, cached, ensure_images
from devtools.images.buildah import ImageError

__all__ = ["NAMES", "NODE_IMAGES", "Image", "ImageError", "cached", "ensure_images"]
