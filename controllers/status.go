package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// FieldManager is the field manager of every write Portcullis makes.
const FieldManager = "portcullis"

// ConditionReady is the condition `kubectl wait --for=condition=Ready` waits for.
const ConditionReady = "Ready"

// Error codes in status.byPod[].errors. The template codes are Gatekeeper's.
const (
	CodeIngest            = "ingest_error"
	CodeCreate            = "create_error"
	CodeUpdate            = "update_error"
	CodeEnforcementAction = "enforcement_action_error"
	CodeConstraint        = "constraint_error"
	CodeTemplateNotLoaded = "template_not_loaded"
)

// StatusError is one error in a byPod entry, as Gatekeeper writes them.
type StatusError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Location string `json:"location,omitempty"`
}

// statusMutation computes a new status from the current one. It must not
// modify its argument, and must return an equal status when nothing changed,
// so that the write is skipped.
type statusMutation func(status map[string]any) (map[string]any, error)

// statusWriter reads an object and writes its status subresource.
type statusWriter struct {
	get    func(ctx context.Context) (*unstructured.Unstructured, error)
	update func(ctx context.Context, u *unstructured.Unstructured) error
}

// writeStatus applies mutate to the status of obj (or, if nil, of a fresh
// read) and writes it unless it is unchanged. On a conflict with another
// writer, another replica writing its own byPod entry for instance, it reads
// the object again and reapplies mutate, so entries written by others are
// kept. It reports whether it wrote.
func writeStatus(ctx context.Context, obj *unstructured.Unstructured, w statusWriter, mutate statusMutation) (bool, error) {
	return writeObjectStatus(ctx, obj, w, func(_ *unstructured.Unstructured, cur map[string]any) (map[string]any, error) {
		return mutate(cur)
	})
}

// writeObjectStatus is writeStatus with a mutation that also reads the
// object the status is of (its generation, for one).
func writeObjectStatus(ctx context.Context, obj *unstructured.Unstructured, w statusWriter, mutate func(obj *unstructured.Unstructured, status map[string]any) (map[string]any, error)) (bool, error) {
	wrote := false
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if obj == nil {
			fresh, err := w.get(ctx)
			if err != nil {
				return err
			}
			obj = fresh
		}
		cur, _, err := unstructured.NestedMap(obj.Object, "status")
		if err != nil {
			return fmt.Errorf("reading status: %w", err)
		}
		next, err := mutate(obj, cur)
		if err != nil {
			return err
		}
		if same, err := jsonEqual(cur, next); err != nil || same {
			return err
		}
		u := obj.DeepCopy()
		u.Object["status"] = next
		if err := w.update(ctx, u); err != nil {
			obj = nil // read again on conflict
			return err
		}
		wrote = true
		return nil
	})
	if apierrors.IsNotFound(err) {
		// Deleted meanwhile: its delete event follows.
		return false, nil
	}
	return wrote, err
}

// resourceWriter reads and writes the status of the object name through
// res; what names it in errors. A read finding another object of that name
// (another UID) fails: the object was replaced.
func resourceWriter(res dynamic.ResourceInterface, what, name string, uid types.UID) statusWriter {
	return statusWriter{
		get: func(ctx context.Context) (*unstructured.Unstructured, error) {
			fresh, err := res.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("getting %s %s: %w", what, name, err)
			}
			if fresh.GetUID() != uid {
				return nil, fmt.Errorf("%s %s was replaced (uid %s, want %s)", what, name, fresh.GetUID(), uid)
			}
			return fresh, nil
		},
		update: func(ctx context.Context, obj *unstructured.Unstructured) error {
			if _, err := res.UpdateStatus(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
				return fmt.Errorf("updating status of %s %s: %w", what, name, err)
			}
			return nil
		},
	}
}

// WriteByPod writes entry, whose "id" names this replica, into the
// status.byPod of the object name (of uid) through res, keeping the other
// replicas' entries and the rest of the status; what names the object in
// errors. It reports whether it wrote (not when nothing changed).
func WriteByPod(ctx context.Context, res dynamic.ResourceInterface, what, name string, uid types.UID, entry map[string]any) (bool, error) {
	return writeStatus(ctx, nil, resourceWriter(res, what, name, uid), func(cur map[string]any) (map[string]any, error) {
		status := copyStatus(cur)
		setByPod(status, runtime.DeepCopyJSON(entry))
		return status, nil
	})
}

