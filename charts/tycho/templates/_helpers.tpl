{{/*
Name of the chart, possibly overridden.
*/}}
{{- define "tycho.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects: "<release>-tycho", or the release name when it already contains the
chart name. Truncated to 52 characters so that suffixes like "-metrics" keep it a valid DNS label.
*/}}
{{- define "tycho.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Chart label value.
*/}}
{{- define "tycho.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels selecting the operator pods. Never change these: a Deployment's selector is immutable.
*/}}
{{- define "tycho.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tycho.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/*
Labels of every object of the chart.
*/}}
{{- define "tycho.labels" -}}
helm.sh/chart: {{ include "tycho.chart" . }}
{{ include "tycho.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tycho
{{- end -}}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "tycho.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tycho.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference.
*/}}
{{- define "tycho.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Name of the leader-election Lease.
*/}}
{{- define "tycho.leaseName" -}}
{{- default (include "tycho.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/*
Name of the ConfigMap holding template overrides, or "" when there are none.
*/}}
{{- define "tycho.templatesConfigMap" -}}
{{- if .Values.templates.existingConfigMap -}}
{{- .Values.templates.existingConfigMap -}}
{{- else if .Values.templates.overrides -}}
{{- printf "%s-templates" (include "tycho.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The RBAC rules for the namespaced resources Tycho works with: Systems and their children, session Leases,
Events and claims. Shared by the ClusterRole (cluster-wide mode) and the per-namespace Roles. Exactly the
verbs the operator uses; no wildcards. tests/chart checks the operator's recorded API calls against them.
*/}}
{{- define "tycho.namespacedRules" -}}
# The System resources: read from a watch, deleted when their session or lifetime ends, and their status
# written with a patch of the status subresource (the operator never writes a System's spec).
- apiGroups: ["tycho.dev"]
  resources: ["systems"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["tycho.dev"]
  resources: ["systems/status"]
  verbs: ["patch"]
# Children carry a controller ownerReference with blockOwnerDeletion: clusters running the
# OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers for that.
- apiGroups: ["tycho.dev"]
  resources: ["systems/finalizers"]
  verbs: ["update"]
# Children of a System: read from watches, written with server-side apply, pruned and replaced with DELETE.
# An apply that creates a missing child is a PATCH that kube-apiserver also authorizes as create.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods", "services", "configmaps"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The NetworkPolicy of an isolated System (spec.network), written and pruned like the other children.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Session Leases: watched (read from the watch cache), marked collected and deleted. The leader-election
# Lease has a Role of its own.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list", "watch", "patch", "delete"]
# Events on Systems (events.k8s.io/v1: created, and patched when they repeat).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Claims mounted by Systems: only watched (read from the watch cache), to report a missing claim. Tycho
# never deletes a claim.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
Rules for cluster-scoped resources: the CRD (readiness checks it is installed) and, optionally, Nodes.
*/}}
{{- define "tycho.clusterRules" -}}
# Readiness: the operator checks that the System CRD is installed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames: ["systems.tycho.dev"]
  verbs: ["get"]
# The catalog: Systems made from a SystemTemplate (cluster-scoped) are rendered from it, and re-rendered
# when it changes.
- apiGroups: ["tycho.dev"]
  resources: ["systemtemplates"]
  verbs: ["list", "watch"]
{{- if .Values.rbac.readNodes }}
# Node addresses for the URLs in a System's endpoints (listed, not watched).
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list"]
{{- end }}
{{- end -}}

{{/*
Labels selecting the API pods (api.enabled). Distinct from the operator's: its Service, PodDisruptionBudget
and NetworkPolicy never select the API pods, and the other way round. Never change these either.
*/}}
{{- define "tycho.api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tycho.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{/*
Labels of every object of the API (api.enabled).
*/}}
{{- define "tycho.api.labels" -}}
helm.sh/chart: {{ include "tycho.chart" . }}
{{ include "tycho.api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tycho
{{- end -}}

{{/*
Full name of the API's objects: "<fullname>-api".
*/}}
{{- define "tycho.api.fullname" -}}
{{- printf "%s-api" (include "tycho.fullname" .) -}}
{{- end -}}

{{/*
Name of the API's ServiceAccount.
*/}}
{{- define "tycho.api.serviceAccountName" -}}
{{- if .Values.api.serviceAccount.create -}}
{{- default (include "tycho.api.fullname" .) .Values.api.serviceAccount.name -}}
{{- else -}}
{{- required "api.serviceAccount.name is required when api.serviceAccount.create is false" .Values.api.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Name of the API's port: https with api.tls.secretName, http with api.plainHttp.
*/}}
{{- define "tycho.api.portName" -}}
{{- if .Values.api.tls.secretName -}}https{{- else -}}http{{- end -}}
{{- end -}}
