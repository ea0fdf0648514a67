package main

// A port of the parts of webhook/mutation.py and webhook/resolve.py that the benchmark bodies exercise; see
// README.md for what is and is not ported. Names and values are the contract's (webhook/names.py).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	ownNamespace        = "lanes-system"
	labelInject         = "lanes.io/inject"
	labelLane           = "lanes.io/lane"
	labelApp            = "lanes.io/app"
	annLane             = "lanes.io/lane"
	annApp              = "lanes.io/app"
	annWarmup           = "lanes.io/warmup"
	annWarmupCurve      = "lanes.io/warmup-curve"
	annRegisterDelay    = "lanes.io/register-delay"
	annDrain            = "lanes.io/drain"
	annPort             = "lanes.io/port"
	annAgent            = "lanes.io/agent"
	annStatus           = "lanes.io/status"
	conditionRegistered = "lanes.io/registered"
	containerAgent      = "lanes-agent"
	agentPortName       = "lanes-agent"
	nonrootUID          = int64(65532)
	propagatorsKey      = "OTEL_PROPAGATORS"
	defaultGrace        = int64(30)
	statusVersion       = 1
	otelKey             = "OTEL_RESOURCE_ATTRIBUTES"
	otelLaneKey         = "lanes.lane"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// config is the resolved per-pod configuration (the subset of webhook.contract.config.LanesConfig that is ported).
type config struct {
	Lane            string  `json:"lane"`
	App             string  `json:"app"`
	TagHeader       string  `json:"tag_header"`
	Agent           bool    `json:"agent"`
	AgentPort       int32   `json:"agent_port"`
	AppPort         *int32  `json:"app_port"`
	Warmup          float64 `json:"warmup"`
	WarmupCurve     string  `json:"warmup_curve"`
	RegisterDelay   float64 `json:"register_delay"`
	Drain           float64 `json:"drain"`
	ShutdownBudget  float64 `json:"shutdown_budget"`
	HelperImage     string  `json:"helper_image"`
	ImagePullPolicy string  `json:"image_pull_policy"`
}

func (c *config) hash() string {
	raw, _ := json.Marshal(c)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])[:16]
}

func skipReason(pod *corev1.Pod, namespace string) string {
	switch {
	case namespace == ownNamespace:
		return "own-namespace"
	case strings.EqualFold(strings.TrimSpace(pod.Labels[labelInject]), "false"):
		return "opted-out"
	case pod.Spec.HostNetwork:
		return "hostNetwork"
	case pod.Spec.OS != nil && pod.Spec.OS.Name == corev1.Windows:
		return "windows"
	case len(pod.Spec.Containers) == 0:
		return "invalid-pod"
	}
	return ""
}

// seconds parses a Go-style duration ("90s", "2m") or bare seconds.
func seconds(text string) (float64, error) {
	text = strings.TrimSpace(text)
	if v, err := strconv.ParseFloat(text, 64); err == nil && v >= 0 {
		return v, nil
	}
	d, err := time.ParseDuration(text)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("not a duration")
	}
	return d.Seconds(), nil
}

func appName(pod *corev1.Pod) string {
	if v := pod.Annotations[annApp]; dnsLabel.MatchString(v) {
		return v
	}
	for _, key := range []string{"app.kubernetes.io/name", "app"} {
		if v := pod.Labels[key]; v != "" {
			return v
		}
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			name := ref.Name
			if hash := pod.Labels["pod-template-hash"]; ref.Kind == "ReplicaSet" && hash != "" {
				name = strings.TrimSuffix(name, "-"+hash)
			}
			return name
		}
	}
	return strings.TrimSuffix(pod.GenerateName, "-")
}

