package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
)

var (
	// GroupVersion is mutations.gatekeeper.sh/v1alpha1.
	GroupVersion = schema.GroupVersion{Group: mutationsv1.Group, Version: "v1alpha1"}

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
		&AssignImage{}, &AssignImageList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
