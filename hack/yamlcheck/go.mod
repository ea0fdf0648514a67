// Wrapper module of the test oracle for `lanes inject` output: kubectl's YAML reading (sigs.k8s.io/yaml), pinned
// to the versions kubectl v1.37.2 uses (see hack/controlplane/go.mod).
module lanes.io/hack/yamlcheck

go 1.26.0

require sigs.k8s.io/yaml v1.6.0

require go.yaml.in/yaml/v2 v2.4.4 // indirect
