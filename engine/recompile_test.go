package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// slowRego is a template with enough rules that compiling it takes a
// while (hundreds of milliseconds here).
func slowRego(rules int) string {
	var b strings.Builder
	b.WriteString("package slow\n\n")
	for i := range rules {
		fmt.Fprintf(&b, "violation[{\"msg\": msg}] {\n\tinput.review.object.metadata.labels[\"l%d\"] == \"v%d\"\n\tmsg := sprintf(\"rule %d matched %%v\", [input.review.object.metadata.name])\n}\n\n", i, i, i)
	}
	return b.String()
}

// TestRecompileDoesNotStallReviews adds (and then replaces) a template
// that takes long to compile while another template's reviews run in a
// loop: the reviews go on during the compile, so the longest wait between
// two of them is a small part of the compile. The frameworks client holds
// its lock, which reviews wait for, while it adds a template, so the
// engine compiles before it takes it; were the compile under that lock,
// one wait would last about as long as the compile.
func TestRecompileDoesNotStallReviews(t *testing.T) {
	e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "always", ""))
	p := pod("default", "p", nil)
	for _, round := range []string{"add", "replace"} {
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			// A different template each round, so that both compile.
			done <- e.AddTemplate(context.Background(), newTemplate(t, "K8sSlow", slowRego(1500+len(round))))
		}()
		var (
			reviews int
			longest time.Duration
			last    = start
			took    time.Duration
		)
	loop:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: AddTemplate: %v", round, err)
				}
				took = time.Since(start)
				break loop
			default:
			}
			vs := mustReview(t, e, &Object{Object: p}, EnforcementPointAudit)
			if len(vs) != 1 || vs[0].Message != "bad" {
				t.Fatalf("%s: violations %v during the compile", round, messages(vs))
			}
			now := time.Now()
			longest = max(longest, now.Sub(last))
			last = now
			reviews++
		}
		t.Logf("%s: AddTemplate took %s; %d reviews of another template meanwhile, at most %s apart",
			round, took.Round(time.Millisecond), reviews, longest.Round(time.Microsecond))
		if longest > took/2 {
			t.Errorf("%s: reviews waited %s of the %s AddTemplate took: they waited for the compile", round, longest, took)
		}
	}
}
