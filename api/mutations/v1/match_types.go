package v1

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Match selects the objects a mutator changes, with the same criteria as a
// constraint's spec.match. Every criterion given must hold; one left out
// holds for every object.
type Match struct {
	// Source selects objects by origin: Original (objects sent to the API
	// server), Generated (objects expanded from a workload) or All (the
	// default).
	// +kubebuilder:validation:Enum=All;Generated;Original
	Source string `json:"source,omitempty"`
	// Kinds lists API groups and kinds; an object matches when one entry
	// names its group and kind.
	Kinds []Kinds `json:"kinds,omitempty"`
	// Scope is Cluster, Namespaced or * (the default): cluster-scoped
	// objects, namespaced objects, or both.
	Scope string `json:"scope,omitempty"`
	// Namespaces are the namespaces whose objects match. An entry may start
	// or end with a * glob: kube-* matches kube-system and kube-public.
	Namespaces []Wildcard `json:"namespaces,omitempty"`
	// ExcludedNamespaces are namespaces whose objects never match, with the
	// same globs as namespaces.
	ExcludedNamespaces []Wildcard `json:"excludedNamespaces,omitempty"`
	// LabelSelector selects objects by their labels (matchLabels and
	// matchExpressions, ANDed).
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
	// NamespaceSelector selects objects by the labels of their namespace,
	// or of the object itself when it is a Namespace.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Name is the name of the objects that match, with a * glob at its
	// start or end: pod-* matches pod-a and pod-b.
	Name Wildcard `json:"name,omitempty"`
}

// Kinds names API groups and kinds; * or an empty list means all.
type Kinds struct {
	// APIGroups are API groups; "" is the core group and * every group.
	APIGroups []string `json:"apiGroups,omitempty"`
	// Kinds are kinds, such as Pod; * is every kind.
	Kinds []string `json:"kinds,omitempty"`
}

// Wildcard is a name that may start or end with a * glob: kube-* matches
// kube-system, *-system matches kube-system and *system* anything
// containing system.
// +kubebuilder:validation:Pattern=`^\*?[-:a-z0-9]*\*?$`
type Wildcard string

// ApplyTo names the exact groups, versions and kinds a mutator changes:
// every combination of the three lists. Globs are not accepted: the kinds
// tell the mutators' schemas apart, so that two mutators disagreeing on
// one can be caught.
type ApplyTo struct {
	// Groups are API groups; "" is the core group.
	Groups []string `json:"groups,omitempty"`
	// Kinds are kinds, such as Pod.
	Kinds []string `json:"kinds,omitempty"`
	// Versions are API versions, such as v1.
	Versions []string `json:"versions,omitempty"`
}

// MutationApplyTo is an ApplyTo with the admission operations the
// mutator runs on.
type MutationApplyTo struct {
	ApplyTo `json:",inline"`
	// Operations are the admission operations the mutator runs on: CREATE,
	// UPDATE, or * for every operation the mutating webhook handles (today
	// CREATE and UPDATE). Empty means *. DELETE and CONNECT are refused:
	// the mutating webhook does not handle them.
	// +kubebuilder:validation:items:Enum=CREATE;UPDATE;*
	Operations []admissionregistrationv1.OperationType `json:"operations,omitempty"`
}
