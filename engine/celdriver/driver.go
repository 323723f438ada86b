package celdriver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"github.com/open-policy-agent/opa/v1/storage"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/portcullis-dev/portcullis/internal/resultcache"
)

const (
	statRunTime     = "runTimeNS"
	statRunTimeDesc = "the number of nanoseconds it took to evaluate the constraint"
)

var _ drivers.Driver = (*Driver)(nil)

// Driver evaluates K8sNativeValidation templates with the apiserver's
// ValidatingAdmissionPolicy machinery. Templates are compiled once, in
// AddTemplate; Query evaluates each constraint with its template's
// validator. Queries may run concurrently with each other and with
// mutations.
type Driver struct {
	gatherStats   bool
	budget        int64
	defaultPolicy string

	mu         sync.RWMutex
	validators map[string]*compiled // by template kind

	// cache memoizes each constraint's decisions (nil: off); see
	// readset.go and cachekey.go.
	cache *resultcache.Cache[[]decision]
}

// Option configures a Driver.
type Option func(*Driver)

// GatherStats makes every Query report per-constraint stats, as if
// reviews.Stats(true) were passed.
func GatherStats() Option { return func(d *Driver) { d.gatherStats = true } }

// CostBudget sets the runtime cost budget of one constraint's evaluation
// (all its validations and message expressions); the default is the
// apiserver's per-call limit, which Gatekeeper uses too. An evaluation
// that exceeds it is an error under the template's failurePolicy.
func CostBudget(n int64) Option { return func(d *Driver) { d.budget = n } }

// DefaultFailurePolicy sets the failure policy of the sources that set
// none (FailurePolicyFail, the default, or FailurePolicyIgnore), as
// Gatekeeper's --default-k8s-native-validation-failure-policy does.
// Anything else is ignored: check it with CheckFailurePolicy.
func DefaultFailurePolicy(p string) Option {
	return func(d *Driver) {
		if CheckFailurePolicy(p) == nil {
			d.defaultPolicy = p
		}
	}
}

// CheckFailurePolicy returns an error unless p is Fail or Ignore.
func CheckFailurePolicy(p string) error {
	if p != FailurePolicyFail && p != FailurePolicyIgnore {
		return fmt.Errorf("%w: failure policy %q is not one of %s, %s", ErrInvalidSource, p, FailurePolicyFail, FailurePolicyIgnore)
	}
	return nil
}

// CacheSize sets how many constraint results the result cache holds: a
// constraint's decisions on a review are kept, keyed by the values its
// template's expressions can read, so that a Deployment's pods, or an
// object applied again unchanged, are judged once. 0, the default, turns
// it off.
func CacheSize(n int) Option { return func(d *Driver) { d.cache = resultcache.New[[]decision](n) } }

// CacheStats returns the result cache's counters; zero if it is off.
func (d *Driver) CacheStats() resultcache.Stats { return d.cache.Stats() }

// New returns a Driver.
func New(opts ...Option) *Driver {
	d := &Driver{validators: map[string]*compiled{}, budget: celconfig.PerCallLimit, defaultPolicy: FailurePolicyFail}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Name is K8sNativeValidation, the engine name templates select it with.
func (d *Driver) Name() string { return Name }

// CodeIndex returns the index of a template's K8sNativeValidation code
// entry in spec.targets[0].code, or -1.
func CodeIndex(ct *templates.ConstraintTemplate) int {
	if len(ct.Spec.Targets) != 1 {
		return -1
	}
	for i, c := range ct.Spec.Targets[0].Code {
		if c.Engine == Name {
			return i
		}
	}
	return -1
}

// TemplateSource parses a template's K8sNativeValidation source; errors
// name the field in the template.
func TemplateSource(ct *templates.ConstraintTemplate) (*Source, string, error) {
	i := CodeIndex(ct)
	if i < 0 {
		return nil, "", fmt.Errorf("%w: template %q has no %s code in spec.targets[0].code", ErrInvalidSource, ct.GetName(), Name)
	}
	field := fmt.Sprintf("spec.targets[0].code[%d].source", i)
	var v any
	if src := ct.Spec.Targets[0].Code[i].Source; src != nil {
		v = src.Value
	}
	s, err := ParseSource(v, field)
	if err != nil {
		return nil, field, err
	}
	return s, field, nil
}

// Compile parses and compiles a template's CEL without adding it: the
// error, a *FieldError, names the first field that is malformed or does
// not compile, with the compiler's message.
func Compile(ct *templates.ConstraintTemplate) error {
	_, err := compileTemplate(ct, FailurePolicyFail)
	return err
}

// AddTemplate compiles a template's K8sNativeValidation source and
// replaces any template of the same kind. A template that does not parse
// or compile is refused with a *FieldError and the one held, if any,
// stays.
func (d *Driver) AddTemplate(_ context.Context, ct *templates.ConstraintTemplate) error {
	c, err := compileTemplate(ct, d.defaultPolicy)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.validators[ct.Spec.CRD.Spec.Names.Kind] = c
	return nil
}

// RemoveTemplate forgets a template; removing one not held is not an error.
func (d *Driver) RemoveTemplate(_ context.Context, ct *templates.ConstraintTemplate) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.validators, ct.Spec.CRD.Spec.Names.Kind)
	return nil
}