// jsonEqual compares two unstructured values as their JSON, which ignores
// int64/float64 and nil/empty-map differences that do not reach the wire.
func jsonEqual(a, b map[string]any) (bool, error) {
	if len(a) == 0 && len(b) == 0 {
		return true, nil
	}
	ja, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encoding status: %w", err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("encoding status: %w", err)
	}
	return bytes.Equal(ja, jb), nil
}

// copyStatus returns a deep copy of status, never nil.
func copyStatus(status map[string]any) map[string]any {
	if status == nil {
		return map[string]any{}
	}
	return runtime.DeepCopyJSON(status)
}

// Replica is what identifies this replica in the status.byPod entries it
// writes, as Gatekeeper's pods do: its ID (the Pod's name in a cluster) and
// the operations it runs (Gatekeeper's --operation values, sorted).
type Replica struct {
	ID         string
	Operations []string
}

// SortedOperations returns a sorted copy of the operations, nil when
// there are none.
func (r Replica) SortedOperations() []string {
	if len(r.Operations) == 0 {
		return nil
	}
	out := slices.Clone(r.Operations)
	slices.Sort(out)
	return out
}

// setByPod replaces the byPod entry whose id is entry's id, or adds entry,
// and sorts the entries by id, as Gatekeeper lists them. Every other entry
// is kept as it is.
func setByPod(status map[string]any, entry map[string]any) {
	old, _ := status["byPod"].([]any)
	out := make([]any, 0, len(old)+1)
	out = append(out, entry)
	for _, e := range old {
		if m, ok := e.(map[string]any); ok && m["id"] == entry["id"] {
			continue
		}
		out = append(out, e)
	}
	sortByPod(out)
	status["byPod"] = out
}

// sortByPod sorts byPod entries by id; malformed entries go last.
func sortByPod(list []any) {
	id := func(e any) (string, bool) {
		m, ok := e.(map[string]any)
		if !ok {
			return "", false
		}
		s, ok := m["id"].(string)
		return s, ok
	}
	slices.SortStableFunc(list, func(a, b any) int {
		ia, oka := id(a)
		ib, okb := id(b)
		switch {
		case oka && okb:
			return strings.Compare(ia, ib)
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
}

// byPodEntries decodes status.byPod into T, skipping malformed entries.
func byPodEntries[T any](status map[string]any) []T {
	list, _ := status["byPod"].([]any)
	out := make([]T, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		var t T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &t); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// byPodReadiness is what the Ready condition reads of a byPod entry, in the
// fields every kind's entries share.
type byPodReadiness struct {
	Enforced           bool          `json:"enforced"`
	Errors             []StatusError `json:"errors,omitempty"`
	ObservedGeneration int64         `json:"observedGeneration"`
}

// setReady sets the Ready condition of an object (what names its kind) at
// generation from its byPod entries: True when every replica that
// observed the generation enforces it, else False with the first error.
func setReady(status map[string]any, generation int64, what string) error {
	cond := metav1.Condition{Type: ConditionReady, ObservedGeneration: generation, Status: metav1.ConditionTrue, Reason: ReasonEnforced, Message: "The " + what + " is enforced"}
	for _, p := range byPodEntries[byPodReadiness](status) {
		if p.ObservedGeneration != generation || (p.Enforced && len(p.Errors) == 0) {
			continue
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonNotEnforced, "Not enforced"
		if len(p.Errors) > 0 {
			cond.Message = p.Errors[0].Message
		}
		break
	}
	return setCondition(status, cond)
}

// setCondition sets cond in status.conditions, keeping its transition time
// when its status does not change.
func setCondition(status map[string]any, cond metav1.Condition) error {
	var conds []metav1.Condition
	if list, ok := status["conditions"].([]any); ok {
		for _, c := range list {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			var mc metav1.Condition
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &mc); err == nil {
				conds = append(conds, mc)
			}
		}
	}
	meta.SetStatusCondition(&conds, cond)
	out := make([]any, 0, len(conds))
	for i := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			return fmt.Errorf("encoding condition %s: %w", conds[i].Type, err)
		}
		out = append(out, m)
	}
	status["conditions"] = out
	return nil
}

// toUnstructuredMap converts a typed value to an unstructured map.
func toUnstructuredMap(v any) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return m, nil
}
