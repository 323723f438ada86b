package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestSetByPod(t *testing.T) {
	other := map[string]any{"id": "b", "observedGeneration": int64(1), "templateUID": "kept"}
	tests := []struct {
		name  string
		old   []any
		entry map[string]any
		want  []string // ids in order
	}{
		{"empty", nil, map[string]any{"id": "a"}, []string{"a"}},
		{"sorted by id", []any{other}, map[string]any{"id": "a"}, []string{"a", "b"}},
		{"sorted after others", []any{other}, map[string]any{"id": "c"}, []string{"b", "c"}},
		{"replace", []any{other, map[string]any{"id": "a"}}, map[string]any{"id": "a", "x": 1}, []string{"a", "b"}},
		{"duplicates collapse", []any{map[string]any{"id": "a"}, other, map[string]any{"id": "a"}}, map[string]any{"id": "a"}, []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status := map[string]any{"byPod": tc.old}
			setByPod(status, tc.entry)
			list := status["byPod"].([]any)
			var ids []string
			for _, e := range list {
				ids = append(ids, e.(map[string]any)["id"].(string))
				if e.(map[string]any)["id"] == "b" && e.(map[string]any)["templateUID"] != "kept" {
					t.Errorf("another replica's entry lost a field: %v", e)
				}
			}
			if len(ids) != len(tc.want) {
				t.Fatalf("ids = %v, want %v", ids, tc.want)
			}
			for i := range ids {
				if ids[i] != tc.want[i] {
					t.Fatalf("ids = %v, want %v", ids, tc.want)
				}
			}
		})
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	status := map[string]any{}
	cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonPending, ObservedGeneration: 1}
	if err := setCondition(status, cond); err != nil {
		t.Fatal(err)
	}
	first := status["conditions"].([]any)[0].(map[string]any)["lastTransitionTime"]
	if first == nil || first == "" {
		t.Fatalf("no lastTransitionTime in %v", status)
	}
	before := copyStatus(status)
	if err := setCondition(status, cond); err != nil {
		t.Fatal(err)
	}
	if same, _ := jsonEqual(before, status); !same {
		t.Errorf("setting the same condition changed the status:\n%v\n%v", before, status)
	}
}

// TestWriteStatus checks the read-modify-write loop: no write when nothing
// changes, and a fresh read and reapplied mutation after a conflict.
func TestWriteStatus(t *testing.T) {
	obj := func(rv string, byPod ...any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"byPod": byPod}}}
		u.SetResourceVersion(rv)
		return u
	}
	mutate := func(cur map[string]any) (map[string]any, error) {
		s := copyStatus(cur)
		setByPod(s, map[string]any{"id": "a", "observedGeneration": int64(1)})
		return s, nil
	}
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "things"}, "x", errors.New("changed"))

	t.Run("unchanged", func(t *testing.T) {
		writes := 0
		w := statusWriter{update: func(context.Context, *unstructured.Unstructured) error { writes++; return nil }}
		wrote, err := writeStatus(t.Context(), obj("1", map[string]any{"id": "a", "observedGeneration": int64(1)}), w, mutate)
		if err != nil || wrote || writes != 0 {
			t.Errorf("wrote=%t writes=%d err=%v, want no write", wrote, writes, err)
		}
	})

	t.Run("conflict", func(t *testing.T) {
		var written []*unstructured.Unstructured
		gets := 0
		w := statusWriter{
			get: func(context.Context) (*unstructured.Unstructured, error) {
				gets++
				// Another replica wrote its entry meanwhile.
				return obj("2", map[string]any{"id": "b"}), nil
			},
			update: func(_ context.Context, u *unstructured.Unstructured) error {
				written = append(written, u)
				if u.GetResourceVersion() == "1" {
					return conflict
				}
				return nil
			},
		}
		wrote, err := writeStatus(t.Context(), obj("1"), w, mutate)
		if err != nil || !wrote || gets != 1 || len(written) != 2 {
			t.Fatalf("wrote=%t gets=%d writes=%d err=%v, want a second write after one fresh read", wrote, gets, len(written), err)
		}
		last := written[1]
		if ids := byPodIDList(last); ids != "a,b" {
			t.Errorf("byPod ids written = %s, want a,b (the other replica's entry kept)", ids)
		}
	})

	t.Run("deleted", func(t *testing.T) {
		w := statusWriter{update: func(context.Context, *unstructured.Unstructured) error {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "things"}, "x")
		}}
		wrote, err := writeStatus(t.Context(), obj("1"), w, mutate)
		if err != nil || wrote {
			t.Errorf("wrote=%t err=%v, want nothing for an object deleted meanwhile", wrote, err)
		}
	})
}

func byPodIDList(u *unstructured.Unstructured) string {
	return strings.Join(byPodIDs(u), ",")
}
