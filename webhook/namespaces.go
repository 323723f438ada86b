package webhook

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// IgnoreLabel on a namespace makes the API server skip /v1/admit for it
// (through the webhook's namespaceSelector). Only exempt namespaces may
// carry it.
const IgnoreLabel = "admission.gatekeeper.sh/ignore"

// Exemptions are the namespaces the webhook never judges, by exact name,
// prefix or suffix.
type Exemptions struct {
	names              map[string]bool
	prefixes, suffixes []string
}

// NewExemptions builds Exemptions; empty entries are ignored.
func NewExemptions(names, prefixes, suffixes []string) *Exemptions {
	e := &Exemptions{names: map[string]bool{}}
	for _, n := range names {
		if n != "" {
			e.names[n] = true
		}
	}
	for _, p := range prefixes {
		if p != "" {
			e.prefixes = append(e.prefixes, p)
		}
	}
	for _, s := range suffixes {
		if s != "" {
			e.suffixes = append(e.suffixes, s)
		}
	}
	return e
}

// Exempt reports whether namespace ns is exempt. The empty namespace
// (cluster-scoped objects) never is.
func (e *Exemptions) Exempt(ns string) bool {
	if e == nil || ns == "" {
		return false
	}
	if e.names[ns] {
		return true
	}
	for _, p := range e.prefixes {
		if strings.HasPrefix(ns, p) {
			return true
		}
	}
	for _, s := range e.suffixes {
		if strings.HasSuffix(ns, s) {
			return true
		}
	}
	return false
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
