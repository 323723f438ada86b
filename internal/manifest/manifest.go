package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxObjectBytes is the largest object accepted, as kube-apiserver's limit
// on a request body.
const MaxObjectBytes = 3 << 20

// Errors wrapped by the reader.
var (
	ErrParse     = errors.New("malformed YAML or JSON")
	ErrNotObject = errors.New("document is not an object")
	ErrNoKind    = errors.New("object has no apiVersion or kind")
	ErrTooLarge  = errors.New("object too large")
)

// Doc is one object read from a file, with where it came from.
type Doc struct {
	Object *unstructured.Unstructured
	// Source names the file and, for multi-document files, the document
	// index: "dir/file.yaml" or "dir/file.yaml#2" (0-based).
	Source string
}

// Error is a failure to read one document.
type Error struct {
	File  string
	Index int // document index in the file, from 0; -1 for the whole file
	Err   error
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: document %d: %v", e.File, e.Index, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsManifest reports whether a file name has an extension the reader takes.
func IsManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// ReadFile reads every object in a YAML or JSON file.
func ReadFile(fsys fs.FS, name string) ([]Doc, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, &Error{File: name, Index: -1, Err: err}
	}
	return Parse(name, data)
}

// ReadPath reads a file, or every manifest under a directory (recursively),
// from the OS file system; "-" reads standard input.
func ReadPath(path string, stdin io.Reader) ([]Doc, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, &Error{File: "<stdin>", Index: -1, Err: err}
		}
		return Parse("<stdin>", data)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, &Error{File: path, Index: -1, Err: err}
	}
	if !info.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{File: path, Index: -1, Err: err}
		}
		return Parse(path, data)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && IsManifest(p) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, &Error{File: path, Index: -1, Err: err}
	}
	sort.Strings(files)
	var docs []Doc
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{File: f, Index: -1, Err: err}
		}
		d, err := Parse(f, data)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

// Parse reads every object in YAML or JSON data. Empty documents are
// skipped; a `kind: List` is expanded into its items.
func Parse(name string, data []byte) ([]Doc, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(data), 64<<10))
	var docs []Doc
	for index := 0; ; index++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &Error{File: name, Index: index, Err: fmt.Errorf("%w: %w", ErrParse, err)}
		}
		obj, err := parseDoc(raw)
		if err != nil {
			return nil, &Error{File: name, Index: index, Err: err}
		}
		if obj == nil {
			continue
		}
		src := fmt.Sprintf("%s#%d", name, index)
		if obj.IsList() {
			items, err := listItems(obj)
			if err != nil {
				return nil, &Error{File: name, Index: index, Err: err}
			}
			for i, it := range items {
				docs = append(docs, Doc{Object: it, Source: fmt.Sprintf("%s.items[%d]", src, i)})
			}
			continue
		}
		docs = append(docs, Doc{Object: obj, Source: src})
	}
	if len(docs) == 1 && !strings.Contains(docs[0].Source, ".items[") {
		docs[0].Source = name
	}
	return docs, nil
}

func parseDoc(raw []byte) (*unstructured.Unstructured, error) {
	if len(bytes.TrimSpace(stripComments(raw))) == 0 {
		return nil, nil
	}
	if len(raw) > 2*MaxObjectBytes {
		return nil, fmt.Errorf("%w: %d bytes of YAML, over the %d-byte limit", ErrTooLarge, len(raw), MaxObjectBytes)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	js = bytes.TrimSpace(js)
	if string(js) == "null" {
		return nil, nil
	}
	if len(js) == 0 || js[0] != '{' {
		return nil, fmt.Errorf("%w: got %s", ErrNotObject, describeJSON(js))
	}
	if len(js) > MaxObjectBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrTooLarge, len(js), MaxObjectBytes)
	}
	m := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	obj := &unstructured.Unstructured{Object: normalizeNumbers(m).(map[string]any)}
	if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
		return nil, fmt.Errorf("%w (name %q)", ErrNoKind, obj.GetName())
	}
	return obj, nil
}

// normalizeNumbers turns json.Number into int64 or float64, the only number
// types unstructured objects may hold.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	default:
		return v
	}
}

func listItems(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	items, _, err := unstructured.NestedSlice(obj.Object, "items")
	if err != nil {
		return nil, fmt.Errorf("%w: items: %w", ErrNotObject, err)
	}
	out := make([]*unstructured.Unstructured, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: items[%d]", ErrNotObject, i)
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("items[%d]: %w", i, ErrNoKind)
		}
		out = append(out, u)
	}
	return out, nil
}

func stripComments(raw []byte) []byte {
	var b bytes.Buffer
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || bytes.Equal(t, []byte("---")) {
			continue
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func describeJSON(js []byte) string {
	if len(js) == 0 {
		return "nothing"
	}
	switch js[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	default:
		return "a scalar"
	}
}
