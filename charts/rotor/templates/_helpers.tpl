{{/*
Names and labels shared by every template.
*/}}

{{- define "rotor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rotor.fullname" -}}
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

{{- define "rotor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rotor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rotor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rotor.labels" -}}
helm.sh/chart: {{ include "rotor.chart" . }}
{{ include "rotor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: rotor
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "rotor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rotor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rotor.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
True ("true") when a watchNamespaces entry is a pattern (glob or exclusion) rather than a
namespace name. Objects can only be created in namespaces known by name.
*/}}
{{- define "rotor.isPattern" -}}
{{- if or (hasPrefix "!" .) (contains "*" .) (contains "?" .) (contains "[" .) -}}true{{- end -}}
{{- end -}}

{{/* The watchNamespaces entries that name one namespace. */}}
{{- define "rotor.literalNamespaces" -}}
{{- $out := list -}}
{{- range .Values.watchNamespaces -}}
{{- if not (include "rotor.isPattern" .) -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Checks that make a bad combination of values fail at install time with a clear message. */}}
{{- define "rotor.validate" -}}
{{- if and (eq .Values.rbac.mode "namespaced") (empty .Values.watchNamespaces) -}}
{{- fail "rbac.mode=namespaced needs watchNamespaces: the namespaces Rotor may read and write Secrets in" -}}
{{- end -}}
{{- if eq .Values.rbac.mode "namespaced" -}}
{{- range .Values.watchNamespaces -}}
{{- if include "rotor.isPattern" . -}}
{{- fail (printf "rbac.mode=namespaced grants a Role per namespace, so watchNamespaces must list namespace names, not the pattern %q; use rbac.mode=cluster to shard by pattern" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.notifications.enabled (empty .Values.notifications.existingSecret) -}}
{{- fail "notifications.enabled needs notifications.existingSecret: a Secret in the release namespace whose key hmac-key signs notifications" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled=true: without leader election every replica would reconcile at once" -}}
{{- end -}}
{{- end -}}

{{/*
The RBAC rules for the namespaced kinds. Used by the ClusterRole in cluster mode and by the
Role in each watched namespace in namespaced mode, so the two modes never differ.
*/}}
{{- define "rotor.namespacedRules" -}}
- apiGroups: ["rotor.dev"]
  resources: ["secretstores", "rotationpolicies"]
  verbs: ["get", "list", "watch", "patch"]
{{- /* create, update and delete: the ManagedSecrets a ClusterManagedSecret generates */}}
- apiGroups: ["rotor.dev"]
  resources: ["managedsecrets"]
  verbs: ["get", "list", "watch", "patch", "create", "update", "delete"]
- apiGroups: ["rotor.dev"]
  resources: ["managedsecrets/status", "secretstores/status", "rotationpolicies/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["rotor.dev"]
  resources: ["pushsecrets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["rotor.dev"]
  resources: ["pushsecrets/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
{{- end -}}

{{/* The rules for cluster-scoped reads that both modes need. */}}
{{- define "rotor.clusterScopedRules" -}}
- apiGroups: ["rotor.dev"]
  resources: ["clustersecretstores", "clusterrotationpolicies", "clustermanagedsecrets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["rotor.dev"]
  resources: ["clustersecretstores/status", "clusterrotationpolicies/status", "clustermanagedsecrets/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}


{{/* The shard's Lease (leader election): leaderElection.leaseName, else the release's full name. */}}
{{- define "rotor.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "rotor.fullname" .) -}}
{{- end -}}
