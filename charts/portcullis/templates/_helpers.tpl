{{/* The chart's name, for labels. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Annotations on every object that takes the chart's common ones. */}}
{{- define "portcullis.annotations" -}}
{{- with .Values.commonAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels of the webhook pods: the Service, the PDB and the
controller-manager Deployment select on them. The audit pods have another
control-plane, so they are behind neither.
*/}}
{{- define "portcullis.webhookSelector" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
gatekeeper.sh/operation: webhook
{{- end -}}

{{- define "portcullis.auditSelector" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: audit-controller
gatekeeper.sh/operation: audit
{{- end -}}

{{/* The webhooks' Service. */}}
{{- define "portcullis.serviceName" -}}portcullis-webhook-service{{- end -}}

{{/* The Secret holding the webhook's CA and serving certificate. */}}
{{- define "portcullis.certSecretName" -}}
{{- if .Values.externalCertInjection.enabled -}}
{{ .Values.externalCertInjection.secretName }}
{{- else -}}
portcullis-webhook-server-cert
{{- end -}}
{{- end -}}

{{/*
The container's environment, in both Deployments: the pod's name (its
status.byPod id) and namespace (--namespace), then the extra ones.
*/}}
{{- define "portcullis.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
# GOMEMLIMIT makes the collector work harder near the memory limit instead
# of letting the container be OOM-killed.
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- with .Values.extraEnvs }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The args both managers take from the same values. They are Gatekeeper's
flags, so the lists read as its chart's do.
*/}}
{{- define "portcullis.commonArgs" -}}
- --logtostderr
- --validating-webhook-configuration-name={{ .Values.validatingWebhookName }}
- --mutating-webhook-configuration-name={{ .Values.mutatingWebhookName }}
- --enable-k8s-native-validation={{ .Values.enableK8sNativeValidation }}
- --enable-generator-resource-expansion={{ .Values.enableGeneratorResourceExpansion }}
{{- range .Values.metricsBackends }}
- --metrics-backend={{ . }}
{{- end }}
{{- range .Values.disabledBuiltins }}
- --disable-opa-builtin={{ . }}
{{- end }}
- --exempt-namespace={{ .Release.Namespace }}
{{- range .Values.controllerManager.exemptNamespaces }}
- --exempt-namespace={{ . }}
{{- end }}
{{- range .Values.controllerManager.exemptNamespacePrefixes }}
- --exempt-namespace-prefix={{ . }}
{{- end }}
{{- range .Values.controllerManager.exemptNamespaceSuffixes }}
- --exempt-namespace-suffix={{ . }}
{{- end }}
{{- if hasKey .Values "logLevelKey" }}
- --log-level-key={{ .Values.logLevelKey }}
{{- end }}
{{- if hasKey .Values "logLevelEncoder" }}
- --log-level-encoder={{ .Values.logLevelEncoder }}
{{- end }}
{{- if hasKey .Values "readinessRetries" }}
- --readiness-retries={{ .Values.readinessRetries }}
{{- end }}
{{- if hasKey .Values "defaultK8sNativeValidationFailurePolicy" }}
- --default-k8s-native-validation-failure-policy={{ .Values.defaultK8sNativeValidationFailurePolicy }}
{{- end }}
{{- if hasKey .Values "defaultCreateVAPForTemplates" }}
- --default-create-vap-for-templates={{ .Values.defaultCreateVAPForTemplates }}
{{- end }}
{{- if hasKey .Values "defaultCreateVAPBindingForConstraints" }}
- --default-create-vap-binding-for-constraints={{ .Values.defaultCreateVAPBindingForConstraints }}
{{- end }}
{{- if hasKey .Values "defaultWaitForVAPBGeneration" }}
- --default-wait-for-vapb-generation={{ .Values.defaultWaitForVAPBGeneration }}
{{- end }}
{{- if hasKey .Values "syncVAPEnforcementScope" }}
- --sync-vap-enforcement-scope={{ .Values.syncVAPEnforcementScope }}
{{- end }}
{{- /* Gatekeeper's manager waits 10 s unless told; Portcullis's 0. */}}
- --shutdown-delay={{ if hasKey .Values "shutdownDelay" }}{{ .Values.shutdownDelay }}{{ else }}10{{ end }}
{{- if hasKey .Values "enablePprof" }}
- --enable-pprof={{ .Values.enablePprof }}
{{- end }}
{{- if hasKey .Values "pprofPort" }}
- --pprof-port={{ .Values.pprofPort }}
{{- end }}
{{- if hasKey .Values "enableReferentialRules" }}
- --enable-referential-rules={{ .Values.enableReferentialRules }}
{{- end }}
{{- end -}}

{{/*
The namespaceSelector of the validating and mutating webhooks: namespaces
labelled admission.gatekeeper.sh/ignore, the release's, and those of the
exempt labels given (a map of label key to values) are skipped.
*/}}
{{- define "portcullis.webhookNamespaceSelector" -}}
{{- $exempt := deepCopy (.labels | default dict) -}}
{{- $names := get $exempt "kubernetes.io/metadata.name" | default list -}}
{{- $_ := set $exempt "kubernetes.io/metadata.name" (append $names .namespace | uniq) -}}
matchExpressions:
- key: admission.gatekeeper.sh/ignore
  operator: DoesNotExist
{{- range $key := keys $exempt | sortAlpha }}
- key: {{ $key }}
  operator: NotIn
  values:
  {{- range get $exempt $key }}
  - {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* A webhook's clientConfig: by URL when one is given, else the Service. */}}
{{- define "portcullis.clientConfig" -}}
{{- if .url -}}
url: https://{{ .url }}{{ .path }}
{{- else -}}
service:
  name: {{ include "portcullis.serviceName" . }}
  namespace: {{ .namespace }}
  path: {{ .path }}
  port: 443
{{- end -}}
{{- end -}}
