package engine

import (
	"strings"
	"testing"
)

func TestWildcardMatches(t *testing.T) {
	tests := []struct {
		pattern   Wildcard
		candidate string
		want      bool
	}{
		// Exact.
		{"default", "default", true},
		{"default", "default2", false},
		{"default", "xdefault", false},
		{"default", "", false},
		// Prefix.
		{"kube-*", "kube-system", true},
		{"kube-*", "kube-", true},
		{"kube-*", "kube", false},
		{"kube-*", "my-kube-system", false},
		{"kube-*", "", false},
		// Suffix.
		{"*-system", "kube-system", true},
		{"*-system", "gatekeeper-system", true},
		{"*-system", "-system", true},
		{"*-system", "system", false},
		{"*-system", "kube-system-x", false},
		// Contains.
		{"*x*", "x", true},
		{"*x*", "axb", true},
		{"*x*", "xa", true},
		{"*x*", "ax", true},
		{"*x*", "abc", false},
		{"*x*", "", false},
		{"*ub*", "kube-system", true},
		// Lone star and double star match everything.
		{"*", "anything", true},
		{"*", "", true},
		{"**", "anything", true},
		{"**", "", true},
		// Empty pattern matches only the empty name.
		{"", "", true},
		{"", "default", false},
		// Colons are allowed (e.g. service account names).
		{"system:*", "system:serviceaccount", true},
	}
	for _, tc := range tests {
		t.Run(string(tc.pattern)+"~"+tc.candidate, func(t *testing.T) {
			if got := tc.pattern.Matches(tc.candidate); got != tc.want {
				t.Errorf("Wildcard(%q).Matches(%q) = %v, want %v", tc.pattern, tc.candidate, got, tc.want)
			}
		})
	}
}

func TestWildcardValidate(t *testing.T) {
	tests := []struct {
		pattern Wildcard
		wantErr bool
	}{
		{"default", false},
		{"kube-*", false},
		{"*-system", false},
		{"*x*", false},
		{"*", false},
		{"**", false},
		{"", false},
		{"system:serviceaccount", false},
		{"a1-b2", false},
		// Invalid: a star in the middle, upper case, other characters.
		{"ku*be", true},
		{"*a*b*", true},
		{"***", true},
		{"Kube-*", true},
		{"kube_system", true},
		{"kube.system", true},
		{"kube system", true},
		{"kube/*", true},
		{"?", true},
	}
	for _, tc := range tests {
		t.Run(string(tc.pattern), func(t *testing.T) {
			err := tc.pattern.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Wildcard(%q).Validate() = %v, wantErr %v", tc.pattern, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), string(tc.pattern)) {
				t.Errorf("error %q does not name the pattern %q", err, tc.pattern)
			}
		})
	}
}

func TestAnyWildcardMatches(t *testing.T) {
	ws := []Wildcard{"default", "kube-*"}
	for cand, want := range map[string]bool{"default": true, "kube-public": true, "prod": false} {
		if got := anyWildcardMatches(ws, cand); got != want {
			t.Errorf("anyWildcardMatches(%v, %q) = %v, want %v", ws, cand, got, want)
		}
	}
	if anyWildcardMatches(nil, "default") {
		t.Error("anyWildcardMatches(nil, ...) = true, want false")
	}
}

func FuzzWildcard(f *testing.F) {
	for _, seed := range []struct{ pattern, candidate string }{
		{"default", "default"},
		{"kube-*", "kube-system"},
		{"*-system", "kube-system"},
		{"*x*", "axb"},
		{"*", ""},
		{"", ""},
		{"**", "a"},
		{"*a*b*", "ab"},
		{"ku*be", "kube"},
		{"\x00*", "\x00"},
		{"*é", "café"},
	} {
		f.Add(seed.pattern, seed.candidate)
	}
	f.Fuzz(func(t *testing.T, pattern, candidate string) {
		w := Wildcard(pattern)
		got := w.Matches(candidate) // must not panic
		_ = w.Validate()            // must not panic

		// A pattern matches itself when it has no inner '*', and the
		// match is deterministic.
		if got != w.Matches(candidate) {
			t.Fatalf("Wildcard(%q).Matches(%q) is not deterministic", pattern, candidate)
		}
		if w.Validate() == nil && !w.Matches(pattern) && !strings.Contains(strings.Trim(pattern, "*"), "*") {
			t.Fatalf("valid Wildcard(%q) does not match itself", pattern)
		}

		hasStarPrefix := strings.HasPrefix(pattern, "*")
		hasStarSuffix := len(pattern) > 1 && strings.HasSuffix(pattern, "*")
		switch {
		case !strings.Contains(pattern, "*"):
			// Without '*' a pattern matches only itself.
			if got != (pattern == candidate) {
				t.Fatalf("Wildcard(%q).Matches(%q) = %v, want %v (exact)", pattern, candidate, got, pattern == candidate)
			}
		case pattern == "*":
			if !got {
				t.Fatalf("Wildcard(\"*\").Matches(%q) = false", candidate)
			}
		case hasStarPrefix && hasStarSuffix:
			inner := pattern[1 : len(pattern)-1]
			if got != strings.Contains(candidate, inner) {
				t.Fatalf("Wildcard(%q).Matches(%q) = %v, want Contains(%q) = %v", pattern, candidate, got, inner, !got)
			}
		case hasStarPrefix:
			suffix := pattern[1:]
			if got != strings.HasSuffix(candidate, suffix) {
				t.Fatalf("Wildcard(%q).Matches(%q) = %v, want HasSuffix(%q) = %v", pattern, candidate, got, suffix, !got)
			}
		case hasStarSuffix:
			prefix := pattern[:len(pattern)-1]
			if got != strings.HasPrefix(candidate, prefix) {
				t.Fatalf("Wildcard(%q).Matches(%q) = %v, want HasPrefix(%q) = %v", pattern, candidate, got, prefix, !got)
			}
		default:
			// A '*' only in the middle is not a glob: the pattern is taken
			// literally (and Validate rejects it).
			if got != (pattern == candidate) {
				t.Fatalf("Wildcard(%q).Matches(%q) = %v, want literal comparison", pattern, candidate, got)
			}
			if w.Validate() == nil {
				t.Fatalf("Wildcard(%q).Validate() accepted a '*' in the middle", pattern)
			}
		}

		// Validate accepts exactly the CRD pattern ^\*?[-:a-z0-9]*\*?$.
		if (w.Validate() == nil) != validWildcardSyntax(pattern) {
			t.Fatalf("Wildcard(%q).Validate() = %v, want valid=%v", pattern, w.Validate(), validWildcardSyntax(pattern))
		}

		// Anything the pattern matches, a pattern with a star added at the
		// end of its literal part still matches (prefix/contains widen).
		if got && !hasStarSuffix && !strings.Contains(strings.Trim(pattern, "*"), "*") {
			if !Wildcard(pattern + "*").Matches(candidate) {
				t.Fatalf("Wildcard(%q) matches %q but %q does not", pattern, candidate, pattern+"*")
			}
		}
	})
}

// validWildcardSyntax is an independent implementation of the CRD pattern.
func validWildcardSyntax(p string) bool {
	p = strings.TrimPrefix(p, "*")
	p = strings.TrimSuffix(p, "*")
	for _, r := range p {
		if r != '-' && r != ':' && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
