package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/crds"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Errors for constraints the engine cannot hold.
var (
	// ErrMissingTemplate is returned for a constraint whose template is
	// not held, in the frameworks client's words.
	ErrMissingTemplate = errors.New("missing ConstraintTemplate")
	// ErrUnsupportedEnforcementPoint is returned by Review for an
	// enforcement point the engine was not built for.
	ErrUnsupportedEnforcementPoint = errors.New("enforcement point not supported by client")
)

// driver is what the engine asks of a driver: the frameworks interface.
type driver interface {
	AddTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error
	RemoveTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error
	AddConstraint(ctx context.Context, u *unstructured.Unstructured) error
	RemoveConstraint(ctx context.Context, u *unstructured.Unstructured) error
}

// driverOf returns the driver that runs an engine's templates.
func (e *Engine) driverOf(engine string) driver {
	if engine == EngineCEL {
		return e.cel
	}
	return e.driver
}

// AddTemplate compiles a template and makes its kind available to
// constraints. Adding a template equal to the one held is a no-op; a new
// version keeps the constraints held, and if it changes the engine that
// runs them they move to the other driver.
func (e *Engine) AddTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	if err := validateTemplate(ct); err != nil {
		return err
	}
	// Compile and build the CRD before taking the lock: reviews never wait
	// for it, and other changes only for the swap. CEL compiles in
	// AddTemplate: it takes milliseconds.
	eng := engineFor(ct, e.celFirst)
	if eng == EngineRego {
		if err := e.driver.Prepare(ctx, ct); err != nil {
			return templateError(ct, err)
		}
	}
	crd, structural, err := e.constraintCRD(ctx, ct)
	if err != nil {
		return templateError(ct, err)
	}
	kind := ct.Spec.CRD.Spec.Names.Kind
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.loadRegistry().template(kind)
	stored := ct.DeepCopy()
	stored.Status = templates.ConstraintTemplateStatus{}
	if old != nil && old.engine == eng && old.kind == kind && old.template.SemanticEqual(ct) {
		// Nothing to compile; the registry records the new version.
		t := *old
		t.template = stored
		e.update(kind, func(*heldTemplate) *heldTemplate { return &t })
		return nil
	}
	d := e.driverOf(eng)
	if err := d.AddTemplate(ctx, ct); err != nil {
		return templateError(ct, err)
	}
	var held []*heldConstraint
	switch {
	case old == nil:
	case old.kind != kind:
		// Another spelling of the kind: its constraints, of the old kind,
		// go with it.
		if err := e.driverOf(old.engine).RemoveTemplate(ctx, old.template); err != nil {
			return fmt.Errorf("template %q: removing kind %s: %w", ct.GetName(), old.kind, err)
		}
	case old.engine != eng:
		held = old.constraints
		for _, c := range held {
			if err := d.AddConstraint(ctx, c.u); err != nil {
				return fmt.Errorf("template %q: moving constraint %q to the %s driver: %w", ct.GetName(), c.u.GetName(), eng, err)
			}
		}
		if err := e.driverOf(old.engine).RemoveTemplate(ctx, old.template); err != nil {
			return fmt.Errorf("template %q: removing it from the %s driver: %w", ct.GetName(), old.engine, err)
		}
	default:
		held = old.constraints
	}
	t := &heldTemplate{kind: kind, engine: eng, template: stored, crd: crd, structural: structural}
	if len(ct.Spec.Targets) == 1 {
		for _, op := range ct.Spec.Targets[0].Operations {
			t.operations = append(t.operations, string(op))
		}
	}
	t = t.withConstraints(append([]*heldConstraint(nil), held...))
	e.update(kind, func(*heldTemplate) *heldTemplate { return t })
	return nil
}

// constraintCRD builds and checks the constraint CRD of a template, with
// its structural schema.
func (e *Engine) constraintCRD(ctx context.Context, ct *templates.ConstraintTemplate) (*apiextensions.CustomResourceDefinition, *structuralschema.Structural, error) {
	crd, err := crds.CreateCRD(ct, crds.CreateSchema(ct, e.target))
	if err != nil {
		return nil, nil, err
	}
	if err := crds.ValidateCRD(ctx, crd); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	structural, err := structuralschema.NewStructural(crd.Spec.Validation.OpenAPIV3Schema)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	return crd, structural, nil
}

// RemoveTemplate removes a template and all its constraints. Removing one
// not held is not an error.
func (e *Engine) RemoveTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	held := e.loadRegistry().template(ct.Spec.CRD.Spec.Names.Kind)
	if held == nil {
		return nil
	}
	// Out of the registry first: a review must not query a kind the
	// driver no longer holds.
	e.update(held.kind, func(*heldTemplate) *heldTemplate { return nil })
	if err := e.driverOf(held.engine).RemoveTemplate(ctx, held.template); err != nil {
		return fmt.Errorf("removing template %q: %w", ct.GetName(), err)
	}
	return nil
}

