package controllers

import (
	"strings"
	"sync"
)

// Kinds records which template defines each constraint kind loaded into the
// engine. The template reconciler writes it; the constraint reconciler reads
// it to tell a constraint whose template is not loaded. Kinds are compared
// case-insensitively, as their CRD names are.
type Kinds struct {
	mu     sync.RWMutex
	owners map[string]kindOwner // by lowercase kind
}

type kindOwner struct {
	kind     string
	template string
}

// NewKinds returns an empty registry.
func NewKinds() *Kinds { return &Kinds{owners: map[string]kindOwner{}} }

// Owner returns the template that defines kind, or "".
func (k *Kinds) Owner(kind string) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.owners[strings.ToLower(kind)].template
}

// Loaded reports whether kind, spelled exactly so, is loaded.
func (k *Kinds) Loaded(kind string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	o, ok := k.owners[strings.ToLower(kind)]
	return ok && o.kind == kind
}

// Set records that template defines kind.
func (k *Kinds) Set(kind, template string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.owners[strings.ToLower(kind)] = kindOwner{kind: kind, template: template}
}

// Release forgets kind if template defines it.
func (k *Kinds) Release(kind, template string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.owners[strings.ToLower(kind)].template == template {
		delete(k.owners, strings.ToLower(kind))
	}
}
