package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/portcullis-dev/portcullis/engine"
)

// namespaceCache holds the Namespaces listed at the start of a run. One
// created later is read once on first use; a missing one (NotFound) is
// remembered as missing. A read that fails otherwise (timeout, 429, 5xx)
// is not remembered, so that a later use asks again, but not before
// namespaceRetryAfter: the objects of the namespace reviewed meanwhile get
// the same error rather than each asking an API server that is failing.
// The namespace is marked unknown for the rest of the run: its reports are
// left alone.
type namespaceCache struct {
	client dynamic.ResourceInterface
	log    logr.Logger
	now    func() time.Time
	mu     sync.RWMutex
	m      map[string]*corev1.Namespace
	// failed are the namespaces whose read failed this run, with the
	// first error; lastFailed when their read last failed.
	failed     map[string]error
	lastFailed map[string]time.Time
}

// namespaceRetryAfter is how long after a failed read a Namespace is not
// read again.
const namespaceRetryAfter = time.Second

func newNamespaceCache(client dynamic.ResourceInterface, log logr.Logger) *namespaceCache {
	return &namespaceCache{client: client, log: log, now: time.Now, m: map[string]*corev1.Namespace{},
		failed: map[string]error{}, lastFailed: map[string]time.Time{}}
}

func (c *namespaceCache) add(u *unstructured.Unstructured) {
	u.SetManagedFields(nil)
	ns, err := engine.NamespaceFromUnstructured(u)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[ns.Name] = ns
}

// get returns the Namespace name, nil when it does not exist. A read that
// fails other than NotFound returns the error, logged once a namespace.
func (c *namespaceCache) get(ctx context.Context, name string) (*corev1.Namespace, error) {
	c.mu.RLock()
	ns, ok := c.m[name]
	failed, failedAt := c.failed[name], c.lastFailed[name]
	c.mu.RUnlock()
	if ok {
		return ns, nil
	}
	if failed != nil && c.now().Sub(failedAt) < namespaceRetryAfter {
		return nil, failed
	}
	u, err := c.client.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err == nil:
		u.SetManagedFields(nil)
		ns, err = engine.NamespaceFromUnstructured(u)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		err = fmt.Errorf("reading Namespace %s: %w", name, err)
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, said := c.failed[name]; !said && ctx.Err() == nil {
			c.failed[name] = err
			c.log.Error(err, "Reading a Namespace failed; its objects are reviewed without it, and its reports are left as they are", "namespace", name)
		}
		if ctx.Err() == nil {
			c.lastFailed[name] = c.now()
		}
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = ns
	return ns, nil
}

// live reports whether a namespace exists and is not being deleted; an
// error when it could not be read, this time or earlier in the run.
func (c *namespaceCache) live(ctx context.Context, name string) (bool, error) {
	c.mu.RLock()
	err := c.failed[name]
	c.mu.RUnlock()
	if err != nil {
		return false, err
	}
	ns, err := c.get(ctx, name)
	if err != nil {
		return false, err
	}
	return ns != nil && ns.DeletionTimestamp == nil, nil
}

// gone reports whether a namespace does not exist, as far as the run
// knows: neither listed at its start nor found since, and not unknown
// after a failed read.
func (c *namespaceCache) gone(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, failed := c.failed[name]
	return c.m[name] == nil && !failed
}

// errors counts the namespaces whose read failed this run.
func (c *namespaceCache) errors() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.failed)
}
