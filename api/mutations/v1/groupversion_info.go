package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of every mutator.
const Group = "mutations.gatekeeper.sh"

var (
	// GroupVersion is mutations.gatekeeper.sh/v1.
	GroupVersion = schema.GroupVersion{Group: Group, Version: "v1"}

	// SchemeBuilder registers the types of this group version.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Assign{}, &AssignList{},
		&AssignMetadata{}, &AssignMetadataList{},
		&ModifySet{}, &ModifySetList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
