package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
	// Find the field: encoding/json names it. Decoded into a scratch value,
	// as JSON decodes numbers otherwise than the converter.
	scratch := reflect.New(reflect.TypeOf(out).Elem()).Interface()
	var typeErr *json.UnmarshalTypeError
	data, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(data, scratch)
	}
	if !errors.As(err, &typeErr) {
		if at == "" {
			return convErr
		}
		return fmt.Errorf("%s: %w", at, convErr)
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
