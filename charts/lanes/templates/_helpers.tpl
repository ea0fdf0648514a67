{{/* Names ------------------------------------------------------------------------------------------------ */}}

{{- define "lanes.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lanes.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lanes.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lanes.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the serving certificate (tls.crt, tls.key; ca.crt when the controller or cert-manager
writes it). */}}
{{- define "lanes.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "lanes.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* Cluster-scoped objects carry the release namespace too: two releases in two namespaces must not clash. */}}
{{- define "lanes.mutatingWebhookName" -}}
{{- include "lanes.fullname" . -}}
{{- end -}}

{{- define "lanes.validatingWebhookName" -}}
{{- include "lanes.fullname" . -}}
{{- end -}}

{{- define "lanes.clusterRoleName" -}}
{{- printf "%s-%s" (include "lanes.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lanes.leaseName" -}}
{{- printf "%s-controller" (include "lanes.fullname" .) -}}
{{- end -}}

{{- define "lanes.defaultsConfigMapName" -}}
{{- printf "%s-defaults" (include "lanes.fullname" .) -}}
{{- end -}}

{{/* Labels --------------------------------------------------------------------------------------------- */}}

{{- define "lanes.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lanes.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "lanes.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lanes.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lanes
{{- end -}}

{{/* Images ------------------------------------------------------------------------------------------------ */}}

{{- define "lanes.image" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .appVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "lanes.webhookImage" -}}
{{- include "lanes.image" (dict "image" .Values.image.webhook "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "lanes.helperImage" -}}
{{- include "lanes.image" (dict "image" .Values.image.helper "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* Certificates ----------------------------------------------------------------------------------------- */}}

{{/* "controller" | "cert-manager" | "external": who issues the serving certificate and fills caBundle. */}}
{{- define "lanes.certMode" -}}
{{- if .Values.certManager.enabled -}}
cert-manager
{{- else if .Values.tls.existingSecret -}}
external
{{- else -}}
controller
{{- end -}}
{{- end -}}

{{/* The pieces shared by the mutating and the validating webhook's clientConfig. */}}
{{- define "lanes.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "lanes.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: {{ .root.Values.service.port }}
  {{- with .root.Values.webhook.caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end -}}

{{/* Grace period: preStop sleep + the server's shutdown delay + in-flight budget + margin, unless set. */}}
{{- define "lanes.terminationGracePeriodSeconds" -}}
{{- $w := .Values.webhook -}}
{{- $needed := add $w.preStopSleepSeconds $w.shutdownDelaySeconds $w.shutdownTimeoutSeconds -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $needed 5 -}}
{{- else if lt (int .Values.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least webhook.preStopSleepSeconds + shutdownDelaySeconds + shutdownTimeoutSeconds (%v), or admission calls are cut off during rollouts" .Values.terminationGracePeriodSeconds $needed) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* Kubernetes version ------------------------------------------------------------------------------------
Lanes needs Kubernetes 1.30+ (native sidecar containers, and the admission features the chart uses). The check
lives here rather than in Chart.yaml's kubeVersion because helm enforces kubeVersion against helm's compiled-in
default (v1.20.0 in helm 3) when `helm template` runs without --kube-version, which broke every plain render and
GitOps renderer. So: a render against a real cluster (helm install/upgrade, --dry-run included, which read the
server's version) or with an explicit --kube-version below 1.30 fails with a message; helm's own placeholder
v1.20.0, which only means "no cluster and no --kube-version", renders. */}}
{{- define "lanes.minKubeVersion" -}}1.30.0-0{{- end -}}
{{- define "lanes.helmDefaultKubeVersion" -}}v1.20.0{{- end -}}

{{- define "lanes.requireKubeVersion" -}}
{{- $version := .Capabilities.KubeVersion.Version -}}
{{- $minimum := include "lanes.minKubeVersion" . -}}
{{- if and (ne $version (include "lanes.helmDefaultKubeVersion" .)) (not (semverCompare (printf ">=%s" $minimum) $version)) -}}
{{- fail (printf "Lanes needs Kubernetes 1.30 or newer (native sidecar containers); the target cluster is %s. Upgrade the cluster, or pass --kube-version to render for a newer one." $version) -}}
{{- end -}}
{{- end -}}
