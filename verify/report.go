package verify

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// JUnit XML, as CI systems (GitHub, GitLab, Jenkins) read it: one
// <testsuite> per suite file, one <testcase> per case, and one for a test
// that failed before its cases could run (its template did not compile,
// say) or that is an `invalid: true` test.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *struct{}     `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func junitTime(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// firstLine is an error's first line, for a failure's message attribute.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// WriteJUnit writes results as JUnit XML. It returns whether everything
// passed.
func WriteJUnit(w io.Writer, results []SuiteResult) (bool, error) {
	out := junitSuites{Name: "portcullis verify"}
	var total time.Duration
	for i := range results {
		s := &results[i]
		js := junitSuite{Name: s.Path, Time: junitTime(s.Runtime)}
		total += s.Runtime
		add := func(c junitCase) {
			js.Tests++
			switch {
			case c.Failure != nil:
				js.Failures++
			case c.Skipped != nil:
				js.Skipped++
			}
			js.Cases = append(js.Cases, c)
		}
		if s.Skipped {
			add(junitCase{Name: s.Path, Classname: s.Path, Time: junitTime(0), Skipped: &struct{}{}})
		}
		if s.Err != nil {
			add(junitCase{Name: s.Path, Classname: s.Path, Time: junitTime(s.Runtime),
				Failure: &junitFailure{Message: firstLine(s.Err.Error()), Text: s.Err.Error()}})
		}
		for j := range s.Tests {
			t := &s.Tests[j]
			class := s.Path + "/" + t.Name
			switch {
			case t.Skipped:
				add(junitCase{Name: t.Name, Classname: class, Time: junitTime(0), Skipped: &struct{}{}})
				continue
			case t.Err != nil:
				add(junitCase{Name: t.Name, Classname: class, Time: junitTime(t.Runtime),
					Failure: &junitFailure{Message: firstLine(t.Err.Error()), Text: t.Err.Error()}})
				continue
			case len(t.Cases) == 0:
				add(junitCase{Name: t.Name, Classname: class, Time: junitTime(t.Runtime)})
				continue
			}
			for k := range t.Cases {
				c := &t.Cases[k]
				jc := junitCase{Name: t.Name + "/" + c.Name, Classname: class, Time: junitTime(c.Runtime)}
				switch {
				case c.Skipped:
					jc.Skipped = &struct{}{}
				case c.Err != nil:
					jc.Failure = &junitFailure{Message: firstLine(c.Err.Error()), Text: c.Err.Error()}
				}
				if c.Trace != nil {
					jc.SystemOut = *c.Trace
				}
				add(jc)
			}
		}
		out.Tests += js.Tests
		out.Failures += js.Failures
		out.Skipped += js.Skipped
		out.Suites = append(out.Suites, js)
	}
	out.Time = junitTime(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return false, err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return false, fmt.Errorf("encoding JUnit XML: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return false, err
	}
	return out.Failures == 0, nil
}

// JSON report of verify -o json.
type jsonReport struct {
	Pass   bool        `json:"pass"`
	Suites []jsonSuite `json:"suites"`
}

type jsonSuite struct {
	Path    string     `json:"path"`
	Skipped bool       `json:"skipped,omitempty"`
	Error   string     `json:"error,omitempty"`
	Runtime float64    `json:"runtimeSeconds"`
	Tests   []jsonTest `json:"tests"`
}

type jsonTest struct {
	Name    string     `json:"name"`
	Skipped bool       `json:"skipped,omitempty"`
	Error   string     `json:"error,omitempty"`
	Runtime float64    `json:"runtimeSeconds"`
	Cases   []jsonCase `json:"cases"`
}

type jsonCase struct {
	Name    string  `json:"name"`
	Skipped bool    `json:"skipped,omitempty"`
	Error   string  `json:"error,omitempty"`
	Runtime float64 `json:"runtimeSeconds"`
	Trace   *string `json:"trace,omitempty"`
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WriteJSON writes results as one JSON object: {"pass": bool, "suites":
// [{"path", "skipped", "error", "runtimeSeconds", "tests": [{"name", ...,
// "cases": [{"name", "skipped", "error", "runtimeSeconds", "trace"}]}]}]}.
// It returns whether everything passed.
func WriteJSON(w io.Writer, results []SuiteResult) (bool, error) {
	rep := jsonReport{Pass: true, Suites: []jsonSuite{}}
	for i := range results {
		s := &results[i]
		if s.Failed() {
			rep.Pass = false
		}
		js := jsonSuite{Path: s.Path, Skipped: s.Skipped, Error: errString(s.Err), Runtime: s.Runtime.Seconds(), Tests: []jsonTest{}}
		for j := range s.Tests {
			t := &s.Tests[j]
			jt := jsonTest{Name: t.Name, Skipped: t.Skipped, Error: errString(t.Err), Runtime: t.Runtime.Seconds(), Cases: []jsonCase{}}
			for k := range t.Cases {
				c := &t.Cases[k]
				jt.Cases = append(jt.Cases, jsonCase{Name: c.Name, Skipped: c.Skipped, Error: errString(c.Err), Runtime: c.Runtime.Seconds(), Trace: c.Trace})
			}
			js.Tests = append(js.Tests, jt)
		}
		rep.Suites = append(rep.Suites, js)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encoding JSON: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return rep.Pass, err
}
