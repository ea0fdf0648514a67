"""The real test node's configuration files, as pure functions of the run's paths (no I/O here).

Every path a component would default to on the host (/var/lib/containerd, /etc/cni/net.d, /opt/cni/bin, ...) is
pointed into the run's folder; what cannot be pointed (kubelet's device-plugin folder, libcni's cache) lands on the
overlays the namespace puts over /var/lib (see inside.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: The node's addresses inside its network namespace. 10.99.0.254 does not exist: the default route only gives
#: ClusterIP traffic a route so that kube-proxy's DNAT can rewrite it; nothing leaves the namespace.
NODE_NAME = "lanes-node"
NODE_IP = "10.99.0.1"
NODE_PREFIX = 24
GATEWAY_IP = "10.99.0.254"
POD_CIDR = "10.88.0.0/16"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
#: The cluster DNS (devtools/realnode/coredns.py): the ``kube-dns`` Service's fixed ClusterIP, in the low band of
#: the Service CIDR (devtools.controlplane.cluster.SERVICE_CIDR, 10.0.0.0/24) that the API server keeps for
#: static addresses, like kubeadm's 10.96.0.10 in 10.96.0.0/12.
CLUSTER_DNS_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"

#: Kernel settings the kubelet sets at start unless already so (pkg/kubelet/cm setupKernelTunables): the mount
#: namespace shows it read-only files holding exactly these values, so it never writes the host's.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@dataclass(frozen=True)
class NodePaths:
    """Where one run keeps its node's files; everything is under ``workdir``."""

    workdir: Path

    @property
    def containerd_dir(self) -> Path:
        return self.workdir / "containerd"

    @property
    def containerd_config(self) -> Path:
        return self.containerd_dir / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.workdir / "cni" / "net.d"

    @property
    def kubelet_dir(self) -> Path:
        return self.workdir / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.kubelet_dir / "config.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.kubelet_dir / "kubeconfig"

    @property
    def kube_proxy_config(self) -> Path:
        return self.workdir / "kube-proxy" / "config.yaml"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def resolv_conf(self) -> Path:
        return self.workdir / "resolv.conf"


def containerd_config(paths: NodePaths, runc: Path, cni_bin: Path, sandbox_image: str) -> str:
    """containerd 2.x (config version 3). ``restrict_oom_score_adj``: this machine lacks CAP_SYS_RESOURCE, so runc
    may not lower a container's oom_score_adj below its own; without it every sandbox fails to start."""
    root = paths.containerd_dir
    return f"""version = 3
root = {json.dumps(str(root / "root"))}
state = "/run/containerd"

imports = []

[grpc]
  address = {json.dumps(CONTAINERD_SOCKET)}

[plugins.'io.containerd.internal.v1.opt']
  path = {json.dumps(str(root / "opt"))}

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = {json.dumps(sandbox_image)}

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = {json.dumps(str(runc))}
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [{json.dumps(str(cni_bin))}]
    conf_dir = {json.dumps(str(paths.cni_conf_dir))}
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
"""


def cni_conflist(paths: NodePaths) -> str:
    """A bridge with host-local IPAM; no masquerade (nothing leaves the namespace), kube-proxy adds its own."""
    config = {
        "cniVersion": "1.0.0",
        "name": "lanes",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.workdir / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(config, indent=2)


def kubelet_config(paths: NodePaths, cgroup_root: str, cluster_dns: tuple[str, ...] = ()) -> str:
    """KubeletConfiguration (JSON is YAML). cgroup v1 with cgroupfs (``failCgroupV1: false`` or 1.37 refuses to
    start); pods under the run's own ``cgroupRoot`` so teardown removes exactly that tree; anonymous, always-allow
    kubelet API (the namespace is private: the API server reaches it for logs and exec).

    ``cluster_dns``: the nameservers of ``dnsPolicy: ClusterFirst`` pods (the kube-dns ClusterIP), set only when
    the node runs CoreDNS; without it such pods fall back to the node's resolv.conf (nothing listens there)."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "failSwapOn": False,
        "resolvConf": str(paths.resolv_conf),
        "clusterDomain": CLUSTER_DOMAIN,
        "volumePluginDir": str(paths.kubelet_dir / "volume-plugins"),
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "protectKernelDefaults": False,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
        "logging": {"format": "text"},
    }
    if cluster_dns:
        config["clusterDNS"] = list(cluster_dns)
    return json.dumps(config, indent=2)


def kube_proxy_config(kubeconfig: Path) -> str:
    """iptables mode in the node namespace. conntrack sizing is left alone (0): nf_conntrack_max is global."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return json.dumps(config, indent=2)


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "realnode", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "realnode", "context": {"cluster": "realnode", "user": user}}],
        "current-context": "realnode",
    }
    return json.dumps(config, indent=2)
