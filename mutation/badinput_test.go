package mutation_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/mutation"
)

const applyToPod = `
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]`

var quoteLocations = regexp.MustCompile(`(?m)^(\s*(?:location|- subPath): )([^'\n{\[][^\n]*)$`)

// TestNewErrors: every bad mutator is refused with an error naming the
// field at fault.
func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not a mutator", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x", "not a mutator"},
		{"AssignImage v1", "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignImage\nmetadata:\n  name: x", "AssignImage is served as mutations.gatekeeper.sh/v1alpha1 only"},
		{"version", "apiVersion: mutations.gatekeeper.sh/v2\nkind: Assign\nmetadata:\n  name: x", "Assign is served as mutations.gatekeeper.sh/v1, v1beta1 and v1alpha1"},
		{"no name", "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata: {}", "metadata.name: required"},
		{"long name", "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: " + strings.Repeat("a", 64), "metadata.name: \"" + strings.Repeat("a", 64) + "\" is 64 characters, the most is 63"},
		{"no location", "kind: Assign\nspec:" + applyToPod + "\n  parameters:\n    assign:\n      value: x", "spec.location: required"},
		{"malformed location", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: foo\n  parameters:\n    assign:\n      value: x",
			"spec.location: invalid location: at position 25: expected ']' to close the list selector, got the end"},
		{"trailing glob", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: *]\n  parameters:\n    assign:\n      value: {name: x}",
			"spec.location: ends with the glob [name: *]"},
		{"metadata", "kind: Assign\nspec:" + applyToPod + "\n  location: metadata.name\n  parameters:\n    assign:\n      value: x",
			"spec.location: Assign cannot change metadata"},
		{"key changed", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: foo].name\n  parameters:\n    assign:\n      value: x",
			`spec.location: "spec.containers[name: foo].name" changes the key field "name"`},
		{"element not an object", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: foo]\n  parameters:\n    assign:\n      value: foo",
			"spec.parameters.assign.value: must be an object, the list element [name: foo]"},
		{"element other key", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: foo]\n  parameters:\n    assign:\n      value: {name: bar}",
			"spec.parameters.assign.value.name: must be foo"},
		{"element fromMetadata", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: foo]\n  parameters:\n    assign:\n      fromMetadata: {field: name}",
			"spec.parameters.assign.fromMetadata: cannot be assigned to a list element"},
		{"no value", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    assign: {}",
			"spec.parameters.assign: one of value, fromMetadata or externalData is required"},
		{"two values", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    assign:\n      value: x\n      fromMetadata: {field: name}",
			"spec.parameters.assign: only one of value, fromMetadata or externalData may be given"},
		{"fromMetadata field", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    assign:\n      fromMetadata: {field: uid}",
			`spec.parameters.assign.fromMetadata.field: "uid" is not namespace or name`},
		{"externalData", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assign:\n      externalData:\n        provider: tagger",
			"spec.parameters.assign.externalData: externalData is not supported yet"},
		{"externalData no provider", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    assign:\n      externalData: {dataSource: Username}",
			"spec.parameters.assign.externalData.provider: required"},
		{"no applyTo", "kind: Assign\nspec:\n  location: spec.x\n  parameters:\n    assign:\n      value: x", "spec.applyTo: required"},
		{"applyTo without versions", "kind: Assign\nspec:\n  applyTo:\n  - groups: ['']\n    kinds: [Pod]\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			"spec.applyTo[0]: groups, versions and kinds must all be given"},
		{"applyTo glob", "kind: Assign\nspec:\n  applyTo:\n  - groups: ['*']\n    kinds: [Pod]\n    versions: [v1]\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			"spec.applyTo[0]: globs are not accepted"},
		{"DELETE", "kind: Assign\nspec:" + applyToPod + "\n    operations: [DELETE]\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			`spec.applyTo[0].operations[0]: "DELETE" is not one of CREATE, UPDATE, *`},
		{"star and more", "kind: Assign\nspec:" + applyToPod + "\n    operations: ['*', CREATE]\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			`spec.applyTo[0].operations: "*" must not be combined`},
		{"twice", "kind: Assign\nspec:" + applyToPod + "\n    operations: [CREATE, CREATE]\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			`spec.applyTo[0].operations[1]: "CREATE" is listed twice`},
		{"matches no kinds", "kind: Assign\nspec:" + applyToPod + "\n  match:\n    kinds:\n    - apiGroups: [apps]\n      kinds: [Deployment]\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			"spec.match.kinds: selects none of the kinds of spec.applyTo"},
		{"bad selector", "kind: Assign\nspec:" + applyToPod + "\n  match:\n    labelSelector:\n      matchExpressions:\n      - {key: a, operator: Maybe}\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			"spec.match.labelSelector:"},
		{"bad wildcard", "kind: Assign\nspec:" + applyToPod + "\n  match:\n    namespaces: ['a*b']\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			"spec.match.namespaces[0]:"},
		{"bad source", "kind: Assign\nspec:" + applyToPod + "\n  match:\n    source: Foo\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			`spec.match.source: invalid value "Foo": must be one of All, Generated, Original`},
		{"bad scope", "kind: Assign\nspec:" + applyToPod + "\n  match:\n    scope: Bogus\n  location: spec.x\n  parameters:\n    assign:\n      value: x",
			`spec.match.scope: invalid value "Bogus": must be one of *, Cluster, Namespaced`},
		{"path test outside", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assign:\n      value: x\n    pathTests:\n    - subPath: spec.initContainers\n      condition: MustExist",
			`spec.parameters.pathTests[0].subPath: "spec.initContainers" is not a prefix of the location "spec.containers[name: *].image"`},
		{"path test malformed", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    assign:\n      value: x\n    pathTests:\n    - subPath: 'spec.'\n      condition: MustExist",
			"spec.parameters.pathTests[0].subPath: invalid location"},
		{"path test condition", "kind: Assign\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    assign:\n      value: x\n    pathTests:\n    - subPath: spec\n      condition: Exists",
			`spec.parameters.pathTests[0].condition: "Exists" is not MustExist or MustNotExist`},
		{"spec not an object", "kind: Assign\nspec: 3", "spec:"},
		{"spec field type", "kind: Assign\nspec:\n  location: [a]", "spec.location: a list, not a string"},
		{"fromList type", "kind: ModifySet\nspec:" + applyToPod + "\n  location: spec.containers[name: *].args\n  parameters:\n    values:\n      fromList: --v",
			"spec.parameters.values.fromList: a string, not a list"},

		{"metadata location", "kind: AssignMetadata\nspec:\n  location: metadata.name\n  parameters:\n    assign:\n      value: x",
			`spec.location: "metadata.name" is not metadata.labels.<key> or metadata.annotations.<key>`},
		{"metadata too deep", "kind: AssignMetadata\nspec:\n  location: metadata.labels.a.b\n  parameters:\n    assign:\n      value: x",
			"is not metadata.labels.<key>"},
		{"metadata not a string", "kind: AssignMetadata\nspec:\n  location: metadata.labels.a\n  parameters:\n    assign:\n      value: 3",
			"spec.parameters.assign.value: must be a string, as labels and annotations are; got a number"},
		{"metadata external", "kind: AssignMetadata\nspec:\n  location: metadata.labels.a\n  parameters:\n    assign:\n      externalData: {provider: p}",
			"externalData is not supported yet"},

		{"set metadata", "kind: ModifySet\nspec:" + applyToPod + "\n  location: metadata.finalizers\n  parameters:\n    values:\n      fromList: [x]",
			"spec.location: ModifySet cannot change metadata"},
		{"set list end", "kind: ModifySet\nspec:" + applyToPod + "\n  location: spec.containers[name: x]\n  parameters:\n    values:\n      fromList: [x]",
			"spec.location: ends with the list selector [name: x]"},
		{"set operation", "kind: ModifySet\nspec:" + applyToPod + "\n  location: spec.x\n  parameters:\n    operation: replace",
			`spec.parameters.operation: "replace" is not merge or prune`},

		{"image nothing", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image",
			"spec.parameters: at least one of assignDomain, assignPath and assignTag is required"},
		{"image domain", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assignDomain: registry/",
			`spec.parameters.assignDomain: "registry/" must be a fully-qualified domain name or localhost`},
		{"image domain no dot", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assignDomain: registry",
			`spec.parameters.assignDomain: "registry" must be a fully-qualified domain name`},
		{"image tag", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assignTag: latest",
			`spec.parameters.assignTag: "latest" must be a tag starting with ':' or a digest starting with '@'`},
		{"image digest", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assignTag: '@sha256:abc'",
			`spec.parameters.assignTag: "@sha256:abc" must be a tag`},
		{"image path", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assignPath: Repo/App",
			`spec.parameters.assignPath: "Repo/App" must be a valid image path`},
		{"image path domain", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: *].image\n  parameters:\n    assignPath: my.repo.lib/app",
			`spec.parameters.assignPath: "my.repo.lib/app" starts with what reads as a domain: set assignDomain too`},
		{"image list", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: spec.containers[name: x]\n  parameters:\n    assignTag: ':v1'",
			"spec.location: ends with the list selector [name: x]"},
		{"image metadata", "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nspec:" + applyToPod + "\n  location: metadata.annotations.image\n  parameters:\n    assignTag: ':v1'",
			"spec.location: AssignImage cannot change metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if !strings.Contains(doc, "apiVersion:") {
				doc = "apiVersion: mutations.gatekeeper.sh/v1\n" + doc
			}
			if !strings.Contains(doc, "\nmetadata:") {
				doc += "\nmetadata:\n  name: bad"
			}
			// Locations hold ": ", which YAML reads as a mapping unquoted.
			doc = quoteLocations.ReplaceAllString(doc, "${1}'${2}'")
			u := obj(t, doc)
			_, err := mutation.New(u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
			if f := mutation.Field(err); f == "" && tc.name != "not a mutator" || f != "" && !strings.HasPrefix(tc.want, f) && !strings.HasPrefix(err.Error(), f+": ") {
				t.Errorf("Field(%q) = %q", err, f)
			}
			if tc.name == "not a mutator" && !errors.Is(err, mutation.ErrNotMutator) {
				t.Errorf("%v does not wrap ErrNotMutator", err)
			}
			if strings.HasPrefix(tc.name, "externalData") && tc.name == "externalData" && !errors.Is(err, mutation.ErrExternalData) {
				t.Errorf("%v does not wrap ErrExternalData", err)
			}
		})
	}
}
