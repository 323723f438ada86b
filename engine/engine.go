package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

// Enforcement points, as Gatekeeper names them.
const (
	EnforcementPointWebhook = apiconstraints.WebhookEnforcementPoint // validation.gatekeeper.sh
	EnforcementPointAudit   = "audit.gatekeeper.sh"
	EnforcementPointGator   = "gator.gatekeeper.sh"
)

// Enforcement actions.
const (
	ActionDeny   = string(apiconstraints.Deny)
	ActionWarn   = string(apiconstraints.Warn)
	ActionDryrun = "dryrun"
	ActionScoped = string(apiconstraints.Scoped)
)

// Options configures an Engine.
type Options struct {
	// EnforcementPoints the engine reviews for; empty means webhook, audit
	// and gator.
	EnforcementPoints []string
	// EnableHTTPSend allows the http.send builtin, which is off by default
	// so that a policy cannot make network calls from the webhook.
	EnableHTTPSend bool
	// DisabledBuiltins lists further Rego builtins to refuse.
	DisabledBuiltins []string
	// DisableReferential forbids data.inventory in templates.
	DisableReferential bool
	// Tracing records an evaluation trace on every review.
	Tracing bool
	// ResultCacheSize is how many constraint results the result cache
	// holds (see regodriver.CacheSize): 0 means
	// regodriver.DefaultCacheSize, a negative number turns it off.
	ResultCacheSize int
	// DisableK8sNativeValidation makes templates that have both Rego and
	// K8sNativeValidation (CEL) code run their Rego, as Gatekeeper's
	// --enable-k8s-native-validation=false does. By default their CEL
	// runs. Templates with only CEL run it either way.
	DisableK8sNativeValidation bool
	// DefaultK8sNativeValidationFailurePolicy is the failurePolicy of the
	// K8sNativeValidation sources that set none: Fail (when empty) or
	// Ignore, as Gatekeeper's --default-k8s-native-validation-failure-policy.
	DefaultK8sNativeValidationFailurePolicy string
	// GatherStats makes every Response carry the drivers' stats, as
	// gator test --stats asks for.
	GatherStats bool
}

// Engine judges objects against constraint templates and constraints. Reviews
// run concurrently; changes to templates, constraints and data are
// serialized, as the frameworks client requires.
type Engine struct {
	client *client.Client
	target *target
	driver *regodriver.Driver
	cel    *celdriver.Driver
	// celFirst is !Options.DisableK8sNativeValidation.
	celFirst bool
	// eps are the enforcement points the engine reviews for.
	eps []string
	// index is what reviews read (see index.go).
	index atomic.Pointer[reviewIndex]

	// tracing is Options.Tracing: only then does a Response carry a trace.
	tracing bool

	mu          sync.Mutex // serializes mutations
	templates   map[string]*templates.ConstraintTemplate
	constraints map[string]int // constraints per template kind
}

