package readiness

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
)

// Tracker answers /readyz. It is ready once the ConstraintTemplates that
// existed at startup have been listed (ExpectTemplates) and each of them, and
// each constraint expected for their kinds (ExpectConstraints), has been
// handled: loaded into the engine, or left in a terminal error shown in its
// status, or deleted; and, when the sync of data.inventory is set up
// (RequireData), once the first sync of every kind listed at startup is
// complete (data.go); and, with mutation (RequireMutators), once every
// mutator that existed at startup is handled (mutators.go). Once ready it stays ready: objects created later do not
// make a running replica unready.
//
// Objects may be handled before they are expected (the reconcilers and the
// startup listing race); handling is remembered, so a later expectation of an
// object already handled is satisfied at once. All methods are safe for
// concurrent use and do nothing on a nil *Tracker.
type Tracker struct {
	mu              sync.Mutex
	templatesListed bool
	templates       *objects
	constraints     map[string]*objects // by kind
	gates           []*gate             // data.go, expansion.go, mutators.go
	ready           bool
	// retries is Gatekeeper's --readiness-retries: how many failed loads
	// of a template or constraint are retried before it counts as done;
	// -1 never gives up.
	retries int
}

// objects is a set of expected names, a set of handled ones, and the
// failed loads of each.
type objects struct {
	expected map[string]bool
	done     map[string]bool
	failures map[string]int
}

func newObjects() *objects {
	return &objects{expected: map[string]bool{}, done: map[string]bool{}, failures: map[string]int{}}
}

// failed records a failed load of name and reports whether it is to be
// retried; when it is not, name is done.
func (o *objects) failed(name string, retries int) bool {
	o.failures[name]++
	if retries >= 0 && o.failures[name] > retries {
		o.done[name] = true
		return false
	}
	return true
}

func (o *objects) pending() []string {
	var out []string
	for name := range o.expected {
		if !o.done[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// NewTracker returns a Tracker that is not ready until ExpectTemplates has
// been called.
func NewTracker() *Tracker {
	return &Tracker{
		templates:   newObjects(),
		constraints: map[string]*objects{},
		gates:       newGates(),
	}
}

// SetRetries sets how many times a template or constraint that fails to
// load is retried before readiness stops waiting for it (Gatekeeper's
// --readiness-retries): 0, the default, counts the first failure as done;
// -1 waits until it loads.
func (t *Tracker) SetRetries(n int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retries = n
}

// TemplateFailed records a failed load of a template. It reports whether
// the caller is to retry it: the tracker is not ready yet and the
// template's retries are not used up, so that it is not done. Otherwise
// the template is done.
func (t *Tracker) TemplateFailed(name string) bool {
	retry := false
	t.whileStarting(func() { retry = t.templates.failed(name, t.retries) })
	return retry
}

// ConstraintFailed is TemplateFailed for a constraint.
func (t *Tracker) ConstraintFailed(kind, name string) bool {
	retry := false
	t.whileStarting(func() { retry = t.kind(kind).failed(name, t.retries) })
	return retry
}

// ExpectTemplates records the ConstraintTemplates that exist at startup.
func (t *Tracker) ExpectTemplates(names []string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		t.templates.expected[n] = true
	}
	t.templatesListed = true
}

// TemplateDone records that a template was handled (or is gone).
func (t *Tracker) TemplateDone(name string) {
	t.whileStarting(func() { t.templates.done[name] = true })
}

// ExpectConstraints records the constraints of a kind that exist when its
// watch has synced. Call it before TemplateDone for the kind's template, so
// that the template is never done while its constraints are unknown.
func (t *Tracker) ExpectConstraints(kind string, names []string) {
	t.whileStarting(func() {
		o := t.kind(kind)
		for _, n := range names {
			o.expected[n] = true
		}
	})
}

// ConstraintDone records that a constraint was handled (or is gone).
func (t *Tracker) ConstraintDone(kind, name string) {
	t.whileStarting(func() { t.kind(kind).done[name] = true })
}

// CancelConstraints drops the expectations for a kind whose template was
// deleted: its constraints go with it.
func (t *Tracker) CancelConstraints(kind string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.constraints, kind)
}

// whileStarting runs f with t.mu held, unless t is nil or already ready:
// once ready, expectations and their handling no longer matter.
func (t *Tracker) whileStarting(f func()) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready {
		return
	}
	f()
}

func (t *Tracker) kind(kind string) *objects {
	o, ok := t.constraints[kind]
	if !ok {
		o = newObjects()
		t.constraints[kind] = o
	}
	return o
}

// Ready reports whether everything expected has been handled.
func (t *Tracker) Ready() bool {
	return t.Check(nil) == nil
}

// Check is a controller-runtime healthz.Checker for /readyz.
func (t *Tracker) Check(_ *http.Request) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready {
		return nil
	}
	if !t.templatesListed {
		return fmt.Errorf("ConstraintTemplates not listed yet")
	}
	if p := t.templates.pending(); len(p) > 0 {
		return fmt.Errorf("%d of %d ConstraintTemplates not loaded yet, e.g. %q", len(p), len(t.templates.expected), p[0])
	}
	kinds := make([]string, 0, len(t.constraints))
	for k := range t.constraints {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if p := t.constraints[k].pending(); len(p) > 0 {
			return fmt.Errorf("%d %s constraints not loaded yet, e.g. %q", len(p), k, p[0])
		}
	}
	if err := t.checkGates(); err != nil {
		return err
	}
	t.ready = true
	// Nothing is tracked once ready: free the sets.
	t.templates, t.constraints = newObjects(), map[string]*objects{}
	t.gates = newGates()
	return nil
}
