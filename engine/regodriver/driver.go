package regodriver

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/resultcache"
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
	cache *resultcache.Cache[*outcome]
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
		cache:        resultcache.New[*outcome](DefaultCacheSize),
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
