package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/mutation"
)

// Runner runs suites. Each test gets its own engine; cases of a test share
// it, with the inventory cleared between cases.
type Runner struct {
	// Filter, if set, selects tests and cases (gator's --run).
	Filter *Filter
	// Engine options for every test's engine.
	EngineOptions engine.Options
	// Trace records each case's evaluation trace (gator's --trace).
	Trace bool
	// Warn, if set, is told what is suspicious but not an error: an
	// ExpansionTemplate whose resultants no constraint can judge.
	Warn func(string)
}

// Errors of suites and cases, in gator's words.
var (
	ErrValidConstraint = errors.New("constraint should have failed schema validation")
	ErrNumViolations   = errors.New("unexpected number of violations")
	ErrInvalidRegex    = errors.New("message contains invalid regular expression")
	ErrMultipleObjects = errors.New("object file must contain exactly one object")
	ErrNoObjects       = errors.New("missing objects")
	ErrAddInventory    = errors.New("unable to add object to data.inventory")
	ErrInvalidYAML     = errors.New("invalid yaml")
)

// SuiteResult is the outcome of one suite.
type SuiteResult struct {
	Path    string
	Skipped bool
	Err     error
	Runtime time.Duration
	Tests   []TestResult
}

// Failed reports whether the suite or any test in it failed.
func (r *SuiteResult) Failed() bool {
	if r.Err != nil {
		return true
	}
	for i := range r.Tests {
		if r.Tests[i].Failed() {
			return true
		}
	}
	return false
}

// TestResult is the outcome of one test.
type TestResult struct {
	Name    string
	Skipped bool
	Err     error
	Runtime time.Duration
	Cases   []CaseResult
}

// Failed reports whether the test or any case in it failed.
func (r *TestResult) Failed() bool {
	if r.Err != nil {
		return true
	}
	for i := range r.Cases {
		if r.Cases[i].Err != nil {
			return true
		}
	}
	return false
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name    string
	Skipped bool
	Err     error
	Runtime time.Duration
	Trace   *string
}

// RunSuite runs every selected test of a suite.
func (r *Runner) RunSuite(ctx context.Context, s *Suite) SuiteResult {
	start := time.Now()
	res := SuiteResult{Path: s.Path}
	if s.Skip {
		res.Skipped = true
		return res
	}
	for i := range s.Tests {
		res.Tests = append(res.Tests, r.runTest(ctx, s.Path, &s.Tests[i]))
	}
	res.Runtime = time.Since(start)
	return res
}

func (r *Runner) runTest(ctx context.Context, suitePath string, t *Test) TestResult {
	start := time.Now()
	dir := filepath.Dir(suitePath)
	res := TestResult{Name: t.Name}
	if t.Skip || !r.Filter.MatchesTest(t) {
		res.Skipped = true
		return res
	}
	eng, x, err := r.setup(ctx, suitePath, t)
	var mutators []manifest.Doc
	if err == nil {
		mutators, err = readMutators(dir, t.Mutators)
	}
	switch {
	case t.Invalid:
		// gator's words: "constraint should have failed schema validation".
		if err == nil {
			res.Err = fmt.Errorf("%w: got error <nil> but want %w", ErrValidConstraint, apiconstraints.ErrSchema)
		} else if !errors.Is(err, apiconstraints.ErrSchema) {
			res.Err = fmt.Errorf("%w: got error %w but want %w", ErrValidConstraint, err, apiconstraints.ErrSchema)
		}
	case err != nil:
		res.Err = err
	default:
		for _, c := range t.Cases {
			if c.Skip || !r.Filter.MatchesCase(t.Name, c.Name) {
				res.Cases = append(res.Cases, CaseResult{Name: c.Name, Skipped: true})
				continue
			}
			cstart := time.Now()
			trace, cerr := r.runCase(ctx, eng, x, dir, c, mutators)
			res.Cases = append(res.Cases, CaseResult{Name: c.Name, Err: cerr, Runtime: time.Since(cstart), Trace: trace})
		}
	}
	res.Runtime = time.Since(start)
	return res
}

