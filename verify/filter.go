package verify

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidFilter is returned for a --run value that is not a filter.
var ErrInvalidFilter = errors.New("invalid test filter")

// Filter selects tests and cases by name, with gator verify's --run
// semantics: "RE" runs the cases whose own name or whose test's name
// matches RE (and the tests holding such cases); "TEST//CASE" runs the
// cases matching CASE in tests matching TEST. An empty filter runs all.
type Filter struct {
	test, kase *regexp.Regexp
	and        bool
}

// NewFilter parses a --run value as gator does.
func NewFilter(s string) (*Filter, error) {
	if s == "" {
		return &Filter{}, nil
	}
	parts := strings.Split(s, "//")
	f := &Filter{}
	var err error
	switch len(parts) {
	case 1:
		if f.test, err = regexp.Compile(parts[0]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidFilter, err)
		}
		f.kase = f.test
	case 2:
		f.and = true
		if f.test, err = regexp.Compile(parts[0]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidFilter, err)
		}
		if f.kase, err = regexp.Compile(parts[1]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidFilter, err)
		}
	default:
		return nil, fmt.Errorf(`%w: a filter may include at most one "//"`, ErrInvalidFilter)
	}
	return f, nil
}

// MatchesTest reports whether a test runs.
func (f *Filter) MatchesTest(t *Test) bool {
	if f == nil || f.test == nil {
		return true
	}
	if f.and {
		return f.test.MatchString(t.Name)
	}
	if f.test.MatchString(t.Name) {
		return true
	}
	for _, c := range t.Cases {
		if f.MatchesCase(t.Name, c.Name) {
			return true
		}
	}
	return false
}

// MatchesCase reports whether case kase of test runs.
func (f *Filter) MatchesCase(test, kase string) bool {
	if f == nil || f.test == nil {
		return true
	}
	if f.and {
		return f.kase.MatchString(kase) && f.test.MatchString(test)
	}
	return f.kase.MatchString(kase) || f.test.MatchString(test)
}