func resolve(pod *corev1.Pod) (*config, []string) {
	var warnings []string
	cfg := &config{
		Lane: "base", TagHeader: "x-lane", Agent: true, AgentPort: 15400, WarmupCurve: "linear", Drain: 10,
		ShutdownBudget: 15, HelperImage: "ghcr.io/lanes-io/lanes-helper:0.1.0", ImagePullPolicy: "IfNotPresent",
	}
	ann := pod.Annotations
	if v, ok := ann[annLane]; ok {
		if dnsLabel.MatchString(v) {
			cfg.Lane = v
		} else {
			warnings = append(warnings, fmt.Sprintf("lanes: %s=%q is not a DNS label; using %q", annLane, v, cfg.Lane))
		}
	}
	cfg.App = appName(pod)
	durations := []struct {
		key    string
		target *float64
	}{{annWarmup, &cfg.Warmup}, {annRegisterDelay, &cfg.RegisterDelay}, {annDrain, &cfg.Drain}}
	for _, d := range durations {
		if v, ok := ann[d.key]; ok {
			if s, err := seconds(v); err == nil {
				*d.target = s
			} else {
				warnings = append(warnings, fmt.Sprintf("lanes: %s=%q is not a duration; e.g. 30s", d.key, v))
			}
		}
	}
	if v, ok := ann[annWarmupCurve]; ok {
		v = strings.TrimSpace(v)
		if v == "linear" || strings.HasPrefix(v, "k=") || strings.HasPrefix(v, "aggression=") {
			cfg.WarmupCurve = v
		} else {
			warnings = append(warnings, fmt.Sprintf("lanes: %s=%q is not a curve; e.g. k=2", annWarmupCurve, v))
		}
	}
	if v, ok := ann[annAgent]; ok && strings.EqualFold(strings.TrimSpace(v), "false") {
		cfg.Agent = false
	}
	if v, ok := ann[annPort]; ok {
		if p, err := strconv.Atoi(v); err == nil && p > 0 && p < 65536 {
			port := int32(p)
			cfg.AppPort = &port
		}
	}
	if cfg.AppPort == nil && len(pod.Spec.Containers[0].Ports) > 0 {
		port := pod.Spec.Containers[0].Ports[0].ContainerPort
		cfg.AppPort = &port
	}
	return cfg, warnings
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

func appEnv(cfg *config) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "LANES_LANE", Value: cfg.Lane},
		{Name: "LANES_APP", Value: cfg.App},
		{Name: "LANES_TAG_HEADER", Value: cfg.TagHeader},
		fieldEnv("LANES_POD_NAME", "metadata.name"),
		fieldEnv("LANES_POD_NAMESPACE", "metadata.namespace"),
		fieldEnv("LANES_POD_IP", "status.podIP"),
	}
}

func formatSeconds(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func probe(path string, period, failures, timeout int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(agentPortName), Scheme: corev1.URISchemeHTTP}},
		PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: timeout, SuccessThreshold: 1,
	}
}

func agentContainer(cfg *config, readyPath, readyScheme string) corev1.Container {
	env := []corev1.EnvVar{{Name: "LANES_AGENT_PORT", Value: strconv.Itoa(int(cfg.AgentPort))}}
	if cfg.AppPort != nil {
		env = append(env, corev1.EnvVar{Name: "LANES_APP_PORT", Value: strconv.Itoa(int(*cfg.AppPort))})
	}
	if readyPath != "" {
		env = append(env,
			corev1.EnvVar{Name: "LANES_APP_READY_PATH", Value: readyPath},
			corev1.EnvVar{Name: "LANES_APP_READY_SCHEME", Value: readyScheme})
	}
	env = append(env,
		corev1.EnvVar{Name: "LANES_WARMUP", Value: formatSeconds(cfg.Warmup)},
		corev1.EnvVar{Name: "LANES_WARMUP_CURVE", Value: cfg.WarmupCurve},
		corev1.EnvVar{Name: "LANES_DRAIN", Value: formatSeconds(cfg.Drain)})
	for _, e := range appEnv(cfg) {
		if e.Name != "LANES_TAG_HEADER" {
			env = append(env, e)
		}
	}
	env = append(env, fieldEnv("LANES_POD_IPS", "status.podIPs"))
	always := corev1.ContainerRestartPolicyAlways
	yes, no := true, false
	return corev1.Container{
		Name:            containerAgent,
		Image:           cfg.HelperImage,
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		Args:            []string{"agent"},
		Env:             env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			// no runAsUser/runAsGroup by default: the image's numeric USER runs (Lanes' run_as_user setting)
			RunAsNonRoot: &yes, AllowPrivilegeEscalation: &no,
			Privileged: &no, ReadOnlyRootFilesystem: &yes,
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		RestartPolicy:            &always,
		Ports: []corev1.ContainerPort{
			{Name: agentPortName, ContainerPort: cfg.AgentPort, Protocol: corev1.ProtocolTCP}},
		StartupProbe:   probe("/healthz", 1, 30, 1),
		ReadinessProbe: probe("/ready", 1, 2, 1),
		LivenessProbe:  probe("/healthz", 10, 3, 2),
	}
}

