package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// gatorExtensions are the file extensions gator test reads, compared as
// gator does: exactly, so "x.YAML" is not one.
var gatorExtensions = []string{".yaml", ".yml", ".json"}

func hasGatorExtension(path string) bool {
	return slices.Contains(gatorExtensions, filepath.Ext(path))
}

// inputDoc is one object read by readTestInputs, with the file (or stdin)
// it came from, for gator's duplicate warning.
type inputDoc struct {
	manifest.Doc
	origin string // `file: "x.yaml"` or `stdin`, as gator names sources
}

// stdinIsData reports whether standard input carries data to read: gator
// reads it unless it is a terminal. A reader that is not a file (as in
// tests) is data.
func stdinIsData(r io.Reader) bool {
	if r == nil {
		return false
	}
	f, ok := r.(*os.File)
	if !ok {
		return true
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice == 0
}

// readTestInputs reads gator test's inputs: every -f path (a file must have
// a .yaml, .yml or .json extension; a directory is walked, other files
// skipped), then standard input when it is not a terminal. "-" reads
// standard input in its place instead.
func readTestInputs(paths []string, stdin io.Reader) ([]inputDoc, error) {
	var out []inputDoc
	stdinRead := false
	readStdin := func() error {
		stdinRead = true
		data, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("reading from stdin: %w", err)
		}
		docs, err := manifest.Parse("<stdin>", data)
		if err != nil {
			return fmt.Errorf("reading from stdin: %w", err)
		}
		for _, d := range docs {
			out = append(out, inputDoc{Doc: d, origin: "stdin"})
		}
		return nil
	}
	for _, p := range paths {
		if p == "-" {
			if stdinRead || stdin == nil {
				continue
			}
			if err := readStdin(); err != nil {
				return nil, err
			}
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading from filenames: stat on path %q: %w", p, err)
		}
		var files []string
		if !info.IsDir() {
			if !hasGatorExtension(p) {
				return nil, fmt.Errorf("reading from filenames: path %q must be of extensions: %v", p, gatorExtensions)
			}
			files = []string{p}
		} else {
			err := filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && hasGatorExtension(fp) {
					files = append(files, fp)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("reading from filenames: filename %q: %w", p, err)
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading from filenames: opening file %q: %w", f, err)
			}
			docs, err := manifest.Parse(f, data)
			if err != nil {
				return nil, fmt.Errorf("reading from filenames: %w", err)
			}
			for _, d := range docs {
				out = append(out, inputDoc{Doc: d, origin: fmt.Sprintf("file: %q", f)})
			}
		}
	}
	if !stdinRead && stdinIsData(stdin) {
		if err := readStdin(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// duplicateWarnings lists gator's warnings for objects defined twice (same
// group, kind, namespace and name), in gator's words.
func duplicateWarnings(docs []inputDoc) []string {
	type key struct{ group, kind, namespace, name string }
	seen := map[key]string{}
	var out []string
	for _, d := range docs {
		o := d.Object
		k := key{o.GroupVersionKind().Group, o.GetKind(), o.GetNamespace(), o.GetName()}
		if prev, ok := seen[k]; ok {
			out = append(out, fmt.Sprintf("WARNING - Resource named %q (from %s) is already defined in %s", o.GetName(), d.origin, prev))
		}
		seen[k] = d.origin
	}
	return out
}