// Template returns a copy of the template held for a kind, as it was last
// added (metadata included, status cleared), or nil.
func (e *Engine) Template(kind string) *templates.ConstraintTemplate {
	if t := e.loadRegistry().template(kind); t != nil && t.kind == kind {
		return t.template.DeepCopy()
	}
	return nil
}

// CreateCRD builds the constraint CRD for a template, as apiextensions/v1.
func (e *Engine) CreateCRD(ctx context.Context, ct *templates.ConstraintTemplate) (*apiextensionsv1.CustomResourceDefinition, error) {
	if err := validateTemplate(ct); err != nil {
		return nil, err
	}
	crd, _, err := e.constraintCRD(ctx, ct)
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

// AddConstraint validates a constraint against its template's schema,
// applies its parameters' defaults and starts enforcing it. Adding one
// equal to the one held is a no-op.
func (e *Engine) AddConstraint(ctx context.Context, u *unstructured.Unstructured) error {
	if err := ValidateEnforcementAction(u); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.checkConstraint(u)
	if err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "status")
	defaulting.Default(c.Object, t.structural)
	if old := t.constraint(c.GetName()); old != nil && constraints.SemanticEqualWithLabelsAndAnnotations(old.u, c) {
		return nil
	}
	held, err := e.holdConstraint(c)
	if err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	if err := e.driverOf(t.engine).AddConstraint(ctx, c); err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	e.putConstraint(held)
	return nil
}

// holdConstraint makes a constraint's matcher and reads its actions.
func (e *Engine) holdConstraint(c *unstructured.Unstructured) (*heldConstraint, error) {
	m, err := e.target.ToMatcher(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", apiconstraints.ErrInvalidConstraint, err)
	}
	action, err := apiconstraints.GetEnforcementAction(c)
	if err != nil {
		return nil, err
	}
	forEP := map[string][]string{}
	if apiconstraints.IsEnforcementActionScoped(action) {
		if forEP, err = apiconstraints.GetEnforcementActionsForEP(c, e.eps); err != nil {
			return nil, err
		}
	}
	return &heldConstraint{u: c, matcher: m, action: action, actionsForEP: forEP}, nil
}

// checkConstraint checks a constraint's metadata, match and schema, and
// returns its template.
func (e *Engine) checkConstraint(u *unstructured.Unstructured) (*heldTemplate, error) {
	if u.GetName() == "" {
		return nil, fmt.Errorf("%w: missing metadata.name", apiconstraints.ErrInvalidConstraint)
	}
	gvk := u.GroupVersionKind()
	if gvk.Kind == "" {
		return nil, fmt.Errorf("%w: missing kind", apiconstraints.ErrInvalidConstraint)
	}
	if gvk.Group != apiconstraints.Group {
		return nil, fmt.Errorf("%w: wrong API Group for Constraint %q, got %q but need %q",
			apiconstraints.ErrInvalidConstraint, u.GetName(), gvk.Group, apiconstraints.Group)
	}
	t := e.loadRegistry().template(gvk.Kind)
	if t == nil {
		return nil, fmt.Errorf("%w: template %q not found", ErrMissingTemplate, strings.ToLower(gvk.Kind))
	}
	if err := e.target.ValidateConstraint(u); err != nil {
		return nil, fmt.Errorf("%w: %w", apiconstraints.ErrInvalidConstraint, err)
	}
	if err := crds.ValidateCR(u, t.crd); err != nil {
		return nil, err
	}
	return t, nil
}

// RemoveConstraint stops enforcing a constraint. Removing one that is not
// held is not an error.
func (e *Engine) RemoveConstraint(ctx context.Context, u *unstructured.Unstructured) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u.GroupVersionKind().Group != apiconstraints.Group {
		return nil
	}
	t := e.loadRegistry().template(u.GetKind())
	if t == nil || t.constraint(u.GetName()) == nil {
		return nil
	}
	e.dropConstraint(t.kind, u.GetName())
	if err := e.driverOf(t.engine).RemoveConstraint(ctx, u); err != nil {
		return fmt.Errorf("removing constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// ValidateConstraint checks a constraint against its template without
// adding it: schema, match criteria and enforcement action.
func (e *Engine) ValidateConstraint(u *unstructured.Unstructured) error {
	if err := ValidateEnforcementAction(u); err != nil {
		return err
	}
	if _, err := e.checkConstraint(u); err != nil {
		return fmt.Errorf("constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}