// AddConstraint does nothing: Query is passed the constraints, whose
// spec.parameters are variables.params.
func (d *Driver) AddConstraint(context.Context, *unstructured.Unstructured) error { return nil }

// RemoveConstraint does nothing (see AddConstraint).
func (d *Driver) RemoveConstraint(context.Context, *unstructured.Unstructured) error { return nil }

// AddData does nothing: CEL templates do not read data.inventory.
func (d *Driver) AddData(context.Context, string, storage.Path, any) error { return nil }

// RemoveData does nothing (see AddData).
func (d *Driver) RemoveData(context.Context, string, storage.Path) error { return nil }

// Request is what Query needs of a review: its admission request. A
// review may also implement DecodedObjects and NamespaceObject to spare
// Query decoding them again.
type Request interface {
	GetAdmissionRequest() *admissionv1.AdmissionRequest
}

type decodedObjects interface {
	DecodedObjects() (object, oldObject map[string]any)
}

type namespaceObject interface {
	NamespaceObject() *corev1.Namespace
}

// ErrReview is returned by Query for a review it cannot evaluate.
var ErrReview = errors.New("cannot evaluate review with CEL")

// Query evaluates each constraint's template against review. A failed
// validation is one result, whose message is the messageExpression's
// value, else the message, else "failed expression: <expression>"; an
// evaluation error is a result whose message is the error when the
// template's failurePolicy is Fail, and nothing when it is Ignore. On a
// DELETE, object is null and oldObject is the object deleted
// (variables.anyObject is it either way).
func (d *Driver) Query(ctx context.Context, target string, constraints []*unstructured.Unstructured, review any, opts ...reviews.ReviewOpt) (*drivers.QueryResponse, error) {
	if len(constraints) == 0 {
		return nil, nil
	}
	cfg := &reviews.ReviewCfg{}
	for _, o := range opts {
		o(cfg)
	}
	attrs, err := attributes(review)
	if err != nil {
		return nil, err
	}
	ns, err := reviewNamespace(review, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	// Converted once for all the constraints.
	in, err := newReviewVars(attrs, ns)
	if err != nil {
		return nil, err
	}
	stats := d.gatherStats || cfg.StatsEnabled
	var trace *strings.Builder
	if cfg.TracingEnabled {
		trace = &strings.Builder{}
	}

	// The compiled templates, taken under the lock, which AddTemplate then
	// need not wait evaluations out for.
	comps := make([]*compiled, len(constraints))
	d.mu.RLock()
	for i, c := range constraints {
		comps[i] = d.validators[c.GetKind()]
	}
	d.mu.RUnlock()
	resp := &drivers.QueryResponse{}
	for i, c := range constraints {
		comp := comps[i]
		if comp == nil {
			return nil, fmt.Errorf("%w: missing Template %q for target %q", ErrReview, c.GetKind(), target)
		}
		start := time.Now()
		decisions := d.decide(ctx, comp, in, c)
		for i, dec := range decisions {
			if trace != nil {
				fmt.Fprintf(trace, "%s %s: validations[%d]: %s", c.GetKind(), c.GetName(), i, dec.evaluation)
				if dec.message != "" {
					fmt.Fprintf(trace, ": %s", dec.message)
				}
				trace.WriteString("\n")
			}
			if !dec.deny {
				continue
			}
			resp.Results = append(resp.Results, &types.Result{Target: target, Msg: dec.message, Constraint: c})
		}
		if trace != nil && len(decisions) == 0 {
			fmt.Fprintf(trace, "%s %s: not judged (a matchCondition is false, or the failurePolicy ignored an error)\n", c.GetKind(), c.GetName())
		}
		if stats {
			resp.StatsEntries = append(resp.StatsEntries, constraintStats(c, time.Since(start)))
		}
	}
	if trace != nil {
		t := trace.String()
		resp.Trace = &t
	}
	return resp, nil
}

// decide is comp.validate's decisions on c, from the result cache when
// it holds them.
func (d *Driver) decide(ctx context.Context, comp *compiled, in *reviewVars, c *unstructured.Unstructured) []decision {
	if d.cache == nil {
		return comp.validate(ctx, in, c, d.budget)
	}
	key, ok := comp.resultKey(in, c.Object)
	if !ok {
		return comp.validate(ctx, in, c, d.budget)
	}
	if decisions, hit := d.cache.Get(key); hit {
		return decisions
	}
	decisions := comp.validate(ctx, in, c, d.budget)
	if ctx.Err() == nil {
		// Not what a canceled evaluation decided.
		d.cache.Put(key, decisions)
	}
	return decisions
}

// attributes builds the admission attributes a validator reads from a
// review: object is null on a DELETE, as in a ValidatingAdmissionPolicy.
func attributes(review any) (*admission.VersionedAttributes, error) {
	rg, ok := review.(Request)
	if !ok {
		return nil, fmt.Errorf("%w: %T has no admission request", ErrReview, review)
	}
	req := rg.GetAdmissionRequest()
	if req == nil {
		return nil, fmt.Errorf("%w: no admission request", ErrReview)
	}
	var obj, oldObj runtime.Object
	if dec, ok := review.(decodedObjects); ok {
		o, old := dec.DecodedObjects()
		if o != nil {
			obj = &unstructured.Unstructured{Object: o}
		}
		if old != nil {
			oldObj = &unstructured.Unstructured{Object: old}
		}
	} else {
		var err error
		if obj, err = decode(req.Object, "object"); err != nil {
			return nil, err
		}
		if oldObj, err = decode(req.OldObject, "oldObject"); err != nil {
			return nil, err
		}
	}
	if req.Operation == admissionv1.Delete {
		obj = nil
	}
	options, err := decode(req.Options, "options")
	if err != nil {
		return nil, err
	}
	kind := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	resource := schema.GroupVersionResource{Group: req.Resource.Group, Version: req.Resource.Version, Resource: req.Resource.Resource}
	extra := make(map[string][]string, len(req.UserInfo.Extra))
	for k, v := range req.UserInfo.Extra {
		extra[k] = append([]string(nil), v...)
	}
	userInfo := &user.DefaultInfo{Name: req.UserInfo.Username, UID: req.UserInfo.UID, Groups: req.UserInfo.Groups, Extra: extra}
	dryRun := req.DryRun != nil && *req.DryRun
	a := admission.NewAttributesRecord(obj, oldObj, kind, req.Namespace, req.Name, resource, req.SubResource,
		admission.Operation(req.Operation), options, dryRun, userInfo)
	return &admission.VersionedAttributes{
		Attributes:         a,
		VersionedKind:      kind,
		VersionedObject:    obj,
		VersionedOldObject: oldObj,
	}, nil
}

// decode parses a raw object of the request; empty or null is nil.
func decode(ext runtime.RawExtension, field string) (runtime.Object, error) {
	if len(ext.Raw) == 0 || string(ext.Raw) == "null" {
		if ext.Object != nil {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ext.Object)
			if err != nil {
				return nil, fmt.Errorf("%w: request.%s: %w", ErrReview, field, err)
			}
			return &unstructured.Unstructured{Object: m}, nil
		}
		return nil, nil
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(ext.Raw); err != nil {
		return nil, fmt.Errorf("%w: request.%s: %w", ErrReview, field, err)
	}
	return u, nil
}

// reviewNamespace is namespaceObject: the review's Namespace, else the one
// passed with reviews.Namespace, else null.
func reviewNamespace(review any, m map[string]any) (*corev1.Namespace, error) {
	if n, ok := review.(namespaceObject); ok {
		if ns := n.NamespaceObject(); ns != nil {
			return ns, nil
		}
	}
	if m == nil {
		return nil, nil
	}
	ns := &corev1.Namespace{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, ns); err != nil {
		return nil, fmt.Errorf("%w: namespaceObject: %w", ErrReview, err)
	}
	return ns, nil
}

func constraintStats(c *unstructured.Unstructured, took time.Duration) *instrumentation.StatsEntry {
	return &instrumentation.StatsEntry{
		Scope:    instrumentation.ConstraintScope,
		StatsFor: c.GetKind() + "/" + c.GetName(),
		Stats: []*instrumentation.Stat{{
			Name:   statRunTime,
			Value:  took.Nanoseconds(),
			Source: instrumentation.Source{Type: instrumentation.EngineSourceType, Value: Name},
		}},
	}
}

// Dump lists the kinds of the templates held, sorted.
func (d *Driver) Dump(context.Context) (string, error) {
	d.mu.RLock()
	kinds := make([]string, 0, len(d.validators))
	for k := range d.validators {
		kinds = append(kinds, k)
	}
	d.mu.RUnlock()
	sort.Strings(kinds)
	return strings.Join(kinds, "\n"), nil
}

// GetDescriptionForStat describes the stats Query reports.
func (d *Driver) GetDescriptionForStat(name string) (string, error) {
	if name == statRunTime {
		return statRunTimeDesc, nil
	}
	return "", fmt.Errorf("unknown stat name for %s: %q", Name, name)
}
