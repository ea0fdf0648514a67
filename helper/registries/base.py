"""Service registries the agent deregisters from when the pod starts going offline.

Kubernetes Services need no call: when the pod is deleted the EndpointSlice controller marks its endpoints
terminating and not ready, which kube-proxy, meshes and ingress controllers follow (the agent keeps /ready at 200
during the drain so they stay *serving*, see registries/kubernetes.py). Apps that
also register elsewhere (Nacos, Consul, Eureka, a Dubbo registry) need an explicit deregistration; that is what
this interface is for. A registry is named in ``LANES_REGISTRIES`` (default ``kubernetes``); names other than the
built-ins are looked up as Python entry points in the group ``lanes.registries``, whose object is called with the
agent's configuration and returns a :class:`Registry`. Third-party registries thus ship as their own small package
installed into a derived helper image, without changes here.
"""

from __future__ import annotations

from collections.abc import Callable

from helper.config import AgentConfig
from helper.env import REGISTRIES, ConfigError
from helper.registries.kubernetes import KubernetesRegistry

ENTRY_POINT_GROUP = "lanes.registries"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol, TypeGuard
else:
    Protocol = object  # the protocols document the interface and type-check it; run time checks methods below


class Registry(Protocol):
    """Something that routes traffic to this pod and must be told to stop before the drain."""

    name: str

    async def deregister(self) -> str:
        """Remove this pod; return a one-line description of what was done. Raise on failure.

        Called once per pod termination, bounded in time by the agent (the drain, at least one second), and
        cancelled when that time is up: implementations must not hold the drain hostage.
        """
        ...


class OnlineRegistry(Registry, Protocol):
    """A registry the agent also puts the pod *into* (helper/registries/online.py drives these calls).

    ``hold()`` runs from the agent's start until the pod is ready and past its register delay (e.g. keeping an
    instance the app registered itself out of service); ``register(fraction)`` puts the pod in service at that
    fraction of its full weight (raise to be retried); ``set_weight(fraction)`` follows the warm-up ramp.
    """

    async def hold(self) -> None: ...

    async def register(self, fraction: float) -> str: ...

    async def set_weight(self, fraction: float) -> None: ...


def _nacos(config: AgentConfig) -> Registry:
    from helper.registries import nacos  # imported only when configured: it costs memory otherwise

    return nacos.from_config(config)


ONLINE_METHODS = ("hold", "register", "set_weight")


def is_registry(candidate: object) -> TypeGuard[Registry]:
    return callable(getattr(candidate, "deregister", None))


def is_online(candidate: object) -> TypeGuard[OnlineRegistry]:
    """An :class:`OnlineRegistry`: it has every one of :data:`ONLINE_METHODS` besides ``deregister``."""
    return is_registry(candidate) and all(callable(getattr(candidate, name, None)) for name in ONLINE_METHODS)


RegistryFactory = Callable[[AgentConfig], Registry]
BUILTIN: dict[str, RegistryFactory] = {"kubernetes": lambda _config: KubernetesRegistry(), "nacos": _nacos}


def _from_entry_point(name: str, config: AgentConfig) -> Registry:
    from importlib.metadata import entry_points  # costly import; only for third-party registries

    found = [point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name == name]
    if not found:
        known = ", ".join(sorted(BUILTIN))
        raise ConfigError(
            f"{REGISTRIES}: unknown registry {name!r}: built-in are {known}; others need an entry point"
            f" in group {ENTRY_POINT_GROUP}"
        )
    try:
        factory = found[0].load()
        registry = factory(config)
    except Exception as error:
        raise ConfigError(f"{REGISTRIES}: registry {name!r} failed to load: {error!r}") from None
    if not is_registry(registry):
        raise ConfigError(f"{REGISTRIES}: registry {name!r} does not implement deregister()")
    from helper.registries.asyncio_bridge import bridge  # plugins are written for asyncio: see there

    return bridge(registry)


def load(names: tuple[str, ...], config: AgentConfig) -> list[Registry]:
    """Instantiate the configured registries; an unknown or broken one is a configuration error (exit 2)."""
    return [BUILTIN[name](config) if name in BUILTIN else _from_entry_point(name, config) for name in names]
