package engine

import (
	"fmt"
	"regexp"
	"strings"
)

// wildcardPattern is the syntax Gatekeeper's CRDs accept for namespace and
// name globs: an optional leading and trailing '*' around [-:a-z0-9]*.
var wildcardPattern = regexp.MustCompile(`^\*?[-:a-z0-9]*\*?$`)

// Wildcard is a name glob: "kube-*" is a prefix, "*-system" a suffix and
// "*x*" a substring match; without '*' it is an exact name.
type Wildcard string

// Validate reports whether w uses the accepted glob syntax.
func (w Wildcard) Validate() error {
	if !wildcardPattern.MatchString(string(w)) {
		return fmt.Errorf("invalid wildcard %q: must match %s", string(w), wildcardPattern)
	}
	return nil
}

// Matches reports whether candidate is selected by the glob.
func (w Wildcard) Matches(candidate string) bool {
	s := string(w)
	prefix := strings.HasPrefix(s, "*")
	suffix := len(s) > 1 && strings.HasSuffix(s, "*")
	switch {
	case prefix && suffix:
		return strings.Contains(candidate, s[1:len(s)-1])
	case prefix:
		return strings.HasSuffix(candidate, s[1:])
	case suffix:
		return strings.HasPrefix(candidate, s[:len(s)-1])
	default:
		return s == candidate
	}
}

// MatchesGenerateName reports whether every name the API server can make
// from a generateName prefix is selected by the glob. That is only certain
// for "*", a prefix glob whose prefix the generateName starts with, and a
// contains glob found within the prefix; an exact name or a suffix glob
// depends on the random suffix, so it never matches.
func (w Wildcard) MatchesGenerateName(prefix string) bool {
	s := string(w)
	switch {
	case s == "*":
		return true
	case len(s) < 2 || !strings.HasSuffix(s, "*"):
		return false
	case strings.HasPrefix(s, "*"):
		return strings.Contains(prefix, s[1:len(s)-1])
	default:
		return strings.HasPrefix(prefix, s[:len(s)-1])
	}
}

func anyWildcardMatches(ws []Wildcard, candidate string) bool {
	for _, w := range ws {
		if w.Matches(candidate) {
			return true
		}
	}
	return false
}