// readinessHandover returns the app container's httpGet readiness probe (path, scheme) when it probes the app
// port, so the agent waits for that endpoint instead of the bare port.
func readinessHandover(pod *corev1.Pod, cfg *config) (string, string) {
	if !cfg.Agent || cfg.AppPort == nil {
		return "", ""
	}
	app := appContainer(pod, cfg)
	if app.ReadinessProbe == nil || app.ReadinessProbe.HTTPGet == nil {
		return "", ""
	}
	get := app.ReadinessProbe.HTTPGet
	port := int32(get.Port.IntValue())
	if get.Port.Type == intstr.String {
		port = 0
		for _, p := range app.Ports {
			if p.Name == get.Port.StrVal {
				port = p.ContainerPort
			}
		}
	}
	if port != *cfg.AppPort {
		return "", ""
	}
	path, scheme := get.Path, strings.ToUpper(string(get.Scheme))
	if path == "" {
		path = "/"
	}
	if scheme != "HTTPS" {
		scheme = "HTTP"
	}
	return path, scheme
}

type containerRecord struct {
	Otel           string   `json:"otel,omitempty"`
	Env            []string `json:"env,omitempty"`
	PreStop        string   `json:"preStop,omitempty"`
	ReadinessProbe string   `json:"readinessProbe,omitempty"`
}

// appContainer is the container declaring the app port, else the first one.
func appContainer(pod *corev1.Pod, cfg *config) *corev1.Container {
	app := &pod.Spec.Containers[0]
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if cfg.AppPort != nil && p.ContainerPort == *cfg.AppPort {
				app = &pod.Spec.Containers[i]
			}
		}
	}
	return app
}

