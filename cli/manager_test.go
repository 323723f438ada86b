package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestManagerHelp(t *testing.T) {
	code, out, errOut := run(t, "", "manager", "--help")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, flag := range []string{
		"--metrics-bind-address", "--health-probe-bind-address", "--leader-elect", "--leader-election-namespace",
		"--pod-id", "--namespace", "--install-crds", "--kubeconfig", "--zap-log-level",
	} {
		if !strings.Contains(out, flag) {
			t.Errorf("manager --help lacks %s:\n%s", flag, out)
		}
	}
}

func TestManagerBadOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"empty namespace", []string{"manager", "--namespace="}, "--namespace must not be empty"},
		{"missing kubeconfig", []string{"manager", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, "loading --kubeconfig"},
		{"arguments", []string{"manager", "extra"}, "unknown command"},
		{"unknown operation", []string{"manager", "--operation=mutate"}, `invalid argument "mutate" for "--operation" flag`},
		{"negative interval", []string{"manager", "--audit-interval=-60"}, `invalid argument "-60" for "--audit-interval" flag: -60 must not be negative`},
		{"stackdriver", []string{"manager", "--metrics-backend=stackdriver"}, `for "--metrics-backend" flag: "stackdriver" is not supported`},
		{"log level", []string{"manager", "--log-level=TRACE"}, `for "--log-level" flag`},
		{"prometheus port", []string{"manager", "--prometheus-port=-1"}, "--prometheus-port -1 is not a port number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q (stdout %q), want exit 2 and %q", code, errOut, out, tc.want)
			}
		})
	}
}
