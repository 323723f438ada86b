package verify

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Print writes results as gator verify does: per case and test --- FAIL
// (and with verbose === RUN, --- PASS and === SKIP), ok or FAIL per suite,
// and a final PASS or FAIL. It returns whether everything passed.
func Print(w io.Writer, results []SuiteResult, verbose bool) bool {
	pass := true
	for i := range results {
		s := &results[i]
		for j := range s.Tests {
			printTest(w, &s.Tests[j], verbose)
		}
		if s.Failed() {
			pass = false
			fmt.Fprintf(w, "FAIL\t%s\t%s\n", s.Path, secs(s.Runtime))
			if s.Err != nil {
				fmt.Fprintf(w, "  %v\n", s.Err)
			}
		} else {
			fmt.Fprintf(w, "ok\t%s\t%s\n", s.Path, secs(s.Runtime))
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
	if verbose {
		if t.Skipped {
			fmt.Fprintf(w, "=== SKIP  %s\n", t.Name)
			return
		}
		fmt.Fprintf(w, "=== RUN   %s\n", t.Name)
	}
	for i := range t.Cases {
		printCase(w, &t.Cases[i], verbose)
	}
	switch {
	case t.Failed():
		fmt.Fprintf(w, "--- FAIL: %s\t(%s)\n", t.Name, secs(t.Runtime))
		if t.Err != nil {
			fmt.Fprintf(w, "  %v\n", t.Err)
		}
	case verbose:
		fmt.Fprintf(w, "--- PASS: %s\t(%s)\n", t.Name, secs(t.Runtime))
	}
}

func printCase(w io.Writer, c *CaseResult, verbose bool) {
	if verbose {
		if c.Skipped {
			fmt.Fprintf(w, "    === SKIP  %s\n", c.Name)
			return
		}
		fmt.Fprintf(w, "    === RUN   %s\n", c.Name)
	}
	switch {
	case c.Err != nil:
		fmt.Fprintf(w, "    --- FAIL: %s\t(%s)\n        %v\n", c.Name, secs(c.Runtime), c.Err)
	case verbose:
		fmt.Fprintf(w, "    --- PASS: %s\t(%s)\n", c.Name, secs(c.Runtime))
	}
	if c.Trace != nil {
		prefix := ""
		if verbose {
			prefix = "    --- "
		}
		fmt.Fprintf(w, "%sTRACE: %s\t%s\n", prefix, c.Name, strings.ReplaceAll(*c.Trace, "\n", "\n"+prefix))
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