// mutate injects Lanes into pod; it returns true (and changes nothing) when the pod is already injected with
// this configuration.
func mutate(pod *corev1.Pod, cfg *config, warnings *[]string) bool {
	hash := cfg.hash()
	if status, ok := pod.Annotations[annStatus]; ok {
		var previous struct {
			Version int    `json:"version"`
			Hash    string `json:"hash"`
		}
		if json.Unmarshal([]byte(status), &previous) == nil && previous.Version == statusVersion &&
			previous.Hash == hash {
			return true
		}
	}
	injected := map[string]any{}

	// labels
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[labelLane] = cfg.Lane
	pod.Labels[labelApp] = cfg.App
	injected["labels"] = map[string]string{labelLane: cfg.Lane, labelApp: cfg.App}

	// app containers: env (never overriding the user's), OTEL_RESOURCE_ATTRIBUTES, preStop
	var hook *corev1.LifecycleHandler
	if cfg.Agent {
		hook = &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/prestop", Port: intstr.FromInt32(cfg.AgentPort), Scheme: corev1.URISchemeHTTP}}
	} else if s := int64(math.Ceil(cfg.Drain)); s > 0 {
		hook = &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: s}}
	}
	records := map[string]containerRecord{}
	wanted := appEnv(cfg)
	entry := otelLaneKey + "=" + cfg.Lane
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		rec := containerRecord{}
		existing := map[string]int{}
		for j, e := range c.Env {
			existing[e.Name] = j
		}
		var missing []corev1.EnvVar
		for _, e := range wanted {
			if _, ok := existing[e.Name]; ok {
				*warnings = append(*warnings, fmt.Sprintf("lanes: container %q sets %s itself; kept (not overridden)",
					c.Name, e.Name))
				continue
			}
			missing = append(missing, e)
			rec.Env = append(rec.Env, e.Name)
		}
		env := append(missing, c.Env...)
		if j, ok := existing[otelKey]; ok {
			j += len(missing)
			if env[j].ValueFrom == nil && !strings.Contains(env[j].Value, otelLaneKey+"=") {
				if env[j].Value == "" {
					env[j].Value = entry
				} else {
					env[j].Value += "," + entry
				}
				rec.Otel = "merged"
			}
		} else if len(c.EnvFrom) == 0 {
			env = append(env, corev1.EnvVar{Name: otelKey, Value: entry})
			rec.Otel = "added"
		}
		// OTEL_PROPAGATORS: the SDK default written out when the app sets none (never with envFrom)
		if _, ok := existing[propagatorsKey]; !ok && len(c.EnvFrom) == 0 {
			env = append(env, corev1.EnvVar{Name: propagatorsKey, Value: "tracecontext,baggage"})
		}
		c.Env = env
		if hook != nil {
			if c.Lifecycle == nil {
				c.Lifecycle = &corev1.Lifecycle{}
			}
			if c.Lifecycle.PreStop == nil {
				h := *hook
				c.Lifecycle.PreStop = &h
				if h.HTTPGet != nil {
					rec.PreStop = "httpGet"
				} else {
					rec.PreStop = "sleep"
				}
			} else {
				*warnings = append(*warnings, fmt.Sprintf(
					"lanes: container %q keeps its own preStop hook; Lanes' drain is not called", c.Name))
			}
		}
		records[c.Name] = rec
	}
	// the app container without a readiness probe of its own gets the agent's /ready/app, by port number
	if cfg.Agent && cfg.AppPort != nil {
		if app := appContainer(pod, cfg); app.ReadinessProbe == nil {
			app.ReadinessProbe = &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/ready/app", Port: intstr.FromInt32(cfg.AgentPort), Scheme: corev1.URISchemeHTTP}},
				PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 2, SuccessThreshold: 1,
			}
			rec := records[app.Name]
			rec.ReadinessProbe = "agent"
			records[app.Name] = rec
		}
	}
	injected["containers"] = records

	// the agent: a native sidecar appended after the user's init containers, its port kept out of mesh capture
	if cfg.Agent {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		port := strconv.Itoa(int(cfg.AgentPort))
		for ann, defaults := range map[string]string{
			"traffic.sidecar.istio.io/excludeInboundPorts": "",
			"config.linkerd.io/skip-inbound-ports":         "4567,4568,",
		} {
			current := strings.TrimRight(strings.TrimSpace(pod.Annotations[ann]), ",")
			if current == "" {
				pod.Annotations[ann] = defaults + port
			} else if !containsPort(current, port) {
				pod.Annotations[ann] = current + "," + port
			}
		}
		path, scheme := readinessHandover(pod, cfg)
		if path != "" {
			injected["readyProbe"] = map[string]string{"path": path, "scheme": scheme}
		}
		present := false
		for _, c := range pod.Spec.InitContainers {
			if c.Name == containerAgent {
				present = true
			}
		}
		if !present {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, agentContainer(cfg, path, scheme))
		}
		injected["initContainers"] = []string{containerAgent}
	}

	// readiness gate
	gated := false
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == conditionRegistered {
			gated = true
		}
	}
	if !gated {
		pod.Spec.ReadinessGates = append(pod.Spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: conditionRegistered})
	}

	// grace period: raised (never lowered) so that drain + shutdown budget fit
	needed := int64(math.Ceil(cfg.Drain + cfg.ShutdownBudget))
	current := defaultGrace
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		current = *pod.Spec.TerminationGracePeriodSeconds
	}
	if needed > current {
		pod.Spec.TerminationGracePeriodSeconds = &needed
		injected["terminationGracePeriodSeconds"] = needed
		*warnings = append(*warnings, fmt.Sprintf(
			"lanes: terminationGracePeriodSeconds raised from %d to %d: drain %gs + shutdown budget %gs",
			current, needed, cfg.Drain, cfg.ShutdownBudget))
	}

	// status annotation: what was injected, with the resolved config (makes injection idempotent)
	status, _ := json.Marshal(map[string]any{
		"version": statusVersion, "hash": hash, "config": cfg, "injected": injected})
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annStatus] = string(status)
	return false
}

func jsonMarshal(pod *corev1.Pod) ([]byte, error) { return json.Marshal(pod) }

// containsPort: a comma list (as the meshes read it) already naming the port; ranges are left to the Python core.
func containsPort(list, port string) bool {
	for _, item := range strings.Split(list, ",") {
		if strings.TrimSpace(item) == port {
			return true
		}
	}
	return false
}
