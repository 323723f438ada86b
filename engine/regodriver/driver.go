package regodriver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Stats reported per template kind when stats are enabled.
const (
	statTemplateRunTime     = "templateRunTimeNS"
	statTemplateRunTimeDesc = "the number of nanoseconds it took to evaluate all constraints for a template"
	statConstraintCount     = "constraintCount"
	statConstraintCountDesc = "the number of constraints that were evaluated for the given constraint kind"
)

var _ drivers.Driver = (*Driver)(nil)

// Driver evaluates Rego ConstraintTemplates. Each template is compiled,
// with its violation query, once in AddTemplate; Query only evaluates,
// once per constraint, with input {review, parameters}. Constraint
// parameters are converted to AST once in AddConstraint, and the review
// once per Query. Queries may run concurrently with each other and with
// mutations; mutations (templates, constraints, data) must be serialized by
// the caller, as the frameworks client requires.
type Driver struct {
	caps         *ast.Capabilities
	disabled     map[string]bool
	externs      []string
	traceEnabled bool
	gatherStats  bool

	// mu guards the maps below. Compiling happens outside it: AddTemplate
	// only holds it to swap the new programs in.
	mu sync.RWMutex
	// targets holds per target the store and the programs by kind.
	targets map[string]*targetState
	// kinds holds the template kinds added, with their constraints'
	// parameters by name.
	kinds map[string]map[string]*constraintParams

	// prepared holds compilations made by Prepare, by kind.
	prepared map[string]*preparedTemplate
	// fingerprints identify what each held kind was compiled from.
	fingerprints map[string][sha256.Size]byte

	// cache memoizes violations (nil: off); see cache.go.
	cache *resultCache
	// inflight counts Queries running, to decide whether one Query may
	// spread its templates over the idle cores.
	inflight atomic.Int32
}

// constraintParams are a constraint's spec.parameters as AST, numbered: results
// cached for them are never used for other parameters.
type constraintParams struct {
	term *ast.Term
	id   uint64
}

var paramsIDs atomic.Uint64

type targetState struct {
	store    storage.Store
	programs map[string]*program // by template kind
	// dataGen counts the writes to store, after each commit.
	dataGen atomic.Uint64
}

// New returns a Driver. By default data.inventory is allowed and all
// builtins are available; see Externs and DisableBuiltins.
func New(opts ...Option) (*Driver, error) {
	d := &Driver{
		disabled:     map[string]bool{},
		externs:      []string{"data.inventory"},
		targets:      map[string]*targetState{},
		kinds:        map[string]map[string]*constraintParams{},
		prepared:     map[string]*preparedTemplate{},
		fingerprints: map[string][sha256.Size]byte{},
		cache:        newResultCache(DefaultCacheSize),
	}
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, err
		}
	}
	d.caps = capabilitiesWithout(d.disabled)
	return d, nil
}

// Name is "Rego": the frameworks client sends AddData and RemoveData only
// to the driver of that name, and templates select it with engine: Rego.
func (d *Driver) Name() string { return schema.Name }

// target returns the state for a target, creating its store if needed.
func (d *Driver) target(ctx context.Context, name string) (*targetState, error) {
	d.mu.RLock()
	ts := d.targets[name]
	d.mu.RUnlock()
	if ts != nil {
		return ts, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if existing := d.targets[name]; existing != nil {
		return existing, nil
	}
	store, err := newStore(ctx)
	if err != nil {
		return nil, err
	}
	ts = &targetState{store: store, programs: map[string]*program{}}
	d.targets[name] = ts
	return ts, nil
}

// Prepare compiles a template ahead of AddTemplate, which then only swaps
// it in. The frameworks client calls AddTemplate under its own lock, which
// every review waits for: compiling before taking that lock keeps reviews
// flowing while a template compiles. A prepared compilation is used only
// by an AddTemplate of the same kind with the same targets; an error is
// returned again by AddTemplate.
func (d *Driver) Prepare(ctx context.Context, ct *templates.ConstraintTemplate) error {
	fp, err := fingerprint(ct)
	if err != nil {
		return err
	}
	kind := ct.Spec.CRD.Spec.Names.Kind
	d.mu.RLock()
	held := d.fingerprints[kind]
	d.mu.RUnlock()
	if held == fp {
		// Already compiled from these targets: AddTemplate keeps it.
		return nil
	}
	progs, err := d.compileTargets(ctx, ct)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prepared[kind] = &preparedTemplate{fingerprint: fp, programs: progs}
	return nil
}

// preparedTemplate is a compilation made by Prepare.
type preparedTemplate struct {
	fingerprint [sha256.Size]byte
	programs    map[string]*program
}

// fingerprint identifies what a template compiles from.
func fingerprint(ct *templates.ConstraintTemplate) ([sha256.Size]byte, error) {
	b, err := json.Marshal(ct.Spec.Targets)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: encoding the targets of %q: %w", clienterrors.ErrInvalidConstraintTemplate, ct.GetName(), err)
	}
	return sha256.Sum256(b), nil
}