// setup builds an engine holding the test's template and constraint, and
// reads the test's ExpansionTemplates if it names any.
func (r *Runner) setup(ctx context.Context, suitePath string, t *Test) (*engine.Engine, *testExpansion, error) {
	dir := filepath.Dir(suitePath)
	if t.Template == "" {
		return nil, nil, fmt.Errorf("%w: missing template", ErrInvalidSuite)
	}
	if t.Constraint == "" {
		return nil, nil, fmt.Errorf("%w: missing constraint", ErrInvalidSuite)
	}
	eng, cObj, err := r.newEngine(ctx, dir, t)
	if err != nil || t.Expansion == "" {
		return eng, nil, err
	}
	x, err := loadExpansion(dir, t.Expansion)
	if err != nil {
		return nil, nil, err
	}
	if r.Warn != nil {
		for _, w := range x.plain.Unjudged([]*unstructured.Unstructured{cObj}) {
			r.Warn(fmt.Sprintf("%s: test %q: %s", suitePath, t.Name, w))
		}
	}
	return eng, x, nil
}

// newEngine builds an engine holding the test's template and constraint,
// and returns the constraint.
func (r *Runner) newEngine(ctx context.Context, dir string, t *Test) (*engine.Engine, *unstructured.Unstructured, error) {
	opts := r.EngineOptions
	opts.Tracing = opts.Tracing || r.Trace
	eng, err := engine.New(opts)
	if err != nil {
		return nil, nil, err
	}
	tmplObj, err := readOne(dir, t.Template)
	if err != nil {
		return nil, nil, err
	}
	ct, err := engine.ParseTemplate(tmplObj)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", t.Template, err)
	}
	if err := eng.AddTemplate(ctx, ct); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", t.Template, err)
	}
	cObj, err := readOne(dir, t.Constraint)
	if err != nil {
		return nil, nil, err
	}
	if err := eng.AddConstraint(ctx, cObj); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", t.Constraint, err)
	}
	return eng, cObj, nil
}

// runCase reviews a case's object, mutated by the test's mutators if it
// names any, and what it expands into with the test's ExpansionTemplates,
// mutated by the same mutators (source Generated), as a cluster would; an
// AdmissionReview is neither mutated nor expanded, as in gator.
func (r *Runner) runCase(ctx context.Context, eng *engine.Engine, x *testExpansion, dir string, c *Case, mutators []manifest.Doc) (*string, error) {
	if c.Object == "" {
		return nil, fmt.Errorf("%w: must define object", ErrInvalidCase)
	}
	if len(c.Assertions) == 0 {
		return nil, fmt.Errorf("%w: assertions must be non-empty", ErrInvalidCase)
	}
	obj, err := readOne(dir, c.Object)
	if err != nil {
		return nil, err
	}
	if len(c.Inventory) > 0 {
		defer func() { _ = eng.WipeData(ctx) }()
	}
	for _, p := range c.Inventory {
		docs, err := manifest.ReadPath(suitePath(dir, p), nil)
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		if len(docs) == 0 {
			return nil, fmt.Errorf("%w: path %q defines no YAML objects", ErrNoObjects, p)
		}
		for _, d := range docs {
			if d.Object.GroupVersionKind().Group == mutationsv1.Group {
				mutators = append(slices.Clip(mutators), d)
				continue
			}
			if err := eng.AddData(ctx, d.Object); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrAddInventory, d.Source, err)
			}
		}
	}
	var resultants expansion.Mutator
	if len(mutators) > 0 && !isAdmissionReview(obj) {
		off, err := mutate(ctx, obj, mutators)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Object, err)
		}
		resultants = off.ForExpansion()
	}
	sys, err := x.system(resultants)
	if err != nil {
		return nil, err
	}
	var (
		resp *engine.Response
		req  *admissionv1.AdmissionRequest
	)
	if isAdmissionReview(obj) {
		if req, err = admissionRequest(obj); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Object, err)
		}
		resp, err = eng.Review(ctx, &engine.Admission{Request: req, Source: engine.SourceOriginal}, engine.EnforcementPointGator)
	} else {
		rv := &expansion.Reviewer{Engine: eng, System: sys}
		resp, err = rv.Review(ctx, &engine.Object{Object: obj, Source: engine.SourceOriginal}, engine.EnforcementPointGator)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Object, err)
	}
	var trace *string
	if r.Trace {
		trace = &resp.Trace
	}
	msgs := make([]string, len(resp.Violations))
	for i, v := range resp.Violations {
		msgs[i] = v.Message
	}
	for i := range c.Assertions {
		if err := c.Assertions[i].check(msgs); err != nil {
			return trace, err
		}
	}
	return trace, nil
}

