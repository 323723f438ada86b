package datasync

import (
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime/schema"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
)

// Traces answers, for the webhook, whether the Config's
// spec.validation.traces ask for the evaluation trace of a request. It is
// safe for concurrent use; a nil *Traces traces nothing.
type Traces struct {
	rules atomic.Pointer[[]configv1alpha1.Trace]
}

// set replaces the rules with those of a Config (nil: none).
func (t *Traces) set(rules []configv1alpha1.Trace) {
	rules = append([]configv1alpha1.Trace(nil), rules...)
	t.rules.Store(&rules)
}

// Lookup reports whether a request by user on kind gvk is to be traced, and
// whether the engine's state is to be dumped with the trace (dump: All). A
// rule matches when its user and its group, version and kind are all equal
// to the request's; as in Gatekeeper, a rule missing the user or the kind
// matches nothing.
func (t *Traces) Lookup(user string, gvk schema.GroupVersionKind) (trace, dump bool) {
	if t == nil {
		return false, false
	}
	rules := t.rules.Load()
	if rules == nil {
		return false, false
	}
	for _, r := range *rules {
		if r.User == "" || r.Kind.Kind == "" || r.User != user || r.Kind.GroupVersionKind() != gvk {
			continue
		}
		trace = true
		dump = dump || r.Dump == configv1alpha1.DumpAll
	}
	return trace, dump
}
