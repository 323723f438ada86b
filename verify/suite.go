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

	yamlv3 "go.yaml.in/yaml/v3"
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
	ErrInvalidSuite = errors.New("invalid Suite")
	ErrInvalidCase  = errors.New("invalid Case")
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

	// Path is where the suite was read from, as gator prints it.
	Path string `json:"-"`
	// Warnings are what ReadSuite ignored (unknown fields, which gator
	// ignores too).
	Warnings []string `json:"-"`
}

// Test pairs a template and a constraint with cases.
type Test struct {
	Name       string `json:"name,omitempty"`
	Template   string `json:"template"`
	Constraint string `json:"constraint"`
	// Expansion names a file of ExpansionTemplates: each case's object is
	// also judged by what it expands into, as in gator.
	Expansion string `json:"expansion,omitempty"`
	// Mutators are files of mutators (Assign, AssignMetadata, ModifySet,
	// AssignImage) applied to each case's object before it is judged, as
	// the mutating webhook would, and to what it expands into (source
	// Generated), as Gatekeeper's expansion does; a Portcullis addition,
	// which gator ignores. Mutators among a case's inventory files are
	// applied too.
	Mutators []string `json:"mutators,omitempty"`
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

// suiteGroup is the API group of suites; gator accepts any version.
const suiteGroup = "test.gatekeeper.sh"

// ReadSuite parses one suite file. Fields it does not know are ignored,
// as gator ignores them, and listed in the suite's Warnings.
func ReadSuite(path string, data []byte) (*Suite, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrInvalidSuite, err)
	}
	var s Suite
	if err := json.Unmarshal(js, &s); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrInvalidSuite, err)
	}
	group, _, _ := strings.Cut(s.APIVersion, "/")
	if !strings.Contains(s.APIVersion, "/") {
		group = ""
	}
	if s.Kind != SuiteKind || group != suiteGroup {
		return nil, fmt.Errorf("%s: %w: kind %q apiVersion %q, want %s %s", path, ErrInvalidSuite, s.Kind, s.APIVersion, SuiteKind, SuiteAPIVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var strict Suite
	if err := dec.Decode(&strict); err != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s: ignored: %v", path, err))
	}
	s.Path = path
	return &s, nil
}

// isSuite reads a YAML file's first document as gator does and reports
// whether it is a suite (group test.gatekeeper.sh, kind Suite). A file
// that is not YAML is an error, as in gator.
func isSuite(path string, data []byte) (bool, error) {
	m := map[string]any{}
	if err := yamlv3.Unmarshal(data, &m); err != nil {
		return false, fmt.Errorf("invalid yaml: parsing yaml file %q: %w", path, err)
	}
	kind, _ := m["kind"].(string)
	apiVersion, _ := m["apiVersion"].(string)
	group, _, found := strings.Cut(apiVersion, "/")
	return kind == SuiteKind && found && group == suiteGroup, nil
}

// FindSuites resolves command-line paths to suite files as gator verify
// does. A path ending in "/..." is searched recursively; a directory is
// searched one level; a file is read. Only .yaml and .yml files are read,
// and of those only suites are kept: other YAML is ignored. A suite's Path
// is the path given followed by the file's path below it.
func FindSuites(paths []string) ([]*Suite, error) {
	var suites []*Suite
	for _, arg := range paths {
		recursive := false
		p := arg
		if p == "..." || strings.HasSuffix(p, "/...") {
			recursive = true
			p = strings.TrimSuffix(p, "...")
			arg = p
			p = strings.TrimSuffix(p, "/")
			if p == "" {
				p = "."
			}
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var files []string
		switch {
		case !info.IsDir() && recursive:
			return nil, fmt.Errorf("can only recursively traverse directories, not a directory: %q", p)
		case !info.IsDir():
			if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
				return nil, fmt.Errorf("unsupported extension: %q", ext)
			}
			files = []string{p}
		default:
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
				if ext := filepath.Ext(fp); ext == ".yaml" || ext == ".yml" {
					files = append(files, fp)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading file %q: %w", f, err)
			}
			ok, err := isSuite(f, data)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			s, err := ReadSuite(f, data)
			if err != nil {
				return nil, err
			}
			s.Path = f
			if info.IsDir() {
				if rel, err := filepath.Rel(p, f); err == nil {
					s.Path = joinInput(arg, rel)
				}
			}
			suites = append(suites, s)
		}
	}
	return suites, nil
}

// joinInput appends a file's path below a directory to the directory as
// the user wrote it, as gator prints suite paths.
func joinInput(arg, rel string) string {
	if arg == "" || arg == "." {
		return rel
	}
	if strings.HasSuffix(arg, "/") {
		return arg + rel
	}
	return arg + "/" + rel
}
