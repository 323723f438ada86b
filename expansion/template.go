package expansion

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
	"github.com/portcullis-dev/portcullis/api/expansion/v1beta1"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// Group and Kind of the ExpansionTemplate.
const (
	Group = "expansion.gatekeeper.sh"
	Kind  = "ExpansionTemplate"
)

// maxNameLength bounds template names, as Gatekeeper does: the name is part
// of the names of its status objects there.
const maxNameLength = 64

// ErrInvalidTemplate wraps every reason a template cannot be used.
var ErrInvalidTemplate = errors.New("invalid ExpansionTemplate")

// FieldError is a template that does not validate: the field at fault and
// Gatekeeper's message. It is an ErrInvalidTemplate.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// Unwrap makes a FieldError an ErrInvalidTemplate.
func (e *FieldError) Unwrap() error { return ErrInvalidTemplate }

func fieldError(field, format string, a ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// Template is an ExpansionTemplate as the expansion system uses it; both
// API versions convert to it.
type Template struct {
	Name              string
	ApplyTo           []v1alpha1.ApplyTo
	TemplateSource    string
	GeneratedGVK      schema.GroupVersionKind
	EnforcementAction string

	// path is TemplateSource split on dots, set by Validate.
	path []string
}

// FromV1Alpha1 converts a v1alpha1 ExpansionTemplate.
func FromV1Alpha1(t *v1alpha1.ExpansionTemplate) *Template {
	s := t.Spec.DeepCopy()
	return &Template{
		Name: t.Name, ApplyTo: s.ApplyTo, TemplateSource: s.TemplateSource,
		GeneratedGVK: s.GeneratedGVK.GroupVersionKind(), EnforcementAction: s.EnforcementAction,
	}
}

// FromV1Beta1 converts a v1beta1 ExpansionTemplate.
func FromV1Beta1(t *v1beta1.ExpansionTemplate) *Template {
	s := t.Spec.DeepCopy()
	return &Template{
		Name: t.Name, ApplyTo: s.ApplyTo, TemplateSource: s.TemplateSource,
		GeneratedGVK: s.GeneratedGVK.GroupVersionKind(), EnforcementAction: s.EnforcementAction,
	}
}

// IsTemplate reports whether u is an ExpansionTemplate, of any version.
func IsTemplate(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Group == Group && gvk.Kind == Kind
}

// versions are the versions Gatekeeper's CRD serves.
var versions = []string{"v1alpha1", "v1beta1"}

// Mistake says what is likely wrong with an object of the
// ExpansionTemplate's group that gator takes as it is, "" when nothing is:
// a kind other than ExpansionTemplate (gator takes the object for an
// ordinary one), or a version Gatekeeper's CRD does not serve (gator reads
// the template all the same, and so do portcullis expand, test and verify).
func Mistake(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	switch {
	case gvk.Group != Group:
		return ""
	case gvk.Kind != Kind:
		return fmt.Sprintf("%s %q is not an %s (kind %s in %s), and is taken for an ordinary object", gvk.Kind, u.GetName(), Kind, Kind, Group)
	case !slices.Contains(versions, gvk.Version):
		return fmt.Sprintf("%s %q: apiVersion %s is not served by Gatekeeper's CRD (%s/%s); the template is read all the same",
			Kind, u.GetName(), gvk.GroupVersion(), Group, strings.Join(versions, " and "))
	}
	return ""
}

// FromUnstructured converts an ExpansionTemplate read from YAML or JSON.
// Both versions have the same fields, so either converts. Fields of the
// wrong type are an error naming the template.
func FromUnstructured(u *unstructured.Unstructured) (*Template, error) {
	if !IsTemplate(u) {
		return nil, fmt.Errorf("%w: %s %q is not an %s.%s", ErrInvalidTemplate, u.GetKind(), u.GetName(), Kind, Group)
	}
	t := &v1alpha1.ExpansionTemplate{}
	if err := manifest.Decode(u.Object, t, ""); err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", ErrInvalidTemplate, Kind, u.GetName(), err)
	}
	return FromV1Alpha1(t), nil
}

// validActions are the enforcement actions a template may override with;
// empty keeps the constraint's.
var validActions = []string{"", engine.ActionDeny, engine.ActionDryrun, engine.ActionWarn}

