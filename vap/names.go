package vap

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// namePrefix starts the name of every object generated, as in Gatekeeper.
const namePrefix = "gatekeeper-"

// PolicyName is the name of a template's policy: gatekeeper-<template>.
func PolicyName(template string) string { return namePrefix + template }

// BindingName is the name of a constraint's binding,
// gatekeeper-<lowercase kind>-<constraint>. A name longer than an object
// name may be is cut, and ends with a dash and the first 8 hexadecimal
// digits of the SHA-256 of the whole name, as Gatekeeper names it.
func BindingName(kind, constraint string) string {
	name := namePrefix + strings.ToLower(kind) + "-" + constraint
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:8]
	cut := strings.TrimRight(name[:validation.DNS1123SubdomainMaxLength-len(hash)-1], "-.")
	return cut + "-" + hash
}

// legacyBindingName is the name Gatekeeper before 3.23 gave a binding,
// gatekeeper-<constraint>: a binding of that name that a constraint
// controls is deleted when its binding is written.
func legacyBindingName(constraint string) string { return namePrefix + constraint }
