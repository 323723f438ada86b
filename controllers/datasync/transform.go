package datasync

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	toolscache "k8s.io/client-go/tools/cache"
)

// LastAppliedAnnotation is the annotation kubectl apply writes: a copy of
// the whole object as last applied.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// StripObject drops metadata.managedFields and the last-applied annotation
// from u, in place; an annotations map left empty is dropped too.
func StripObject(u *unstructured.Unstructured) {
	md, ok := u.Object["metadata"].(map[string]any)
	if !ok {
		return
	}
	delete(md, "managedFields")
	if ann, ok := md["annotations"].(map[string]any); ok {
		delete(ann, LastAppliedAnnotation)
		if len(ann) == 0 {
			delete(md, "annotations")
		}
	}
}

// transformFunc returns the function applied to every object as it comes
// off the watch, before anything holds it; nil keeps objects as they are.
func transformFunc(keepManagedFields bool) toolscache.TransformFunc {
	if keepManagedFields {
		return nil
	}
	return func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			StripObject(u)
		}
		return obj, nil
	}
}
