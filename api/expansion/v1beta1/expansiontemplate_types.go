package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
)

// ExpansionTemplateSpec is v1alpha1.ExpansionTemplateSpec: the fields of
// both versions are the same.
type ExpansionTemplateSpec struct {
	// ApplyTo lists the specific groups, versions and kinds of generator
	// resources which will be expanded.
	// +optional
	ApplyTo []v1alpha1.ApplyTo `json:"applyTo,omitempty"`

	// TemplateSource is the field of the generator resource, a dotted path
	// such as spec.template, whose value is the base of the expanded
	// resource.
	// +optional
	TemplateSource string `json:"templateSource,omitempty"`

	// GeneratedGVK is the group, version and kind of the resources the
	// generator resource creates.
	// +optional
	GeneratedGVK v1alpha1.GeneratedGVK `json:"generatedGVK,omitempty"`

	// EnforcementAction, when set, replaces the enforcement action of every
	// violation of an expanded resource. Empty keeps the action of the
	// constraint in violation.
	// +optional
	EnforcementAction string `json:"enforcementAction,omitempty"`
}

// ExpansionTemplateStatus is what each replica reports of the template.
type ExpansionTemplateStatus struct {
	// ByPod lists the status each replica reports, sorted by id.
	// +optional
	ByPod []v1alpha1.ExpansionTemplatePodStatusStatus `json:"byPod,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=expansiontemplate,scope=Cluster
// +kubebuilder:subresource:status
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