// compileTargets compiles each target of a template.
func (d *Driver) compileTargets(ctx context.Context, ct *templates.ConstraintTemplate) (map[string]*program, error) {
	progs := make(map[string]*program, len(ct.Spec.Targets))
	for i := range ct.Spec.Targets {
		t := &ct.Spec.Targets[i]
		mods, err := parseTarget(t, d.externs)
		if err != nil {
			return nil, err
		}
		if _, err := d.target(ctx, t.Target); err != nil {
			return nil, err
		}
		p, err := compile(mods, d.caps)
		if err != nil {
			return nil, err
		}
		progs[t.Target] = p
	}
	return progs, nil
}

// AddTemplate compiles a template and its violation query for each of its
// targets (unless Prepare did), then replaces any template of the same
// kind. Compilation runs outside the driver's lock, so Queries (of any
// kind; this kind's use the previous template until the swap) are not
// held up by it. If compilation fails, the template held before, if any,
// stays.
func (d *Driver) AddTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	kind := ct.Spec.CRD.Spec.Names.Kind
	fp, err := fingerprint(ct)
	if err != nil {
		return err
	}
	d.mu.Lock()
	prep := d.prepared[kind]
	delete(d.prepared, kind)
	held := d.fingerprints[kind]
	d.mu.Unlock()
	if held == fp {
		return nil
	}
	var progs map[string]*program
	if prep != nil && prep.fingerprint == fp {
		progs = prep.programs
	} else if progs, err = d.compileTargets(ctx, ct); err != nil {
		return err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.fingerprints[kind] = fp
	for _, ts := range d.targets {
		delete(ts.programs, kind)
	}
	for target, p := range progs {
		d.targets[target].programs[kind] = p
	}
	if d.kinds[kind] == nil {
		d.kinds[kind] = map[string]*constraintParams{}
	}
	return nil
}

// RemoveTemplate removes a template and its constraints. Removing a
// template that is not held is not an error.
func (d *Driver) RemoveTemplate(_ context.Context, ct *templates.ConstraintTemplate) error {
	kind := ct.Spec.CRD.Spec.Names.Kind
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ts := range d.targets {
		delete(ts.programs, kind)
	}
	delete(d.kinds, kind)
	delete(d.prepared, kind)
	delete(d.fingerprints, kind)
	return nil
}

// AddConstraint stores a constraint's spec.parameters ({} if absent) for
// Query. A constraint whose template is not held is ignored.
func (d *Driver) AddConstraint(_ context.Context, constraint *unstructured.Unstructured) error {
	params, _, err := unstructured.NestedFieldNoCopy(constraint.Object, "spec", "parameters")
	if err != nil {
		return fmt.Errorf("%w: %w", apiconstraints.ErrInvalidConstraint, err)
	}
	if params == nil {
		params = map[string]any{}
	}
	v, err := ast.InterfaceToValue(params)
	if err != nil {
		return fmt.Errorf("%w: spec.parameters: %w", apiconstraints.ErrInvalidConstraint, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if byName := d.kinds[constraint.GetKind()]; byName != nil {
		byName[constraint.GetName()] = &constraintParams{term: ast.NewTerm(v), id: paramsIDs.Add(1)}
	}
	return nil
}

// RemoveConstraint forgets a constraint; Queries naming it evaluate
// nothing for it. Removing one that is not held is not an error.
func (d *Driver) RemoveConstraint(_ context.Context, constraint *unstructured.Unstructured) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.kinds[constraint.GetKind()], constraint.GetName())
	return nil
}

