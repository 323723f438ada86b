package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AddData puts an object into data.inventory for referential policies; a
// Namespace also serves namespaceSelector and namespaceObject.
func (e *Engine) AddData(ctx context.Context, u *unstructured.Unstructured) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.addData(ctx, u); err != nil {
		return fmt.Errorf("adding %s to inventory: %w", dataRef(u), err)
	}
	return nil
}

func (e *Engine) addData(ctx context.Context, u *unstructured.Unstructured) error {
	key, err := inventoryKey(u)
	if err != nil {
		return err
	}
	if err := e.target.namespaces.Add(key, u.Object); err != nil {
		return err
	}
	// The Rego driver gets a copy through JSON, as from the frameworks
	// client: numbers are float64, and the caller's object is not shared.
	b, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return err
	}
	if err := e.driver.AddData(ctx, TargetName, key, data); err != nil {
		e.target.namespaces.Remove(key)
		return err
	}
	return nil
}

// RemoveData removes an object from data.inventory.
func (e *Engine) RemoveData(ctx context.Context, u *unstructured.Unstructured) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	key, err := inventoryKey(u)
	if err == nil {
		err = e.driver.RemoveData(ctx, TargetName, key)
	}
	if err != nil {
		return fmt.Errorf("removing %s from inventory: %w", dataRef(u), err)
	}
	e.target.namespaces.Remove(key)
	return nil
}

// WipeData clears all of data.inventory.
func (e *Engine) WipeData(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.driver.RemoveData(ctx, TargetName, nil); err != nil {
		return fmt.Errorf("wiping inventory: %w", err)
	}
	e.target.namespaces.Remove(nil)
	return nil
}

func dataRef(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", u.GroupVersionKind(), u.GetNamespace(), u.GetName())
}
