package mutation

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
)

// gatekeeperGroups are the API groups of Gatekeeper's own resources, which
// the mutating webhook never mutates: the groups Gatekeeper lists
// (syncset.gatekeeper.sh is not among them, so SyncSets are mutated).
var gatekeeperGroups = []string{
	"templates.gatekeeper.sh", "constraints.gatekeeper.sh", "mutations.gatekeeper.sh", "config.gatekeeper.sh",
	"externaldata.gatekeeper.sh", "expansion.gatekeeper.sh", "status.gatekeeper.sh",
}

// IsGatekeeperGroup reports whether group holds Gatekeeper's own
// resources, never mutated.
func IsGatekeeperGroup(group string) bool { return slices.Contains(gatekeeperGroups, group) }

// Offline applies mutators outside a cluster, as the mutating webhook
// would to objects created (portcullis mutate, test and verify): the
// Namespaces given are mutated first, then read by namespaceSelector and
// fromMetadata for the objects in them; an object in a namespace not given
// is taken to be in a Namespace without labels.
type Offline struct {
	// DefaultNamespace is the namespace of objects without
	// metadata.namespace, unless their kind is one of Kubernetes'
	// cluster-scoped kinds; "" leaves them outside any namespace.
	DefaultNamespace string

	system     *System
	namespaces map[string]*corev1.Namespace
	mutators   int
}

// clusterScoped are Kubernetes' built-in cluster-scoped kinds, which
// DefaultNamespace does not apply to.
var clusterScoped = []string{
	"APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "ClusterTrustBundle", "ComponentStatus",
	"CSIDriver", "CSINode", "CustomResourceDefinition", "FlowSchema", "IngressClass", "MutatingAdmissionPolicy",
	"MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration", "Namespace", "Node", "PersistentVolume",
	"PriorityClass", "PriorityLevelConfiguration", "RuntimeClass", "StorageClass", "ValidatingAdmissionPolicy",
	"ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration", "VolumeAttachment", "VolumeAttributesClass",
}

// NewOffline returns an Offline with no mutator.
func NewOffline() *Offline {
	return &Offline{system: NewSystem(Options{}), namespaces: map[string]*corev1.Namespace{}}
}

// AddMutator checks and adds a mutator; it is refused when it does not
// compile, or when it disagrees with one added before on a kind's schema,
// as a cluster would leave both out.
func (o *Offline) AddMutator(u *unstructured.Unstructured) error {
	m, err := New(u)
	if err != nil {
		return fmt.Errorf("%s %q: %w", u.GetKind(), u.GetName(), err)
	}
	if _, err := o.system.Upsert(m); err != nil {
		return fmt.Errorf("%s %q: %w", u.GetKind(), u.GetName(), err)
	}
	o.mutators++
	return nil
}

// Len is the number of mutators added.
func (o *Offline) Len() int { return o.mutators }

// AddNamespace mutates a Namespace and records it for the objects in it.
func (o *Offline) AddNamespace(ctx context.Context, u *unstructured.Unstructured) (bool, error) {
	changed, err := o.Mutate(ctx, u)
	if err != nil {
		return false, err
	}
	o.KeepNamespace(u)
	return changed, nil
}

// KeepNamespace records a Namespace as it is, for the objects in it.
func (o *Offline) KeepNamespace(u *unstructured.Unstructured) {
	o.namespaces[u.GetName()] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Labels: u.GetLabels()}}
}

// Mutate applies the mutators to obj, in place, as on a CREATE.
func (o *Offline) Mutate(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	gvk := obj.GroupVersionKind()
	if o.mutators == 0 || IsGatekeeperGroup(gvk.Group) {
		return false, nil
	}
	name := o.NamespaceFor(obj)
	if defaulted := obj.GetNamespace() == "" && name != ""; defaulted {
		// As the webhook reads the request's namespace; not printed: put
		// back as it was, absent or "".
		_, had, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "namespace")
		obj.SetNamespace(name)
		defer func() {
			if had {
				_ = unstructured.SetNestedField(obj.Object, "", "metadata", "namespace")
			} else {
				obj.SetNamespace("")
			}
		}()
	}
	return o.system.Mutate(ctx, obj, o.namespaceOf(obj, name), "Original", Create)
}

// NamespaceFor is the namespace obj is mutated in: its own, else
// DefaultNamespace unless its kind is cluster-scoped.
func (o *Offline) NamespaceFor(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" || slices.Contains(clusterScoped, obj.GetKind()) {
		return ns
	}
	return o.DefaultNamespace
}

// namespaceOf is the Namespace of obj, in namespace name: a Namespace is
// its own; one added, or one without labels, for a name; none without.
func (o *Offline) namespaceOf(obj *unstructured.Unstructured, name string) *corev1.Namespace {
	switch {
	case engine.IsNamespace(obj):
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName(), Labels: obj.GetLabels()}}
	case name != "":
		if ns := o.namespaces[name]; ns != nil {
			return ns
		}
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	return nil
}
