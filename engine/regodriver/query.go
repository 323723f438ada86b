package regodriver

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
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
				if out, ok := d.cache.Get(p.key); ok {
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
				d.cache.Put(p.key, slot.out)
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
