package regodriver_test

import (
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

// TestAnalyse checks what the result cache keys a template's results by.
func TestAnalyse(t *testing.T) {
	cases := []struct {
		name, rego string
		imports    string
		extra      string
		libs       []string
		cacheable  bool
		data       bool
		paths      []string
		why        string
	}{{
		name:      "references",
		rego:      "c := input.review.object.spec.containers[_]\nc.image == input.parameters.image\ninput.review.operation == \"CREATE\"",
		cacheable: true,
		paths:     []string{"object.spec.containers", "operation"},
	}, {
		name:      "a prefix covers its extensions",
		rego:      "input.review.object.metadata.labels.a\ninput.review.object.metadata[_]",
		cacheable: true,
		paths:     []string{"object.metadata"},
	}, {
		name:      "variable bound to a reference",
		rego:      "o := input.review.object\nm := o.metadata\nm.name == \"x\"\no.spec.replicas > 1",
		cacheable: true,
		paths:     []string{"object.metadata.name", "object.spec.replicas"},
	}, {
		name:      "functions, also through libs and negation",
		imports:   "import data.lib.helpers.is_update\n",
		rego:      "not is_update(input.review)\nname(input.review.object) == \"x\"",
		extra:     "name(o) = n { n := o.metadata.name }\n",
		libs:      []string{"package lib.helpers\nis_update(r) { r.operation == \"UPDATE\" }\n"},
		cacheable: true,
		paths:     []string{"object.metadata.name", "operation"},
	}, {
		name:      "object.get",
		rego:      "object.get(input.review.object, [\"spec\", \"hostPID\"], false)\nobject.get(object.get(input, \"parameters\", {}), \"x\", 1) == 1",
		cacheable: true,
		paths:     []string{"object.spec.hostPID"},
	}, {
		name:      "an argument a function ignores must still be defined",
		rego:      "ignores(input.review.object.spec.x)",
		extra:     "ignores(x) = true { true }\n",
		cacheable: true,
		paths:     []string{"object.spec.x"},
	}, {
		name:      "data.inventory",
		rego:      "data.inventory.cluster[_][\"Namespace\"][input.review.object.metadata.namespace]",
		cacheable: true,
		data:      true,
		paths:     []string{"object.metadata.namespace"},
	}, {
		name: "the whole review",
		rego: "r := input.review\nr[_] == \"x\"",
		why:  "reads input.review as a whole",
	}, {
		name: "the whole input",
		rego: "walk(input, [p, v])\nv == \"x\"",
		why:  "reads input as a whole",
	}, {
		name: "nondeterministic builtin",
		rego: "input.review.object.x < time.now_ns()",
		why:  "calls time.now_ns",
	}, {
		name:  "with",
		rego:  "f with input.review as {}",
		extra: "f { input.review.object.x }\n",
		why:   "uses with",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t)
			rego := "package x\n" + tc.imports + "\nviolation[{\"msg\": \"m\"}] {\n" + tc.rego + "\n}\n\n" + tc.extra
			mustAdd(t, d, tmpl{kind: "K8sAnalyse", rego: rego, libs: tc.libs}.build())
			cacheable, data, paths, why, ok := regodriver.Reads(d, testTarget, "K8sAnalyse")
			if !ok {
				t.Fatal("template not held")
			}
			if cacheable != tc.cacheable || data != tc.data || !reflect.DeepEqual(paths, tc.paths) || why != tc.why {
				t.Errorf("cacheable %v, data %v, paths %q, why %q; want %v, %v, %q, %q",
					cacheable, data, paths, why, tc.cacheable, tc.data, tc.paths, tc.why)
			}
		})
	}
}