// AddData writes data at data.inventory.<path> in the target's store,
// creating the documents above it. Compiled queries read the store when
// they evaluate, so the data is visible to the next Query.
func (d *Driver) AddData(ctx context.Context, target string, path storage.Path, data any) error {
	ts, err := d.target(ctx, target)
	if err != nil {
		return err
	}
	// Counted whatever the outcome: a failed write may still have
	// changed nothing, and an extra generation only costs cache misses.
	defer ts.dataGen.Add(1)
	return writeData(ctx, ts.store, inventoryPath(path), data)
}

// RemoveData deletes data.inventory.<path>; an empty path empties
// data.inventory.
func (d *Driver) RemoveData(ctx context.Context, target string, path storage.Path) error {
	ts, err := d.target(ctx, target)
	if err != nil {
		return err
	}
	defer ts.dataGen.Add(1)
	return removeData(ctx, ts.store, inventoryPath(path))
}

// kindWork is what Query evaluates for one template kind.
type kindWork struct {
	kind    string
	program *program
	// all is the kind's constraints as passed to Query, duplicates
	// included, each with the entry for its name.
	all []*constraintWork
	// distinct has one entry per name, in order of first appearance.
	distinct []*constraintWork
}

// constraintWork is one constraint to evaluate.
type constraintWork struct {
	// constraint is the one results report: as with drivers.KeyMap, the
	// last one passed with this name. Results carry it as passed, not a
	// copy: the frameworks client never modifies a constraint once added
	// (it replaces it), and results are only read.
	constraint *unstructured.Unstructured
	params     *constraintParams // nil if the driver does not hold the constraint
}

// Query evaluates each constraint against review with its template's
// compiled query and input {review, parameters}. Results carry the
// constraints passed in, and Metadata maps shared with other Queries
// through the result cache: neither may be modified.
//
// As with the frameworks driver: an evaluation error for a template kind
// yields one result per constraint of that kind whose message is the
// error; a violation whose msg is not a string fails the Query; a
// constraint the driver does not hold yields nothing; a kind without a
// template is an error.
func (d *Driver) Query(ctx context.Context, target string, constraints []*unstructured.Unstructured, review any, opts ...reviews.ReviewOpt) (*drivers.QueryResponse, error) {
	if len(constraints) == 0 {
		return nil, nil
	}
	cfg := &reviews.ReviewCfg{}
	for _, o := range opts {
		o(cfg)
	}

	ts, work, err := d.plan(target, constraints)
	if err != nil {
		return nil, err
	}
	store := ts.store

	reviewT, err := reviewTerm(review, cfg.Namespace)
	if err != nil {
		return nil, err
	}

	tracing := d.traceEnabled || cfg.TracingEnabled
	stats := d.gatherStats || cfg.StatsEnabled

	// One read transaction for the whole Query: every template sees the
	// same data.
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", clienterrors.ErrTransaction, err)
	}
	defer store.Abort(ctx, txn)
	env := &evalEnv{store: store, txn: txn, cancel: topdown.NewCancel()}
	if done := ctx.Done(); done != nil {
		// One cancellation watcher per Query.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-done:
				env.cancel.Cancel()
			case <-stop:
			}
		}()
	}
	if d.cache != nil && !tracing {
		// Read inside the transaction: AddData counts a write once it is
		// committed, and a commit waits for open transactions.
		env.dataGen = ts.dataGen.Load()
		env.digests = newReviewDigests(reviewT.Value)
	}

	// Take what the cache holds first; evaluate the rest, on idle cores
	// too when there is enough of it.
	var (
		slots   = make([][]evalSlot, len(work))
		pending []pendingEval
	)
	for i, w := range work {
		slots[i] = make([]evalSlot, len(w.distinct))
		for j, cw := range w.distinct {
			if cw.params == nil {
				continue
			}
			p := pendingEval{kind: i, slot: j}
			if env.digests != nil && w.program.reads.cacheable {
				p.key = resultKey(w.program, cw.params.id, env.dataGen, env.digests)
				p.cached = true
				if out, ok := d.cache.get(p.key); ok {
					slots[i][j].out = out
					continue
				}
			}
			pending = append(pending, p)
		}
	}
	run := func(p pendingEval) {
		w := work[p.kind]
		cw := w.distinct[p.slot]
		slot := &slots[p.kind][p.slot]
		start := time.Now()
		var buf *topdown.BufferTracer
		var tracer topdown.QueryTracer
		if tracing {
			buf = topdown.NewBufferTracer()
			tracer = buf
		}
		v, err := w.program.eval(ctx, env, templateInput(reviewT, cw.params.term), tracer)
		if buf != nil {
			var b bytes.Buffer
			topdown.PrettyTrace(&b, *buf)
			slot.trace = b.String()
		}
		if err != nil {
			slot.err = err
		} else {
			slot.out = outcomeOf(cw, v)
			if p.cached {
				d.cache.put(p.key, slot.out)
			}
		}
		slot.took = time.Since(start)
	}
	running := int(d.inflight.Add(1))
	defer d.inflight.Add(-1)
	if workers := spread(len(pending), running, tracing); workers > 1 {
		// Cores are idle: this Query's evaluations run on them too, so a
		// lone request takes a fraction of the time. Under load every
		// core already has a Query, and each evaluates in turn.
		var next atomic.Int32
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(pending); i = int(next.Add(1)) - 1 {
					run(pending[i])
				}
			})
		}
		wg.Wait()
	} else {
		for _, p := range pending {
			run(p)
		}
	}

	var (
		results      []*types.Result
		trace        strings.Builder
		statsEntries []*instrumentation.StatsEntry
	)
	for i, w := range work {
		kindResults, took, err := kindResults(w, slots[i], &trace)
		// The first error in kind order wins, as if evaluated in turn.
		if err != nil {
			return nil, err
		}
		results = append(results, kindResults...)
		if stats {
			statsEntries = append(statsEntries, kindStats(w, took, tracing))
		}
	}

	resp := &drivers.QueryResponse{Results: results, StatsEntries: statsEntries}
	if trace.Len() > 0 {
		s := trace.String()
		resp.Trace = &s
	}
	return resp, nil
}

