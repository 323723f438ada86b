package path_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/mutation/path"
)

func mustParse(t *testing.T, s string) path.Path {
	t.Helper()
	p, err := path.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTester(t *testing.T) {
	loc := mustParse(t, "spec.containers[name: foo].securityContext.capabilities")
	tester, err := path.NewTester(loc, []path.Test{
		{SubPath: mustParse(t, "spec.containers[name: foo]"), Condition: path.MustExist},
		{SubPath: mustParse(t, "spec.containers[name: foo].securityContext.capabilities"), Condition: path.MustNotExist},
	})
	if err != nil {
		t.Fatal(err)
	}
	for depth, want := range []struct{ exists, missing bool }{
		{true, true}, {true, true}, {true, false}, {true, true}, {false, true},
	} {
		if got := tester.ExistsOK(depth); got != want.exists {
			t.Errorf("ExistsOK(%d) = %t, want %t", depth, got, want.exists)
		}
		if got := tester.MissingOK(depth); got != want.missing {
			t.Errorf("MissingOK(%d) = %t, want %t", depth, got, want.missing)
		}
	}
	var none *path.Tester
	if !none.ExistsOK(0) || !none.MissingOK(3) {
		t.Error("a nil Tester must allow everything")
	}
}

func TestTesterErrors(t *testing.T) {
	loc := mustParse(t, "spec.containers[name: *].securityContext.runAsUser")
	for _, tc := range []struct {
		name  string
		tests []path.Test
		want  string
	}{
		{"not a prefix", []path.Test{{SubPath: mustParse(t, "spec.initContainers"), Condition: path.MustExist}},
			`pathTests[0].subPath: "spec.initContainers" is not a prefix of the location`},
		{"other key", []path.Test{{SubPath: mustParse(t, "spec.containers[name: foo]"), Condition: path.MustExist}},
			`pathTests[0].subPath: "spec.containers[name: foo]" is not a prefix`},
		{"longer", []path.Test{{SubPath: mustParse(t, "spec.containers[name: *].securityContext.runAsUser.x"), Condition: path.MustExist}},
			"is not a prefix"},
		{"empty", []path.Test{{Condition: path.MustExist}}, "pathTests[0].subPath: empty"},
		{"bad condition", []path.Test{{SubPath: mustParse(t, "spec"), Condition: "Maybe"}}, `pathTests[0].condition: "Maybe" is not MustExist or MustNotExist`},
		{"both", []path.Test{
			{SubPath: mustParse(t, "spec.containers"), Condition: path.MustExist},
			{SubPath: mustParse(t, "spec.containers"), Condition: path.MustNotExist},
		}, `pathTests[1]: "spec.containers" is tested both MustExist and MustNotExist`},
		{"child of forbidden", []path.Test{
			{SubPath: mustParse(t, "spec.containers[name: *].securityContext.runAsUser"), Condition: path.MustExist},
			{SubPath: mustParse(t, "spec.containers"), Condition: path.MustNotExist},
		}, `"spec.containers[name: *].securityContext.runAsUser" must exist below "spec.containers", which must not exist`},
	} {
		_, err := path.NewTester(loc, tc.tests)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
