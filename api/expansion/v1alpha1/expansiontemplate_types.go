package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// ExpansionTemplateSpec says which kinds are expanded, from which of their
// fields, into which kind.
type ExpansionTemplateSpec struct {
	// ApplyTo lists the specific groups, versions and kinds of generator
	// resources which will be expanded.
	// +optional
	ApplyTo []ApplyTo `json:"applyTo,omitempty"`

	// TemplateSource is the field of the generator resource, a dotted path
	// such as spec.template, whose value is the base of the expanded
	// resource.
	// +optional
	TemplateSource string `json:"templateSource,omitempty"`

	// GeneratedGVK is the group, version and kind of the resources the
	// generator resource creates.
	// +optional
	GeneratedGVK GeneratedGVK `json:"generatedGVK,omitempty"`

	// EnforcementAction, when set, replaces the enforcement action of every
	// violation of an expanded resource. Empty keeps the action of the
	// constraint in violation.
	// +optional
	EnforcementAction string `json:"enforcementAction,omitempty"`
}

// ApplyTo determines what GVKs the resource applies to: every combination
// of its groups, versions and kinds. Globs are not allowed.
type ApplyTo struct {
	// +optional
	Groups []string `json:"groups,omitempty"`
	// +optional
	Kinds []string `json:"kinds,omitempty"`
	// +optional
	Versions []string `json:"versions,omitempty"`
}

// Matches reports whether gvk is one of the combinations listed.
func (a ApplyTo) Matches(gvk schema.GroupVersionKind) bool {
	return slices.Contains(a.Groups, gvk.Group) && slices.Contains(a.Versions, gvk.Version) && slices.Contains(a.Kinds, gvk.Kind)
}

// GVKs lists every group, version and kind combination.
func (a ApplyTo) GVKs() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, g := range a.Groups {
		for _, v := range a.Versions {
			for _, k := range a.Kinds {
				out = append(out, schema.GroupVersionKind{Group: g, Version: v, Kind: k})
			}
		}
	}
	return out
}

// GeneratedGVK names the kind of the expanded resources. Group is "" for
// the core group.
type GeneratedGVK struct {
	// +optional
	Group string `json:"group,omitempty"`
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
}

// GroupVersionKind returns g as a schema.GroupVersionKind.
func (g GeneratedGVK) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}
}

// ExpansionTemplateStatus is what each replica reports of the template.
type ExpansionTemplateStatus struct {
	// ByPod lists the status each replica reports, sorted by id.
	// +optional
	ByPod []ExpansionTemplatePodStatusStatus `json:"byPod,omitempty"`
}

// ExpansionTemplatePodStatusStatus is one replica's status of a template,
// with Gatekeeper's fields.
type ExpansionTemplatePodStatusStatus struct {
	// ID identifies the replica.
	// +optional
	ID string `json:"id,omitempty"`
	// TemplateUID is the UID of the template the replica loaded.
	// +optional
	TemplateUID types.UID `json:"templateUID,omitempty"`
	// Operations are the operations the replica runs.
	// +optional
	Operations []string `json:"operations,omitempty"`
	// ObservedGeneration is the generation the replica last loaded.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Errors say why the replica does not use the template, if it does not.
	// +optional
	Errors []*ExpansionTemplateError `json:"errors,omitempty"`
}

// ExpansionTemplateError is one error of a template.
type ExpansionTemplateError struct {
	// +optional
	Type    string `json:"type,omitempty"`
	Message string `json:"message"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=expansiontemplate,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// ExpansionTemplate makes the resources of the kinds it applies to expand
// into the resources they would generate (a Deployment into its Pod), which
// the constraints then judge in their stead.
type ExpansionTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ExpansionTemplateSpec   `json:"spec,omitempty"`
	Status ExpansionTemplateStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ExpansionTemplateList is a list of ExpansionTemplates.
type ExpansionTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExpansionTemplate `json:"items"`
}
