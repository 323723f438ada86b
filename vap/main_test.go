package vap_test

import (
	"flag"
	"os"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// env is the control plane of the package's envtest tests; nil when its
// binaries are missing (outside CI), and those tests skip.
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Logging(nil)
	flag.Parse()
	if fuzzing() {
		os.Exit(m.Run())
	}
	os.Exit(testenv.Main{
		What:       "the ValidatingAdmissionPolicy tests",
		RunWithout: true,
		Start: func(e *testenv.Env) (func() error, error) {
			env = e
			return nil, nil
		},
	}.Run(m))
}

// fuzzing reports whether this process runs or coordinates fuzzing: no
// control plane is started then.
func fuzzing() bool {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return true
	}
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}
