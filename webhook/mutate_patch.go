package webhook

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// patchOp is one operation of a JSON patch (RFC 6902).
type patchOp struct {
	op    string // add, remove or replace
	path  string // a JSON pointer (RFC 6901)
	value any    // for add and replace
}

// MarshalJSON writes the operation, without a value for remove.
func (p patchOp) MarshalJSON() ([]byte, error) {
	if p.op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{p.op, p.path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{p.op, p.path, p.value})
}

// diffPatch appends to ops the JSON patch that turns a into b, two values
// of decoded JSON, at path. Objects are compared key by key; a list that
// only grew gets adds at its end, any other changed list is replaced
// whole. It works on the objects already decoded, where a patch library
// would encode and decode both again.
func diffPatch(a, b any, path string, ops []patchOp) []patchOp {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return append(ops, patchOp{op: "replace", path: path, value: b})
		}
		for _, k := range sortedKeys(x) {
			p := path + "/" + escapePointer(k)
			if w, ok := y[k]; ok {
				ops = diffPatch(x[k], w, p, ops)
			} else {
				ops = append(ops, patchOp{op: "remove", path: p})
			}
		}
		for _, k := range sortedKeys(y) {
			if _, ok := x[k]; !ok {
				ops = append(ops, patchOp{op: "add", path: path + "/" + escapePointer(k), value: y[k]})
			}
		}
		return ops
	case []any:
		y, ok := b.([]any)
		if !ok {
			return append(ops, patchOp{op: "replace", path: path, value: b})
		}
		switch {
		case len(x) == len(y):
			for i := range x {
				ops = diffPatch(x[i], y[i], path+"/"+strconv.Itoa(i), ops)
			}
		case len(x) < len(y) && reflect.DeepEqual(x, y[:len(x)]):
			for i := len(x); i < len(y); i++ {
				ops = append(ops, patchOp{op: "add", path: path + "/" + strconv.Itoa(i), value: y[i]})
			}
		default:
			ops = append(ops, patchOp{op: "replace", path: path, value: b})
		}
		return ops
	default:
		if !reflect.DeepEqual(a, b) {
			ops = append(ops, patchOp{op: "replace", path: path, value: b})
		}
		return ops
	}
}

// escapePointer escapes a key for a JSON pointer: ~ as ~0, / as ~1.
func escapePointer(k string) string {
	if !strings.ContainsAny(k, "~/") {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
