"""A real, local Kubernetes control plane for tests and ``make demo``.

The same model as controller-runtime's envtest: etcd, kube-apiserver and (optionally) kube-controller-manager,
kube-scheduler and kwok run as ordinary processes on loopback ports, built from their Go modules into
``~/.cache/lanes/<version>/bin`` (or taken from ``KUBEBUILDER_ASSETS``). Nothing here is a fake: pods are
validated by the real API server and admitted through real webhook registrations.
"""

from devtools.controlplane.binaries import BinaryError, ensure_binaries
from devtools.controlplane.cluster import ControlPlane, ControlPlaneError

__all__ = ["BinaryError", "ControlPlane", "ControlPlaneError", "ensure_binaries"]
