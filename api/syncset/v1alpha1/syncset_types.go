package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SyncSetSpec lists kinds to sync.
type SyncSetSpec struct {
	// GVKs are the kinds whose objects are copied into data.inventory, in
	// addition to those of the Config and of other SyncSets.
	// +optional
	GVKs []GVKEntry `json:"gvks,omitempty"`
}

// GVKEntry names one kind. Use "" for the core group.
type GVKEntry struct {
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

// GroupVersionKind returns the entry as a schema.GroupVersionKind.
func (e GVKEntry) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind}
}

// SyncSetStatus is the observed state of a SyncSet. Portcullis reports
// sync errors in its log and metrics; byPod is kept for compatibility.
type SyncSetStatus struct {
	// ByPod lists the status each replica reports.
	// +optional
	ByPod []PodStatus `json:"byPod,omitempty"`
}

// PodStatus is one replica's status. Fields beyond these are kept.
// +kubebuilder:pruning:PreserveUnknownFields
type PodStatus struct {
	// ID identifies the replica.
	// +optional
	ID string `json:"id,omitempty"`

	// ObservedGeneration is the generation the replica last handled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=syncsets,scope=Cluster
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// SyncSet lists kinds to sync into data.inventory for referential
// policies. The kinds synced are those of every SyncSet and of the Config.
type SyncSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SyncSetSpec   `json:"spec,omitempty"`
	Status SyncSetStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SyncSetList is a list of SyncSets.
type SyncSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncSet `json:"items"`
}