// evalSlot is one constraint's evaluation in a Query: its outcome, or
// the evaluation error, and its trace.
type evalSlot struct {
	out   *outcome
	err   error
	trace string
	took  time.Duration
}

// pendingEval is an evaluation the cache could not answer: constraint
// slot of work[kind], with its cache key if it is cacheable.
type pendingEval struct {
	kind, slot int
	cached     bool
	key        digest
}

// kindResults makes one kind's results from its constraints' slots, as
// the frameworks driver would from evaluating the kind in one query: an
// evaluation error yields one result per constraint of the kind with the
// error as message (it wins over a bad msg elsewhere in the kind); a
// violation whose msg is not a string fails the Query.
func kindResults(w *kindWork, slots []evalSlot, trace *strings.Builder) ([]*types.Result, time.Duration, error) {
	var (
		results   []*types.Result
		resultErr error
		took      time.Duration
	)
	for j, cw := range w.distinct {
		slot := &slots[j]
		trace.WriteString(slot.trace)
		took += slot.took
		if cw.params == nil {
			continue
		}
		if slot.err != nil {
			return errorResults(w, slot.err), took, nil
		}
		if resultErr != nil {
			continue
		}
		if slot.out.err != nil {
			resultErr = slot.out.err
			continue
		}
		batch := make([]types.Result, len(slot.out.violations))
		for k, v := range slot.out.violations {
			batch[k] = types.Result{Msg: v.msg, Metadata: v.metadata, Constraint: cw.constraint}
			results = append(results, &batch[k])
		}
	}
	if resultErr != nil {
		return nil, took, resultErr
	}
	return results, took, nil
}

// minToSpread is the fewest evaluations worth spreading over cores:
// below it, waking another core costs more than it saves.
const minToSpread = 4

// spread is how many goroutines a Query with n evaluations to make uses
// while running Queries (itself included) are in flight: the idle cores,
// or one.
func spread(n, running int, tracing bool) int {
	if tracing || n < minToSpread {
		return 1
	}
	idle := runtime.GOMAXPROCS(0) - running + 1
	return max(1, min(idle, n/2))
}

