// The pod sandbox ("pause") program of the real test node: it only holds the pod's namespaces open and exits on
// SIGTERM/SIGINT, like registry.k8s.io/pause, built here because the node has no registry. No dependencies.
module lanes.io/hack/node/pause

go 1.26.0
