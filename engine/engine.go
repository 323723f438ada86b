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
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
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
	// ResultCacheSize is how many constraint results the result cache of
	// each driver holds (see regodriver.CacheSize and
	// celdriver.CacheSize): 0 means DefaultResultCacheSize, a negative
	// number turns them off.
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
// serialized, as the drivers require.
type Engine struct {
	target *target
	driver *regodriver.Driver
	cel    *celdriver.Driver
	// celFirst is !Options.DisableK8sNativeValidation.
	celFirst bool
	// eps are the enforcement points the engine reviews for.
	eps []string
	// reg is what the engine holds (see registry.go).
	reg atomic.Pointer[registry]

	// tracing is Options.Tracing: only then does a Response carry a trace.
	tracing bool

	mu sync.Mutex // serializes changes
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
	switch {
	case opts.ResultCacheSize == 0:
		celOpts = append(celOpts, celdriver.CacheSize(DefaultResultCacheSize))
	case opts.ResultCacheSize > 0:
		celOpts = append(celOpts, celdriver.CacheSize(opts.ResultCacheSize))
	}
	cel := celdriver.New(celOpts...)
	// A template with both engines runs on the one engineFor chooses;
	// TestIndexMatchesClientReview checks the frameworks client agrees.
	return &Engine{
		target:   newTarget(),
		driver:   driver,
		cel:      cel,
		celFirst: !opts.DisableK8sNativeValidation,
		eps:      eps,
		tracing:  opts.Tracing,
	}, nil
}

// Counts reports how many templates and constraints the engine holds.
func (e *Engine) Counts() (templates, constraints int) {
	reg := e.loadRegistry()
	for _, t := range reg.templates {
		constraints += len(t.constraints)
	}
	return len(reg.templates), constraints
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
	if t := e.loadRegistry().template(kind); t != nil && t.kind == kind {
		return t.engine
	}
	return ""
}

// TemplatesByEngine counts the templates held by the engine that
// evaluates them (EngineRego, EngineCEL).
func (e *Engine) TemplatesByEngine() map[string]int {
	out := map[string]int{}
	for _, t := range e.loadRegistry().templates {
		out[t.engine]++
	}
	return out
}

// TemplateKinds lists the kinds of the templates held, sorted.
func (e *Engine) TemplateKinds() []string {
	reg := e.loadRegistry()
	out := make([]string, 0, len(reg.templates))
	for _, t := range reg.templates {
		out = append(out, t.kind)
	}
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
	return e.driver.CacheStats().Add(e.cel.CacheStats())
}