// New builds an Engine with the Rego and the K8sNativeValidation drivers.
func New(opts Options) (*Engine, error) {
	eps := opts.EnforcementPoints
	if len(eps) == 0 {
		eps = []string{EnforcementPointWebhook, EnforcementPointAudit, EnforcementPointGator}
	}
	disabled := append([]string(nil), opts.DisabledBuiltins...)
	if !opts.EnableHTTPSend {
		disabled = append(disabled, "http.send")
	}
	args := []regodriver.Option{regodriver.Tracing(opts.Tracing)}
	if opts.GatherStats {
		args = append(args, regodriver.GatherStats())
	}
	if len(disabled) > 0 {
		args = append(args, regodriver.DisableBuiltins(disabled...))
	}
	if opts.DisableReferential {
		args = append(args, regodriver.Externs())
	} else {
		args = append(args, regodriver.Externs("inventory"))
	}
	switch {
	case opts.ResultCacheSize < 0:
		args = append(args, regodriver.CacheSize(0))
	case opts.ResultCacheSize > 0:
		args = append(args, regodriver.CacheSize(opts.ResultCacheSize))
	}
	driver, err := regodriver.New(args...)
	if err != nil {
		return nil, fmt.Errorf("creating Rego driver: %w", err)
	}
	var celOpts []celdriver.Option
	if p := opts.DefaultK8sNativeValidationFailurePolicy; p != "" {
		if err := celdriver.CheckFailurePolicy(p); err != nil {
			return nil, fmt.Errorf("creating the K8sNativeValidation driver: %w", err)
		}
		celOpts = append(celOpts, celdriver.DefaultFailurePolicy(p))
	}
	if opts.GatherStats {
		celOpts = append(celOpts, celdriver.GatherStats())
	}
	cel := celdriver.New(celOpts...)
	// The frameworks client gives a template with several engines to the
	// driver registered first; the engine's index (engineFor) agrees.
	drivers := []client.Opt{client.Driver(cel), client.Driver(driver)}
	if opts.DisableK8sNativeValidation {
		drivers = []client.Opt{client.Driver(driver), client.Driver(cel)}
	}
	t := newTarget()
	c, err := client.NewClient(append(drivers,
		client.Targets(t),
		client.EnforcementPoints(eps...),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating constraint client: %w", err)
	}
	return &Engine{
		client:      c,
		target:      t,
		driver:      driver,
		cel:         cel,
		celFirst:    !opts.DisableK8sNativeValidation,
		eps:         eps,
		tracing:     opts.Tracing,
		templates:   map[string]*templates.ConstraintTemplate{},
		constraints: map[string]int{},
	}, nil
}

// AddTemplate compiles a template and makes its kind available to
// constraints. Adding a template equal to the one held is a no-op.
func (e *Engine) AddTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	if err := validateTemplate(ct); err != nil {
		return err
	}
	// Compile before taking any lock: the frameworks client holds its
	// lock while it adds the template, and then only swaps the compiled
	// template in. CEL compiles in AddTemplate: it takes milliseconds.
	eng := engineFor(ct, e.celFirst)
	if eng == EngineRego {
		if err := e.driver.Prepare(ctx, ct); err != nil {
			return templateError(ct, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.client.AddTemplate(ctx, ct); err != nil {
		return templateError(ct, err)
	}
	e.indexTemplate(ct, eng)
	e.templates[ct.Spec.CRD.Spec.Names.Kind] = ct.DeepCopy()
	return nil
}

// RemoveTemplate removes a template and all its constraints.
func (e *Engine) RemoveTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Out of the index first: a review must not query a kind the driver
	// no longer holds.
	e.unindexTemplate(ct.Spec.CRD.Spec.Names.Kind)
	if _, err := e.client.RemoveTemplate(ctx, ct); err != nil {
		return fmt.Errorf("removing template %q: %w", ct.GetName(), err)
	}
	delete(e.templates, ct.Spec.CRD.Spec.Names.Kind)
	delete(e.constraints, ct.Spec.CRD.Spec.Names.Kind)
	return nil
}

// CreateCRD builds the constraint CRD for a template, as apiextensions/v1.
func (e *Engine) CreateCRD(ctx context.Context, ct *templates.ConstraintTemplate) (*apiextensionsv1.CustomResourceDefinition, error) {
	if err := validateTemplate(ct); err != nil {
		return nil, err
	}
	crd, err := e.client.CreateCRD(ctx, ct)
	if err != nil {
		return nil, fmt.Errorf("template %q: building constraint CRD: %w", ct.GetName(), err)
	}
	out := &apiextensionsv1.CustomResourceDefinition{}
	if err := crdScheme.Convert(crd, out, nil); err != nil {
		return nil, fmt.Errorf("template %q: converting constraint CRD: %w", ct.GetName(), err)
	}
	out.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	return out, nil
}

// AddConstraint validates a constraint against its template's schema and
// starts enforcing it.
func (e *Engine) AddConstraint(ctx context.Context, u *unstructured.Unstructured) error {
	if err := ValidateEnforcementAction(u); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	existed := true
	if _, err := e.client.GetConstraint(u); err != nil {
		existed = false
	}
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "status")
	if _, err := e.client.AddConstraint(ctx, c); err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	// Index the constraint as the client stored it: parameter defaults
	// applied, which results report.
	stored, err := e.client.GetConstraint(c)
	if err != nil {
		return fmt.Errorf("constraint %s %q: reading it back: %w", u.GetKind(), u.GetName(), err)
	}
	if err := e.indexConstraint(stored); err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	if !existed {
		e.constraints[u.GetKind()]++
	}
	return nil
}

// RemoveConstraint stops enforcing a constraint. Removing one that is not
// held is not an error.
func (e *Engine) RemoveConstraint(ctx context.Context, u *unstructured.Unstructured) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.client.GetConstraint(u); err != nil {
		return nil
	}
	e.unindexConstraint(u.GetKind(), u.GetName())
	if _, err := e.client.RemoveConstraint(ctx, u); err != nil {
		return fmt.Errorf("removing constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	e.constraints[u.GetKind()]--
	return nil
}

// ValidateConstraint checks a constraint against its template without
// adding it: schema, match criteria and enforcement action.
func (e *Engine) ValidateConstraint(u *unstructured.Unstructured) error {
	if err := ValidateEnforcementAction(u); err != nil {
		return err
	}
	if err := e.client.ValidateConstraint(u); err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// AddData puts an object into data.inventory for referential policies.
func (e *Engine) AddData(ctx context.Context, u *unstructured.Unstructured) error {
	return e.changeData(ctx, u, "adding %s to inventory: %w", e.client.AddData)
}

// RemoveData removes an object from data.inventory.
func (e *Engine) RemoveData(ctx context.Context, u *unstructured.Unstructured) error {
	return e.changeData(ctx, u, "removing %s from inventory: %w", e.client.RemoveData)
}

// changeData applies one change of data.inventory under the engine's lock;
// errf names the change, with the object and the error.
func (e *Engine) changeData(ctx context.Context, u *unstructured.Unstructured, errf string, change func(context.Context, any) (*types.Responses, error)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := change(ctx, u); err != nil {
		obj := fmt.Sprintf("%s %s/%s", u.GroupVersionKind(), u.GetNamespace(), u.GetName())
		return fmt.Errorf(errf, obj, targetError(err))
	}
	return nil
}

// WipeData clears all of data.inventory.
func (e *Engine) WipeData(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.client.RemoveData(ctx, wipeData{}); err != nil {
		return fmt.Errorf("wiping inventory: %w", err)
	}
	return nil
}

// Counts reports how many templates and constraints the engine holds.
func (e *Engine) Counts() (templates, constraints int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.constraints {
		constraints += n
	}
	return len(e.templates), constraints
}

// Violation is one constraint's verdict on a reviewed object. Details and
// Constraint are shared with the engine (and, through its result cache,
// with other reviews): read them, never modify them.
type Violation struct {
	Message string
	Details any
	// Metadata is the driver's result metadata ({"details": ...} for
	// Rego), as gator prints it.
	Metadata   map[string]any
	Constraint *unstructured.Unstructured
	// EnforcementAction is the constraint's spec.enforcementAction.
	EnforcementAction string
	// Actions are the actions that apply at the enforcement point of the
	// review: the enforcementAction itself, or for `scoped` the actions
	// listed for that point.
	Actions []string
}

// HasAction reports whether action applies to the violation.
func (v *Violation) HasAction(action string) bool {
	return slices.Contains(v.Actions, action)
}

// Response is the outcome of one review.
type Response struct {
	Violations []Violation
	// Matched are the constraints that matched the object, with or without
	// violations, when the review was an *Object with ListMatched set.
	Matched []*unstructured.Unstructured
	// Trace is the evaluation trace and the results, when the engine was
	// built with Options.Tracing; empty otherwise.
	Trace string
	// Stats are the drivers' stats, when the engine was built with
	// Options.GatherStats.
	Stats []*instrumentation.StatsEntry
}

// Review judges an *Admission or an *Object at an enforcement point.
func (e *Engine) Review(ctx context.Context, in ReviewInput, enforcementPoint string) (*Response, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: %T", ErrReviewType, in)
	}
	r, trace, err := in.toReview()
	if err != nil {
		return nil, err
	}
	trace = trace || e.tracing
	switch enforcementPoint {
	case EnforcementPointWebhook:
		r.process = ProcessWebhook
	case EnforcementPointAudit:
		r.process = ProcessAudit
	}
	if r.namespace == nil && r.Namespace != "" {
		// A Namespace synced into the inventory serves both the matcher and
		// input.review.namespaceObject.
		r.namespace = e.target.namespaces.get(r.Namespace)
	}
	opts := []reviews.ReviewOpt{reviews.EnforcementPoint(enforcementPoint), reviews.Tracing(trace)}
	if r.namespace != nil {
		nsMap, err := namespaceMap(r.namespace)
		if err != nil {
			return nil, err
		}
		opts = append(opts, reviews.Namespace(nsMap))
	}
	resps, err := e.reviewIndexed(ctx, r, enforcementPoint, opts)
	if err != nil {
		return nil, fmt.Errorf("reviewing %s %s: %w", r.Kind.Kind, objectRef(r.Namespace, r.Name), err)
	}
	out := &Response{}
	for _, res := range resps.Results() {
		out.Violations = append(out.Violations, toViolation(res))
	}
	out.Stats = resps.StatsEntries
	out.Matched = r.matched
	if trace {
		// Dumping the responses is costly (it spews every result), so it
		// is only done when a trace was asked for.
		out.Trace = resps.TraceDump()
	}
	return out, nil
}

func toViolation(res *types.Result) Violation {
	v := Violation{
		Message:           res.Msg,
		Constraint:        res.Constraint,
		EnforcementAction: res.EnforcementAction,
		Metadata:          res.Metadata,
	}
	if res.Metadata != nil {
		v.Details = res.Metadata["details"]
	}
	if res.EnforcementAction == ActionScoped {
		v.Actions = append(v.Actions, res.ScopedEnforcementActions...)
		sort.Strings(v.Actions)
	} else {
		v.Actions = []string{res.EnforcementAction}
	}
	return v
}

func objectRef(ns, name string) string {
	if ns == "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q", ns+"/"+name)
}

// targetError unwraps the frameworks client's per-target error map, whose
// own error does not unwrap, to our target's error.
func targetError(err error) error {
	var em *clienterrors.ErrorMap
	if errors.As(err, &em) && em != nil {
		if e, ok := (*em)[TargetName]; ok {
			return e
		}
	}
	return err
}

// ErrEnforcementAction is returned for an unknown enforcement action.
var ErrEnforcementAction = errors.New("invalid enforcementAction")

var knownActions = []string{ActionDeny, ActionDryrun, ActionWarn}

// knownEnforcementPoints are the points a scoped action may name, as in
// Gatekeeper; vap.k8s.io is the generated ValidatingAdmissionPolicies' (package
// vap), which the engine does not judge.
var knownEnforcementPoints = []string{
	apiconstraints.AllEnforcementPoints, EnforcementPointWebhook, EnforcementPointAudit, EnforcementPointGator, "vap.k8s.io",
}

// ValidateEnforcementAction checks spec.enforcementAction (deny, dryrun, warn
// or scoped) and, for scoped, spec.scopedEnforcementActions.
func ValidateEnforcementAction(u *unstructured.Unstructured) error {
	action, found, err := unstructured.NestedString(u.Object, "spec", "enforcementAction")
	if err != nil {
		return fmt.Errorf("%w: spec.enforcementAction: %w", ErrEnforcementAction, err)
	}
	if !found || action == "" {
		return nil
	}
	if contains(knownActions, action) {
		return nil
	}
	if action != ActionScoped {
		return fmt.Errorf("%w: spec.enforcementAction: %q is not one of %s, %s", ErrEnforcementAction, action,
			strings.Join(knownActions, ", "), ActionScoped)
	}
	scoped, found, err := unstructured.NestedSlice(u.Object, "spec", "scopedEnforcementActions")
	if err != nil || !found || len(scoped) == 0 {
		return fmt.Errorf("%w: spec.scopedEnforcementActions: required when enforcementAction is scoped", ErrEnforcementAction)
	}
	for i, s := range scoped {
		m, _ := s.(map[string]any)
		a, _ := m["action"].(string)
		if !contains(knownActions, a) {
			return fmt.Errorf("%w: spec.scopedEnforcementActions[%d].action: %q is not one of %s", ErrEnforcementAction, i, a,
				strings.Join(knownActions, ", "))
		}
		eps, _ := m["enforcementPoints"].([]any)
		if len(eps) == 0 {
			return fmt.Errorf("%w: spec.scopedEnforcementActions[%d].enforcementPoints: required", ErrEnforcementAction, i)
		}
		for j, ep := range eps {
			em, _ := ep.(map[string]any)
			name, _ := em["name"].(string)
			if !contains(knownEnforcementPoints, name) {
				return fmt.Errorf("%w: spec.scopedEnforcementActions[%d].enforcementPoints[%d].name: %q is not one of %s",
					ErrEnforcementAction, i, j, name, strings.Join(knownEnforcementPoints, ", "))
			}
		}
	}
	return nil
}

// TemplateEngine is the engine that evaluates a template kind held,
// EngineRego or EngineCEL, or "" when the kind is not held.
func (e *Engine) TemplateEngine(kind string) string {
	for _, k := range e.loadIndex().kinds {
		if k.kind == kind {
			return k.engine
		}
	}
	return ""
}

// TemplatesByEngine counts the templates held by the engine that
// evaluates them (EngineRego, EngineCEL).
func (e *Engine) TemplatesByEngine() map[string]int {
	out := map[string]int{}
	for _, k := range e.loadIndex().kinds {
		out[k.engine]++
	}
	return out
}

// TemplateKinds lists the kinds of the templates held, sorted.
func (e *Engine) TemplateKinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.templates))
	for k := range e.templates {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DefaultResultCacheSize is the result cache's size when
// Options.ResultCacheSize is 0.
const DefaultResultCacheSize = regodriver.DefaultCacheSize

// CacheStats are the result cache's counters (zero when it is off).
type CacheStats = regodriver.CacheStats

// CacheStats returns the result cache's counters: the policy results taken
// from it, those evaluated, and the entries it holds.
func (e *Engine) CacheStats() CacheStats {
	return e.driver.CacheStats()
}
