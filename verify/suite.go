package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Suite file identity.
const (
	SuiteKind       = "Suite"
	SuiteAPIVersion = "test.gatekeeper.sh/v1alpha1"
)

// Errors returned for suites that cannot run.
var (
	ErrInvalidSuite = errors.New("invalid suite")
	ErrInvalidCase  = errors.New("invalid case")
)

// Suite is a gator test suite.
type Suite struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Name string `json:"name,omitempty"`
	} `json:"metadata"`
	Tests []Test `json:"tests,omitempty"`
	Skip  bool   `json:"skip,omitempty"`

	// Path is where the suite was read from.
	Path string `json:"-"`
}

// Test pairs a template and a constraint with cases.
type Test struct {
	Name       string `json:"name,omitempty"`
	Template   string `json:"template"`
	Constraint string `json:"constraint"`
	// Invalid means the constraint must be refused by the template's schema.
	Invalid bool    `json:"invalid,omitempty"`
	Skip    bool    `json:"skip,omitempty"`
	Cases   []*Case `json:"cases,omitempty"`
}

// Case reviews one object, with optional inventory, and checks assertions.
type Case struct {
	Name       string      `json:"name,omitempty"`
	Object     string      `json:"object"`
	Inventory  []string    `json:"inventory,omitempty"`
	Assertions []Assertion `json:"assertions"`
	Skip       bool        `json:"skip,omitempty"`
}

// Assertion counts violations whose message matches Message (a regular
// expression; unset matches all). Violations is "yes" (at least one, the
// default), "no" (none) or an exact number.
type Assertion struct {
	Violations *Violations `json:"violations,omitempty"`
	Message    *string     `json:"message,omitempty"`
}

// Violations is an assertion's expected count: "yes", "no" or a number.
// YAML 1.1 reads bare yes and no as booleans, so those are accepted too.
type Violations intstr.IntOrString

// UnmarshalJSON accepts a number, a string, or a boolean (true is "yes").
func (v *Violations) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "true":
		*v = Violations(intstr.FromString("yes"))
		return nil
	case "false":
		*v = Violations(intstr.FromString("no"))
		return nil
	}
	var is intstr.IntOrString
	if err := is.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("violations must be a number, \"yes\" or \"no\": %w", err)
	}
	*v = Violations(is)
	return nil
}

// ReadSuite parses one suite file.
func ReadSuite(path string, data []byte) (*Suite, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrInvalidSuite, err)
	}
	var s Suite
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrInvalidSuite, err)
	}
	if s.Kind != SuiteKind || s.APIVersion != SuiteAPIVersion {
		return nil, fmt.Errorf("%s: %w: kind %q apiVersion %q, want %s %s", path, ErrInvalidSuite, s.Kind, s.APIVersion, SuiteKind, SuiteAPIVersion)
	}
	s.Path = path
	return &s, nil
}

// looksLikeSuite is a cheap test of whether a YAML file is meant as a suite,
// so that a broken suite is reported while other YAML beside it is ignored.
func looksLikeSuite(data []byte) bool {
	return bytes.Contains(data, []byte("test.gatekeeper.sh")) && bytes.Contains(data, []byte(SuiteKind))
}

// FindSuites resolves command-line paths to suite files. A path ending in
// "/..." is searched recursively; a directory is searched one level; a file
// is read as a suite.
func FindSuites(paths []string) ([]*Suite, error) {
	var suites []*Suite
	for _, p := range paths {
		recursive := false
		if p == "..." || strings.HasSuffix(p, "/...") {
			recursive = true
			p = strings.TrimSuffix(strings.TrimSuffix(p, "..."), "/")
			if p == "" {
				p = "."
			}
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("suite path: %w", err)
		}
		if !info.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("reading suite: %w", err)
			}
			s, err := ReadSuite(p, data)
			if err != nil {
				return nil, err
			}
			suites = append(suites, s)
			continue
		}
		var files []string
		err = filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if fp != p && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			ext := strings.ToLower(filepath.Ext(fp))
			if ext == ".yaml" || ext == ".yml" {
				files = append(files, fp)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("searching %s for suites: %w", p, err)
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f, err)
			}
			if !looksLikeSuite(data) {
				continue
			}
			s, err := ReadSuite(f, data)
			if err != nil {
				return nil, err
			}
			suites = append(suites, s)
		}
	}
	return suites, nil
}
