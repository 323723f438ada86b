package celdriver_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// FuzzParseSource feeds ParseSource arbitrary JSON: it never panics, an
// error is a FieldError naming a field under the source, and a source it
// accepts has validations with expressions, or says it has none, and says
// what it ignores under the source.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		`{"validations":[{"expression":"true","message":"m","messageExpression":"'x'"}]}`,
		`{"validations":[{"expression":"true"}],"variables":[{"name":"a","expression":"1"}],"matchCondition":[{"name":"m","expression":"true"}],"failurePolicy":"Ignore","generateVAP":false}`,
		`{"validations":[{}]}`, `{"validations":{}}`, `{"matchConditions":[]}`, `[]`, `null`, `"x"`, `{"variables":[{"name":"params"}]}`,
		`{"validations":[{"expression":1}],"failurePolicy":3}`, `{"variables":[{"name":"a","expression":"1"},{"name":"a","expression":"1"}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v any
		if json.Unmarshal([]byte(in), &v) != nil {
			return
		}
		s, err := celdriver.ParseSource(v, "source")
		if err != nil {
			var fe *celdriver.FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "source") || fe.Message == "" {
				t.Fatalf("error %v (%T) is not a FieldError under source", err, err)
			}
			return
		}
		if len(s.Validations) == 0 && !slices.ContainsFunc(s.Ignored, func(i string) bool { return strings.HasPrefix(i, "source.validations: no validation") }) {
			t.Fatalf("accepted a source without validations, without saying so: ignored %q", s.Ignored)
		}
		for _, i := range s.Ignored {
			if !strings.HasPrefix(i, "source.") || !strings.Contains(i, ": ") {
				t.Fatalf("ignored %q does not name a field under source", i)
			}
		}
		for _, val := range s.Validations {
			if strings.TrimSpace(val.Expression) == "" {
				t.Fatal("accepted a validation without expression")
			}
		}
	})
}

// FuzzCompile compiles arbitrary expressions as a validation, a message
// expression and a variable: never a panic, and an error is a FieldError
// naming one of the three fields.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`object.metadata.name == "x"`, `variables.v`, `params.spec`, `'a' + 1`, `[1,2].all(x, x > 0)`,
		`has(object.spec) ? object.spec.containers.map(c, c.image) : []`, `quantity("1Gi").isGreaterThan(quantity("1Mi"))`,
		`url("https://x").getHost()`, `"abc".matches("[")`, `((((((((((1))))))))))`, `object.`, `}`,
		// Forms the result cache's read-set analyser treats apart.
		`object.?spec.?containers.orValue([])`, `object["metadata"]["name"]`, `object == null ? oldObject : object`,
		`has(variables.anyObject.spec) && variables.params != null`, `[variables].size()`, `[request][0].uid`,
		`object.spec.containers.all(object, object.name != "")`, `{"a": object.metadata}.a.name`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		src := obj{
			"variables":   []any{obj{"name": "v", "expression": expr}},
			"validations": []any{obj{"expression": expr, "messageExpression": expr}},
		}
		ct := template(&testing.T{}, "validations: [{expression: 'true'}]", false)
		ct.Spec.Targets[0].Code[0].Source.Value = src
		err := celdriver.Compile(ct)
		if err == nil {
			return
		}
		var fe *celdriver.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v (%T) is not a FieldError", err, err)
		}
		switch fe.Field {
		case "spec.targets[0].code[0].source.variables[0].expression", "spec.targets[0].code[0].source.validations[0].expression",
			"spec.targets[0].code[0].source.validations[0].messageExpression", "spec.targets[0].code[0].source.variables[0]",
			"spec.targets[0].code[0].source.validations[0]":
		default:
			t.Fatalf("error at %s: %s", fe.Field, fe.Message)
		}
	})
}
