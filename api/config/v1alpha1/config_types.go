package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Name is the only Config Portcullis reads, and only in the namespace it
// runs in (--namespace); any other Config is ignored.
const Name = "config"

// Processes that Config.spec.match entries scope their exclusions to.
const (
	ProcessAudit   Process = "audit"
	ProcessWebhook Process = "webhook"
	ProcessSync    Process = "sync"
	// ProcessMutationWebhook is the mutating webhook: objects in the
	// namespaces excluded for it are not mutated.
	ProcessMutationWebhook Process = "mutation-webhook"
	// ProcessAll stands for every process.
	ProcessAll Process = "*"
)

// DumpAll is the Trace.Dump value that also dumps the engine's state.
const DumpAll = "All"

// ConfigSpec is what Portcullis is told to sync, exclude and trace.
type ConfigSpec struct {
	// Sync lists the kinds copied into data.inventory for referential
	// policies.
	// +optional
	Sync Sync `json:"sync,omitempty"`

	// Validation configures the admission webhook's evaluation.
	// +optional
	Validation Validation `json:"validation,omitempty"`

	// Match excludes namespaces from processes: the audit, the webhook and
	// the sync.
	// +optional
	Match []MatchEntry `json:"match,omitempty"`

	// Readiness configures the readiness tracker.
	// +optional
	Readiness ReadinessSpec `json:"readiness,omitempty"`
}

// Sync lists the kinds to sync.
type Sync struct {
	// SyncOnly lists the kinds whose objects are copied into
	// data.inventory. The SyncSets add to it.
	// +optional
	SyncOnly []SyncOnlyEntry `json:"syncOnly,omitempty"`
}

// SyncOnlyEntry names one kind to sync. Use "" for the core group.
type SyncOnlyEntry struct {
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

// GroupVersionKind returns the entry as a schema.GroupVersionKind.
func (e SyncOnlyEntry) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind}
}

// Validation configures the webhook's evaluation.
type Validation struct {
	// Traces lists the requests whose evaluation trace is logged. Both
	// user and kind must be set.
	// +optional
	Traces []Trace `json:"traces,omitempty"`
}

// Trace asks for the evaluation trace of one user's requests on one kind.
type Trace struct {
	// User is the user whose requests are traced.
	// +optional
	User string `json:"user,omitempty"`

	// Kind is the kind of the requests traced.
	// +optional
	Kind GVK `json:"kind,omitempty"`

	// Dump, set to "All", also logs the engine's whole state with the trace.
	// +optional
	Dump string `json:"dump,omitempty"`
}

// GVK names a kind. Use "" for the core group.
type GVK struct {
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

// GroupVersionKind returns the kind as a schema.GroupVersionKind.
func (g GVK) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}
}

// MatchEntry excludes namespaces from some processes.
type MatchEntry struct {
	// ExcludedNamespaces are the namespaces excluded: exact names or globs
	// with a leading or trailing '*' (kube-*, *-system, *x*).
	// +optional
	ExcludedNamespaces []Wildcard `json:"excludedNamespaces,omitempty"`

	// Processes are those the exclusion applies to; "*" is all of them.
	// An entry without processes excludes nothing.
	// +optional
	Processes []Process `json:"processes,omitempty"`
}

// Wildcard is a namespace name, or a glob with a leading or trailing '*'.
// +kubebuilder:validation:Pattern=`^\*?[-:a-z0-9]*\*?$`
type Wildcard string

// Process is a part of Portcullis that namespaces can be excluded from.
// +kubebuilder:validation:Enum=audit;webhook;sync;mutation-webhook;*
type Process string

// ReadinessSpec configures the readiness tracker.
type ReadinessSpec struct {
	// StatsEnabled is accepted for Gatekeeper compatibility. Portcullis
	// always logs the first sync of each kind, with its object count.
	// +optional
	StatsEnabled bool `json:"statsEnabled,omitempty"`
}

// ConfigStatus is the observed state of a Config, as Gatekeeper writes it:
// one entry per replica that read it.
type ConfigStatus struct {
	// ByPod lists the status each replica reports, sorted by id.
	// +optional
	ByPod []PodStatus `json:"byPod,omitempty"`
}

// PodStatus is one replica's status of the Config, with Gatekeeper's
// fields. Fields beyond these are kept.
// +kubebuilder:pruning:PreserveUnknownFields
type PodStatus struct {
	// ID identifies the replica (its Pod's name in a cluster).
	// +optional
	ID string `json:"id,omitempty"`

	// ConfigUID is the UID of the Config the entry was written for.
	// +optional
	ConfigUID types.UID `json:"configUID,omitempty"`

	// Operations are what the replica runs (Gatekeeper's --operation).
	// +optional
	Operations []string `json:"operations,omitempty"`

	// ObservedGeneration is the generation the replica last handled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Errors are what the replica could not apply: kinds it cannot sync.
	// +optional
	Errors []ConfigError `json:"errors,omitempty"`
}

// ConfigError is one error in a replica's status of the Config.
type ConfigError struct {
	// Type classifies the error.
	// +optional
	Type string `json:"type,omitempty"`

	// Message says what went wrong.
	Message string `json:"message"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=configs,scope=Namespaced
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// Config configures the sync of referential data, namespace exclusions and
// request traces. Only the Config named "config" in Portcullis's namespace
// is read.
type Config struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ConfigSpec   `json:"spec,omitempty"`
	Status ConfigStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ConfigList is a list of Configs.
type ConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Config `json:"items"`
}
