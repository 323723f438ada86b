package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// Decode converts part of an object read from YAML or JSON, raw, into out,
// a pointer to its typed API struct, with runtime.DefaultUnstructuredConverter.
// A field of the wrong type is an error that names it by its path below
// at ("spec"; "" for the whole object), says what it holds and what it must hold:
// "spec.parameters.values.fromList: a string, not a list", where the
// converter says only "cannot restore slice from string". Unknown fields
// are ignored, as the converter and the API server's pruning ignore them.
func Decode(raw map[string]any, out any, at string) error {
	convErr := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, out)
	if convErr == nil {
		return nil
	}
	plain := func() error {
		if at == "" {
			return convErr
		}
		return fmt.Errorf("%s: %w", at, convErr)
	}
	t := reflect.TypeOf(out)
	if t == nil || t.Kind() != reflect.Pointer {
		return plain()
	}
	// Find the field: encoding/json names it. Decoded into a scratch value,
	// as JSON decodes numbers otherwise than the converter. JSON matches
	// keys whatever their case, and takes some values the converter does
	// not (and the other way round): the field is named only if raw holds
	// a value of the kind JSON found there, under that exact name.
	scratch := reflect.New(t.Elem()).Interface()
	var typeErr *json.UnmarshalTypeError
	data, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(data, scratch)
	}
	if !errors.As(err, &typeErr) || typeErr.Field == "" || !holds(raw, strings.Split(typeErr.Field, "."), typeErr.Value) {
		return plain()
	}
	field := at
	switch {
	case field == "":
		field = typeErr.Field
	case typeErr.Field != "":
		field += "." + typeErr.Field
	}
	return fmt.Errorf("%s: %s, not %s", field, jsonKind(typeErr.Value), goKind(typeErr.Type))
}

// holds reports whether v holds, at path (whose lists are not indexed, as
// encoding/json names fields), a value of the JSON kind kind.
func holds(v any, path []string, kind string) bool {
	if len(path) == 0 {
		switch x := v.(type) {
		case []any:
			// The list itself, or one of its elements.
			return kind == "array" || slices.ContainsFunc(x, func(e any) bool { return holds(e, nil, kind) })
		case string:
			return kind == "string"
		case bool:
			return kind == "bool"
		case map[string]any:
			return kind == "object"
		case int64, int32, int, float64, float32, json.Number:
			return kind == "number" || strings.HasPrefix(kind, "number ")
		}
		return false
	}
	switch x := v.(type) {
	case []any:
		// encoding/json names the list, not its elements.
		return slices.ContainsFunc(x, func(e any) bool { return holds(e, path, kind) })
	case map[string]any:
		next, ok := x[path[0]]
		return ok && holds(next, path[1:], kind)
	}
	return false
}

// jsonKind names a JSON value kind as encoding/json reports it.
func jsonKind(v string) string {
	switch v {
	case "string", "number", "bool":
		return "a " + v
	case "array":
		return "a list"
	case "object":
		return "an object"
	}
	if strings.HasPrefix(v, "number ") {
		// A number out of the field's range, or not an integer.
		return "the " + v
	}
	return v
}

// goKind names what a Go type holds, in the words of a manifest.
func goKind(t reflect.Type) string {
	if t == nil {
		return "a value of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}
