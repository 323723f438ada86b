package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/exemption"
)

// IgnoreLabel on a namespace makes the API server skip /v1/admit for it
// (through the webhook's namespaceSelector). Only exempt namespaces may
// carry it.
const IgnoreLabel = "admission.gatekeeper.sh/ignore"

// Exemptions are the namespaces allowed to carry IgnoreLabel, by exact
// name, prefix or suffix (--exempt-namespace, -prefix and -suffix, and the
// manager's own namespace).
type Exemptions = exemption.Namespaces

// NewExemptions builds Exemptions; empty entries are ignored.
func NewExemptions(names, prefixes, suffixes []string) *Exemptions {
	return exemption.NewNamespaces(names, prefixes, suffixes)
}

// NamespaceGetter returns the Namespace named name, nil if there is none.
type NamespaceGetter func(ctx context.Context, name string) (*corev1.Namespace, error)

// CachedNamespaces reads Namespaces from the manager's cache and, for one
// the cache does not hold yet (just created, or the cache still syncing),
// from the API server.
func CachedNamespaces(cache, api client.Reader) NamespaceGetter {
	return func(ctx context.Context, name string) (*corev1.Namespace, error) {
		ns := &corev1.Namespace{}
		key := client.ObjectKey{Name: name}
		if cache != nil {
			if err := cache.Get(ctx, key, ns); err == nil {
				return ns, nil
			}
		}
		if err := api.Get(ctx, key, ns); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("getting Namespace %q: %w", name, err)
		}
		return ns, nil
	}
}
