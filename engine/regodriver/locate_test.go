package regodriver_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

func TestLocateError(t *testing.T) {
	cases := []struct {
		name     string
		tmpl     tmpl
		field    string
		row, col int
		msg      string // a part of the message
	}{
		{"fine", tmpl{kind: "K8sFine", rego: "package x\nviolation[{\"msg\": \"m\"}] { true }\n"}, "", 0, 0, ""},
		{"parse", tmpl{kind: "K8sParse", rego: "package x\nviolation[{\"msg\": \"m\"}] {\n"}, "spec.targets[0].code[0].source.rego", 3, 0, "rego_parse_error"},
		{"compile", tmpl{kind: "K8sCompile", rego: "package x\nviolation[{\"msg\": m}] { true }\n"}, "spec.targets[0].code[0].source.rego", 2, 19, "rego_unsafe_var_error"},
		{"lib", tmpl{kind: "K8sLib", rego: "package x\nviolation[{\"msg\": \"m\"}] { true }\n", libs: []string{"package lib.a\nf(x) = y { true }\n"}},
			"spec.targets[0].code[0].source.libs[0]", 2, 8, "rego_unsafe_var_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.tmpl.build()
			fe := regodriver.LocateError(ct)
			if tc.field == "" {
				if fe != nil {
					t.Fatalf("got %v, want nil", fe)
				}
				return
			}
			if fe == nil {
				t.Fatal("got nil")
			}
			if fe.Field != tc.field || fe.Row != tc.row || fe.Col != tc.col || !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("got %s %d:%d %q, want %s %d:%d containing %q", fe.Field, fe.Row, fe.Col, fe.Message, tc.field, tc.row, tc.col, tc.msg)
			}
		})
	}
}

// TestLocateErrorLegacyFields checks that an error in Rego that the
// legacy rego field holds too is reported in that field.
func TestLocateErrorLegacyFields(t *testing.T) {
	rego := "package x\nviolation[{\"msg\": m}] { true }\n"
	ct := tmpl{kind: "K8sLegacy", rego: rego}.build()
	ct.Spec.Targets[0].Rego = rego
	fe := regodriver.LocateError(ct)
	if fe == nil || fe.Field != "spec.targets[0].rego" || fe.Row != 2 || fe.Col != 19 {
		t.Fatalf("got %v, want spec.targets[0].rego at 2:19", fe)
	}
	if want := "spec.targets[0].rego: line 2, column 19: rego_unsafe_var_error: var m is unsafe"; fe.Error() != want {
		t.Errorf("got %q, want %q", fe.Error(), want)
	}
}
