package v1

import (
	"bytes"
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Condition is what a path test requires of a path.
// +kubebuilder:validation:Enum=MustExist;MustNotExist
type Condition string

// Path test conditions.
const (
	// MustExist mutates only when something is at the path.
	MustExist Condition = "MustExist"
	// MustNotExist mutates only when nothing is at the path.
	MustNotExist Condition = "MustNotExist"
)

// PathTest makes a mutation conditional on a part of its location: the
// object is mutated only when the sub path exists (MustExist) or does not
// (MustNotExist). SubPath must be a prefix of the location; a glob in it
// stands for the list element the location's glob is at.
type PathTest struct {
	// SubPath is a prefix of the location, such as spec.containers[name: foo].
	SubPath string `json:"subPath,omitempty"`
	// Condition is MustExist or MustNotExist.
	Condition Condition `json:"condition,omitempty"`
}

// AssignField is the value a mutator assigns: exactly one of value,
// fromMetadata and externalData.
type AssignField struct {
	// Value is assigned as given: a string, number, boolean, list or
	// object.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Value *Anything `json:"value,omitempty"`

	// FromMetadata assigns a field of the mutated object's metadata.
	FromMetadata *FromMetadata `json:"fromMetadata,omitempty"`

	// ExternalData assigns what an external data provider answers.
	// Portcullis refuses it until it supports external data.
	ExternalData *ExternalData `json:"externalData,omitempty"`
}

// Metadata fields FromMetadata can assign.
const (
	// FieldNamespace is the object's namespace.
	FieldNamespace = "namespace"
	// FieldName is the object's name.
	FieldName = "name"
)

// FromMetadata names a metadata field of the mutated object.
type FromMetadata struct {
	// Field is namespace (the object's namespace) or name (its name).
	Field string `json:"field,omitempty"`
}

// ExternalData names an external data provider and how to call it.
type ExternalData struct {
	// Provider is the name of the Provider to call.
	// +kubebuilder:validation:Required
	Provider string `json:"provider,omitempty"`

	// DataSource is what is sent to the provider: the value at the
	// location (ValueAtLocation) or the requesting user's name (Username).
	// +kubebuilder:validation:Enum=ValueAtLocation;Username
	// +kubebuilder:default="ValueAtLocation"
	DataSource string `json:"dataSource,omitempty"`

	// FailurePolicy is what happens when the provider fails: UseDefault
	// assigns default, Ignore leaves the object alone, Fail fails the
	// request.
	// +kubebuilder:validation:Enum=UseDefault;Ignore;Fail
	// +kubebuilder:default="Fail"
	FailurePolicy string `json:"failurePolicy,omitempty"`

	// Default is assigned when the provider fails and failurePolicy is
	// UseDefault.
	Default string `json:"default,omitempty"`
}

// Anything holds any JSON value: the value of parameters.assign.value.
// +kubebuilder:object:generate=false
// +kubebuilder:validation:Type=""
type Anything struct {
	Value any `json:"-"`
}

// UnmarshalJSON reads any JSON value; null leaves Value nil.
func (in *Anything) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		in.Value = nil
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	in.Value = v
	return nil
}

// MarshalJSON writes Value as JSON.
func (in Anything) MarshalJSON() ([]byte, error) {
	return json.Marshal(in.Value)
}

// DeepCopyInto copies the value into out.
func (in *Anything) DeepCopyInto(out *Anything) {
	out.Value = CopyJSON(in.Value)
}

// DeepCopy returns a copy of the value.
func (in *Anything) DeepCopy() *Anything {
	if in == nil {
		return nil
	}
	out := new(Anything)
	in.DeepCopyInto(out)
	return out
}

// CopyJSON returns a deep copy of a JSON value, with whole numbers as
// int64 as unstructured objects hold them (encoding/json decodes every
// number as float64), so that copies compare equal to the values of
// decoded objects.
func CopyJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = CopyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = CopyJSON(e)
		}
		return out
	case float64:
		if i := int64(t); float64(i) == t && t >= -(1<<53) && t <= 1<<53 {
			return i
		}
		return t
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return runtime.DeepCopyJSONValue(v)
}

// MutatorPodStatus is one replica's report on a mutator, in status.byPod.
type MutatorPodStatus struct {
	// ID is the replica's ID (its Pod's name in a cluster).
	ID string `json:"id,omitempty"`
	// MutatorUID is the UID of the mutator the replica loaded.
	MutatorUID types.UID `json:"mutatorUID,omitempty"`
	// Operations are the replica's --operation values.
	Operations []string `json:"operations,omitempty"`
	// Enforced is true when the replica applies the mutator.
	Enforced bool `json:"enforced,omitempty"`
	// Errors say why the mutator is not enforced.
	Errors []MutatorError `json:"errors,omitempty"`
	// ObservedGeneration is the mutator's generation the replica loaded.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// MutatorError is an error loading a mutator.
type MutatorError struct {
	// Type is the class of the error: ErrConflictingSchema when the
	// mutator disagrees with another on the schema of a kind.
	Type string `json:"type,omitempty"`
	// Message is the error.
	Message string `json:"message"`
}

// MutatorStatus is the observed state of a mutator.
type MutatorStatus struct {
	// ByPod lists each replica's report.
	ByPod []MutatorPodStatus `json:"byPod,omitempty"`

	// Conditions are Portcullis' observations of the mutator. Ready is True
	// once every replica that observed the current generation enforces it.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
