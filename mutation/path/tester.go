package path

import (
	"fmt"
)

// Condition is what a path test requires: MustExist or MustNotExist.
type Condition string

// Conditions of path tests.
const (
	MustExist    Condition = "MustExist"
	MustNotExist Condition = "MustNotExist"
)

// Test is one path test: SubPath, a prefix of the location, must exist
// or must not.
type Test struct {
	SubPath   Path
	Condition Condition
}

// Tester answers, for each depth of a location, whether finding something
// there, or nothing, lets the mutation go on. The zero Tester allows
// everything.
type Tester struct {
	// conds[i] is the condition on the node at depth i, "" for none.
	conds []Condition
}

// NewTester checks the tests against the location: every sub path is a
// prefix of it, no node must both exist and not exist, and no node must
// exist below one that must not. The errors name the test by its index.
func NewTester(location Path, tests []Test) (*Tester, error) {
	t := &Tester{conds: make([]Condition, len(location))}
	mustNotDepth := -1 // shallowest MustNotExist
	mustDepth := -1    // deepest MustExist
	for i, test := range tests {
		switch test.Condition {
		case MustExist, MustNotExist:
		default:
			return nil, fmt.Errorf("pathTests[%d].condition: %q is not MustExist or MustNotExist", i, test.Condition)
		}
		if len(test.SubPath) == 0 {
			return nil, fmt.Errorf("pathTests[%d].subPath: empty: it must be a prefix of the location %q", i, location.String())
		}
		if !location.HasPrefix(test.SubPath) {
			return nil, fmt.Errorf("pathTests[%d].subPath: %q is not a prefix of the location %q", i, test.SubPath.String(), location.String())
		}
		d := len(test.SubPath) - 1
		if c := t.conds[d]; c != "" && c != test.Condition {
			return nil, fmt.Errorf("pathTests[%d]: %q is tested both MustExist and MustNotExist", i, test.SubPath.String())
		}
		t.conds[d] = test.Condition
		if test.Condition == MustNotExist && (mustNotDepth < 0 || d < mustNotDepth) {
			mustNotDepth = d
		}
		if test.Condition == MustExist && d > mustDepth {
			mustDepth = d
		}
	}
	if mustNotDepth >= 0 && mustDepth > mustNotDepth {
		return nil, fmt.Errorf("pathTests: %q must exist below %q, which must not exist", location[:mustDepth+1].String(), location[:mustNotDepth+1].String())
	}
	return t, nil
}

// ExistsOK reports whether the mutation goes on when something is at
// depth.
func (t *Tester) ExistsOK(depth int) bool {
	return t == nil || depth >= len(t.conds) || t.conds[depth] != MustNotExist
}

// MissingOK reports whether the mutation goes on when nothing is at depth.
func (t *Tester) MissingOK(depth int) bool {
	return t == nil || depth >= len(t.conds) || t.conds[depth] != MustExist
}

// Condition returns the condition at depth, "" for none.
func (t *Tester) Condition(depth int) Condition {
	if t == nil || depth >= len(t.conds) {
		return ""
	}
	return t.conds[depth]
}
