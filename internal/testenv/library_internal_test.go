package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recordT records Fatalf and Skipf instead of ending the test.
type recordT struct {
	testing.TB
	fatal, skip string
}

func (r *recordT) Helper()                           {}
func (r *recordT) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recordT) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

// TestRequireLibrary: without the library a test is skipped, saying where
// it looked, and fails in CI.
func TestRequireLibrary(t *testing.T) {
	missing := errors.New("no such file or directory")
	for _, tc := range []struct {
		ci                 string
		err                error
		wantSkip, wantFail bool
	}{
		{"", nil, false, false},
		{"true", nil, false, false},
		{"", missing, true, false},
		{"true", missing, false, true},
	} {
		t.Run(fmt.Sprintf("CI=%s,err=%v", tc.ci, tc.err), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recordT{TB: t}
			requireLibrary(r, "/x/library", tc.err)
			if (r.skip != "") != tc.wantSkip || (r.fatal != "") != tc.wantFail {
				t.Fatalf("skip %q, fatal %q; want skip %t, fail %t", r.skip, r.fatal, tc.wantSkip, tc.wantFail)
			}
			if msg := r.skip + r.fatal; tc.err != nil && !strings.Contains(msg, "gatekeeper-library not found at /x/library") {
				t.Errorf("message %q does not say where the library was looked for", msg)
			}
		})
	}
}
