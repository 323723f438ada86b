package vap_test

import (
	"os"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// env is the control plane of the package's envtest tests; nil when its
// binaries are missing (outside CI), and those tests skip.
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Logging(nil)
	os.Exit(testenv.Main{
		What:       "the ValidatingAdmissionPolicy tests",
		RunWithout: true,
		Start: func(e *testenv.Env) (func() error, error) {
			env = e
			return nil, nil
		},
	}.Run(m))
}
