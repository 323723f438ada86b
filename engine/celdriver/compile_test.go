package celdriver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

func TestCompileErrors(t *testing.T) {
	const base = "spec.targets[0].code[1].source"
	tests := []struct {
		name, src, field, msg string
	}{
		{"syntax", "validations:\n- expression: 'object.metadata.name =='\n", base + ".validations[0].expression", "Syntax error"},
		{"type", "validations:\n- expression: 'true'\n- expression: '1 + 1'\n", base + ".validations[1].expression", "must evaluate to bool"},
		{"unknown variable", "validations:\n- expression: 'variables.nope == 1'\n", base + ".validations[0].expression", "undefined field 'nope'"},
		{"unknown identifier", "validations:\n- expression: 'foo == 1'\n", base + ".validations[0].expression", "undeclared reference to 'foo'"},
		{"messageExpression not a string", "validations:\n- expression: 'true'\n  messageExpression: '1'\n", base + ".validations[0].messageExpression", "must evaluate to string"},
		{"messageExpression of unknown type", "validations:\n- expression: 'true'\n  messageExpression: 'object.metadata.name'\n", base + ".validations[0].messageExpression", "must evaluate to string but got dyn"},
		{"variable", "variables:\n- name: a\n  expression: 'object.'\nvalidations:\n- expression: 'true'\n", base + ".variables[0].expression", "Syntax error"},
		{"variable used before it is defined", "variables:\n- name: a\n  expression: 'variables.b'\n- name: b\n  expression: '1'\nvalidations:\n- expression: 'true'\n", base + ".variables[0].expression", "undefined field 'b'"},
		{"matchCondition", "matchCondition:\n- name: m\n  expression: '\"x\"'\nvalidations:\n- expression: 'true'\n", base + ".matchCondition[0].expression", "must evaluate to bool"},
		{"neither expression nor message", "validations:\n- {}\n", base + ".validations[0]", "neither expression nor message"},
		{"message without expression", "validations:\n- message: hi\n", base + ".validations[0].expression", "required"},
		{"failurePolicy", "failurePolicy: Maybe\nvalidations:\n- expression: 'true'\n", base + ".failurePolicy", `"Maybe" is not one of Fail, Ignore`},
		{"reserved variable", "variables:\n- name: params\n  expression: '1'\nvalidations:\n- expression: 'true'\n", base + ".variables[0].name", "built-in"},
		{"reserved prefix", "variables:\n- name: gatekeeper_internal_x\n  expression: '1'\nvalidations:\n- expression: 'true'\n", base + ".variables[0].name", "reserved"},
		{"duplicate variable", "variables:\n- name: a\n  expression: '1'\n- name: a\n  expression: '2'\nvalidations:\n- expression: 'true'\n", base + ".variables[1].name", "defined twice"},
		{"bad variable name", "variables:\n- name: a-b\n  expression: '1'\nvalidations:\n- expression: 'true'\n", base + ".variables[0].name", "not a valid CEL identifier"},
		{"expression not a string", "validations:\n- expression: true\n", base + ".validations[0].expression", "must be a string"},
		{"validations not a list", "validations: {}\n", base + ".validations", "must be a list"},
		{"generateVAP", "generateVAP: yes please\nvalidations:\n- expression: 'true'\n", base + ".generateVAP", "must be a boolean"},
		{"source not an object", "'just a string'\n", base, "must be an object"},
		// Over the cost budget on every object: a cross product of two
		// constant ranges, in each kind of expression.
		{"cost of a validation", "validations:\n- expression: 'true'\n- expression: " + overBudget + "\n", base + ".validations[1].expression", "estimated cost exceeds budget by factor of 63.0x"},
		{"cost of a message", "validations:\n- expression: 'false'\n  messageExpression: '" + strings.Trim(overBudget, "'") + " ? \"a\" : \"b\"'\n", base + ".validations[0].messageExpression", "estimated cost exceeds budget"},
		{"cost of a variable", "variables:\n- name: v\n  expression: " + overBudget + "\nvalidations:\n- expression: 'variables.v'\n", base + ".variables[0].expression", "estimated cost exceeds budget"},
		{"cost of a matchCondition", "matchCondition:\n- name: m\n  expression: " + overBudget + "\nvalidations:\n- expression: 'true'\n", base + ".matchCondition[0].expression", "estimated cost exceeds budget"},
		{"cost with the object", "validations:\n- expression: 'object.spec.containers.all(c, " + strings.Trim(overBudget, "'") + ")'\n", base + ".validations[0].expression", "even for the smallest objects"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := template(t, tc.src, true)
			wantFieldError(t, celdriver.Compile(ct), tc.field, tc.msg)
			d := celdriver.New()
			wantFieldError(t, d.AddTemplate(context.Background(), ct), tc.field, tc.msg)
		})
	}
}

