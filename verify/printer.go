package verify

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Print writes results in go test's format: --- PASS/FAIL per test and
// case (passes only with verbose), ok/FAIL per suite and a final PASS/FAIL.
// It returns whether everything passed.
func Print(w io.Writer, results []SuiteResult, verbose bool) bool {
	pass := true
	for i := range results {
		s := &results[i]
		if s.Skipped {
			if verbose {
				fmt.Fprintf(w, "=== SKIP  %s\n", s.Path)
			}
			fmt.Fprintf(w, "ok  \t%s\t(skipped)\n", s.Path)
			continue
		}
		for j := range s.Tests {
			printTest(w, &s.Tests[j], verbose)
		}
		if s.Failed() {
			pass = false
			fmt.Fprintf(w, "FAIL\t%s\t%s\n", s.Path, secs(s.Runtime))
			if s.Err != nil {
				fmt.Fprintf(w, "    %v\n", s.Err)
			}
		} else {
			fmt.Fprintf(w, "ok  \t%s\t%s\n", s.Path, secs(s.Runtime))
		}
	}
	if pass {
		fmt.Fprintln(w, "PASS")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
	return pass
}

func printTest(w io.Writer, t *TestResult, verbose bool) {
	if t.Skipped {
		if verbose {
			fmt.Fprintf(w, "=== SKIP  %s\n", t.Name)
		}
		return
	}
	if verbose {
		fmt.Fprintf(w, "=== RUN   %s\n", t.Name)
	}
	for i := range t.Cases {
		c := &t.Cases[i]
		switch {
		case c.Skipped:
			if verbose {
				fmt.Fprintf(w, "    --- SKIP: %s\n", c.Name)
			}
		case c.Err != nil:
			fmt.Fprintf(w, "    --- FAIL: %s (%s)\n        %s\n", c.Name, secs(c.Runtime), indent(c.Err.Error(), "        "))
		case verbose:
			fmt.Fprintf(w, "    --- PASS: %s (%s)\n", c.Name, secs(c.Runtime))
		}
	}
	switch {
	case t.Failed():
		fmt.Fprintf(w, "--- FAIL: %s (%s)\n", t.Name, secs(t.Runtime))
		if t.Err != nil {
			fmt.Fprintf(w, "    %s\n", indent(t.Err.Error(), "    "))
		}
	case verbose:
		fmt.Fprintf(w, "--- PASS: %s (%s)\n", t.Name, secs(t.Runtime))
	}
}

// Counts totals suites, tests and cases that ran, and how many failed.
type Counts struct {
	Suites, Tests, Cases                   int
	FailedSuites, FailedTests, FailedCases int
}

// Count totals the results.
func Count(results []SuiteResult) Counts {
	var c Counts
	for i := range results {
		s := &results[i]
		if s.Skipped {
			continue
		}
		c.Suites++
		if s.Failed() {
			c.FailedSuites++
		}
		for j := range s.Tests {
			t := &s.Tests[j]
			if t.Skipped {
				continue
			}
			c.Tests++
			if t.Failed() {
				c.FailedTests++
			}
			for k := range t.Cases {
				if t.Cases[k].Skipped {
					continue
				}
				c.Cases++
				if t.Cases[k].Err != nil {
					c.FailedCases++
				}
			}
		}
	}
	return c
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func indent(s, prefix string) string { return strings.ReplaceAll(s, "\n", "\n"+prefix) }
