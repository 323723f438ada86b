package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestManagerFlagsDocumented keeps docs/manager-flags.md in step with the
// manager's flags: every flag `portcullis manager --help` lists is there.
func TestManagerFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/manager-flags.md")
	if err != nil {
		t.Fatalf("reading the flag reference: %v", err)
	}
	code, out, errOut := run(t, "", "manager", "--help")
	if code != 0 {
		t.Fatalf("manager --help: exit %d\n%s", code, errOut)
	}
	flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)`).FindAllStringSubmatch(out, -1)
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in manager --help:\n%s", len(flags), out)
	}
	for _, f := range flags {
		if !strings.Contains(string(doc), f[1]+" ") {
			t.Errorf("docs/manager-flags.md lacks %s; run make docs", f[1])
		}
	}
}
