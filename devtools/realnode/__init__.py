"""A real Kubernetes node for tests, `make demo` and benchmarks: kubelet, containerd, CNI and kube-proxy.

Everything runs in a private network + mount namespace (see inside.py): the control plane it joins, the node's
components, the pods. Nothing touches the host's network, iptables rules, kernel settings or /var; teardown leaves
no process, mount or cgroup behind. ``python -m devtools.realnode up`` starts one and keeps it for exploring.
"""

from devtools.realnode.node import RealNode, RealNodeError, RealNodeUnavailable, preflight, running

__all__ = ["RealNode", "RealNodeError", "RealNodeUnavailable", "preflight", "running"]
