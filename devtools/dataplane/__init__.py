"""A real Gateway API data plane for tests and ``make demo``: the CRDs it needs and Traefik built from Go modules.

* :mod:`devtools.dataplane.crds`: Gateway API (standard channel) and Istio CRDs, read from their Go module zips
  (the same files their projects release) and installed into the test API server.
* :mod:`devtools.dataplane.traefik`: the Traefik binary, built from the wrapper module ``hack/traefik``.
* :mod:`devtools.dataplane.harness`: Traefik out of cluster plus sample-app backends inside a network namespace
  the run creates.
"""