// Validate checks a template as Gatekeeper's ValidateTemplate does, with
// its messages: a name under 64 characters, a templateSource, a
// generatedGVK, applyTo, and no template that expands its own output. It
// also refuses what Gatekeeper accepts but cannot use: a templateSource
// with an empty field name ("spec..template") and an enforcementAction
// other than deny, dryrun or warn, under which Gatekeeper drops the
// violations of expanded resources. Its errors are *FieldError.
func (t *Template) Validate() error {
	name := t.Name
	switch {
	case name == "":
		return fieldError("metadata.name", "ExpansionTemplate has empty name field")
	case len(name) >= maxNameLength:
		return fieldError("metadata.name", "ExpansionTemplate name must be less than 64 characters")
	case t.TemplateSource == "":
		return fieldError("spec.templateSource", "ExpansionTemplate %s has empty source field", name)
	case t.GeneratedGVK.Empty():
		return fieldError("spec.generatedGVK", "ExpansionTemplate %s has empty generatedGVK field", name)
	case len(t.ApplyTo) == 0:
		return fieldError("spec.applyTo", "ExpansionTemplate %s must specify ApplyTo", name)
	}
	for i, a := range t.ApplyTo {
		if a.Matches(t.GeneratedGVK) {
			return fieldError(fmt.Sprintf("spec.applyTo[%d]", i), "ExpansionTemplate %s generates GVK %v, but also applies to that same GVK", name, t.GeneratedGVK)
		}
	}
	path := strings.Split(t.TemplateSource, ".")
	if slices.Contains(path, "") {
		return fieldError("spec.templateSource", "ExpansionTemplate %s: spec.templateSource %q has an empty field name: want a dotted path such as spec.template",
			name, t.TemplateSource)
	}
	if !slices.Contains(validActions, t.EnforcementAction) {
		return fieldError("spec.enforcementAction", "ExpansionTemplate %s: spec.enforcementAction %q is not one of deny, dryrun, warn (or empty, to keep the constraint's)",
			name, t.EnforcementAction)
	}
	t.path = path
	return nil
}

// applyToGVKs lists every kind the template expands.
func (t *Template) applyToGVKs() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, a := range t.ApplyTo {
		out = append(out, a.GVKs()...)
	}
	return out
}

// ErrSourceNotFound is returned when an object lacks a template's
// templateSource field.
var ErrSourceNotFound = errors.New("templateSource not found")

// expand builds the one resultant of parent under t, as Gatekeeper does:
// the templateSource field's value, of kind generatedGVK, named
// <parent name>-<kind> in lower case, in ns (or the parent's namespace when
// ns is nil), owned by the parent. Validate must have passed.
func (t *Template) expand(parent *unstructured.Unstructured, nsName *string) (*unstructured.Unstructured, error) {
	src, found, err := unstructured.NestedFieldNoCopy(parent.Object, t.path...)
	if err != nil {
		return nil, fmt.Errorf("ExpansionTemplate %q: spec.templateSource %q in %s: %w", t.Name, t.TemplateSource, describe(parent), err)
	}
	if !found {
		return nil, fmt.Errorf("ExpansionTemplate %q: %w: %s has no field %s", t.Name, ErrSourceNotFound, describe(parent), t.TemplateSource)
	}
	m, ok := src.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("ExpansionTemplate %q: spec.templateSource %q in %s is a %s, not an object", t.Name, t.TemplateSource, describe(parent), jsonType(src))
	}
	out := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(m)}
	if md, ok := out.Object["metadata"]; ok {
		if _, isMap := md.(map[string]any); !isMap {
			return nil, fmt.Errorf("ExpansionTemplate %q: %s.metadata in %s is a %s, not an object", t.Name, t.TemplateSource, describe(parent), jsonType(md))
		}
	}
	out.SetGroupVersionKind(t.GeneratedGVK)
	switch {
	case nsName != nil:
		out.SetNamespace(*nsName)
	case parent.GetNamespace() != "":
		out.SetNamespace(parent.GetNamespace())
	}
	out.SetName(strings.ToLower(parent.GetName() + "-" + t.GeneratedGVK.Kind))
	setOwner(out, parent)
	return out, nil
}

// setOwner adds an ownerReference to parent (apiVersion, kind and name, as
// Gatekeeper writes it) unless one is there already.
func setOwner(child, parent *unstructured.Unstructured) {
	apiVersion, kind, name := parent.GetAPIVersion(), parent.GetKind(), parent.GetName()
	if apiVersion == "" || kind == "" || name == "" {
		return
	}
	refs := child.GetOwnerReferences()
	for _, r := range refs {
		if r.APIVersion == apiVersion && r.Kind == kind && r.Name == name {
			return
		}
	}
	refs = append(refs, ownerRef(apiVersion, kind, name))
	child.SetOwnerReferences(refs)
}

// describe names an object in errors: Kind "namespace/name".
func describe(u *unstructured.Unstructured) string {
	name := u.GetName()
	if ns := u.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %q", u.GetKind(), name)
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	default:
		return "number"
	}
}

func ownerRef(apiVersion, kind, name string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name}
}
