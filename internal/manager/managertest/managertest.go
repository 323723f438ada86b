// Package managertest runs the manager of internal/manager in-process for
// tests: options for a test's replica, start and stop, and the manager
// with its webhook registered with the API server by URL. It is apart
// from internal/testenv so that the packages the manager imports may use
// testenv in their own tests.
package managertest

import (
	"context"
	"fmt"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/webhook"
)

// Options returns the options of a manager whose replica ID is podID, with
// no metrics server and no probes, and with its audit loop, its webhooks
// and its generation of ValidatingAdmissionPolicies off: a test turns on
// what it tests.
func Options(podID string) manager.Options {
	opts := manager.NewOptions()
	opts.PodID = podID
	opts.MetricsBindAddress = "0"
	opts.HealthProbeBindAddress = "0"
	opts.Audit.Interval = 0
	opts.Webhook.Enabled = false
	opts.Webhook.Mutation = false
	opts.VAP.CreatePolicies, opts.VAP.CreateBindings = false, false
	return opts
}

// Manager is a manager running in-process until Stop.
type Manager struct {
	*manager.Manager
	cancel context.CancelFunc
	done   chan error
	// beforeStop, if set, runs when Stop has canceled the manager, before
	// Stop waits for it.
	beforeStop func()
	stopOnce   sync.Once
	stopErr    error
}

// Start completes opts, builds a manager with them on cfg, runs setup on
// it if setup is not nil (to add what `portcullis manager` adds, such as
// the audit), and starts it.
func Start(cfg *rest.Config, opts manager.Options, setup func(*manager.Manager) error) (*Manager, error) {
	if err := opts.Complete(); err != nil {
		return nil, fmt.Errorf("completing the manager's options: %w", err)
	}
	m, err := manager.New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("building the manager: %w", err)
	}
	if setup != nil {
		if err := setup(m); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Manager{Manager: m, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Start(ctx) }()
	return r, nil
}

// Stop stops the manager and returns the error it ended with; later calls
// return the same.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() {
		m.cancel()
		if m.beforeStop != nil {
			m.beforeStop()
		}
		m.stopErr = <-m.done
	})
	return m.stopErr
}

// WaitServing waits until the manager is ready and, if readyzURL is not
// "", until its /readyz at that URL answers (manager.Manager.WaitReady),
// for timeout at the most.
func (m *Manager) WaitServing(readyzURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return m.WaitReady(ctx, readyzURL, m.done)
}

// WebhookManager is a manager serving its webhook, registered by URL.
type WebhookManager struct {
	*Manager
	// Webhook is the webhook's options, completed as the manager completes
	// them (its configuration's name, in particular).
	Webhook webhook.Options
	// Readyz is the URL of the manager's /readyz.
	Readyz string
}

// StartWebhook starts a manager with opts, probes on a free port and its
// webhook on a free port of 127.0.0.1, which it registers with the API
// server by URL, and waits for timeout at the most until it serves. c
// deletes the webhook configuration when Stop is called: it would point
// at a closed port, and its namespace-label webhook fails closed.
func StartWebhook(cfg *rest.Config, c client.Client, opts manager.Options, timeout time.Duration) (*WebhookManager, error) {
	probes, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	opts.MetricsBindAddress = "0"
	opts.HealthProbeBindAddress = probes
	opts.Webhook.URLHost = "127.0.0.1"
	opts.Webhook.Port = port
	w := &WebhookManager{Webhook: opts.Webhook, Readyz: "http://" + probes + "/readyz"}
	// The configuration's name, as the manager completes it.
	w.Webhook.Namespace = opts.Namespace
	if err := w.Webhook.Complete(); err != nil {
		return nil, err
	}
	m, err := Start(cfg, opts, nil)
	if err != nil {
		return nil, err
	}
	w.Manager = m
	m.beforeStop = func() {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		vwc.Name = w.Webhook.ConfigurationName
		_ = c.Delete(context.Background(), vwc)
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		mwc.Name = w.Webhook.MutatingConfigurationName
		_ = c.Delete(context.Background(), mwc)
	}
	if err := m.WaitServing(w.Readyz, timeout); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return w, nil
}