// plan groups constraints by kind, in order of first appearance, and looks
// up their programs and parameters.
func (d *Driver) plan(target string, constraints []*unstructured.Unstructured) (*targetState, []*kindWork, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ts := d.targets[target]
	var (
		work []*kindWork
		// byKind is only needed when a kind's constraints are not passed
		// together; the engine passes them grouped.
		byKind map[string]*kindWork
		cws    = make([]constraintWork, 0, len(constraints))
	)
	for _, c := range constraints {
		kind, name := c.GetKind(), c.GetName()
		var w *kindWork
		if n := len(work); n > 0 && work[n-1].kind == kind {
			w = work[n-1]
		} else if byKind != nil {
			w = byKind[kind]
		}
		if w == nil {
			var p *program
			if ts != nil {
				p = ts.programs[kind]
			}
			if p == nil {
				// The template was just removed: the client and the
				// driver disagree, which the caller should hear about.
				return nil, nil, fmt.Errorf("missing Template %q for target %q", kind, target)
			}
			if len(work) > 0 && byKind == nil {
				byKind = make(map[string]*kindWork, 8)
				for _, prev := range work {
					byKind[prev.kind] = prev
				}
			}
			w = &kindWork{kind: kind, program: p}
			if byKind != nil {
				byKind[kind] = w
			}
			work = append(work, w)
		}
		// A constraint passed twice is evaluated once; a kind has few
		// constraints, so a linear search finds it.
		var cw *constraintWork
		for _, prev := range w.distinct {
			if prev.constraint.GetName() == name {
				cw = prev
				break
			}
		}
		if cw == nil {
			cws = append(cws, constraintWork{params: d.kinds[kind][name]})
			cw = &cws[len(cws)-1]
			w.distinct = append(w.distinct, cw)
		}
		cw.constraint = c
		w.all = append(w.all, cw)
	}
	return ts, work, nil
}

// errorResults reports an evaluation error once for each constraint of
// the kind passed to Query.
func errorResults(w *kindWork, err error) []*types.Result {
	out := make([]*types.Result, 0, len(w.all))
	for _, cw := range w.all {
		out = append(out, &types.Result{
			Msg:        err.Error(),
			Metadata:   map[string]any{"details": nil},
			Constraint: cw.constraint,
		})
	}
	return out
}

func kindStats(w *kindWork, d time.Duration, tracing bool) *instrumentation.StatsEntry {
	src := instrumentation.Source{Type: instrumentation.EngineSourceType, Value: schema.Name}
	return &instrumentation.StatsEntry{
		Scope:    instrumentation.TemplateScope,
		StatsFor: w.kind,
		Stats: []*instrumentation.Stat{
			{Name: statTemplateRunTime, Value: uint64(d.Nanoseconds()), Source: src}, //nolint:gosec // durations are positive
			{Name: statConstraintCount, Value: len(w.all), Source: src},
		},
		Labels: []*instrumentation.Label{
			{Name: "TracingEnabled", Value: tracing},
			{Name: "PrintEnabled", Value: false},
		},
	}
}

// Dump returns the compiled modules by target and kind, and each target's
// data, as JSON.
func (d *Driver) Dump(ctx context.Context) (string, error) {
	d.mu.RLock()
	out := map[string]map[string]any{}
	stores := map[string]storage.Store{}
	for name, ts := range d.targets {
		mods := map[string]map[string]string{}
		for kind, p := range ts.programs {
			km := map[string]string{}
			for _, n := range p.moduleNames() {
				km[n] = p.compiler.Modules[n].String()
			}
			mods[kind] = km
		}
		out[name] = map[string]any{"modules": mods}
		stores[name] = ts.store
	}
	d.mu.RUnlock()
	for name, store := range stores {
		var data any
		err := storage.Txn(ctx, store, storage.TransactionParams{}, func(txn storage.Transaction) error {
			v, err := store.Read(ctx, txn, storage.RootPath)
			if err != nil {
				return err
			}
			if av, ok := v.(ast.Value); ok {
				data, err = ast.JSON(av)
				return err
			}
			data = v
			return nil
		})
		if err != nil {
			return "", err
		}
		out[name]["data"] = data
	}
	b, err := json.MarshalIndent(out, "", "   ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// GetDescriptionForStat describes the stats Query reports.
func (d *Driver) GetDescriptionForStat(name string) (string, error) {
	switch name {
	case statTemplateRunTime:
		return statTemplateRunTimeDesc, nil
	case statConstraintCount:
		return statConstraintCountDesc, nil
	}
	return "", fmt.Errorf("unknown stat name %q", name)
}