// suitePath resolves a path named in a suite: relative to the suite's
// directory, or absolute.
func suitePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func readOne(dir, rel string) (*unstructured.Unstructured, error) {
	p := suitePath(dir, rel)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidSuite, rel, err)
	}
	docs, err := manifest.ReadPath(p, nil)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w: path %q defines no YAML objects", ErrNoObjects, p)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%w: %q defines %d objects", ErrMultipleObjects, p, len(docs))
	}
	return docs[0].Object, nil
}

func isAdmissionReview(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Kind == "AdmissionReview" && gvk.Group == admissionv1.GroupName
}

func admissionRequest(u *unstructured.Unstructured) (*admissionv1.AdmissionRequest, error) {
	var ar admissionv1.AdmissionReview
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &ar, true); err != nil {
		return nil, fmt.Errorf("not a valid AdmissionReview: %w", err)
	}
	if ar.Request == nil {
		return nil, errors.New("AdmissionReview has no request")
	}
	if ar.Request.Object.Raw == nil && ar.Request.OldObject.Raw == nil {
		return nil, errors.New("AdmissionReview request has neither object nor oldObject")
	}
	return ar.Request, nil
}

func (a *Assertion) check(msgs []string) error {
	var re *regexp.Regexp
	if a.Message != nil {
		var err error
		if re, err = regexp.Compile(*a.Message); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRegex, err)
		}
	}
	n := 0
	for _, m := range msgs {
		if re == nil || re.MatchString(m) {
			n++
		}
	}
	want := intstr.FromString("yes")
	if a.Violations != nil {
		want = intstr.IntOrString(*a.Violations)
	}
	what := "violations"
	if a.Message != nil {
		what = fmt.Sprintf("violations containing %q", *a.Message)
	}
	var err error
	switch {
	case want.Type == intstr.Int && want.IntVal < 0,
		want.Type == intstr.String && want.StrVal != "yes" && want.StrVal != "no":
		return fmt.Errorf(`%w: assertion.violation, if set, must be a nonnegative integer, "yes", or "no"`, ErrInvalidYAML)
	case want.Type == intstr.Int && n != int(want.IntVal):
		err = fmt.Errorf("%w: got %d %s but want exactly %d", ErrNumViolations, n, what, want.IntVal)
	case want.Type == intstr.String && want.StrVal == "yes" && n == 0:
		err = fmt.Errorf("%w: got %d %s but want at least 1", ErrNumViolations, n, what)
	case want.Type == intstr.String && want.StrVal == "no" && n > 0:
		err = fmt.Errorf("%w: got %d %s but want none", ErrNumViolations, n, what)
	}
	if err != nil {
		// gator prints the messages as Go prints a []string.
		return fmt.Errorf("%w: got messages %v", err, msgs)
	}
	return nil
}

// readMutators reads the files of a test's mutators; each document must
// be a mutator.
func readMutators(dir string, paths []string) ([]manifest.Doc, error) {
	var out []manifest.Doc
	for _, p := range paths {
		docs, err := manifest.ReadPath(suitePath(dir, p), nil)
		if err != nil {
			return nil, fmt.Errorf("mutators: %w", err)
		}
		for _, d := range docs {
			if d.Object.GroupVersionKind().Group != mutationsv1.Group {
				return nil, fmt.Errorf("%w: mutators: %s is a %s, not a mutator", ErrInvalidSuite, d.Source, d.Object.GetKind())
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// mutate applies the mutators to obj, in place, as the mutating webhook
// would before the object is judged, and returns them.
func mutate(ctx context.Context, obj *unstructured.Unstructured, mutators []manifest.Doc) (*mutation.Offline, error) {
	off := mutation.NewOffline()
	for _, d := range mutators {
		if err := off.AddMutator(d.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Source, err)
		}
	}
	if _, err := off.Mutate(ctx, obj); err != nil {
		return nil, fmt.Errorf("mutating: %w", err)
	}
	return off, nil
}
