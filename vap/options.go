package vap

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/portcullis-dev/portcullis/internal/flagvalue"
)

// Gatekeeper's defaults.
const (
	// DefaultWaitForBindings is --default-wait-for-vapb-generation: how
	// long after its constraint CRD is created a binding waits, so that the
	// API server's admission has discovered the CRD its paramKind names.
	DefaultWaitForBindings = 30 * time.Second
)

// Options are the generation's settings, Gatekeeper's flags.
type Options struct {
	// CreatePolicies generates a policy for every template with
	// K8sNativeValidation code that does not set source.generateVAP
	// (--default-create-vap-for-templates, default true); generateVAP
	// decides for the template when set.
	CreatePolicies bool
	// CreateBindings generates a binding for every constraint of such a
	// template, unless its enforcementAction is scoped
	// (--default-create-vap-binding-for-constraints, default true); a
	// scoped constraint has one when an action names the vap.k8s.io
	// enforcement point (or *).
	CreateBindings bool
	// WaitForBindings is how long after its constraint CRD is created a
	// binding waits (--default-wait-for-vapb-generation, whole seconds).
	WaitForBindings time.Duration
	// SyncEnforcementScope makes each policy match what the webhook
	// judges (--sync-vap-enforcement-scope, default true): its rules and
	// selectors, the namespaces the Config excludes from the webhook and
	// the exempt namespaces. Off, a policy matches CREATE and UPDATE of
	// everything, but for Portcullis's own namespace and the exempt
	// namespaces, which are always left out.
	SyncEnforcementScope bool
	// DefaultFailurePolicy is the failurePolicy of the sources that set
	// none (--default-k8s-native-validation-failure-policy): Fail or
	// Ignore. The manager sets it from the engine's option.
	DefaultFailurePolicy string
}

// NewOptions returns Gatekeeper's defaults.
func NewOptions() Options {
	return Options{
		CreatePolicies:       true,
		CreateBindings:       true,
		WaitForBindings:      DefaultWaitForBindings,
		SyncEnforcementScope: true,
		DefaultFailurePolicy: FailurePolicyFail,
	}
}

// Flag names, Gatekeeper's.
const (
	FlagCreatePolicies  = "default-create-vap-for-templates"
	FlagCreateBindings  = "default-create-vap-binding-for-constraints"
	FlagWaitForBindings = "default-wait-for-vapb-generation"
	FlagSyncScope       = "sync-vap-enforcement-scope"
)

// FlagNames are the flags AddFlags binds.
var FlagNames = []string{FlagCreatePolicies, FlagCreateBindings, FlagWaitForBindings, FlagSyncScope}

// AddFlags binds the options to Gatekeeper's flags in fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.CreatePolicies, FlagCreatePolicies, o.CreatePolicies,
		"generate a ValidatingAdmissionPolicy gatekeeper-<template> for each template with K8sNativeValidation (CEL) code, unless its source sets generateVAP: false "+
			"(false: only those with generateVAP: true); only replicas with --operation=generate write them")
	fs.BoolVar(&o.CreateBindings, FlagCreateBindings, o.CreateBindings,
		"generate a ValidatingAdmissionPolicyBinding gatekeeper-<kind>-<constraint> for each constraint of such a template (scoped constraints: when an action names the vap.k8s.io enforcement point)")
	fs.Var(flagvalue.NewSeconds(&o.WaitForBindings), FlagWaitForBindings,
		"seconds a binding waits after its constraint CRD is created, so that the API server's admission knows the kind its policy's paramKind names")
	fs.BoolVar(&o.SyncEnforcementScope, FlagSyncScope, o.SyncEnforcementScope,
		"generated policies match what the webhook judges: its operations, rules and namespace selector, the namespaces the Config excludes from the webhook and the exempt namespaces "+
			"(false: CREATE and UPDATE of everything but Portcullis's namespace and the exempt namespaces)")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.WaitForBindings < 0 {
		errs = append(errs, fmt.Errorf("--%s must not be negative, got %s", FlagWaitForBindings, o.WaitForBindings))
	}
	if o.DefaultFailurePolicy != "" && o.DefaultFailurePolicy != FailurePolicyFail && o.DefaultFailurePolicy != FailurePolicyIgnore {
		errs = append(errs, fmt.Errorf("the default failure policy must be Fail or Ignore, got %q", o.DefaultFailurePolicy))
	}
	return errors.Join(errs...)
}