// TestIgnored: what Gatekeeper's lenient decoding ignores, unknown fields
// at any level, is ignored here too, and noted, as is a source without
// validations; the template compiles and judges as if it were not there.
func TestIgnored(t *testing.T) {
	const base = "spec.targets[0].code[1].source"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"no validations", "variables: []\n", []string{base + ".validations: no validation: the template never reports a violation"}},
		{"matchConditions", "matchConditions:\n- name: never\n  expression: 'false'\nvalidations:\n- expression: 'false'\n  message: judged\n",
			[]string{base + ".matchConditions: unknown field, ignored as Gatekeeper ignores it (Gatekeeper's key is matchCondition, singular); known fields are failurePolicy, generateVAP, matchCondition, validations, variables"}},
		{"fields of items", "matchCondition:\n- name: m\n  expression: 'true'\n  note: x\nvariables:\n- name: v\n  expression: '1'\n  type: int\nvalidations:\n- expression: 'false'\n  message: judged\n  reason: Forbidden\n  messageExpressions: 'x'\n",
			[]string{
				base + ".matchCondition[0].note: unknown field, ignored as Gatekeeper ignores it; known fields are name, expression",
				base + ".validations[0].messageExpressions: unknown field, ignored as Gatekeeper ignores it; known fields are expression, message, messageExpression",
				base + ".validations[0].reason: unknown field, ignored as Gatekeeper ignores it; known fields are expression, message, messageExpression",
				base + ".variables[0].type: unknown field, ignored as Gatekeeper ignores it; known fields are name, expression",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := template(t, tc.src, true)
			src, _, err := celdriver.TemplateSource(ct)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(src.Ignored, "\n"); got != strings.Join(tc.want, "\n") {
				t.Errorf("ignored:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
			}
			if err := celdriver.Compile(ct); err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got := query(t, ct, admissionFor(t, admissionv1.Create, pod("p", nil), nil), constraint("c", nil))
			want := ""
			if strings.Contains(tc.src, "judged") {
				want = "c: judged"
			}
			if strings.Join(got, "|") != want {
				t.Errorf("results %q, want %q", got, want)
			}
		})
	}
}

// overBudget costs some 63 million for any object: over the budget of a
// million.
const overBudget = "'lists.range(3000).all(i, lists.range(3000).all(j, i != j || true))'"

// TestCostWithinBudget: what iterates over the object is left to the
// runtime budget, however deep; so are constant costs within the budget.
func TestCostWithinBudget(t *testing.T) {
	for _, src := range []string{
		"validations:\n- expression: 'object.spec.containers.all(c, object.spec.containers.all(d, object.spec.volumes.all(v, c.name != d.name || v.name != \"\")))'\n",
		"validations:\n- expression: 'lists.range(300).all(i, lists.range(300).all(j, i != j || true))'\n",
		"variables:\n- name: v\n  expression: 'params.spec.parameters.x.map(a, params.spec.parameters.x.map(b, a + b))'\nvalidations:\n- expression: 'size(variables.v) > 0'\n",
	} {
		if err := celdriver.Compile(template(t, src, false)); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func wantFieldError(t *testing.T, err error, field, msg string) {
	t.Helper()
	var fe *celdriver.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T), want a FieldError", err, err)
	}
	if fe.Field != field || !strings.Contains(fe.Message, msg) {
		t.Errorf("error at %s: %s\nwant at %s, containing %q", fe.Field, fe.Message, field, msg)
	}
	if !errors.Is(err, celdriver.ErrInvalidSource) {
		t.Errorf("%v does not wrap ErrInvalidSource", err)
	}
}
